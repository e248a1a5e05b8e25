/**
 * API-only process (containers, production): ClickHouse, S3 connections and a
 * Temporal client, composed here without the worker. The app itself is
 * assembled in app.ts; `npm start` composes worker and API in worker/runtime.ts.
 */
import { checkServer, createDestination } from '../clickhouse/destination.js';
import { Ledger } from '../activities/ledger.js';
import { S3Connections } from '../s3/connections.js';
import { ConfigError, loadConnections, loadEnv } from '../schemas/config.js';
import { closeConnection, connectClient, hasSearchAttributes } from '../temporal/client.js';
import { createApp } from './app.js';
import { parseAllowedHosts, parseTokens } from './auth.js';
import { listen } from './listen.js';
import { EventStatsStore } from '../events/stats-store.js';

try {
  const env = loadEnv();
  if (!env.TEMPORAL_ADDRESS) throw new ConfigError('TEMPORAL_ADDRESS: required for a standalone API (use `npm start` for the embedded stack)');
  if (!env.CLICKHOUSE_URL) throw new ConfigError('CLICKHOUSE_URL: required for a standalone API (the URL of a ClickHouse server)');
  const destination = createDestination(env);
  // The server is checked and the connector's tables migrated before the API answers from them.
  await destination.ensureDatabase();
  await checkServer(destination.client);
  await new Ledger(destination.client, destination.database).ensureTables();
  const s3 = new S3Connections(loadConnections(env));
  const client = await connectClient(env, env.TEMPORAL_ADDRESS);
  const tokens = parseTokens(env.S3CH_API_TOKENS);
  const app = createApp({
    temporal: client,
    taskQueue: env.TEMPORAL_TASK_QUEUE,
    searchAttributes: await hasSearchAttributes(client, env.TEMPORAL_NAMESPACE),
    destination,
    s3,
    tokens,
    allowedHosts: parseAllowedHosts(env.S3CH_ALLOWED_HOSTS),
    // The SQS queues are consumed by the worker processes: their counters come from the table they report to.
    eventStore: new EventStatsStore(destination.client, destination.database),
  });
  const listening = await listen(app, env, tokens);
  console.log(`[api] listening on ${listening.apiUrl}`);
  for (const sig of ['SIGINT', 'SIGTERM'] as const) {
    process.once(sig, () => {
      void (async () => {
        await listening.close();
        await closeConnection(client.connection);
        s3.close();
        await destination.close();
        process.exit(0);
      })();
    });
  }
} catch (err) {
  console.error(err instanceof ConfigError ? err.message : err);
  process.exit(1);
}
