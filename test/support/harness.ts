import { CreateBucketCommand, PutObjectCommand, DeleteObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, expect, inject } from 'vitest';
import { DefaultLogger, Runtime } from '@temporalio/worker';
import { ClickHouseLogLevel, createClient, type ClickHouseClient } from '@clickhouse/client';
import { createDestination, type Destination } from '../../clickhouse/destination.js';
import { envSchema } from '../../schemas/config.js';
import type { Connection } from '../../schemas/connection.js';
import { startConnector, type Connector } from '../../worker/runtime.js';
import { callApp } from '../../api/app.js';
import type { ImportHooks } from '../../activities/index.js';

export const uid = (prefix = 't') => `${prefix}_${randomBytes(5).toString('hex')}`;

// The SDK's INFO lines (worker state changes) would drown the test output.
try {
  Runtime.install({ logger: new DefaultLogger('WARN') });
} catch {
  // Already installed in this process.
}

let destination: Promise<Destination> | null = null;

/** The run's ClickHouse engine as the environment of a connector process would name it, for a database of its own. */
export function clickhouseEnv(database: string): Record<string, string> {
  return {
    CLICKHOUSE_URL: inject('clickhouseUrl'),
    CLICKHOUSE_USER: inject('clickhouseUser'),
    CLICKHOUSE_PASSWORD: inject('clickhousePassword'),
    CLICKHOUSE_READER_USER: inject('clickhouseReaderUser'),
    CLICKHOUSE_READER_PASSWORD: inject('clickhouseReaderPassword'),
    CLICKHOUSE_DATABASE: database,
  };
}

let admin: Promise<ClickHouseClient> | null = null;

/**
 * The engine as its administrator, in this process's database: for fixtures
 * the connector's user may not make (Parquet written with file(), tables of
 * other engines). Never give it to the connector.
 */
export function adminClient(): Promise<ClickHouseClient> {
  admin ??= processDestination().then((d) =>
    createClient({ url: inject('clickhouseUrl'), username: 's3ch_admin', password: inject('clickhouseAdminPassword'), database: d.database, log: { level: ClickHouseLogLevel.OFF } }),
  );
  return admin;
}

/** A fresh database name the test users own. */
export const testDatabase = () => uid(`${inject('clickhouseDatabasePrefix')}db`);

/**
 * This test process's destination: the run's ClickHouse engine (one server
 * process for every test file, as in production), in a database of this
 * process's own, so files running side by side never see each other's
 * ledgers or tables.
 */
export function processDestination(): Promise<Destination> {
  destination ??= (async () => {
    const d = createDestination(envSchema.parse(clickhouseEnv(testDatabase())));
    await d.ensureDatabase();
    return d;
  })();
  return destination;
}

export function minioConnection(): Connection {
  return {
    kind: 'static',
    endpoint: inject('minioEndpoint'),
    region: 'us-east-1',
    forcePathStyle: true,
    accessKeyId: inject('minioUser'),
    secretAccessKey: inject('minioPassword'),
  };
}

export function testS3(): S3Client {
  const c = minioConnection() as Extract<Connection, { kind: 'static' }>;
  return new S3Client({ endpoint: c.endpoint, region: c.region, forcePathStyle: true, credentials: { accessKeyId: c.accessKeyId, secretAccessKey: c.secretAccessKey } });
}

export async function createBucket(s3: S3Client, bucket = uid('b').replace(/_/g, '-')): Promise<string> {
  await s3.send(new CreateBucketCommand({ Bucket: bucket }));
  return bucket;
}

export async function put(s3: S3Client, bucket: string, key: string, body: string | Uint8Array) {
  await s3.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: body }));
}

export async function del(s3: S3Client, bucket: string, key: string) {
  await s3.send(new DeleteObjectCommand({ Bucket: bucket, Key: key }));
}

export interface TestConnector extends Connector {
  taskQueue: string;
  request(method: string, path: string, body?: unknown, headers?: Record<string, string>): Promise<{ status: number; body: any; headers: Headers }>;
}

/** The real connector (worker + API in-process) against the run's Temporal, MinIO and ClickHouse engine. */
export async function startTestConnector(
  overrides: Record<string, string> = {},
  extraConnections: Record<string, Connection> = {},
  options: { hooks?: ImportHooks; temporalAddress?: string; destination?: Destination } = {},
): Promise<TestConnector> {
  const taskQueue = uid('tq');
  const env = envSchema.parse({ TEMPORAL_TASK_QUEUE: taskQueue, ...overrides });
  const connector = await startConnector({
    env,
    connections: new Map([['local', minioConnection()], ...Object.entries(extraConnections)]),
    temporalAddress: options.temporalAddress ?? inject('temporalAddress'),
    workflowBundle: { codePath: inject('workflowBundlePath') },
    destination: options.destination ?? (await processDestination()),
    hooks: options.hooks,
  });
  return {
    ...connector,
    taskQueue,
    request: (method, path, body, headers) => callApp(connector.app, method, path, body, headers),
  };
}

/**
 * The usual e2e setup, registered as hooks of the calling suite: a test
 * connector, an S3 client for the run's MinIO and a fresh bucket, handed to
 * `use` once ready; stopped and closed after the suite.
 */
export function useTestStack(use: (stack: { c: TestConnector; s3: S3Client; bucket: string }) => void): void {
  let c: TestConnector | undefined;
  let s3: S3Client | undefined;
  beforeAll(async () => {
    c = await startTestConnector();
    s3 = testS3();
    use({ c, s3, bucket: await createBucket(s3) });
  });
  afterAll(async () => {
    await c?.stop();
    s3?.destroy();
  });
}

/** Poll until `check` returns a truthy value; fail with `what` after the timeout. */
export async function eventually<T>(what: string, check: () => Promise<T | undefined | null | false>, timeoutMs = 60_000, intervalMs = 250): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await check();
      if (v) return v;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}${last ? `: ${(last as Error).message}` : ''}`);
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}

export async function sql<T = Record<string, unknown>>(c: TestConnector, query: string): Promise<T[]> {
  const res = await c.request('POST', '/v1/sql', { query });
  if (res.status !== 200) throw new Error(`sql failed: ${JSON.stringify(res.body)}`);
  return res.body.data as T[];
}

/** A problem+json answer (RFC 9457) with the given status. */
export function expectProblem(res: { status: number; headers: Headers; body: any }, status: number): void {
  expect(res.status, JSON.stringify(res.body)).toBe(status);
  expect(res.headers.get('content-type')).toMatch(/^application\/problem\+json/);
  expect(res.body).toMatchObject({ type: expect.any(String), title: expect.any(String), status, detail: expect.any(String) });
}
