/**
 * `npm run bench`: the connector's ingest rate on this machine, end to end
 * (a data source per dataset, POST /sync until every file is `success`),
 * against a ceiling measured in the same run with the same chDB: an
 * `INSERT INTO <identical plain typed table> SELECT * FROM s3(<the same
 * objects>)` (no Temporal, no ledger, no quarantine split).
 *
 *   large_csv        large CSV files                 MB/s   ceiling: s3() glob over them
 *   large_csv_gzip   the same rows, gzip             MB/s   (MB of objects as stored)
 *   large_parquet    the same rows, Parquet          MB/s
 *   large_ndjson     the same rows, NDJSON           MB/s
 *   small_files      many small CSV files            files/s  ceiling: one INSERT SELECT over a glob
 *   worker_rss_peak  peak RSS of this process (worker + API; ClickHouse is a process of its own) while the connector imports, MB
 *   engine_rss_peak  peak RSS of the ClickHouse engine process meanwhile, MB (ceiling: its memory cap, S3CH_CHDB_MAX_MEMORY)
 *   api_status_p95_during_import, api_status_max_during_import
 *                    latency of GET /v1/datasources/:name, polled every 100 ms
 *                    while the large files import, ms
 *
 * For the last four the summary's `ceiling` is the target they must stay
 * under (300 MB, the engine's cap, 100 ms, 500 ms), so `ratio` <= 1 means on target.
 *
 * Then, each on its own stack once the one above has stopped:
 *   many_sources_*   100 (small) / 1,000 data sources on @auto: create rate, idle CPU, API latency (bench/many-sources.ts)
 *   discovery_idle_list_calls_tracked, _ordered
 *                    ListObjectsV2 calls per idle tick over 2,000 / 100,000 keys, target 2 (bench/discovery-idle.ts)
 *   event_latency_p95  upload + S3 event notification until the row answers POST /v1/sql, ms, target 1000 (bench/event-latency.ts)
 *   sqs_event_latency_p95, sqs_idle_receives_per_hour
 *                    the same through an SQS queue (ElasticMQ), target 1000 ms; long polls per hour on an idle queue, target 180 (bench/sqs-events.ts)
 * `--only ingest,many_sources,discovery,events,sqs` runs a subset (default: all).
 *
 * `--out FILE` writes JSON with a `summary` array of { name, value, unit,
 * ceiling, ratio } and the details. BENCH_SCALE=small runs a quick version.
 * Everything runs on loopback in a temp dir: a Temporal dev server
 * (in-memory), MinIO, chDB, and the worker + API in this process. Prints
 * ratios; never asserts timing. Exits non-zero only when something is wrong
 * (e.g. a row count differs).
 *
 *   npx tsx scripts/bench.ts [--files 8] [--rows 250000] [--small-files 2000]
 *     [--small-rows 200] [--concurrency 4] [--timeout 900] [--out results.json] [--keep] [--only LIST]
 */
import { CreateBucketCommand, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { DefaultLogger, Runtime } from '@temporalio/worker';
import { readFileSync, statfsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { cpus, tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { gzipSync } from 'node:zlib';
import { parseArgs } from 'node:util';
import { createClient } from '@clickhouse/client';
import { createDestination, queryRows, type Destination } from '../clickhouse/destination.js';
import { ConfigError, loadEnv } from '../schemas/config.js';
import type { Connection } from '../schemas/connection.js';
import { quoteIdent, quoteString } from '../schemas/identifiers.js';
import { startConnector, type Connector } from '../worker/runtime.js';
import { BENCH_COLUMNS, STRUCTURE, csvString, writeCsvFile } from './bench/data.js';
import { startEmbeddedClickHouse, startLocalServices } from './services.js';
import { callApp } from '../api/app.js';
import { LEDGER_TABLE } from '../activities/ledger.js';
import { ensureTools } from './tools.js';
import { procCpuSeconds } from './bench/process-cpu.js';
import { formatThreadCpu, startThreadCpu } from './bench/thread-cpu.js';
import { runManySources } from './bench/many-sources.js';
import { runDiscoveryIdle } from './bench/discovery-idle.js';
import { runEventLatency } from './bench/event-latency.js';
import { runSqsEvents } from './bench/sqs-events.js';

// ---------------------------------------------------------------------------------------
// Options

/**
 * The scenarios, in run order. `ingest` is the import-rate run (the table above); the
 * others each start their own stack after it has stopped.
 */
const SCENARIOS = ['ingest', 'many_sources', 'discovery', 'events', 'sqs'] as const;
type Scenario = (typeof SCENARIOS)[number];

const USAGE = `usage: npx tsx scripts/bench.ts [options]
  --files N         large CSV files (default 8)
  --rows N          rows per large file (default 250000, ~15 MB)
  --small-files N   small files (default 2000; 0 skips them)
  --small-rows N    rows per small file (default 200)
  --concurrency N   the data sources' limits.concurrency (default 4)
  --timeout S       per-phase timeout in seconds (default 900)
  --out PATH        also write the results as JSON to PATH
  --keep            keep the temp dir (data, logs) for inspection
  --only LIST       run only these scenarios, comma-separated, of: ${SCENARIOS.join(', ')} (default: all)
  --threads         also print each import run's CPU by thread (engine queries, merges, JS main thread, ...)
BENCH_SCALE=small  quick defaults: 2 files x 100000 rows, 300 small files
S3CH_CHDB_*        the embedded engine's settings, as for npm start (e.g. S3CH_CHDB_MAX_MEMORY=2GiB)`;

/** Defaults by scale: the full run, or a quick one for a shared machine. */
const SCALES = {
  full: { files: '8', rows: '250000', smallFiles: '2000' },
  small: { files: '2', rows: '100000', smallFiles: '300' },
} as const;

/** Roughly what one generated row weighs, to bound a run before generating it. */
const BYTES_PER_ROW_ESTIMATE = 62;
const MAX_TOTAL_BYTES = 8 * 1024 ** 3;

interface Options {
  files: number;
  rows: number;
  smallFiles: number;
  smallRows: number;
  concurrency: number;
  timeoutMs: number;
  out: string | null;
  keep: boolean;
  only: Set<Scenario>;
  /** Sample CPU by thread during each import run (costs the JS thread a /proc read every 100 ms). */
  threads: boolean;
}

class UsageError extends Error {}

function parseOptions(argv: string[]): Options {
  const scaleName = process.env.BENCH_SCALE ?? 'full';
  if (scaleName !== 'full' && scaleName !== 'small') throw new UsageError(`BENCH_SCALE must be full or small (got ${JSON.stringify(scaleName)})`);
  const scale = SCALES[scaleName];
  const { values } = parseArgs({
    args: argv,
    options: {
      files: { type: 'string', default: scale.files },
      rows: { type: 'string', default: scale.rows },
      'small-files': { type: 'string', default: scale.smallFiles },
      'small-rows': { type: 'string', default: '200' },
      concurrency: { type: 'string', default: '4' },
      timeout: { type: 'string', default: '900' },
      out: { type: 'string' },
      keep: { type: 'boolean', default: false },
      threads: { type: 'boolean', default: false },
      only: { type: 'string' },
      help: { type: 'boolean', short: 'h', default: false },
    },
    strict: true,
    allowPositionals: false,
  });
  if (values.help) {
    process.stdout.write(`${USAGE}\n`);
    process.exit(0);
  }
  const int = (name: string, raw: string, min: number, max: number): number => {
    const n = Number(raw);
    if (!Number.isInteger(n) || n < min || n > max) throw new UsageError(`--${name} must be an integer from ${min} to ${max} (got ${JSON.stringify(raw)})`);
    return n;
  };
  const o: Options = {
    files: int('files', values.files, 1, 10_000),
    rows: int('rows', values.rows, 1, 100_000_000),
    smallFiles: int('small-files', values['small-files'], 0, 10_000),
    smallRows: int('small-rows', values['small-rows'], 1, 100_000),
    concurrency: int('concurrency', values.concurrency, 1, 64),
    timeoutMs: int('timeout', values.timeout, 10, 86_400) * 1000,
    out: values.out ? resolve(values.out) : null,
    keep: values.keep,
    threads: values.threads,
    only: parseOnly(values.only),
  };
  const estimate = (o.files * o.rows + o.smallFiles * o.smallRows) * BYTES_PER_ROW_ESTIMATE;
  if (estimate > MAX_TOTAL_BYTES) {
    throw new UsageError(`about ${fmtBytes(estimate)} of CSV is more than this benchmark allows (${fmtBytes(MAX_TOTAL_BYTES)}); lower --files/--rows`);
  }
  return o;
}

function parseOnly(raw: string | undefined): Set<Scenario> {
  if (raw === undefined) return new Set(SCENARIOS);
  const names = raw.split(',').map((x) => x.trim()).filter(Boolean);
  if (names.length === 0) throw new UsageError(`--only must name at least one scenario of: ${SCENARIOS.join(', ')}`);
  for (const n of names) {
    if (!(SCENARIOS as readonly string[]).includes(n)) throw new UsageError(`--only: unknown scenario ${JSON.stringify(n)} (scenarios: ${SCENARIOS.join(', ')})`);
  }
  return new Set(names as Scenario[]);
}

// ---------------------------------------------------------------------------------------
// Output helpers

const say = (line = '') => process.stdout.write(`${line}\n`);
const step = (line: string) => process.stdout.write(`[bench] ${line}\n`);

function fmtBytes(n: number): string {
  if (n >= 1024 ** 3) return `${(n / 1024 ** 3).toFixed(1)} GiB`;
  if (n >= 1024 ** 2) return `${(n / 1024 ** 2).toFixed(1)} MiB`;
  return `${(n / 1024).toFixed(1)} KiB`;
}

const MB = 1_000_000;
const fmtInt = (n: number) => Math.round(n).toLocaleString('en-US');
const fmtNum = (n: number, digits: number) => n.toFixed(digits);

// ---------------------------------------------------------------------------------------
// CPU accounting (Linux /proc; best effort): who burns the 2 cores.


interface CpuSample {
  self: number;
  temporal: number | null;
  minio: number | null;
}

interface CpuUse {
  /** This process: Node, the worker, the API and chDB (in-process). */
  selfSeconds: number;
  temporalSeconds: number | null;
  minioSeconds: number | null;
}

// ---------------------------------------------------------------------------------------
// Results

interface Result {
  name: string;
  label: string;
  files: number;
  rows: number;
  bytes: number;
  seconds: number;
  rowsPerSecond: number;
  mbPerSecond: number;
  filesPerSecond: number;
  cpu: CpuUse | null;
  /** CPU seconds by thread group (`--threads`). */
  threads?: Record<string, number>;
}

function result(name: string, label: string, files: number, rows: number, bytes: number, seconds: number, cpu: CpuUse | null): Result {
  return {
    name, label, files, rows, bytes, seconds,
    rowsPerSecond: rows / seconds,
    mbPerSecond: bytes / MB / seconds,
    filesPerSecond: files / seconds,
    cpu,
  };
}

function printTable(results: Result[]) {
  const head = ['run', 'files', 'rows', 'MB', 'seconds', 'rows/s', 'MB/s', 'files/s', 'cpu s (node+chdb/temporal/minio)'];
  const rows = results.map((r) => [
    r.label,
    fmtInt(r.files),
    fmtInt(r.rows),
    fmtNum(r.bytes / MB, 1),
    fmtNum(r.seconds, 2),
    fmtInt(r.rowsPerSecond),
    fmtNum(r.mbPerSecond, 1),
    fmtNum(r.filesPerSecond, 1),
    r.cpu ? [r.cpu.selfSeconds, r.cpu.temporalSeconds, r.cpu.minioSeconds].map((s) => (s === null ? '-' : s.toFixed(1))).join(' / ') : '',
  ]);
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]) => cells.map((c, i) => (i === 0 || i === cells.length - 1 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ').trimEnd();
  say(line(head));
  say(widths.map((w) => '-'.repeat(w)).join('  '));
  for (const r of rows) say(line(r));
}

// ---------------------------------------------------------------------------------------
// Small utilities

async function mapLimit<T, R>(items: T[], limit: number, fn: (item: T, index: number) => Promise<R>): Promise<R[]> {
  const out = new Array<R>(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i]!, i);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return out;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

class BenchFailure extends Error {}

// ---------------------------------------------------------------------------------------
// The run

const BUCKET = 'bench';
const MINIO_USER = 'benchadmin';
const MINIO_PASSWORD = 'bench-secret-key-not-a-secret';
const POLL_MS = 250;
/** How often the API probe asks for the data source's status while large files import. */
const PROBE_MS = 100;
/** Targets (upper bounds) reported as the `ceiling` of the latency and memory items. */
const TARGETS = { rssMb: 300, statusP95Ms: 100, statusMaxMs: 500 } as const;

/**
 * Ask for `GET /v1/datasources/:name` every PROBE_MS until stopped, timing
 * each answer from the moment it was asked (a blocked event loop delays the
 * answer, so it shows here too). Any answer but 200 fails the run.
 */
function startStatusProbe(api: (method: string, path: string) => Promise<{ status: number; body: any }>, name: string) {
  const samples: number[] = [];
  let stopped = false;
  let failure: Error | null = null;
  const loop = (async () => {
    while (!stopped) {
      const t0 = performance.now();
      const res = await api('GET', `/v1/datasources/${name}`);
      const ms = performance.now() - t0;
      if (res.status !== 200) {
        failure = new BenchFailure(`status probe: GET /v1/datasources/${name} answered HTTP ${res.status}: ${JSON.stringify(res.body)}`);
        return;
      }
      samples.push(ms);
      await sleep(Math.max(0, PROBE_MS - ms));
    }
  })();
  return {
    async stop(): Promise<number[]> {
      stopped = true;
      await loop;
      if (failure) throw failure;
      return samples;
    },
  };
}

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return 0;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]!;
}

/** One dataset in MinIO: objects under `prefix`, read by the connector and by the ceiling. */
interface Dataset {
  name: string;
  prefix: string;
  /** The data source's format and the s3() format of the ceiling. */
  format: 'csv' | 'ndjson' | 'parquet';
  chFormat: string;
  glob: string;
  files: number;
  rows: number;
  bytes: number;
  unit: 'MB/s' | 'files/s';
}

interface SummaryItem {
  name: string;
  value: number;
  unit: string;
  ceiling: number | null;
  ratio: number | null;
}

/** The scenarios after `ingest`, each on its own stack, in order. */
async function runOtherScenarios(opts: Options): Promise<SummaryItem[]> {
  const out: SummaryItem[] = [];
  if (opts.only.has('many_sources')) {
    step('many_sources: data sources on @auto over empty prefixes ...');
    out.push(...(await runManySources({ keep: opts.keep })));
  }
  if (opts.only.has('discovery')) {
    step('discovery: LIST calls per idle tick over a large prefix, tracked and ordered ...');
    out.push(...(await runDiscoveryIdle()));
  }
  if (opts.only.has('events')) {
    step('events: upload + notification until the rows answer /v1/sql ...');
    out.push(...(await runEventLatency()));
  }
  if (opts.only.has('sqs')) {
    step('sqs: upload + S3 event through an SQS queue until the rows answer /v1/sql; SQS requests while idle ...');
    out.push(...(await runSqsEvents()));
  }
  return out;
}

function printSummary(summary: SummaryItem[]) {
  for (const item of summary) {
    const target = item.unit !== 'MB/s' && item.unit !== 'files/s';
    say(`${item.name.padEnd(34)} ${String(item.value).padStart(9)} ${item.unit.padEnd(7)}` + (item.ratio !== null ? `  ${item.ratio.toFixed(2)}x of the ${target ? 'target' : 'ceiling'} (${item.ceiling} ${item.unit})` : ''));
  }
}

const machineInfo = () => ({ cpus: cpus().length, cpuModel: cpus()[0]?.model ?? null, node: process.versions.node, platform: `${process.platform}/${process.arch}` });

async function main(opts: Options, cleanups: Array<() => Promise<void>>): Promise<void> {
  const started = new Date();
  if (!opts.only.has('ingest')) {
    say(`s3-clickhouse-connector benchmark: ${cpus().length} CPUs, Node ${process.versions.node}, ${process.platform}/${process.arch}; scenarios ${[...opts.only].join(', ')}`);
    const summary = await runOtherScenarios(opts);
    say();
    printSummary(summary);
    say('(from one run on this machine; nothing is asserted about timing)');
    if (opts.out) {
      await mkdir(dirname(opts.out), { recursive: true });
      await writeFile(opts.out, `${JSON.stringify({ startedAt: started.toISOString(), machine: machineInfo(), options: { scale: process.env.BENCH_SCALE ?? 'full', only: [...opts.only] }, summary }, null, 2)}\n`);
      say(`results written to ${opts.out}`);
    }
    return;
  }
  const root = await mkdtemp(join(tmpdir(), 's3ch-bench-'));
  cleanups.push(async () => {
    if (opts.keep) say(`[bench] kept ${root}`);
    else await rm(root, { recursive: true, force: true });
  });
  const localDir = join(root, 'local');
  await mkdir(localDir);

  const estimate = (opts.files * opts.rows * 3 + opts.smallFiles * opts.smallRows) * BYTES_PER_ROW_ESTIMATE;
  const free = (() => {
    try {
      const s = statfsSync(root);
      return s.bavail * s.bsize;
    } catch {
      return Infinity;
    }
  })();
  // Local files + MinIO's copy + chDB's tables (connector and ceiling).
  if (estimate * 4 > free) throw new BenchFailure(`not enough free space in ${tmpdir()}: need about ${fmtBytes(estimate * 4)}, have ${fmtBytes(free)}`);

  say(`s3-clickhouse-connector benchmark: ${cpus().length} CPUs, Node ${process.versions.node}, ${process.platform}/${process.arch}`);
  say(`  large: ${opts.files} files x ${fmtInt(opts.rows)} rows per format; small: ${opts.smallFiles} files x ${fmtInt(opts.smallRows)} rows; concurrency ${opts.concurrency}`);
  say(`  temp dir ${root}`);
  say();

  // 1. Services, on loopback and free ports.
  Runtime.install({ logger: new DefaultLogger('WARN') });
  const tools = await ensureTools({ log: (l) => step(`[tools] ${l}`) });
  step('starting Temporal dev server (in-memory) and MinIO ...');
  const { temporal, minio, stop: stopServices } = await startLocalServices({ tools, dir: join(root, 'logs'), minioUser: MINIO_USER, minioPassword: MINIO_PASSWORD });
  cleanups.push(stopServices);
  const cpuSample = (): CpuSample => {
    const u = process.cpuUsage();
    return { self: (u.user + u.system) / 1e6, temporal: procCpuSeconds(temporal.pid), minio: procCpuSeconds(minio.pid) };
  };
  const cpuSince = (a: CpuSample): CpuUse => {
    const b = cpuSample();
    const d = (x: number | null, y: number | null) => (x === null || y === null ? null : y - x);
    return { selfSeconds: b.self - a.self, temporalSeconds: d(a.temporal, b.temporal), minioSeconds: d(a.minio, b.minio) };
  };

  const local: Connection = { kind: 'static', endpoint: minio.endpoint, region: 'us-east-1', forcePathStyle: true, accessKeyId: MINIO_USER, secretAccessKey: MINIO_PASSWORD };
  const s3 = new S3Client({ endpoint: local.endpoint, region: local.region, forcePathStyle: true, credentials: { accessKeyId: MINIO_USER, secretAccessKey: MINIO_PASSWORD } });
  cleanups.push(async () => s3.destroy());
  await s3.send(new CreateBucketCommand({ Bucket: BUCKET }));

  // 2. The ClickHouse engine process and the connector (worker + API in-process, API not served).
  step('starting the ClickHouse engine and the connector (bundling workflows) ...');
  // The engine's own settings (S3CH_CHDB_MAX_MEMORY, ...) come from the environment, as for `npm start`.
  const engineSettings = Object.fromEntries(Object.entries(process.env).filter(([k]) => k.startsWith('S3CH_CHDB_')));
  const base = loadEnv({ ...engineSettings, S3CH_DATA_DIR: join(root, 'connector'), LOG_LEVEL: 'warn' });
  // The benchmark's own data files are written by ClickHouse with file(): an
  // administrator's work, which the connector's user may not do.
  const adminPassword = randomBytes(12).toString('hex');
  const engine = await startEmbeddedClickHouse({ dir: join(root, 'clickhouse'), database: 's3ch', maxMemory: base.S3CH_CHDB_MAX_MEMORY, cacheSize: base.S3CH_CHDB_CACHE_SIZE, adminPassword, log: step });
  cleanups.push(engine.stop);
  const admin = createClient({ url: engine.url, username: 's3ch_admin', password: adminPassword, database: 's3ch' });
  cleanups.push(() => admin.close());
  const env = loadEnv({ ...engineSettings, ...engine.env, S3CH_DATA_DIR: join(root, 'connector'), TEMPORAL_TASK_QUEUE: 's3ch-bench', LOG_LEVEL: 'warn' });
  const destination: Destination = createDestination(env);
  cleanups.push(async () => destination.close().catch(() => undefined));
  const connector: Connector = await startConnector({ env, connections: new Map([['local', local]]), temporalAddress: temporal.address, serveApi: false, destination });
  cleanups.push(async () => connector.stop().catch((e) => console.error(`[bench] stopping the connector: ${(e as Error).message}`)));
  const ch = destination.client;
  const count = async (table: string): Promise<number> => {
    const [r] = await queryRows<{ n: string }>(ch, `SELECT count() AS n FROM ${quoteIdent(table)}`);
    return Number(r?.n ?? 0);
  };

  // 3. Data: large CSV files generated locally, then Parquet and NDJSON of the same rows
  // written by chDB, gzip by Node; every object into MinIO. Small files straight into MinIO.
  const upload = async (path: string, key: string) => {
    const body = await readFile(path);
    await s3.send(new PutObjectCommand({ Bucket: BUCKET, Key: key, Body: body }));
    return body.length;
  };
  const datasets: Dataset[] = [];
  step(`generating ${opts.files} files x ${fmtInt(opts.rows)} rows as CSV, gzip CSV, Parquet and NDJSON ...`);
  let t = performance.now();
  const largeKinds = [
    { name: 'large_csv', prefix: 'csv', ext: 'csv', format: 'csv', chFormat: 'CSVWithNames' },
    { name: 'large_csv_gzip', prefix: 'csvgz', ext: 'csv.gz', format: 'csv', chFormat: 'CSVWithNames' },
    { name: 'large_parquet', prefix: 'parquet', ext: 'parquet', format: 'parquet', chFormat: 'Parquet' },
    { name: 'large_ndjson', prefix: 'ndjson', ext: 'ndjson', format: 'ndjson', chFormat: 'JSONEachRow' },
  ] as const;
  const totals = new Map<string, number>(largeKinds.map((k) => [k.name, 0]));
  for (let i = 0; i < opts.files; i++) {
    const base = `part-${String(i).padStart(5, '0')}`;
    const csvPath = join(localDir, `${base}.csv`);
    await writeCsvFile(csvPath, i, opts.rows);
    const src = `file(${quoteString(csvPath)}, 'CSVWithNames', ${quoteString(STRUCTURE)})`;
    await admin.command({ query: `INSERT INTO FUNCTION file(${quoteString(join(localDir, `${base}.parquet`))}, 'Parquet') SELECT * FROM ${src}` });
    await admin.command({ query: `INSERT INTO FUNCTION file(${quoteString(join(localDir, `${base}.ndjson`))}, 'JSONEachRow') SELECT * FROM ${src} SETTINGS output_format_json_quote_decimals = 0, output_format_json_quote_64bit_integers = 0` });
    await writeFile(join(localDir, `${base}.csv.gz`), gzipSync(await readFile(csvPath), { level: 6 }));
    for (const k of largeKinds) totals.set(k.name, totals.get(k.name)! + (await upload(join(localDir, `${base}.${k.ext}`), `${k.prefix}/${base}.${k.ext}`)));
  }
  for (const k of largeKinds) {
    datasets.push({ name: k.name, prefix: k.prefix, format: k.format, chFormat: k.chFormat, glob: `${k.prefix}/*.${k.ext}`, files: opts.files, rows: opts.files * opts.rows, bytes: totals.get(k.name)!, unit: 'MB/s' });
  }
  step(`  ${largeKinds.map((k) => `${k.name} ${fmtBytes(totals.get(k.name)!)}`).join(', ')} in ${((performance.now() - t) / 1000).toFixed(1)} s`);
  if (opts.smallFiles > 0) {
    step(`generating and uploading ${opts.smallFiles} small files x ${fmtInt(opts.smallRows)} rows ...`);
    const sizes = await mapLimit(Array.from({ length: opts.smallFiles }, (_, i) => i), 8, async (i) => {
      const body = Buffer.from(csvString(100_000 + i, opts.smallRows), 'utf8');
      await s3.send(new PutObjectCommand({ Bucket: BUCKET, Key: `small/part-${String(i).padStart(5, '0')}.csv`, Body: body }));
      return body.length;
    });
    datasets.push({ name: 'small_files', prefix: 'small', format: 'csv', chFormat: 'CSVWithNames', glob: 'small/*.csv', files: opts.smallFiles, rows: opts.smallFiles * opts.smallRows, bytes: sizes.reduce((a, b) => a + b, 0), unit: 'files/s' });
  }

  const columnsDdl = BENCH_COLUMNS.map((c) => `${quoteIdent(c.name)} ${c.type}`).join(', ');
  const engineDdl = 'ENGINE = MergeTree PARTITION BY toYYYYMM(timestamp) ORDER BY (page, timestamp)';
  // Before each timed phase: no background merges left over from the previous one.
  const quiesce = async () => {
    const deadline = Date.now() + 30_000;
    for (;;) {
      const [r] = await queryRows<{ n: string }>(ch, 'SELECT count() AS n FROM system.merges');
      if (Number(r?.n ?? 0) === 0 || Date.now() > deadline) break;
      await sleep(100);
    }
    await sleep(200);
  };

  // 4. Ceilings: chDB reads the same objects from MinIO itself, into an identical plain typed table. Best of two.
  const ceilingOf = async (d: Dataset): Promise<Result> => {
    let best: Result | null = null;
    const source = `s3(${quoteString(`${minio.endpoint}/${BUCKET}/${d.glob}`)}, ${quoteString(MINIO_USER)}, ${quoteString(MINIO_PASSWORD)}, ${quoteString(d.chFormat)}, ${quoteString(STRUCTURE)})`;
    for (let rep = 0; rep < 2; rep++) {
      const table = `ceiling_${d.name}_${rep}`;
      await ch.command({ query: `CREATE TABLE ${table} (${columnsDdl}) ${engineDdl}` });
      await quiesce();
      const cpu0 = cpuSample();
      const threads = opts.threads ? startThreadCpu() : null;
      const t0 = performance.now();
      await ch.command({ query: `INSERT INTO ${table} SELECT * FROM ${source}` });
      const r = result(`ceiling_${d.name}`, `ceiling: chDB s3() glob (${d.name})`, d.files, d.rows, d.bytes, (performance.now() - t0) / 1000, cpuSince(cpu0));
      if (threads) r.threads = threads.stop();
      const got = await count(table);
      if (got !== d.rows) throw new BenchFailure(`${r.label}: table has ${got} rows, expected ${d.rows}`);
      await ch.command({ query: `DROP TABLE ${table} SYNC` });
      // Hand back what the ceiling's statement freed, so the connector's run after it starts clean.
      await admin.command({ query: 'SYSTEM JEMALLOC PURGE' });
      if (!best || r.seconds < best.seconds) best = r;
    }
    return best!;
  };

  // 5. The connector, end to end: a data source per dataset, POST /sync until every file is `success`.
  const api = (method: string, path: string, body?: unknown) => callApp(connector.app, method, path, body);
  /**
   * The worker's peak is taken while the connector imports: this process also
   * generates the data and runs the ceilings in the same engine, which the
   * worker never does (the whole process's peak is reported beside it).
   */
  let connectorRunning = false;
  let rssPeak = 0;
  let processRssPeak = process.memoryUsage().rss;
  /** What made up the peak: V8's heap and Node's buffers at that moment, and chDB's own account (MemoryTracking, sampled each second). */
  let atPeak = { heapMb: 0, externalMb: 0 };
  let chdbTrackedPeak = 0;
  const rssTimer = setInterval(() => {
    const m = process.memoryUsage();
    processRssPeak = Math.max(processRssPeak, m.rss);
    if (connectorRunning && m.rss > rssPeak) {
      rssPeak = m.rss;
      atPeak = { heapMb: Math.round(m.heapTotal / MB), externalMb: Math.round(m.external / MB) };
    }
  }, 50);
  let engineRssPeak = 0;
  const engineRss = () => {
    try {
      const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${engine.pid}/status`, 'utf8'));
      return m ? Number(m[1]) * 1024 : 0;
    } catch {
      return 0;
    }
  };
  const trackedTimer = setInterval(() => {
    if (!connectorRunning) return;
    engineRssPeak = Math.max(engineRssPeak, engineRss());
    void queryRows<{ v: string }>(destination.client, "SELECT value AS v FROM system.metrics WHERE metric = 'MemoryTracking'")
      .then(([r]) => (chdbTrackedPeak = Math.max(chdbTrackedPeak, Number(r?.v ?? 0))))
      .catch(() => undefined);
  }, 1000);
  cleanups.push(async () => {
    clearInterval(rssTimer);
    clearInterval(trackedTimer);
  });
  const runConnector = async (d: Dataset): Promise<Result> => {
    const name = `bench_${d.name}`;
    const spec = {
      name, connection: 'local', bucketUri: `s3://${BUCKET}/${d.glob}`, format: d.format, schedule: '@on-demand',
      columns: BENCH_COLUMNS.map((c) => ({ name: c.name, type: c.type, ...(d.format === 'ndjson' ? { path: `$.${c.name}` } : {}) })),
      engine: { partitionKey: 'toYYYYMM(timestamp)', sortingKey: '(page, timestamp)' },
      limits: { concurrency: opts.concurrency },
    };
    const res = await api('POST', '/v1/datasources', spec);
    if (res.status !== 201) throw new BenchFailure(`creating data source ${name} failed (HTTP ${res.status}): ${JSON.stringify(res.body)}`);
    // Wait until the workflow has prepared the tables, so the timing covers importing only.
    const prepDeadline = Date.now() + 60_000;
    for (;;) {
      const [r] = await queryRows<{ n: string }>(ch, 'SELECT count() AS n FROM system.tables WHERE database = currentDatabase() AND name = {t:String}', { t: `${name}_s3ch_rows_mv` });
      if (Number(r?.n ?? 0) > 0) break;
      if (Date.now() > prepDeadline) throw new BenchFailure(`data source ${name}: tables not prepared within 60 s`);
      await sleep(100);
    }
    await sleep(300);
    await quiesce();
    const cpuStart = cpuSample();
    const threads = opts.threads ? startThreadCpu() : null;
    const probe = d.unit === 'MB/s' ? startStatusProbe(api, name) : null;
    const t0 = performance.now();
    const t0Wall = Date.now();
    const sync = await api('POST', `/v1/datasources/${name}/sync`);
    if (sync.status >= 300) throw new BenchFailure(`sync of ${name} failed (HTTP ${sync.status}): ${JSON.stringify(sync.body)}`);
    const deadline = t0 + opts.timeoutMs;
    let lastReport = t0;
    for (;;) {
      const g = await api('GET', `/v1/datasources/${name}`);
      if (g.status !== 200) throw new BenchFailure(`GET /v1/datasources/${name}: HTTP ${g.status}: ${JSON.stringify(g.body)}`);
      const stats = g.body.stats as { files: Record<string, number> };
      const success = stats.files.success ?? 0;
      if (success >= d.files) break;
      const failed = (stats.files.failure ?? 0) + (stats.files.pending_retry ?? 0);
      if (failed > 0) {
        const f = await api('GET', `/v1/datasources/${name}/files?status=${stats.files.failure ? 'failure' : 'pending_retry'}&limit=3`);
        throw new BenchFailure(`data source ${name}: ${failed} file(s) failed or are retrying: ${JSON.stringify(f.body?.items?.map((i: { key: string; error?: string }) => ({ key: i.key, error: i.error })) ?? f.body)}`);
      }
      const now = performance.now();
      if (now > deadline) throw new BenchFailure(`data source ${name}: only ${success}/${d.files} files imported after ${opts.timeoutMs / 1000} s`);
      if (now - lastReport > 10_000) {
        lastReport = now;
        step(`  ${success}/${d.files} files after ${((now - t0) / 1000).toFixed(0)} s`);
      }
      await sleep(POLL_MS);
    }
    // The end is when the last file was recorded `success` (ClickHouse's receive time, on this
    // machine's clock), not when the next status poll, up to POLL_MS later, saw it.
    const [last] = await queryRows<{ ms: string | null }>(ch, `SELECT toUnixTimestamp64Milli(max(seq)) AS ms FROM ${LEDGER_TABLE} WHERE datasource = {n:String} AND status = 'success'`, { n: name });
    const polled = (performance.now() - t0) / 1000;
    const recorded = (Number(last?.ms ?? 0) - t0Wall) / 1000;
    const secs = recorded > 0 && recorded <= polled ? recorded : polled;
    const cpu = cpuSince(cpuStart);
    const byThread = threads?.stop();
    if (probe) statusLatency.set(d.name, await probe.stop());
    const got = await count(name);
    if (got !== d.rows) throw new BenchFailure(`table ${name} has ${got} rows, expected ${d.rows}`);
    return { ...result(d.name, `connector (${d.name})`, d.files, d.rows, d.bytes, secs, cpu), ...(byThread ? { threads: byThread } : {}) };
  };

  const results: Result[] = [];
  const summary: SummaryItem[] = [];
  /** Status-probe latencies (ms) per large dataset. */
  const statusLatency = new Map<string, number[]>();
  for (const d of datasets) {
    step(`ceiling: chDB s3() over ${d.name} (best of 2) ...`);
    const ceiling = await ceilingOf(d);
    results.push(ceiling);
    step(`connector: ${d.name}, ${d.files} files, concurrency ${opts.concurrency} ...`);
    connectorRunning = true;
    const r = await runConnector(d).finally(() => (connectorRunning = false));
    results.push(r);
    const pick = (x: Result) => (d.unit === 'MB/s' ? x.mbPerSecond : x.filesPerSecond);
    summary.push({ name: d.name, value: round(pick(r)), unit: d.unit, ceiling: round(pick(ceiling)), ratio: round(pick(r) / pick(ceiling), 3) });
  }
  clearInterval(rssTimer);
  clearInterval(trackedTimer);
  const rssMb = Math.round(rssPeak / MB);
  const memoryDetail = { rssPeakMb: rssMb, processRssPeakMb: Math.round(processRssPeak / MB), v8HeapAtPeakMb: atPeak.heapMb, nodeExternalAtPeakMb: atPeak.externalMb, chdbTrackedPeakMb: Math.round(chdbTrackedPeak / MB) };
  summary.push({ name: 'worker_rss_peak', value: rssMb, unit: 'MB', ceiling: TARGETS.rssMb, ratio: round(rssMb / TARGETS.rssMb, 3) });
  const engineMb = Math.round(engineRssPeak / MB);
  const engineCapMb = Math.round(env.S3CH_CHDB_MAX_MEMORY / MB);
  summary.push({ name: 'engine_rss_peak', value: engineMb, unit: 'MB', ceiling: engineCapMb, ratio: round(engineMb / engineCapMb, 3) });
  const latencies = [...statusLatency.values()].flat().sort((a, b) => a - b);
  const p95 = round(percentile(latencies, 95), 1);
  const max = round(latencies[latencies.length - 1] ?? 0, 1);
  summary.push({ name: 'api_status_p95_during_import', value: p95, unit: 'ms', ceiling: TARGETS.statusP95Ms, ratio: round(p95 / TARGETS.statusP95Ms, 3) });
  summary.push({ name: 'api_status_max_during_import', value: max, unit: 'ms', ceiling: TARGETS.statusMaxMs, ratio: round(max / TARGETS.statusMaxMs, 3) });
  const statusDetail = Object.fromEntries(
    [...statusLatency].map(([k, v]) => {
      const sorted = [...v].sort((a, b) => a - b);
      // In the order taken (one every PROBE_MS from the sync on): shows when a slow answer came.
      return [k, { samples: sorted.length, p50: round(percentile(sorted, 50), 1), p95: round(percentile(sorted, 95), 1), max: round(sorted[sorted.length - 1] ?? 0, 1), series: v.map((x) => Math.round(x)) }];
    }),
  );

  // The other scenarios start their own stacks: stop this one first (all but the temp dir,
  // pushed first) so its processes and chDB do not weigh on their numbers.
  if (opts.only.size > 1) {
    while (cleanups.length > 1) await cleanups.pop()!().catch(() => undefined);
    summary.push(...(await runOtherScenarios(opts)));
  }

  // 6. Report.
  say();
  printTable(results);
  say();
  say('(ceilings: best of 2 runs; connector: one run, end to end through Temporal)');
  const sampled = results.filter((r) => r.threads);
  if (sampled.length) {
    say();
    say('CPU seconds by thread during each run (--threads; engine threads are named by their job, js-main is the API, the activities and this benchmark):');
    for (const r of sampled) say(`  ${r.label}: ${formatThreadCpu(r.threads!)}`);
  }
  printSummary(summary);
  say(`memory: RSS peak while the connector imported ${memoryDetail.rssPeakMb} MB (V8 heap ${memoryDetail.v8HeapAtPeakMb} MB, Node external ${memoryDetail.nodeExternalAtPeakMb} MB at that moment); the ClickHouse engine process's RSS peak ${engineMb} MB (its own account ${memoryDetail.chdbTrackedPeakMb} MB, cap ${engineCapMb} MB); this whole process, data generation and ceilings included, ${memoryDetail.processRssPeakMb} MB`);
  say(`status probe (GET /v1/datasources/:name every ${PROBE_MS} ms while large files import): ${Object.entries(statusDetail).map(([k, v]) => `${k} p50 ${v.p50} / p95 ${v.p95} / max ${v.max} ms (${v.samples})`).join('; ')}`);
  say('(ratios and rates from one run on this machine; nothing is asserted about timing)');

  if (opts.out) {
    await mkdir(dirname(opts.out), { recursive: true });
    await writeFile(
      opts.out,
      `${JSON.stringify(
        {
          startedAt: started.toISOString(),
          machine: machineInfo(),
          options: { scale: process.env.BENCH_SCALE ?? 'full', only: [...opts.only], files: opts.files, rows: opts.rows, smallFiles: opts.smallFiles, smallRows: opts.smallRows, concurrency: opts.concurrency },
          summary,
          results: Object.fromEntries(results.map((r) => [r.name, r])),
          statusProbe: { everyMs: PROBE_MS, byDataset: statusDetail },
          memory: memoryDetail,
        },
        null,
        2,
      )}\n`,
    );
    say(`results written to ${opts.out}`);
  }
}

const round = (n: number, digits = 2) => Number(n.toFixed(digits));

// ---------------------------------------------------------------------------------------
// Entry: run, clean up in reverse order whatever happened, exit with a clear status.

// The AWS SDK warns once that future versions need Node 22; that is noise in a benchmark's output.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';

const cleanups: Array<() => Promise<void>> = [];
let cleaning: Promise<void> | null = null;
function cleanup(): Promise<void> {
  cleaning ??= (async () => {
    while (cleanups.length) await cleanups.pop()!().catch(() => undefined);
  })();
  return cleaning;
}

let interrupted = false;
for (const sig of ['SIGINT', 'SIGTERM'] as const) {
  process.once(sig, () => {
    interrupted = true;
    process.stderr.write(`\n[bench] ${sig}: cleaning up ...\n`);
    void cleanup().finally(() => process.exit(130));
  });
}

let opts: Options;
try {
  opts = parseOptions(process.argv.slice(2));
} catch (err) {
  process.stderr.write(`${(err as Error).message}\n${err instanceof UsageError ? USAGE : ''}\n`);
  process.exit(2);
}

let code = 0;
try {
  await main(opts, cleanups);
} catch (err) {
  code = 1;
  if (interrupted) await new Promise(() => undefined); // the signal handler cleans up and exits
  const msg = err instanceof BenchFailure || err instanceof ConfigError ? err.message : (err as Error)?.stack ?? String(err);
  process.stderr.write(`\nFAIL: ${msg}\n`);
}
await cleanup();
process.exit(code);
