/**
 * The `many_sources` benchmark: a thousand data sources on one small machine.
 *
 * One `npm start`-shaped stack in this process (Temporal dev server with a
 * SQLite file and the search attributes, MinIO, chDB, worker + API in one
 * Node process), N data sources on `@auto` over empty prefixes, then:
 *
 *   create_rate            data sources created per second, one after another, through the API
 *   idle_cpu               CPU of the worker process (Node + chDB + API) plus the
 *                          Temporal server over an idle window, % of ONE core
 *   list_p95 / get_p95     GET /v1/datasources?limit=100 (following cursors) and
 *                          GET /v1/datasources/:name, in-process, while idle
 *   worker_rss             the worker process's peak resident set
 *   runs_rows_per_idle_tick, ledger_rows_idle   what idle ticks write to ClickHouse
 *   new_file_latency       a file put in one data source's prefix until the ledger says success (next tick)
 *   notify_latency         the same, announced with an event notification
 *   history_events_per_source_minute   Temporal history events a data source appends per idle minute (median over a sample)
 *
 * Every entry is `{ name, value, unit, ceiling, ratio }` with ratio = value / ceiling:
 * for a ceiling (CPU, latency, memory) a ratio <= 1 meets the target; for
 * create_rate the "ceiling" is the floor to reach and a ratio >= 1 meets it.
 *
 *   npx tsx scripts/bench/many-sources.ts            (1,000 data sources)
 *   BENCH_SCALE=small npx tsx scripts/bench/many-sources.ts   (100)
 *   options: --sources N --idle S --out PATH --keep
 */
import { CreateBucketCommand, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { DefaultLogger, Runtime } from '@temporalio/worker';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { createDestination, queryRows } from '../../clickhouse/destination.js';
import { LEDGER_TABLE, RUNS_TABLE } from '../../activities/ledger.js';
import { callApp } from '../../api/app.js';
import type { Connection } from '../../schemas/connection.js';
import { envSchema } from '../../schemas/config.js';
import { startConnector } from '../../worker/runtime.js';
import { workflowIdFor } from '../../workflows/messages.js';
import { freePort, startEmbeddedClickHouse, startMinio, startTemporalDevServer, type RunningService } from '../services.js';
import { ensureTools } from '../tools.js';
import { procCpuSeconds } from './process-cpu.js';

export interface SummaryEntry {
  name: string;
  value: number;
  unit: string;
  /** The target: a maximum, or for rates a minimum (see the module comment). */
  ceiling: number | null;
  /** value / ceiling; null without a ceiling. */
  ratio: number | null;
}

export interface ManySourcesOptions {
  /** Data sources to create (default 1,000; 100 with BENCH_SCALE=small). */
  sources?: number;
  /** Seconds of idle time over which CPU is measured (default 180; 90 small). Longer than one @auto tick. */
  idleSeconds?: number;
  /** Progress lines. */
  log?: (line: string) => void;
  /** Keep the temp dir (data, logs). */
  keep?: boolean;
}

const TARGETS = {
  createPerSecond: 10,
  idleCpuPercent: 50,
  listP95Ms: 300,
  getP95Ms: 100,
  workerRssMb: 800,
  /** @auto ticks every minute: a new file must be in by the next tick (plus the import itself). */
  newFileSeconds: 75,
  notifySeconds: 10,
};

const MINIO_USER = 'benchadmin';
const MINIO_PASSWORD = 'benchadmin-secret-key';
const COLUMNS = [
  { name: 'id', type: 'UInt64' },
  { name: 'label', type: 'String' },
];

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const percentile = (xs: number[], p: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)] ?? NaN;
};
const entry = (name: string, value: number, unit: string, ceiling: number | null): SummaryEntry => ({
  name, value: Math.round(value * 100) / 100, unit, ceiling, ratio: ceiling ? Math.round((value / ceiling) * 1000) / 1000 : null,
});

export async function runManySources(opts: ManySourcesOptions = {}): Promise<SummaryEntry[]> {
  const small = process.env.BENCH_SCALE === 'small';
  const n = opts.sources ?? (small ? 100 : 1000);
  const idleSeconds = opts.idleSeconds ?? (small ? 90 : 180);
  const log = opts.log ?? ((l: string) => process.stdout.write(`[many_sources] ${l}\n`));
  const cleanups: Array<() => Promise<unknown>> = [];
  const root = await mkdtemp(join(tmpdir(), 's3ch-bench-many-'));
  cleanups.push(() => (opts.keep ? (log(`kept ${root}`), Promise.resolve()) : rm(root, { recursive: true, force: true })));
  const out: SummaryEntry[] = [];
  try {
    try {
      Runtime.install({ logger: new DefaultLogger('WARN') });
    } catch {
      // Installed already (called from the main benchmark).
    }
    const tools = await ensureTools({ log: (l) => log(`[tools] ${l}`) });
    log('starting Temporal dev server (SQLite file, as npm start) and MinIO ...');
    const services: RunningService[] = [];
    cleanups.push(() => Promise.all(services.map((s) => s.stop().catch(() => undefined))));
    const [temporal, minio] = await Promise.all([
      startTemporalDevServer({
        bin: tools.temporal, dbFile: join(root, 'temporal.db'), port: await freePort(), uiPort: await freePort(),
        searchAttributes: { DataSource: 'Keyword', DataSourceState: 'Keyword' }, logFile: join(root, 'temporal.log'),
      }).then((s) => (services.push(s), s)),
      startMinio({
        bin: tools.minio, dataDir: join(root, 'minio'), port: await freePort(), consolePort: await freePort(),
        rootUser: MINIO_USER, rootPassword: MINIO_PASSWORD, logFile: join(root, 'minio.log'),
      }).then((s) => (services.push(s), s)),
    ]);
    const local: Connection = { kind: 'static', endpoint: minio.endpoint, region: 'us-east-1', forcePathStyle: true, accessKeyId: MINIO_USER, secretAccessKey: MINIO_PASSWORD };
    const s3 = new S3Client({ endpoint: minio.endpoint, region: 'us-east-1', forcePathStyle: true, credentials: { accessKeyId: MINIO_USER, secretAccessKey: MINIO_PASSWORD } });
    cleanups.push(async () => s3.destroy());
    const bucket = 'many';
    await s3.send(new CreateBucketCommand({ Bucket: bucket }));

    // The ClickHouse engine process as npm start has it; its memory cap and cache sizes follow the environment, as there.
    const base = envSchema.parse({ S3CH_DATA_DIR: root, S3CH_CHDB_MAX_MEMORY: process.env.S3CH_CHDB_MAX_MEMORY, S3CH_CHDB_CACHE_SIZE: process.env.S3CH_CHDB_CACHE_SIZE });
    const engine = await startEmbeddedClickHouse({ dir: join(root, 'clickhouse'), database: 's3ch', maxMemory: base.S3CH_CHDB_MAX_MEMORY, cacheSize: base.S3CH_CHDB_CACHE_SIZE, log });
    cleanups.push(() => engine.stop());
    const env = envSchema.parse({ ...engine.env, S3CH_DATA_DIR: root, TEMPORAL_TASK_QUEUE: 's3ch-bench-many', LOG_LEVEL: 'warn' });
    const destination = createDestination(env);
    cleanups.push(() => destination.close().catch(() => undefined));
    const connector = await startConnector({ env, connections: new Map([['local', local]]), temporalAddress: temporal.address, serveApi: false, destination });
    cleanups.push(() => connector.stop().catch((e) => log(`stopping the connector: ${(e as Error).message}`)));
    const api = (method: string, path: string, body?: unknown) => callApp(connector.app, method, path, body);

    let peakRss = 0;
    const rssTimer = setInterval(() => (peakRss = Math.max(peakRss, process.memoryUsage().rss)), 1000);
    cleanups.push(async () => clearInterval(rssTimer));

    // 1. Create, one after another (what a script looping over `s3ch create` does).
    const names = Array.from({ length: n }, (_, i) => `src_${String(i).padStart(4, '0')}`);
    log(`creating ${n} data sources on @auto over empty prefixes ...`);
    const t0 = performance.now();
    const createMs: number[] = [];
    for (const [i, name] of names.entries()) {
      const t = performance.now();
      const res = await api('POST', '/v1/datasources', { name, connection: 'local', bucketUri: `s3://${bucket}/${name}/*.csv`, format: 'csv', schedule: '@auto', columns: COLUMNS });
      if (res.status !== 201) throw new Error(`creating ${name}: HTTP ${res.status} ${JSON.stringify(res.body)}`);
      createMs.push(performance.now() - t);
      if ((i + 1) % 100 === 0) log(`  ${i + 1} created (${((i + 1) / ((performance.now() - t0) / 1000)).toFixed(1)}/s)`);
    }
    const createRate = n / ((performance.now() - t0) / 1000);
    out.push(entry('many_sources_create_rate', createRate, 'data sources/s', TARGETS.createPerSecond));
    out.push(entry('many_sources_create_p95', percentile(createMs, 95), 'ms', null));

    // 2. Idle: let the first ticks and the eager prepares pass, then measure.
    log('settling for 70 s (first ticks, table preparation) ...');
    await sleep(70_000);
    const sample = names.filter((_, i) => i % Math.max(1, Math.floor(n / 20)) === 0);
    const historyBefore = await Promise.all(sample.map((name) => connector.client.workflow.getHandle(workflowIdFor(name)).describe()));
    const rows0 = await metaRows(destination.client);
    const cpu0 = { self: process.cpuUsage(), temporal: procCpuSeconds(temporal.pid) };
    const w0 = performance.now();
    log(`measuring idle CPU for ${idleSeconds} s ...`);
    await sleep(idleSeconds * 1000);
    const wall = (performance.now() - w0) / 1000;
    const selfCpu = process.cpuUsage(cpu0.self);
    const temporalCpu = (procCpuSeconds(temporal.pid) ?? NaN) - (cpu0.temporal ?? NaN);
    const workerPct = ((selfCpu.user + selfCpu.system) / 1e6 / wall) * 100;
    const temporalPct = (temporalCpu / wall) * 100;
    out.push(entry('many_sources_idle_cpu', workerPct + temporalPct, '% of one core', TARGETS.idleCpuPercent));
    out.push(entry('many_sources_idle_cpu_worker', workerPct, '% of one core', null));
    out.push(entry('many_sources_idle_cpu_temporal', temporalPct, '% of one core', null));
    out.push(entry('many_sources_idle_cpu_per_source', ((workerPct + temporalPct) / n) * 10, 'ms CPU per data source per s', null));
    const rows1 = await metaRows(destination.client);
    // What idle ticks write to ClickHouse: one s3ch_runs row (one INSERT, so one part) per tick, no ledger rows.
    out.push(entry('many_sources_runs_rows_per_idle_tick', (rows1.runs - rows0.runs) / n / (wall / 60), 'rows per data source', null));
    out.push(entry('many_sources_ledger_rows_idle', rows1.ledger - rows0.ledger, 'rows', null));
    const historyAfter = await Promise.all(sample.map((name) => connector.client.workflow.getHandle(workflowIdFor(name)).describe()));
    // History growth per data source per minute of the idle window (@auto: at most one tick a minute); a run that continued as new is left out.
    const perTick = historyBefore.flatMap((b, i) => {
      const a = historyAfter[i]!;
      return a.runId === b.runId ? [(a.historyLength - b.historyLength) / (wall / 60)] : [];
    });
    if (perTick.length) out.push(entry('many_sources_history_events_per_source_minute', percentile(perTick, 50), 'events', null));

    // 3. API latency while idle.
    log('measuring GET /v1/datasources?limit=100 and GET /v1/datasources/:name ...');
    const listMs: number[] = [];
    let cursor: string | null = null;
    let listed = 0;
    for (let i = 0; i < 40; i++) {
      const t = performance.now();
      const res = await api('GET', `/v1/datasources?limit=100${cursor ? `&cursor=${cursor}` : ''}`);
      listMs.push(performance.now() - t);
      if (res.status !== 200) throw new Error(`list: HTTP ${res.status} ${JSON.stringify(res.body)}`);
      listed += res.body.items.length;
      cursor = res.body.nextCursor;
      if (!cursor) {
        if (listed !== n && i < Math.ceil(n / 100) + 1) log(`  note: a full walk listed ${listed} of ${n}`);
        listed = 0;
      }
    }
    out.push(entry('many_sources_list_p95', percentile(listMs, 95), 'ms', TARGETS.listP95Ms));
    out.push(entry('many_sources_list_p50', percentile(listMs, 50), 'ms', null));
    const getMs: number[] = [];
    for (let i = 0; i < 60; i++) {
      const name = names[Math.floor(Math.random() * n)]!;
      const t = performance.now();
      const res = await api('GET', `/v1/datasources/${name}`);
      getMs.push(performance.now() - t);
      if (res.status !== 200) throw new Error(`get ${name}: HTTP ${res.status} ${JSON.stringify(res.body)}`);
    }
    out.push(entry('many_sources_get_p95', percentile(getMs, 95), 'ms', TARGETS.getP95Ms));
    out.push(entry('many_sources_get_p50', percentile(getMs, 50), 'ms', null));

    // 4. A new file in one of them: by its next tick, and at once with a notification.
    const imported = async (name: string, files: number, timeoutS: number) => {
      const t = performance.now();
      for (;;) {
        const res = await api('GET', `/v1/datasources/${name}`);
        if (res.body?.stats?.files?.success === files) return (performance.now() - t) / 1000;
        if (performance.now() - t > timeoutS * 1000) return NaN;
        await sleep(250);
      }
    };
    const tick = names[Math.floor(n / 2)]!;
    await s3.send(new PutObjectCommand({ Bucket: bucket, Key: `${tick}/a.csv`, Body: 'id,label\n1,a\n2,b\n' }));
    log(`a new file in ${tick}: waiting for its next tick ...`);
    out.push(entry('many_sources_new_file_latency', await imported(tick, 1, 150), 's', TARGETS.newFileSeconds));
    const notified = names[n - 1]!;
    await s3.send(new PutObjectCommand({ Bucket: bucket, Key: `${notified}/a.csv`, Body: 'id,label\n1,a\n' }));
    const tn = performance.now();
    const res = await api('POST', `/v1/datasources/${notified}/notify`, { Records: [{ eventName: 's3:ObjectCreated:Put', s3: { bucket: { name: bucket }, object: { key: `${notified}/a.csv` } } }] });
    if (res.status !== 202) throw new Error(`notify: HTTP ${res.status} ${JSON.stringify(res.body)}`);
    const notifyS = Number.isNaN(await imported(notified, 1, 60)) ? NaN : (performance.now() - tn) / 1000;
    out.push(entry('many_sources_notify_latency', notifyS, 's', TARGETS.notifySeconds));

    peakRss = Math.max(peakRss, process.memoryUsage().rss);
    out.push(entry('many_sources_worker_rss', peakRss / 1024 / 1024, 'MB', TARGETS.workerRssMb));
    out.push(entry('many_sources_count', n, 'data sources', null));
    return out;
  } finally {
    for (const c of cleanups.reverse()) await c().catch(() => undefined);
  }
}

/** Rows in the connector's own tables (runs, ledger). */
async function metaRows(client: Parameters<typeof queryRows>[0]): Promise<{ runs: number; ledger: number }> {
  const count = async (table: string) => {
    const [r] = await queryRows<{ n: string }>(client, `SELECT count() AS n FROM ${table}`).catch(() => []);
    return Number(r?.n ?? 0);
  };
  return { runs: await count(RUNS_TABLE), ledger: await count(LEDGER_TABLE) };
}

/** A table of the entries, for people. */
export function formatSummary(entries: SummaryEntry[]): string {
  const rows = entries.map((e) => [e.name, String(e.value), e.unit, e.ceiling === null ? '-' : String(e.ceiling), e.ratio === null ? '-' : String(e.ratio)]);
  const head = ['metric', 'value', 'unit', 'target', 'ratio'];
  const w = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  return [head, ...rows].map((r) => r.map((c, i) => c.padEnd(w[i]!)).join('  ')).join('\n');
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const { values } = parseArgs({
    options: { sources: { type: 'string' }, idle: { type: 'string' }, out: { type: 'string' }, keep: { type: 'boolean', default: false } },
    strict: true,
  });
  const int = (name: string, raw: string | undefined) => {
    if (raw === undefined) return undefined;
    const v = Number(raw);
    if (!Number.isInteger(v) || v < 1 || v > 100_000) {
      process.stderr.write(`--${name} must be an integer from 1 to 100000 (got ${JSON.stringify(raw)})\n`);
      process.exit(2);
    }
    return v;
  };
  runManySources({ sources: int('sources', values.sources), idleSeconds: int('idle', values.idle), keep: values.keep }).then(
    async (entries) => {
      process.stdout.write(`\n${formatSummary(entries)}\n`);
      if (values.out) await writeFile(values.out, JSON.stringify(entries, null, 2));
      process.exit(0);
    },
    (err) => {
      process.stderr.write(`[many_sources] failed: ${(err as Error).stack ?? err}\n`);
      process.exit(1);
    },
  );
}
