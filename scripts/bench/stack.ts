/**
 * A connector stack for one benchmark scenario, in this process: Temporal dev
 * server (in-memory) and MinIO on free loopback ports, the ClickHouse engine
 * process, and the worker + API. Each scenario starts its own, so one scenario's leftovers
 * (workflows, tables, timers) cannot skew another's numbers.
 */
import { CreateBucketCommand, S3Client } from '@aws-sdk/client-s3';
import { DefaultLogger, Runtime } from '@temporalio/worker';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { callApp } from '../../api/app.js';
import { createDestination } from '../../clickhouse/destination.js';
import { envSchema } from '../../schemas/config.js';
import type { Connection } from '../../schemas/connection.js';
import { startConnector } from '../../worker/runtime.js';
import { startEmbeddedClickHouse, startLocalServices } from '../services.js';
import { ensureTools } from '../tools.js';

const MINIO_USER = 'benchadmin';
const MINIO_PASSWORD = 'bench-secret-key-not-a-secret';

export interface BenchStack {
  minioEndpoint: string;
  s3: S3Client;
  bucket: string;
  /** A static connection to MinIO at `endpoint` (the proxy's URL, to count requests). */
  connection(endpoint: string): Connection;
  api(method: string, path: string, body?: unknown): Promise<{ status: number; body: any }>;
  stop(): Promise<void>;
}

/**
 * Starts the services, then the connector with `connections(minioEndpoint)`
 * (so a scenario can put a proxy in front of MinIO first).
 */
export async function startBenchStack(opts: {
  label: string;
  log: (line: string) => void;
  connections: (minioEndpoint: string, stack: Pick<BenchStack, 'connection'>) => Promise<Map<string, Connection>>;
}): Promise<BenchStack> {
  const cleanups: Array<() => Promise<unknown>> = [];
  const stop = async () => {
    while (cleanups.length) await cleanups.pop()!().catch(() => undefined);
  };
  try {
    const root = await mkdtemp(join(tmpdir(), `s3ch-bench-${opts.label}-`));
    cleanups.push(() => rm(root, { recursive: true, force: true }));
    try {
      Runtime.install({ logger: new DefaultLogger('WARN') });
    } catch {
      // Installed already by an earlier scenario in this process.
    }
    const tools = await ensureTools({ log: (l) => opts.log(`[tools] ${l}`) });
    const services = await startLocalServices({ tools, dir: join(root, 'logs'), minioUser: MINIO_USER, minioPassword: MINIO_PASSWORD });
    cleanups.push(services.stop);
    const minioEndpoint = services.minio.endpoint;
    const s3 = new S3Client({ endpoint: minioEndpoint, region: 'us-east-1', forcePathStyle: true, credentials: { accessKeyId: MINIO_USER, secretAccessKey: MINIO_PASSWORD } });
    cleanups.push(async () => s3.destroy());
    const bucket = 'bench';
    await s3.send(new CreateBucketCommand({ Bucket: bucket }));
    const connection = (endpoint: string): Connection => ({ kind: 'static', endpoint, region: 'us-east-1', forcePathStyle: true, accessKeyId: MINIO_USER, secretAccessKey: MINIO_PASSWORD });
    const connections = await opts.connections(minioEndpoint, { connection });
    const base = envSchema.parse({ S3CH_DATA_DIR: root, LOG_LEVEL: 'warn' });
    const engine = await startEmbeddedClickHouse({ dir: join(root, 'clickhouse'), database: 's3ch', maxMemory: base.S3CH_CHDB_MAX_MEMORY, cacheSize: base.S3CH_CHDB_CACHE_SIZE, log: (l) => opts.log(`[tools] ${l}`) });
    cleanups.push(engine.stop);
    const env = envSchema.parse({ ...engine.env, S3CH_DATA_DIR: root, TEMPORAL_TASK_QUEUE: `s3ch-bench-${opts.label}`, LOG_LEVEL: 'warn' });
    const destination = createDestination(env);
    cleanups.push(() => destination.close());
    const connector = await startConnector({ env, connections, temporalAddress: services.temporal.address, serveApi: false, destination });
    cleanups.push(() => connector.stop());
    return { minioEndpoint, s3, bucket, connection, api: (method, path, body) => callApp(connector.app, method, path, body), stop };
  } catch (e) {
    await stop();
    throw e;
  }
}

/** Runs `fn` over `items` with at most `limit` at a time. */
export async function mapLimit<T>(items: T[], limit: number, fn: (item: T, index: number) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      await fn(items[i]!, i);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
