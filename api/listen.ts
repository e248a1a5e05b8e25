import { serve, type ServerType } from '@hono/node-server';
import type { Env } from '../schemas/config.js';
import type { App } from './app.js';
import type { ApiTokens } from './auth.js';

const isLoopback = (host: string) => host === '127.0.0.1' || host === 'localhost' || host === '::1';

/**
 * Serve the app on HOST:PORT. Without tokens the API is reachable only from
 * this machine: it binds loopback whatever HOST says (and says so).
 */
export async function listen(app: App, env: Pick<Env, 'HOST' | 'PORT'>, tokens: ApiTokens): Promise<{ server: ServerType; apiUrl: string; close(): Promise<void> }> {
  let host = env.HOST;
  if (!tokens.required && !isLoopback(host)) {
    console.warn(`[api] no S3CH_API_TOKENS configured: binding to 127.0.0.1 instead of ${host}; set tokens to listen on other interfaces`);
    host = '127.0.0.1';
  }
  const server = await new Promise<ServerType>((resolve, reject) => {
    const s = serve({ fetch: app.fetch, hostname: host, port: env.PORT }, () => resolve(s));
    s.on('error', reject);
  });
  const reachable = host === '0.0.0.0' ? '127.0.0.1' : host === '::' ? '::1' : host;
  return {
    server,
    apiUrl: `http://${reachable.includes(':') ? `[${reachable}]` : reachable}:${env.PORT}`,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
