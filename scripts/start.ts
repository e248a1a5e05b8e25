/**
 * `npm start`: the whole connector on embedded defaults in one process tree —
 * Temporal dev server (with its Web UI), MinIO with a demo bucket and the
 * ClickHouse engine as child processes, the worker and the API — and a demo
 * data source. Ctrl-C stops them all.
 */
import { CreateBucketCommand, HeadBucketCommand, PutBucketNotificationConfigurationCommand, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { DefaultLogger, Runtime } from '@temporalio/worker';
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { msToTs } from '@temporalio/common/lib/time.js';
import { mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { gzipSync } from 'node:zlib';
import { ConfigError, loadConnections, loadEnv } from '../schemas/config.js';
import type { Connection } from '../schemas/connection.js';
import { parseTokens } from '../api/auth.js';
import { startConnector, type Connector } from '../worker/runtime.js';
import { callApp } from '../api/app.js';
import { DEMO_FILES, demoCsv } from './demo-data.js';
import { startEmbeddedClickHouse, startMinio, startTemporalDevServer, tcpOpen, type RunningService } from './services.js';
import { ensureTool } from './tools.js';

const say = (line: string) => process.stdout.write(`${line}\n`);
/** The token MinIO's webhook sends: a notify-only one when configured (it can do nothing else), else an admin one. */
const notifyToken = (tokens: string) => {
  const parsed = parseTokens(tokens);
  return parsed.notify[0] ?? parsed.admin[0];
};

async function main() {
  let env: ReturnType<typeof loadEnv>;
  try {
    env = loadEnv();
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    console.error(`${err.message}\nFix the variables above (see the README's Configuration table) and run again.`);
    process.exit(1);
  }
  const dataDir = resolve(env.S3CH_DATA_DIR);
  mkdirSync(dataDir, { recursive: true });
  Runtime.install({ logger: new DefaultLogger(env.LOG_LEVEL.toUpperCase() as 'WARN') });
  const services: RunningService[] = [];
  let connector: Connector | null = null;
  let stopping = false;
  const stop = async (code: number) => {
    if (stopping) return;
    stopping = true;
    say('\nstopping ...');
    await connector?.stop().catch((e) => console.error(e));
    for (const s of services.reverse()) await s.stop().catch(() => undefined);
    process.exit(code);
  };
  process.on('SIGINT', () => void stop(0));
  process.on('SIGTERM', () => void stop(0));

  try {
    let temporalAddress = env.TEMPORAL_ADDRESS;
    let temporalUi = 'your Temporal cluster\'s Web UI';
    if (!temporalAddress) {
      if (await tcpOpen('127.0.0.1', 7233)) {
        throw new Error('port 7233 is already in use: is another `npm start` running? Stop it, or set TEMPORAL_ADDRESS to use that server.');
      }
      const bin = await ensureTool('temporal', { log: (l) => say(`[tools] ${l}`) });
      say('starting Temporal dev server ...');
      const temporal = await startTemporalDevServer({
        bin,
        dbFile: join(dataDir, 'temporal', 'temporal.db'),
        port: 7233,
        uiPort: 8233,
        searchAttributes: { DataSource: 'Keyword', DataSourceState: 'Keyword' },
        logFile: join(dataDir, 'logs', 'temporal.log'),
      });
      services.push(temporal);
      temporalAddress = temporal.address;
      temporalUi = temporal.uiUrl;
    }

    let connections = loadConnections(env);
    let minioConsole: string | null = null;
    const seedDemo = connections.size === 0;
    if (seedDemo) {
      if (await tcpOpen('127.0.0.1', 9000)) {
        throw new Error('port 9000 is already in use: stop what listens there, or configure a connection (S3CH_CONNECTIONS_FILE).');
      }
      const bin = await ensureTool('minio', { log: (l) => say(`[tools] ${l}`) });
      say('starting MinIO ...');
      const minio = await startMinio({
        bin,
        dataDir: join(dataDir, 'minio'),
        port: 9000,
        consolePort: 9001,
        // MinIO's documented demo credentials: for this local demo only.
        rootUser: 'minioadmin',
        rootPassword: 'minioadmin',
        logFile: join(dataDir, 'logs', 'minio.log'),
        // Bucket notifications go to the API's webhook, so new objects are imported within seconds, not at the next poll.
        env: {
          MINIO_NOTIFY_WEBHOOK_ENABLE_S3CH: 'on',
          MINIO_NOTIFY_WEBHOOK_ENDPOINT_S3CH: `http://127.0.0.1:${env.PORT}/v1/notify`,
          MINIO_NOTIFY_WEBHOOK_QUEUE_DIR_S3CH: join(dataDir, 'minio-events'),
          ...(notifyToken(env.S3CH_API_TOKENS) ? { MINIO_NOTIFY_WEBHOOK_AUTH_TOKEN_S3CH: `Bearer ${notifyToken(env.S3CH_API_TOKENS)}` } : {}),
        },
      });
      services.push(minio);
      minioConsole = 'http://127.0.0.1:9001';
      const local: Connection = { kind: 'static', endpoint: minio.endpoint, region: 'us-east-1', forcePathStyle: true, accessKeyId: 'minioadmin', secretAccessKey: 'minioadmin' };
      connections = new Map([['local', local]]);
    }

    let clickhouse = env.CLICKHOUSE_URL ?? '';
    if (!env.CLICKHOUSE_URL) {
      if (await tcpOpen('127.0.0.1', 8123)) {
        throw new Error('port 8123 is already in use: is another `npm start` running? Stop it, or set CLICKHOUSE_URL to use that server.');
      }
      say('starting the ClickHouse engine ...');
      const engine = await startEmbeddedClickHouse({
        dir: join(dataDir, 'clickhouse'),
        port: 8123,
        database: env.CLICKHOUSE_DATABASE,
        maxMemory: env.S3CH_CHDB_MAX_MEMORY,
        cacheSize: env.S3CH_CHDB_CACHE_SIZE,
        log: (l) => say(`[tools] ${l}`),
      });
      services.push(engine);
      // The worker and the API reach it as any ClickHouse server: over HTTP, with users of their own.
      env = { ...env, ...engine.env };
      clickhouse = `${engine.url} (engine process, data in ${join(dataDir, 'clickhouse')})`;
      // A crashed engine takes the stack down with a clear line rather than leaving it failing every statement.
      void engine.exited.then((info) => {
        if (stopping) return;
        console.error(`the ClickHouse engine exited (${info.signal ? `signal ${info.signal}` : `exit code ${info.code}`}); see ${engine.logFile} and ${join(dataDir, 'clickhouse', 'logs', 'clickhouse.err.log')}`);
        void stop(1);
      });
    }
    say(`starting worker and API (ClickHouse: ${clickhouse}) ...`);
    // S3CH_WORKERS=N: the worker runs as N processes of its own (as in production), the API here.
    for (let i = 1; i <= env.S3CH_WORKERS; i++) services.push(startWorkerProcess(i, env, connections, temporalAddress));
    connector = await startConnector({ env, connections, temporalAddress, serveApi: true, runWorker: env.S3CH_WORKERS === 0, log: say });
    const api = connector.apiUrl!;
    if (!env.TEMPORAL_ADDRESS) {
      // Closed runs are kept only for the namespace's retention; the ledger is the durable record.
      // Set it explicitly rather than rely on the dev server's default.
      await connector.client.connection.workflowService.updateNamespace({
        namespace: env.TEMPORAL_NAMESPACE,
        config: { workflowExecutionRetentionTtl: msToTs(7 * 24 * 3600 * 1000) },
      });
    }

    if (seedDemo) await seedDemoBucket(connections.get('local')!, connector);

    say('');
    say('s3-clickhouse-connector is running');
    say(`  Console       ${api}/`);
    say(`  API           ${api}   (contract: ${api}/openapi.json)`);
    say(`  Temporal UI   ${temporalUi}`);
    if (minioConsole) say(`  MinIO console ${minioConsole}   (demo credentials minioadmin / minioadmin)`);
    say(`  ClickHouse    ${clickhouse}`);
    say(`  data dir      ${dataDir}`);
    say('');
    say('Rows imported into the demo table:');
    say(`  curl -s ${api}/v1/sql -H 'content-type: application/json' -d '{"query":"SELECT count() AS rows, min(timestamp), max(timestamp) FROM demo"}'`);
    say('Data source status:');
    say(`  curl -s ${api}/v1/datasources/demo`);
    if (minioConsole) say(`New objects in s3://demo/events/ are imported within seconds (bucket notifications -> ${api}/v1/notify).`);
    say('');
    say('Press Ctrl-C to stop.');
  } catch (err) {
    const message = (err as Error).message;
    const hint = /EADDRINUSE/.test(message) ? ` (the API port is taken: stop what listens there, or set PORT)` : '';
    console.error(err instanceof ConfigError ? message : `start failed: ${message}${hint}`);
    await stop(1);
  }
}

/**
 * One standalone worker (`worker/main.ts`) against this stack: the same
 * variables a production worker gets, the connections inline. Its lines are
 * printed with its number; it stops with the stack.
 */
function startWorkerProcess(n: number, env: ReturnType<typeof loadEnv>, connections: Map<string, Connection>, temporalAddress: string): RunningService {
  const root = fileURLToPath(new URL('..', import.meta.url));
  const child: ChildProcess = spawn(process.execPath, ['--import', 'tsx', 'worker/main.ts'], {
    cwd: root,
    env: {
      ...process.env,
      TEMPORAL_ADDRESS: temporalAddress,
      TEMPORAL_NAMESPACE: env.TEMPORAL_NAMESPACE,
      TEMPORAL_TASK_QUEUE: env.TEMPORAL_TASK_QUEUE,
      CLICKHOUSE_URL: env.CLICKHOUSE_URL,
      CLICKHOUSE_USER: env.CLICKHOUSE_USER,
      CLICKHOUSE_PASSWORD: env.CLICKHOUSE_PASSWORD,
      CLICKHOUSE_DATABASE: env.CLICKHOUSE_DATABASE,
      S3CH_CONNECTIONS: JSON.stringify({ connections: Object.fromEntries(connections) }),
      S3CH_CONNECTIONS_FILE: '',
      S3CH_WORKERS: '0',
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const prefix = (buf: Buffer) => buf.toString('utf8').split('\n').filter((l) => l.trim() !== '').forEach((l) => say(`[worker ${n}] ${l}`));
  child.stdout?.on('data', prefix);
  child.stderr?.on('data', prefix);
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  process.once('exit', () => child.kill('SIGKILL'));
  return {
    name: `worker ${n}`,
    pid: child.pid ?? 0,
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      // The worker drains its activities on SIGTERM; after 30 s it is killed.
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
      await exited;
      clearTimeout(timer);
    },
  };
}

async function seedDemoBucket(conn: Connection, connector: Connector) {
  if (conn.kind !== 'static') return;
  const s3 = new S3Client({ endpoint: conn.endpoint, region: conn.region, forcePathStyle: true, credentials: { accessKeyId: conn.accessKeyId, secretAccessKey: conn.secretAccessKey } });
  try {
    const exists = await s3.send(new HeadBucketCommand({ Bucket: 'demo' })).then(() => true, () => false);
    if (!exists) await s3.send(new CreateBucketCommand({ Bucket: 'demo' }));
    await s3.send(new PutBucketNotificationConfigurationCommand({
      Bucket: 'demo',
      NotificationConfiguration: { QueueConfigurations: [{ QueueArn: 'arn:minio:sqs::S3CH:webhook', Events: ['s3:ObjectCreated:*'] }] },
    }));
    if (!exists) {
      for (const f of DEMO_FILES) {
        const body = demoCsv(f.day, f.rows);
        await s3.send(new PutObjectCommand({ Bucket: 'demo', Key: f.key, Body: f.gzip ? gzipSync(body) : body }));
      }
      say(`seeded bucket demo with ${DEMO_FILES.length} CSV files`);
    }
    const existing = await callApp(connector.app, 'GET', '/v1/datasources/demo');
    if (existing.status === 404) {
      const res = await callApp(connector.app, 'POST', '/v1/datasources', {
        name: 'demo',
        connection: 'local',
        bucketUri: 's3://demo/events/**/*.csv{,.gz}',
        format: 'csv',
        schedule: '@auto',
        columns: [
          { name: 'timestamp', type: 'DateTime' },
          { name: 'user_id', type: 'UInt32' },
          { name: 'page', type: 'LowCardinality(String)' },
          { name: 'country', type: 'LowCardinality(String)' },
          { name: 'duration_ms', type: 'UInt32' },
        ],
        engine: { partitionKey: 'toYYYYMM(timestamp)', sortingKey: '(page, timestamp)' },
      });
      if (res.status !== 201) throw new Error(`creating the demo data source failed: ${JSON.stringify(res.body)}`);
      await callApp(connector.app, 'POST', '/v1/datasources/demo/sync');
      say('created data source demo (s3://demo/events/**/*.csv{,.gz}, schedule @auto) and started its first sync');
    }
  } finally {
    s3.destroy();
  }
}

void main();
