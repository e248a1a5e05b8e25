import { Worker, type NativeConnection, type WorkerOptions } from '@temporalio/worker';
import { fileURLToPath } from 'node:url';
import { createActivities, type ImportHooks } from '../activities/index.js';
import type { Destination } from '../clickhouse/destination.js';
import type { S3Connections } from '../s3/connections.js';

export const workflowsPath = fileURLToPath(new URL('../workflows/index.ts', import.meta.url));

export interface ConnectorWorkerOptions {
  connection: NativeConnection;
  namespace: string;
  taskQueue: string;
  destination: Destination;
  s3: S3Connections;
  /** A prebuilt workflow bundle (production, tests); otherwise workflows are bundled at start. */
  workflowBundle?: { code: string } | { codePath: string };
  /** Most imports this worker runs at once, across data sources. @default 8 */
  maxConcurrentImports?: number;
  /** Fault-injection points for the failure tests. */
  hooks?: ImportHooks;
  /** Where to print one line per sync run. */
  log?: (line: string) => void;
}

export async function createConnectorWorker(opts: ConnectorWorkerOptions): Promise<Worker> {
  const options: WorkerOptions = {
    connection: opts.connection,
    namespace: opts.namespace,
    taskQueue: opts.taskQueue,
    activities: createActivities({ destination: opts.destination, s3: opts.s3, hooks: opts.hooks, log: opts.log }),
    maxConcurrentActivityTaskExecutions: opts.maxConcurrentImports ?? 8,
    // Lets in-flight imports record 'cancelled' (or finish) before the process exits.
    shutdownGraceTime: '20 seconds',
    // Heartbeats reach the server within 2 s, so a pause cancels in-flight imports promptly.
    maxHeartbeatThrottleInterval: '2 seconds',
    ...(opts.workflowBundle ? { workflowBundle: opts.workflowBundle } : { workflowsPath }),
  };
  return Worker.create(options);
}
