import { runReadOnly, SqlGuardError } from '../../clickhouse/read-only.js';
import { createRoute, type OpenAPIHono } from '@hono/zod-openapi';
import { z } from 'zod';
import type { AppEnv } from '../context.js';
import {
  previewBody, sqlBody, jsonResponse, problemResponse, globDescriptionSchema,
} from '../openapi-schemas.js';
import { summarizeConnection } from '../../schemas/connection.js';
import { badRequest, notFound } from '../errors.js';
import { ListObjectsV2Command } from '@aws-sdk/client-s3';
import { parseBucketUri } from '../../schemas/glob.js';

const json = jsonResponse;
const problem = problemResponse;

const routes = {
  health: createRoute({
    method: 'get', path: '/healthz', tags: ['system'], summary: 'Liveness and dependencies',
    responses: { 200: json(z.looseObject({ ok: z.boolean() }), 'Healthy'), 503: json(z.looseObject({ ok: z.boolean() }), 'A dependency is down') },
  }),
  whoami: createRoute({
    method: 'get', path: '/v1/whoami', tags: ['system'], summary: 'What the request\'s token may do',
    responses: {
      200: json(z.object({ scope: z.enum(['admin', 'readOnly']), canChange: z.boolean(), reason: z.string().nullable() }), 'The token\'s scope'),
      401: problem('No or unknown token'),
    },
  }),
  connections: createRoute({
    method: 'get', path: '/v1/connections', tags: ['connections'], summary: 'Configured connections (never secrets)',
    responses: { 200: json(z.object({ items: z.array(z.looseObject({ name: z.string(), kind: z.string() })), nextCursor: z.null() }), 'Connections') },
  }),
  check: createRoute({
    method: 'post', path: '/v1/connections/{name}/check', tags: ['connections'], summary: 'Can we list the bucket?',
    request: {
      params: z.object({ name: z.string().max(128) }),
      body: { content: { 'application/json': { schema: z.strictObject({ bucketUri: z.string().optional() }) } }, required: false },
    },
    responses: { 200: json(z.looseObject({ ok: z.boolean() }), 'Result of the check'), 404: problem('Unknown connection') },
  }),
  preview: createRoute({
    method: 'post', path: '/v1/preview', tags: ['connections'], summary: 'Files a bucketUri matches, inferred schema and a suggested time column',
    request: { body: { content: { 'application/json': { schema: previewBody } }, required: true } },
    responses: { 200: json(z.looseObject({ files: z.array(z.looseObject({})), glob: globDescriptionSchema, warnings: z.array(z.string()) }), 'Preview'), 400: problem('Invalid request') },
  }),
  events: createRoute({
    method: 'get', path: '/v1/events', tags: ['system'], summary: 'Event notification health: per SQS queue, and per data source, since this process started',
    responses: {
      200: json(
        z.object({
          since: z.string(),
          queues: z.array(
            z.looseObject({
              connection: z.string(), queueUrl: z.string(), polling: z.boolean(), received: z.number(), matched: z.number(), unmatched: z.number(),
              testEvents: z.number(), deleted: z.number(), redelivered: z.number(), unparseable: z.number(), signalErrors: z.number(), errors: z.number(),
              requests: z.number(), lagSeconds: z.number().describe('Age of the oldest message of the last batch on arrival; 0 once a poll finds the queue empty'),
            }),
          ).describe('The SQS queues consumed by this process and by the worker processes that reported their counters within 3 minutes (summed)'),
          dataSources: z.array(z.looseObject({ dataSource: z.string(), lastEventAt: z.string().nullable(), events: z.number() })),
        }),
        'Counters since the process started',
      ),
    },
  }),
  sql: createRoute({
    method: 'post', path: '/v1/sql', tags: ['system'], summary: 'Read-only SQL on the destination (readonly=1)',
    request: { body: { content: { 'application/json': { schema: sqlBody } }, required: true } },
    responses: {
      200: json(z.object({ meta: z.array(z.object({ name: z.string(), type: z.string() })), data: z.array(z.record(z.string(), z.unknown())), rows: z.number() }), 'Result'),
      400: problem('Invalid or rejected query'),
    },
  }),
};

export function registerSystemRoutes(app: OpenAPIHono<AppEnv>) {
  // For clients that adapt to their token (the console disables actions for a read-only one).
  app.openapi(routes.whoami, (c) => {
    const scope = c.var.scope === 'admin' ? 'admin' : 'readOnly';
    const reason = scope === 'admin' ? null : 'this token is read-only; changes, previews and connection checks need an admin token';
    return c.json({ scope, canChange: scope === 'admin', reason }, 200);
  });

  app.openapi(routes.health, async (c) => {
    const deps = c.var.deps;
    const checks: Record<string, { ok: boolean; error?: string }> = {};
    const ch = await deps.destination.client.ping();
    checks.clickhouse = ch.success ? { ok: true } : { ok: false, error: ch.error.message };
    try {
      await deps.temporal.connection.workflowService.getSystemInfo({});
      checks.temporal = { ok: true };
    } catch (err) {
      checks.temporal = { ok: false, error: (err as Error).message };
    }
    const ok = Object.values(checks).every((x) => x.ok);
    return c.json({ ok, clickhouse: deps.destination.kind, checks }, ok ? 200 : 503);
  });

  app.openapi(routes.events, async (c) => {
    return c.json(await c.var.service.eventsView(), 200);
  });

  app.openapi(routes.connections, (c) =>
    c.json({ items: c.var.deps.s3.names().map((n) => summarizeConnection(n, c.var.deps.s3.get(n))), nextCursor: null }, 200),
  );

  app.openapi(routes.check, async (c) => {
    const { name } = c.req.valid('param');
    const s3 = c.var.deps.s3;
    if (!s3.has(name)) throw notFound(`no connection named '${name}'`);
    const body = c.req.header('content-type')?.includes('json') ? c.req.valid('json') : undefined;
    if (!body?.bucketUri) return c.json({ ok: true, detail: 'connection is configured; pass bucketUri to test listing' }, 200);
    let uri;
    try {
      uri = parseBucketUri(body.bucketUri);
    } catch (err) {
      throw badRequest('invalid bucketUri', [{ field: 'bucketUri', message: (err as Error).message }]);
    }
    try {
      const page = await s3.client(name).send(new ListObjectsV2Command({ Bucket: uri.bucket, Prefix: uri.listPrefix, MaxKeys: 5 }));
      return c.json({ ok: true, sampleKeys: (page.Contents ?? []).map((o) => o.Key) }, 200);
    } catch (err) {
      const e = err as { name?: string; message?: string };
      return c.json({ ok: false, error: `${e.name ?? 'Error'}: ${e.message ?? String(err)}` }, 200);
    }
  });

  app.openapi(routes.preview, async (c) => c.json(await c.var.service.preview(c.req.valid('json')), 200));

  app.openapi(routes.sql, async (c) => {
    const { destination } = c.var.deps;
    const scope = { databases: [destination.database], defaultDatabase: destination.database };
    try {
      // As the reader user: ClickHouse's own access control stands behind the guard.
      return c.json(await runReadOnly(destination.reader, c.req.valid('json').query, scope), 200);
    } catch (err) {
      if (err instanceof SqlGuardError) throw badRequest('the query is not allowed', [{ field: err.field, message: err.reason }]);
      throw badRequest('the query failed', [{ field: 'query', message: (err as Error).message.split('\n')[0]! }]);
    }
  });
}
