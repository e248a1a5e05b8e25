/** Worker-only process (containers, production): connects to TEMPORAL_ADDRESS and CLICKHOUSE_URL. */
import { ConfigError, loadConnections, loadEnv } from '../schemas/config.js';
import { startConnector } from './runtime.js';
import { DefaultLogger, Runtime } from '@temporalio/worker';
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';

try {
  const env = loadEnv();
  Runtime.install({ logger: new DefaultLogger(env.LOG_LEVEL.toUpperCase() as 'WARN') });
  if (!env.TEMPORAL_ADDRESS) throw new ConfigError('TEMPORAL_ADDRESS: required for a standalone worker (use `npm start` for the embedded stack)');
  const connections = loadConnections(env);
  if (connections.size === 0) console.warn('[worker] no connections configured (S3CH_CONNECTIONS_FILE or S3CH_CONNECTIONS): data sources cannot read S3');
  // A prebuilt bundle (the image builds one) when present; otherwise workflows are bundled at start.
  const bundle = resolve(env.S3CH_WORKFLOW_BUNDLE);
  const workflowBundle = existsSync(bundle) ? { codePath: bundle } : undefined;
  const connector = await startConnector({ env, connections, temporalAddress: env.TEMPORAL_ADDRESS, runWorker: true, serveApi: false, workflowBundle, log: (line) => console.log(line) });
  console.log(`[worker] polling task queue ${env.TEMPORAL_TASK_QUEUE} on ${env.TEMPORAL_ADDRESS} (namespace ${env.TEMPORAL_NAMESPACE}); ClickHouse: ${connector.destination.kind}`);
  for (const sig of ['SIGINT', 'SIGTERM'] as const) process.once(sig, () => void connector.stop().then(() => process.exit(0)));
} catch (err) {
  console.error(err instanceof ConfigError ? err.message : err);
  process.exit(1);
}
