import { serve, type ServerType } from '@hono/node-server';
import type { Client } from '@temporalio/client';
import type { NativeConnection, Worker } from '@temporalio/worker';
import { createDestination, type Destination } from '../activities/destination.js';
import { S3Connections } from '../activities/s3.js';
import { createApp, type App } from '../api/app.js';
import { parseAllowedHosts, type ApiTokens } from '../api/auth.js';
import type { Env } from '../schemas/config.js';
import type { Connection } from '../schemas/connection.js';
import { connectClient, connectWorker, hasSearchAttributes } from './temporal.js';
import { createConnectorWorker } from './worker.js';
import type { ImportHooks } from '../activities/index.js';

export interface ConnectorOptions {
  env: Env;
  connections: Map<string, Connection>;
  temporalAddress: string;
  runWorker?: boolean;
  /** Serve the API on HOST:PORT (the app is always built, for in-process use). */
  serveApi?: boolean;
  workflowBundle?: { code: string } | { codePath: string };
  /** Reuse a destination (e.g. one chDB per process in tests). */
  destination?: Destination;
  /** Fault-injection points for the failure tests. */
  hooks?: ImportHooks;
  /** Where to print one line per sync run (progress for people watching the process). */
  log?: (line: string) => void;
}

export interface Connector {
  destination: Destination;
  s3: S3Connections;
  client: Client;
  worker: Worker | null;
  app: App;
  apiUrl: string | null;
  stop(): Promise<void>;
}

export function parseTokens(spec: string): ApiTokens {
  const admin: string[] = [];
  const readOnly: string[] = [];
  const notify: string[] = [];
  // Anything configured means auth is on, even if every entry turned out empty: that lets nobody in, never everybody.
  const required = spec.split(',').some((entry) => entry.trim() !== '');
  for (const raw of spec.split(',').map((t) => t.trim()).filter(Boolean)) {
    const token = raw.replace(/^(ro|admin|notify):/, '').trim();
    if (!token) continue;
    if (raw.startsWith('ro:')) readOnly.push(token);
    else if (raw.startsWith('notify:')) notify.push(token);
    else admin.push(token);
  }
  return { admin, readOnly, notify, required };
}

const isLoopback = (host: string) => host === '127.0.0.1' || host === 'localhost' || host === '::1';

/** Wire ClickHouse, S3, Temporal, the worker and the API together, the same way for `npm start`, tests and containers. */
export async function startConnector(opts: ConnectorOptions): Promise<Connector> {
  const { env } = opts;
  const destination = opts.destination ?? createDestination(env);
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

  // The API reads through its own connections (destination.api), so it answers while imports run.
  const app = createApp({ temporal: client, taskQueue: env.TEMPORAL_TASK_QUEUE, searchAttributes, destination: destination.api, s3, tokens, allowedHosts: parseAllowedHosts(env.S3CH_ALLOWED_HOSTS) });
  let server: ServerType | null = null;
  let apiUrl: string | null = null;
  if (opts.serveApi) {
    let host = env.HOST;
    if (!tokens.required && !isLoopback(host)) {
      console.warn(`[api] no S3CH_API_TOKENS configured: binding to 127.0.0.1 instead of ${host}; set tokens to listen on other interfaces`);
      host = '127.0.0.1';
    }
    await new Promise<void>((resolve, reject) => {
      server = serve({ fetch: app.fetch, hostname: host, port: env.PORT }, () => resolve());
      server.on('error', reject);
    });
    const reachable = host === '0.0.0.0' ? '127.0.0.1' : host === '::' ? '::1' : host;
    apiUrl = `http://${reachable.includes(':') ? `[${reachable}]` : reachable}:${env.PORT}`;
  }

  let stopped = false;
  return {
    destination, s3, client, worker, app, apiUrl,
    async stop() {
      if (stopped) return;
      stopped = true;
      if (server) await new Promise<void>((resolve) => server!.close(() => resolve()));
      if (worker) {
        // The SDK's runtime may already be draining the worker on SIGINT/SIGTERM.
        if (worker.getState() === 'RUNNING') worker.shutdown();
        await workerRun?.catch(() => undefined);
      }
      await nativeConnection?.close();
      await client.connection.close();
      s3.close();
      if (!opts.destination) await destination.close();
    },
  };
}
