import { OpenAPIHono } from '@hono/zod-openapi';
import { bodyLimit } from 'hono/body-limit';
import { HTTPException } from 'hono/http-exception';
import type { ContentfulStatusCode } from 'hono/utils/http-status';
import { timingSafeEqual } from 'node:crypto';
import type { ApiDeps, AppEnv } from './context.js';
import { ApiError, fieldErrors } from './errors.js';
import { registerDataSourceRoutes } from './routes/datasources.js';
import { registerSystemRoutes } from './routes/system.js';
import { registerMetricsRoute } from './routes/metrics.js';
import { registerConsole } from './console/index.js';
import { DataSourceService } from './service.js';

const MAX_BODY_BYTES = 1024 * 1024;
const STATUS_TITLES: Record<number, string> = { 400: 'Bad Request', 401: 'Unauthorized', 403: 'Forbidden', 404: 'Not Found', 405: 'Method Not Allowed', 413: 'Payload Too Large', 415: 'Unsupported Media Type' };

function problemBody(status: number, title: string, detail: string, errors?: Array<{ field: string; message: string }>) {
  return { type: 'about:blank', title, status, detail, ...(errors && errors.length ? { errors } : {}) };
}

function tokenMatches(given: string, allowed: string[]): boolean {
  const g = Buffer.from(given);
  return allowed.some((t) => {
    const b = Buffer.from(t);
    return b.length === g.length && timingSafeEqual(b, g);
  });
}

export function createApp(deps: ApiDeps) {
  const service = new DataSourceService(deps);
  const app = new OpenAPIHono<AppEnv>({
    // One validation hook owns the 400 shape.
    defaultHook: (result, c) => {
      if (!result.success) {
        const errors = fieldErrors(result.error.issues);
        return c.json(problemBody(400, 'Bad Request', `invalid request ${result.target}: ${errors.map((e) => `${e.field}: ${e.message}`).join('; ')}`, errors), 400, {
          'content-type': 'application/problem+json',
        });
      }
    },
  });

  app.use('*', async (c, next) => {
    c.set('deps', deps);
    c.set('service', service);
    await next();
  });

  app.use(
    '*',
    bodyLimit({
      maxSize: MAX_BODY_BYTES,
      onError: (c) => c.json(problemBody(413, 'Payload Too Large', `request bodies are limited to ${MAX_BODY_BYTES} bytes`), 413, { 'content-type': 'application/problem+json' }),
    }),
  );

  // The console's static pages hold no data, so they are served before (without) bearer auth; its /v1 calls carry the token.
  registerConsole(app);

  // Bearer auth: reads need any configured token, changes need an admin token.
  app.use('*', async (c, next) => {
    const { admin, readOnly } = deps.tokens;
    const required = deps.tokens.required ?? admin.length + readOnly.length > 0;
    if (!required || c.req.path === '/healthz') return next();
    const header = c.req.header('authorization') ?? '';
    const token = /^Bearer\s+(.+)$/i.exec(header)?.[1]?.trim();
    if (!token) throw new ApiError(401, 'Unauthorized', 'send Authorization: Bearer <token>');
    const isAdmin = tokenMatches(token, admin);
    if (!isAdmin && !tokenMatches(token, readOnly)) throw new ApiError(401, 'Unauthorized', 'unknown token');
    // POSTs that only read: SQL (readonly), preview, and a connection check (one listing).
    const readOnlyPost = c.req.path === '/v1/sql' || c.req.path === '/v1/preview' || /^\/v1\/connections\/[^/]+\/check$/.test(c.req.path);
    const mutating = !['GET', 'HEAD', 'OPTIONS'].includes(c.req.method) && !readOnlyPost;
    if (mutating && !isAdmin) throw new ApiError(403, 'Forbidden', 'this token is read-only; changes need an admin token');
    return next();
  });

  registerSystemRoutes(app);
  registerMetricsRoute(app);
  registerDataSourceRoutes(app);

  app.doc31('/openapi.json', {
    openapi: '3.1.0',
    info: { title: 's3-clickhouse-connector', version: '0.1.0', description: 'Continuously loads files from S3 into ClickHouse; every data source is a durable Temporal workflow.' },
  });

  app.notFound((c) => c.json(problemBody(404, 'Not Found', `no route for ${c.req.method} ${c.req.path}`), 404, { 'content-type': 'application/problem+json' }));

  // The one error mapper.
  app.onError((err, c) => {
    if (err instanceof ApiError) {
      const headers: Record<string, string> = { 'content-type': 'application/problem+json' };
      if (err.status === 401) headers['www-authenticate'] = 'Bearer realm="s3-clickhouse-connector"';
      return c.json(problemBody(err.status, err.title, err.detail, err.errors), err.status, headers);
    }
    if (err instanceof HTTPException) {
      const status = err.status as ContentfulStatusCode;
      const title = STATUS_TITLES[status] ?? 'Error';
      const detail = err.message || 'malformed request';
      const errors = status === 400 ? [{ field: '(body)', message: detail }] : undefined;
      return c.json(problemBody(status, title, detail, errors), status, { 'content-type': 'application/problem+json' });
    }
    if (err && typeof err === 'object' && 'issues' in err && Array.isArray((err as { issues: unknown }).issues)) {
      const errors = fieldErrors((err as { issues: Array<{ path: PropertyKey[]; message: string }> }).issues);
      return c.json(problemBody(400, 'Bad Request', 'invalid input', errors), 400, { 'content-type': 'application/problem+json' });
    }
    console.error('[api] unexpected error', err);
    return c.json(problemBody(500, 'Internal Server Error', (err as Error)?.message ?? 'unexpected error'), 500, { 'content-type': 'application/problem+json' });
  });

  return app;
}

export type App = ReturnType<typeof createApp>;

/**
 * Call the app in-process (no port): a JSON body (or text, sent as text/plain)
 * in, the status and the parsed JSON (or text) out. The launcher, the
 * benchmark and the tests drive the API this way.
 */
export async function callApp(
  app: App,
  method: string,
  path: string,
  body?: unknown,
  headers: Record<string, string> = {},
): Promise<{ status: number; body: any; headers: Headers }> {
  const init: RequestInit = { method, headers: { ...headers } };
  if (body !== undefined) {
    init.body = typeof body === 'string' ? body : JSON.stringify(body);
    (init.headers as Record<string, string>)['content-type'] ??= typeof body === 'string' ? 'text/plain' : 'application/json';
  }
  const res = await app.request(path, init);
  const text = await res.text();
  let parsed: unknown = text;
  try {
    parsed = JSON.parse(text);
  } catch {
    // not JSON: keep the text
  }
  return { status: res.status, body: parsed, headers: res.headers };
}
