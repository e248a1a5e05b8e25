import { createRoute, type OpenAPIHono } from '@hono/zod-openapi';
import { z } from 'zod';
import type { Context } from 'hono';
import type { AppEnv } from '../context.js';
import {
  createdDataSourceSchema, dataSourceResourceSchema, dataSourcesQuery, deleteQuery, fileItemSchema, filesQuery, limitQuery, listOf, nameParam, patchBody, reimportBody, retryBody, specBody, jsonResponse, problemResponse,
} from '../openapi-schemas.js';
import { ApiError, badRequest, fieldErrors } from '../errors.js';
import { handleSnsControl, notificationBody } from '../sns.js';

const json = jsonResponse;
const problem = problemResponse;
const statusView = z.looseObject({ state: z.string() });
const snsControlView = z.object({ confirmed: z.boolean(), type: z.string(), topicArn: z.string().nullable() });

const routes = {
  create: createRoute({
    method: 'post', path: '/v1/datasources', tags: ['datasources'], summary: 'Create a data source (JSON spec)',
    request: { body: { content: { 'application/json': { schema: specBody } }, required: true } },
    responses: { 201: json(createdDataSourceSchema, 'Created'), 400: problem('Invalid spec'), 409: problem('Name taken') },
  }),
  list: createRoute({
    method: 'get', path: '/v1/datasources', tags: ['datasources'], summary: 'One page of data sources with status (follow nextCursor for the next)',
    request: { query: dataSourcesQuery },
    responses: { 200: json(listOf(dataSourceResourceSchema), 'Data sources'), 400: problem('Invalid limit, cursor, state or prefix') },
  }),
  get: createRoute({
    method: 'get', path: '/v1/datasources/{name}', tags: ['datasources'], summary: 'Spec, live status and counters',
    request: { params: nameParam },
    responses: { 200: json(dataSourceResourceSchema, 'The data source'), 404: problem('Unknown name') },
  }),
  patch: createRoute({
    method: 'patch', path: '/v1/datasources/{name}', tags: ['datasources'], summary: 'Update the spec (applied between runs)',
    request: { params: nameParam, body: { content: { 'application/json': { schema: patchBody } }, required: true } },
    responses: { 200: json(dataSourceResourceSchema, 'Updated'), 400: problem('Invalid patch'), 404: problem('Unknown name'), 409: problem('Rejected by the data source') },
  }),
  remove: createRoute({
    method: 'delete', path: '/v1/datasources/{name}', tags: ['datasources'], summary: 'Delete; optionally drop the table and the ledger rows',
    request: { params: nameParam, query: deleteQuery },
    responses: { 200: json(statusView, 'Deleted'), 404: problem('Unknown name'), 409: problem('Delete already in progress') },
  }),
  sync: createRoute({
    method: 'post', path: '/v1/datasources/{name}/sync', tags: ['control'], summary: 'Run a sync now',
    request: { params: nameParam },
    responses: { 202: json(z.object({ accepted: z.literal(true) }), 'Sync requested'), 404: problem('Unknown name') },
  }),
  pause: createRoute({
    method: 'post', path: '/v1/datasources/{name}/pause', tags: ['control'], summary: 'Pause: no new files start; in-flight imports are cancelled',
    request: { params: nameParam },
    responses: { 200: json(statusView, 'Paused'), 404: problem('Unknown name'), 409: problem('Rejected') },
  }),
  resume: createRoute({
    method: 'post', path: '/v1/datasources/{name}/resume', tags: ['control'], summary: 'Resume where it stopped',
    request: { params: nameParam },
    responses: { 200: json(statusView, 'Resumed'), 404: problem('Unknown name'), 409: problem('Rejected') },
  }),
  retry: createRoute({
    method: 'post', path: '/v1/datasources/{name}/retry', tags: ['control'], summary: 'Import listed files again, or every failed file',
    request: { params: nameParam, body: { content: { 'application/json': { schema: retryBody } }, required: false } },
    responses: { 202: json(z.object({ accepted: z.literal(true) }), 'Retry queued'), 400: problem('Invalid body'), 404: problem('Unknown name'), 409: problem('Rejected') },
  }),
  reimport: createRoute({
    method: 'post', path: '/v1/datasources/{name}/reimport', tags: ['control'],
    summary: 'Load files once more on purpose (named keys, or a last-modified window): a new, recorded import of each, as a new generation',
    request: { params: nameParam, body: { content: { 'application/json': { schema: reimportBody } }, required: true } },
    responses: {
      202: json(z.object({ accepted: z.literal(true), generation: z.number().describe('The generation the files are imported as') }), 'Re-import queued'),
      400: problem('Invalid body, or a key outside the glob'), 404: problem('Unknown name'), 409: problem('Rejected (another re-import in progress, or being deleted)'),
    },
  }),
  files: createRoute({
    method: 'get', path: '/v1/datasources/{name}/files', tags: ['files'], summary: 'Files with their latest status, newest first',
    request: { params: nameParam, query: filesQuery },
    responses: { 200: json(listOf(fileItemSchema), 'Files'), 400: problem('Invalid query'), 404: problem('Unknown name') },
  }),
  fileHistory: createRoute({
    method: 'get', path: '/v1/datasources/{name}/files/history', tags: ['files'], summary: "One file's status transitions with time spent in each",
    request: { params: nameParam, query: z.strictObject({ key: z.string().min(1).max(1024) }) },
    responses: { 200: json(z.looseObject({ key: z.string(), items: z.array(z.looseObject({})) }), 'History'), 404: problem('Unknown name') },
  }),
  runs: createRoute({
    method: 'get', path: '/v1/datasources/{name}/runs', tags: ['files'], summary: 'Sync history',
    request: { params: nameParam, query: limitQuery },
    responses: { 200: json(listOf(z.looseObject({ runId: z.string() })), 'Runs'), 404: problem('Unknown name') },
  }),
  notify: createRoute({
    method: 'post', path: '/v1/datasources/{name}/notify', tags: ['control'], summary: 'S3/MinIO/EventBridge/SNS event notification: import the named objects now',
    request: { params: nameParam, body: { content: { 'application/json': { schema: z.looseObject({}) } }, required: true } },
    responses: {
      202: json(z.object({ accepted: z.number(), ignored: z.number() }), 'Objects matching the glob are being imported'),
      200: json(snsControlView, 'SNS subscription confirmed (SubscribeURL fetched) or unsubscription acknowledged'),
      400: problem('Not JSON, or a SubscribeURL that is not an SNS endpoint'), 404: problem('Unknown name'), 502: problem('SNS did not confirm the subscription'),
    },
  }),
  notifyAll: createRoute({
    method: 'post', path: '/v1/notify', tags: ['control'], summary: 'Event notification webhook for every data source (bucket notification target)',
    request: { body: { content: { 'application/json': { schema: z.looseObject({}) } }, required: true } },
    responses: {
      202: json(z.object({ accepted: z.number(), dataSources: z.array(z.string()) }), 'Routed to the data sources whose bucket and glob match'),
      200: json(snsControlView, 'SNS subscription confirmed (SubscribeURL fetched) or unsubscription acknowledged'),
      400: problem('Not JSON, or a SubscribeURL that is not an SNS endpoint'), 502: problem('SNS did not confirm the subscription'),
    },
  }),
  quarantine: createRoute({
    method: 'get', path: '/v1/datasources/{name}/quarantine', tags: ['files'], summary: 'Rows that did not fit, with file, line, raw text and reason',
    request: { params: nameParam, query: limitQuery },
    responses: { 200: json(listOf(z.looseObject({ key: z.string(), line: z.number() })), 'Quarantined rows'), 404: problem('Unknown name') },
  }),
};

/** One data source's notification: an SNS handshake is answered, anything else imports the objects it names. */
async function notifyOne(c: Context<AppEnv>, name: string, body: unknown) {
  // First, so an unknown name is 404 before any SNS confirmation (an SNS control message names no object: nothing is imported).
  const result = await c.var.service.notify(name, body);
  const sns = await handleSnsControl(c, body);
  return sns ? c.json(sns, 200) : c.json(result, 202);
}

async function notifyAll(c: Context<AppEnv>, body: unknown) {
  const sns = await handleSnsControl(c, body);
  return sns ? c.json(sns, 200) : c.json(await c.var.service.notifyAll(body), 202);
}

export function registerDataSourceRoutes(app: OpenAPIHono<AppEnv>) {
  // A Tinybird .datasource file (text/plain) creates a data source too; JSON goes on to the typed route.
  app.post('/v1/datasources', async (c, next) => {
    if (!c.req.header('content-type')?.startsWith('text/plain')) return next();
    return c.json(await c.var.service.createFromFile(await c.req.text(), c.req.query('name')), 201);
  });
  app.openapi(routes.create, async (c) => c.json(await c.var.service.create(c.req.valid('json')), 201));
  app.openapi(routes.list, async (c) => c.json(await c.var.service.list(c.req.valid('query')), 200));
  app.openapi(routes.get, async (c) => c.json(await c.var.service.get(c.req.valid('param').name), 200));
  // The raw body, not the validated one: validation fills defaults, and a PATCH must change only what it names.
  app.openapi(routes.patch, async (c) => c.json(await c.var.service.patch(c.req.valid('param').name, await c.req.json()), 200));
  app.openapi(routes.remove, async (c) => {
    const q = c.req.valid('query');
    return c.json(await c.var.service.remove(c.req.valid('param').name, q.dropTable === 'true', q.dropLedger === 'true'), 200);
  });
  app.openapi(routes.sync, async (c) => {
    await c.var.service.sync(c.req.valid('param').name);
    return c.json({ accepted: true as const }, 202);
  });
  app.openapi(routes.pause, async (c) => c.json(await c.var.service.pause(c.req.valid('param').name), 200));
  app.openapi(routes.resume, async (c) => c.json(await c.var.service.resume(c.req.valid('param').name), 200));
  app.openapi(routes.retry, async (c) => {
    let keys: string[] | undefined;
    if (c.req.header('content-length') !== '0' && c.req.header('content-type')?.includes('json')) keys = c.req.valid('json')?.keys;
    await c.var.service.retry(c.req.valid('param').name, keys);
    return c.json({ accepted: true as const }, 202);
  });
  app.openapi(routes.reimport, async (c) => c.json(await c.var.service.reimport(c.req.valid('param').name, c.req.valid('json')), 202));
  app.openapi(routes.files, async (c) => c.json(await c.var.service.files(c.req.valid('param').name, c.req.valid('query')) as never, 200));
  app.openapi(routes.fileHistory, async (c) => c.json(await c.var.service.fileHistory(c.req.valid('param').name, c.req.valid('query').key), 200));
  app.openapi(routes.runs, async (c) => c.json(await c.var.service.runs(c.req.valid('param').name, c.req.valid('query').limit), 200));
  // SNS posts its JSON as text/plain: such bodies are read here; JSON ones go on to the typed routes.
  app.post('/v1/notify', async (c, next) => (c.req.header('content-type')?.includes('json') ? next() : notifyAll(c, await notificationBody(c))));
  app.post('/v1/datasources/:name/notify', async (c, next) => {
    if (c.req.header('content-type')?.includes('json')) return next();
    const param = nameParam.safeParse({ name: c.req.param('name') });
    if (!param.success) throw badRequest('invalid request param', fieldErrors(param.error.issues));
    return notifyOne(c, param.data.name, await notificationBody(c));
  });
  app.openapi(routes.notify, async (c) => notifyOne(c, c.req.valid('param').name, c.req.valid('json')));
  app.openapi(routes.notifyAll, async (c) => notifyAll(c, c.req.valid('json')));
  app.openapi(routes.quarantine, async (c) => c.json(await c.var.service.quarantine(c.req.valid('param').name, c.req.valid('query').limit), 200));
}

export { ApiError };
