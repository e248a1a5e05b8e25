/** API-only process (containers, production). The app itself is assembled in app.ts. */
import { ConfigError, loadConnections, loadEnv } from '../schemas/config.js';
import { startConnector } from '../worker/runtime.js';

try {
  const env = loadEnv();
  if (!env.TEMPORAL_ADDRESS) throw new ConfigError('TEMPORAL_ADDRESS: required for a standalone API (use `npm start` for the embedded stack)');
  if (!env.CLICKHOUSE_URL) throw new ConfigError('CLICKHOUSE_URL: required for a standalone API; embedded chDB lives inside the worker process of `npm start`');
  const connector = await startConnector({ env, connections: loadConnections(env), temporalAddress: env.TEMPORAL_ADDRESS, runWorker: false, serveApi: true });
  console.log(`[api] listening on ${connector.apiUrl}`);
  for (const sig of ['SIGINT', 'SIGTERM'] as const) process.once(sig, () => void connector.stop().then(() => process.exit(0)));
} catch (err) {
  console.error(err instanceof ConfigError ? err.message : err);
  process.exit(1);
}
