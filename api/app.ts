import { OpenAPIHono } from '@hono/zod-openapi';
import { bodyLimit } from 'hono/body-limit';
import { HTTPException } from 'hono/http-exception';
import type { ContentfulStatusCode } from 'hono/utils/http-status';
import type { ApiDeps, AppEnv } from './context.js';
import { ApiError, fieldErrors } from './errors.js';
import { credentialOf, foreignOrigin, hostAllowed, isNotifyPath, scopeOf } from './auth.js';
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

  const { tokens } = deps;
  const authRequired = tokens.required ?? tokens.admin.length + tokens.readOnly.length + (tokens.notify?.length ?? 0) > 0;

  // Without tokens the API listens on loopback only, which a browser still
  // reaches: any page can POST to it (simple requests need no preflight) and
  // DNS rebinding makes a foreign name resolve to 127.0.0.1. So then only
  // loopback (or configured) Host names are answered, and changes coming from
  // another origin are refused. The console is same-origin and unaffected.
  app.use('*', async (c, next) => {
    if (authRequired) return next();
    const host = c.req.header('host') ?? new URL(c.req.url).host;
    if (!hostAllowed(host, deps.allowedHosts ?? [])) {
      throw new ApiError(403, 'Forbidden', `Host '${host.slice(0, 256)}' is not answered without API tokens: use localhost, 127.0.0.1 or [::1], add the name to S3CH_ALLOWED_HOSTS, or set S3CH_API_TOKENS`);
    }
    if (!['GET', 'HEAD', 'OPTIONS'].includes(c.req.method)) {
      const foreign = foreignOrigin({ origin: c.req.header('origin'), secFetchSite: c.req.header('sec-fetch-site') }, host);
      if (foreign) throw new ApiError(403, 'Forbidden', `cross-origin ${c.req.method} refused (${foreign.slice(0, 256)}): without API tokens only same-origin pages (the console) and non-browser clients may change things`);
    }
    return next();
  });

  // The console's static pages hold no data, so they are served before (without) bearer auth; its /v1 calls carry the token.
  registerConsole(app);

  // Token auth. Reads need any token but a notify one; changes, and the POSTs
  // that fetch objects from any bucket a connection reaches (preview, connection
  // check), need an admin token; the notify webhooks take an admin or notify
  // token, as bearer or basic auth (what SNS and webhook senders can send).
  app.use('*', async (c, next) => {
    c.set('scope', 'admin');
    if (!authRequired || c.req.path === '/healthz') return next();
    const notifyPath = isNotifyPath(c.req.path);
    const token = credentialOf(c.req.header('authorization'), notifyPath);
    if (!token) throw new ApiError(401, 'Unauthorized', notifyPath ? 'send Authorization: Bearer <token>, or basic auth with the token as password' : 'send Authorization: Bearer <token>');
    const scope = scopeOf(token, tokens);
    if (!scope) throw new ApiError(401, 'Unauthorized', 'unknown token');
    c.set('scope', scope);
    if (scope === 'admin') return next();
    if (scope === 'notify') {
      if (notifyPath && c.req.method === 'POST') return next();
      throw new ApiError(403, 'Forbidden', 'this token may only post event notifications (POST /v1/notify, POST /v1/datasources/:name/notify)');
    }
    // Read-only: /v1/sql is a POST that only reads (readonly=1 in ClickHouse).
    if (c.req.path === '/v1/preview' || /^\/v1\/connections\/[^/]+\/check$/i.test(c.req.path)) {
      throw new ApiError(403, 'Forbidden', 'this token is read-only; preview and connection checks read objects from any bucket a connection reaches, so they need an admin token');
    }
    const mutating = !['GET', 'HEAD', 'OPTIONS'].includes(c.req.method) && c.req.path !== '/v1/sql';
    if (mutating) throw new ApiError(403, 'Forbidden', 'this token is read-only; changes need an admin token');
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
      // The notify webhooks also take basic auth: SNS sends its credentials only once challenged for them.
      if (err.status === 401) headers['www-authenticate'] = isNotifyPath(c.req.path) ? 'Basic realm="s3-clickhouse-connector", Bearer realm="s3-clickhouse-connector"' : 'Bearer realm="s3-clickhouse-connector"';
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
