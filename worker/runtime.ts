import type { Client } from '@temporalio/client';
import type { NativeConnection, Worker } from '@temporalio/worker';
import { checkServer, createDestination, type Destination } from '../clickhouse/destination.js';
import { Ledger } from '../activities/ledger.js';
import { S3Connections } from '../s3/connections.js';
import { createApp, type App } from '../api/app.js';
import { parseAllowedHosts, parseTokens } from '../api/auth.js';
import { listen } from '../api/listen.js';
import type { Env } from '../schemas/config.js';
import type { Connection } from '../schemas/connection.js';
import { closeConnection, connectClient, hasSearchAttributes } from '../temporal/client.js';
import { connectWorker } from './temporal.js';
import { createConnectorWorker } from './worker.js';
import type { ImportHooks } from '../activities/index.js';
import { EventStats } from '../events/stats.js';
import { startSqsConsumers, type SqsConsumerHooks, type SqsConsumers } from '../events/sqs-consumer.js';
import { EventStatsStore, reportEventStats } from '../events/stats-store.js';

export interface ConnectorOptions {
  env: Env;
  connections: Map<string, Connection>;
  temporalAddress: string;
  runWorker?: boolean;
  /** Serve the API on HOST:PORT (the app is always built, for in-process use). */
  serveApi?: boolean;
  workflowBundle?: { code: string } | { codePath: string };
  /** Reuse a destination (e.g. one client per test process). */
  destination?: Destination;
  /** Fault-injection points for the failure tests. */
  hooks?: ImportHooks;
  /** Where to print one line per sync run (progress for people watching the process). */
  log?: (line: string) => void;
  /** Fault-injection points of the SQS consumer. */
  sqsHooks?: SqsConsumerHooks;
}

export interface Connector {
  destination: Destination;
  s3: S3Connections;
  client: Client;
  worker: Worker | null;
  app: App;
  apiUrl: string | null;
  events: EventStats;
  stop(): Promise<void>;
}

/** Wire ClickHouse, S3, Temporal, the worker and the API together, the same way for `npm start`, tests and containers. */
export async function startConnector(opts: ConnectorOptions): Promise<Connector> {
  const { env } = opts;
  const destination = opts.destination ?? createDestination(env);
  // Before anything reads or writes: a server too old for the guarantees fails
  // here, naming the minimum version, and the connector's own tables are
  // migrated before the API answers from them.
  try {
    await destination.ensureDatabase();
    await checkServer(destination.client);
    await new Ledger(destination.client, destination.database).ensureTables();
  } catch (err) {
    if (!opts.destination) await destination.close();
    throw err;
  }
  const s3 = new S3Connections(opts.connections);
  const client = await connectClient(env, opts.temporalAddress);
  const searchAttributes = await hasSearchAttributes(client, env.TEMPORAL_NAMESPACE);
  const tokens = parseTokens(env.S3CH_API_TOKENS);

  let nativeConnection: NativeConnection | null = null;
  let worker: Worker | null = null;
  let workerRun: Promise<void> | null = null;
  if (opts.runWorker !== false) {
    nativeConnection = await connectWorker(env, opts.temporalAddress);
    worker = await createConnectorWorker({
      connection: nativeConnection,
      namespace: env.TEMPORAL_NAMESPACE,
      taskQueue: env.TEMPORAL_TASK_QUEUE,
      destination,
      s3,
      workflowBundle: opts.workflowBundle,
      hooks: opts.hooks,
      log: opts.log,
    });
    workerRun = worker.run();
  }
  // The worker pool consumes the connections' SQS queues: one long poll per queue per process.
  const events = new EventStats();
  const sqs: SqsConsumers | null = opts.runWorker !== false
    ? startSqsConsumers({ temporal: client, taskQueue: env.TEMPORAL_TASK_QUEUE, connections: opts.connections, stats: events, hooks: opts.sqsHooks, log: opts.log ?? ((line) => console.warn(line)) })
    : null;
  // Its counters go where an API in another process (a split deployment) reads them.
  const reporting = sqs && [...opts.connections.values()].some((c) => c.sqs)
    ? reportEventStats(new EventStatsStore(destination.client, destination.database), events, opts.log ?? ((line) => console.warn(line)))
    : null;

  const app = createApp({ temporal: client, taskQueue: env.TEMPORAL_TASK_QUEUE, searchAttributes, destination, s3, tokens, allowedHosts: parseAllowedHosts(env.S3CH_ALLOWED_HOSTS), events, eventStore: new EventStatsStore(destination.client, destination.database) });
  const listening = opts.serveApi ? await listen(app, env, tokens) : null;
  const apiUrl = listening?.apiUrl ?? null;

  let stopped = false;
  return {
    destination, s3, client, worker, app, apiUrl, events,
    async stop() {
      if (stopped) return;
      stopped = true;
      await listening?.close();
      await sqs?.stop();
      await reporting?.stop();
      if (worker) {
        // The SDK's runtime may already be draining the worker on SIGINT/SIGTERM.
        if (worker.getState() === 'RUNNING') worker.shutdown();
        await workerRun?.catch(() => undefined);
      }
      await nativeConnection?.close();
      // After the API stopped taking requests and the worker drained: the
      // client's calls still under way (a notify fan-out, a status read) settle first.
      await closeConnection(client.connection);
      s3.close();
      if (!opts.destination) await destination.close();
    },
  };
}
