/**
 * `npm run bench`: the connector's ingest rate on this machine, against
 * ceilings measured in the same run with the same chDB.
 *
 *   ceiling(file)   chDB reads the CSV files from local disk itself:
 *                   INSERT INTO t SELECT * FROM file('<dir>/*.csv', ...)
 *                   (no S3, no Temporal, no quarantine split)
 *   ceiling(1 thr)  the same per file with max_threads = 1, `concurrency`
 *                   files at a time: the shape of the connector's inserts
 *   download-only   GetObject of every file from MinIO, bytes discarded
 *   importFile      the connector's import activity called directly (mock
 *     direct        activity context), `concurrency` at a time: S3, spool,
 *                   landing table + views, ledger, but no Temporal
 *   connector       a data source over the same files in MinIO, POST /sync
 *                   until every file is `success` in the ledger
 *   connector small many tiny files: the per-file overhead (Temporal
 *                   activity, ledger writes, spool file, insert), also
 *                   measured with the bare activity to split the two
 *
 * Everything runs on loopback in a temp dir: a Temporal dev server
 * (in-memory), MinIO, chDB, and the worker + API in this process. Prints
 * ratios; never asserts timing. Exits non-zero only when something is wrong
 * (e.g. a row count differs).
 *
 *   npx tsx scripts/bench.ts [--files 8] [--rows 250000] [--small-files 200]
 *     [--small-rows 200] [--concurrency 4] [--timeout 600] [--out results.json] [--keep]
 */
import { CreateBucketCommand, GetObjectCommand, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { MockActivityEnvironment } from '@temporalio/testing';
import { DefaultLogger, Runtime } from '@temporalio/worker';
import { readFileSync, statfsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { cpus, tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import type { Readable } from 'node:stream';
import { parseArgs } from 'node:util';
import { createDestination, queryRows, type Destination } from '../activities/destination.js';
import { createActivities, type FileRef } from '../activities/index.js';
import { envSchema } from '../schemas/config.js';
import type { Connection } from '../schemas/connection.js';
import { dataSourceSpecSchema, normalizeSpec } from '../schemas/datasource.js';
import { quoteIdent, quoteString } from '../schemas/identifiers.js';
import { startConnector, type Connector } from '../worker/runtime.js';
import { BENCH_COLUMNS, STRUCTURE, csvString, writeCsvFile } from './bench/data.js';
import { startLocalServices } from './services.js';
import { callApp } from '../api/app.js';
import { ensureTools } from './tools.js';

// ---------------------------------------------------------------------------------------
// Options

const USAGE = `usage: npx tsx scripts/bench.ts [options]
  --files N         large CSV files (default 8)
  --rows N          rows per large file (default 250000, ~15 MB)
  --small-files N   small files for the per-file overhead run (default 200; 0 skips it)
  --small-rows N    rows per small file (default 200)
  --concurrency N   the data sources' limits.concurrency, and the download-only concurrency (default 4)
  --timeout S       per-phase timeout in seconds (default 600)
  --out PATH        also write the results as JSON to PATH
  --keep            keep the temp dir (data, logs) for inspection`;

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
}

class UsageError extends Error {}

function parseOptions(argv: string[]): Options {
  const { values } = parseArgs({
    args: argv,
    options: {
      files: { type: 'string', default: '8' },
      rows: { type: 'string', default: '250000' },
      'small-files': { type: 'string', default: '200' },
      'small-rows': { type: 'string', default: '200' },
      concurrency: { type: 'string', default: '4' },
      timeout: { type: 'string', default: '600' },
      out: { type: 'string' },
      keep: { type: 'boolean', default: false },
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
  };
  const estimate = (o.files * o.rows + o.smallFiles * o.smallRows) * BYTES_PER_ROW_ESTIMATE;
  if (estimate > MAX_TOTAL_BYTES) {
    throw new UsageError(`about ${fmtBytes(estimate)} of CSV is more than this benchmark allows (${fmtBytes(MAX_TOTAL_BYTES)}); lower --files/--rows`);
  }
  return o;
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

const CLK_TCK = 100;

function procCpuSeconds(pid: number): number | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the ")" that closes the command name: state is field 3; utime 14, stime 15.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) / CLK_TCK;
  } catch {
    return null;
  }
}

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

interface LargeFile {
  path: string;
  key: string;
  bytes: number;
}

const stripQuotes = (etag: string | undefined) => (etag ?? '').replace(/^"|"$/g, '');

async function main(opts: Options, cleanups: Array<() => Promise<void>>): Promise<void> {
  const started = new Date();
  const root = await mkdtemp(join(tmpdir(), 's3ch-bench-'));
  cleanups.push(async () => {
    if (opts.keep) say(`[bench] kept ${root}`);
    else await rm(root, { recursive: true, force: true });
  });
  const csvDir = join(root, 'csv');
  await mkdir(csvDir);

  const estimate = (opts.files * opts.rows + opts.smallFiles * opts.smallRows) * BYTES_PER_ROW_ESTIMATE;
  const free = (() => {
    try {
      const s = statfsSync(root);
      return s.bavail * s.bsize;
    } catch {
      return Infinity;
    }
  })();
  // Local CSV + MinIO's copy + chDB's tables (x2 for the ceilings) + spool files.
  if (estimate * 4 > free) throw new BenchFailure(`not enough free space in ${tmpdir()}: need about ${fmtBytes(estimate * 4)}, have ${fmtBytes(free)}`);

  say(`s3-clickhouse-connector benchmark: ${cpus().length} CPUs, Node ${process.versions.node}, ${process.platform}/${process.arch}`);
  say(`  large: ${opts.files} files x ${fmtInt(opts.rows)} rows; small: ${opts.smallFiles} files x ${fmtInt(opts.smallRows)} rows; concurrency ${opts.concurrency}`);
  say(`  temp dir ${root}`);
  say();

  // 1. Services, on loopback and free ports.
  Runtime.install({ logger: new DefaultLogger('WARN') });
  const tools = await ensureTools({ log: (l) => step(`[tools] ${l}`) });
  step('starting Temporal dev server (in-memory) and MinIO ...');
  const { temporal, minio, stop: stopServices } = await startLocalServices({
    tools,
    dir: join(root, 'logs'),
    minioUser: MINIO_USER,
    minioPassword: MINIO_PASSWORD,
  });
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

  const local: Connection = {
    kind: 'static',
    endpoint: minio.endpoint,
    region: 'us-east-1',
    forcePathStyle: true,
    accessKeyId: MINIO_USER,
    secretAccessKey: MINIO_PASSWORD,
  };
  const s3 = new S3Client({
    endpoint: local.endpoint,
    region: local.region,
    forcePathStyle: true,
    credentials: { accessKeyId: MINIO_USER, secretAccessKey: MINIO_PASSWORD },
  });
  cleanups.push(async () => s3.destroy());
  await s3.send(new CreateBucketCommand({ Bucket: BUCKET }));

  // 2. Data: large files on local disk, then into MinIO; small files straight into MinIO.
  step(`generating ${opts.files} CSV files x ${fmtInt(opts.rows)} rows ...`);
  let t = performance.now();
  const large: LargeFile[] = [];
  for (let i = 0; i < opts.files; i++) {
    const name = `part-${String(i).padStart(5, '0')}.csv`;
    const path = join(csvDir, name);
    large.push({ path, key: `large/${name}`, bytes: await writeCsvFile(path, i, opts.rows) });
  }
  const largeBytes = large.reduce((a, f) => a + f.bytes, 0);
  const largeRows = opts.files * opts.rows;
  step(`  ${fmtBytes(largeBytes)} in ${((performance.now() - t) / 1000).toFixed(1)} s; uploading to MinIO ...`);
  t = performance.now();
  const largeRefs: FileRef[] = await mapLimit(large, 4, async (f) => {
    const put = await s3.send(new PutObjectCommand({ Bucket: BUCKET, Key: f.key, Body: await readFile(f.path), ContentType: 'text/csv' }));
    return { key: f.key, etag: stripQuotes(put.ETag), size: f.bytes, lastModified: '' };
  });
  step(`  uploaded in ${((performance.now() - t) / 1000).toFixed(1)} s`);
  let smallRefs: FileRef[] = [];
  if (opts.smallFiles > 0) {
    step(`generating and uploading ${opts.smallFiles} small files x ${fmtInt(opts.smallRows)} rows ...`);
    smallRefs = await mapLimit(Array.from({ length: opts.smallFiles }, (_, i) => i), 8, async (i) => {
      const body = Buffer.from(csvString(100_000 + i, opts.smallRows), 'utf8');
      const key = `small/part-${String(i).padStart(5, '0')}.csv`;
      const put = await s3.send(new PutObjectCommand({ Bucket: BUCKET, Key: key, Body: body, ContentType: 'text/csv' }));
      return { key, etag: stripQuotes(put.ETag), size: body.length, lastModified: '' };
    });
  }
  const smallBytes = smallRefs.reduce((a, f) => a + f.size, 0);

  // 3. chDB and the connector (worker + API in-process, API not served).
  step('starting chDB and the connector (bundling workflows) ...');
  const destination: Destination = createDestination({
    S3CH_DATA_DIR: join(root, 'connector'),
    CLICKHOUSE_DATABASE: 'default',
    CLICKHOUSE_URL: undefined,
    CLICKHOUSE_USER: 'default',
    CLICKHOUSE_PASSWORD: '',
  });
  cleanups.push(async () => destination.close().catch(() => undefined));
  const env = envSchema.parse({ S3CH_DATA_DIR: join(root, 'connector'), TEMPORAL_TASK_QUEUE: 's3ch-bench', LOG_LEVEL: 'warn' });
  const connector: Connector = await startConnector({
    env,
    connections: new Map([['local', local]]),
    temporalAddress: temporal.address,
    serveApi: false,
    destination,
  });
  // Stopped before chDB is closed and the services go away (cleanups run in reverse).
  cleanups.push(async () => connector.stop().catch((e) => console.error(`[bench] stopping the connector: ${(e as Error).message}`)));
  const ch = destination.client;
  const count = async (table: string): Promise<number> => {
    const [r] = await queryRows<{ n: string }>(ch, `SELECT count() AS n FROM ${quoteIdent(table)}`);
    return Number(r?.n ?? 0);
  };

  const results: Result[] = [];
  const columnsDdl = BENCH_COLUMNS.map((c) => `${quoteIdent(c.name)} ${c.type}`).join(', ');
  const engineDdl = 'ENGINE = MergeTree PARTITION BY toYYYYMM(timestamp) ORDER BY (page, timestamp)';
  const fileSource = (path: string) => `file(${quoteString(path)}, 'CSVWithNames', ${quoteString(STRUCTURE)})`;

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

  // 4. Ceilings: chDB parses the local files itself. Best of two runs each (a ceiling is the best case).
  const ceilingRun = async (name: string, label: string, insert: (table: string) => Promise<unknown>): Promise<Result> => {
    let best: Result | null = null;
    for (let rep = 0; rep < 2; rep++) {
      const table = `${name}_${rep}`;
      await ch.command({ query: `CREATE TABLE ${table} (${columnsDdl}) ${engineDdl}` });
      await quiesce();
      const cpu0 = cpuSample();
      const t0 = performance.now();
      await insert(table);
      const r = result(name, label, opts.files, largeRows, largeBytes, (performance.now() - t0) / 1000, cpuSince(cpu0));
      const got = await count(table);
      if (got !== largeRows) throw new BenchFailure(`${label}: table has ${got} rows, expected ${largeRows}`);
      await ch.command({ query: `DROP TABLE ${table} SYNC` });
      if (!best || r.seconds < best.seconds) best = r;
    }
    return best!;
  };

  step('ceiling: chDB file() over the local files (best of 2) ...');
  const ceiling = await ceilingRun('ceiling_file', 'ceiling: chDB file() glob', (table) =>
    ch.command({ query: `INSERT INTO ${table} SELECT * FROM ${fileSource(join(csvDir, '*.csv'))}` }),
  );
  results.push(ceiling);

  // The same per file with one thread each, `concurrency` at a time: how the connector inserts.
  step(`ceiling: chDB file() per file, max_threads = 1, ${opts.concurrency} at a time (best of 2) ...`);
  const ceiling1t = await ceilingRun('ceiling_file_1thread', `ceiling: file() per file, max_threads=1, x${opts.concurrency}`, (table) =>
    mapLimit(large, opts.concurrency, (f) =>
      ch.command({ query: `INSERT INTO ${table} SELECT * FROM ${fileSource(f.path)} SETTINGS max_threads = 1, max_insert_threads = 1` }),
    ),
  );
  results.push(ceiling1t);

  // How much chDB runs queries in parallel in this process: `concurrency` copies of one
  // single-threaded CPU-bound query, against one alone. ~1 = serialized.
  const probe = `SELECT sum(sipHash64(number)) AS n FROM numbers(20000000) SETTINGS max_threads = 1`;
  await queryRows(ch, probe);
  t = performance.now();
  await queryRows(ch, probe);
  const probeOne = performance.now() - t;
  t = performance.now();
  await Promise.all(Array.from({ length: opts.concurrency }, () => queryRows(ch, probe)));
  const chdbParallelism = (probeOne * opts.concurrency) / (performance.now() - t);

  // 5. Download only: S3 throughput on loopback.
  step(`download only: GetObject of every file from MinIO, ${opts.concurrency} at a time ...`);
  await quiesce();
  const cpu0 = cpuSample();
  t = performance.now();
  const downloaded = await mapLimit(large, opts.concurrency, async (f) => {
    const obj = await s3.send(new GetObjectCommand({ Bucket: BUCKET, Key: f.key }));
    let n = 0;
    for await (const chunk of obj.Body as Readable) n += (chunk as Buffer).length;
    return n;
  });
  const seconds = (performance.now() - t) / 1000;
  const downloadBytes = downloaded.reduce((a, b) => a + b, 0);
  if (downloadBytes !== largeBytes) throw new BenchFailure(`downloaded ${downloadBytes} bytes, uploaded ${largeBytes}`);
  const download = result('download_only', 'download only (MinIO GetObject)', opts.files, largeRows, downloadBytes, seconds, cpuSince(cpu0));
  results.push(download);

  // 6. The connector over the same files.
  const api = (method: string, path: string, body?: unknown) => callApp(connector.app, method, path, body);

  const specFor = (name: string, prefix: string) => ({
    name,
    connection: 'local',
    bucketUri: `s3://${BUCKET}/${prefix}/*.csv`,
    format: 'csv' as const,
    schedule: '@on-demand',
    columns: BENCH_COLUMNS.map((c) => ({ name: c.name, type: c.type })),
    engine: { partitionKey: 'toYYYYMM(timestamp)', sortingKey: '(page, timestamp)' },
    limits: { concurrency: opts.concurrency },
  });

  const checkRows = async (table: string, files: number, rowsPerFile: number) => {
    const expected = files * rowsPerFile;
    const got = await count(table);
    if (got !== expected) {
      const [q] = await queryRows<{ n: string }>(ch, `SELECT count() AS n FROM ${quoteIdent(`${table}_quarantine`)}`).catch(() => [{ n: '?' }]);
      throw new BenchFailure(`table ${table} has ${got} rows, expected ${expected} (${files} x ${rowsPerFile}); quarantined: ${q?.n}`);
    }
    return expected;
  };

  // The connector's own import activity (S3 GetObject, spool, landing table + views, ledger),
  // called directly, `concurrency` at a time: everything but Temporal.
  const activities = createActivities({ destination, s3: connector.s3 });
  const quietLogger = new DefaultLogger('ERROR');
  const runDirect = async (name: string, label: string, prefix: string, refs: FileRef[], rowsPerFile: number, bytes: number): Promise<Result> => {
    const spec = normalizeSpec(dataSourceSpecSchema.parse(specFor(name, prefix)));
    const { columns } = await activities.prepareDataSource({ dataSource: name, spec });
    if (!columns) throw new BenchFailure(`prepareDataSource(${name}) returned no columns`);
    await quiesce();
    const cpuStart = cpuSample();
    const t0 = performance.now();
    await mapLimit(refs, opts.concurrency, (file) =>
      // Failures surface as this call's rejection; the mock's own WARN log would only repeat them.
      new MockActivityEnvironment(undefined, { logger: quietLogger }).run(activities.importFile, { dataSource: name, spec, columns, file, runId: `${name}/1` }),
    );
    const secs = (performance.now() - t0) / 1000;
    const cpu = cpuSince(cpuStart);
    return result(name, label, refs.length, await checkRows(spec.table, refs.length, rowsPerFile), bytes, secs, cpu);
  };

  const runConnector = async (name: string, label: string, prefix: string, files: number, rowsPerFile: number, bytes: number): Promise<Result> => {
    const res = await api('POST', '/v1/datasources', specFor(name, prefix));
    if (res.status !== 201) throw new BenchFailure(`creating data source ${name} failed (HTTP ${res.status}): ${JSON.stringify(res.body)}`);
    // Wait until the workflow has prepared the tables, so the timing covers importing only.
    const prepDeadline = Date.now() + 60_000;
    for (;;) {
      const [r] = await queryRows<{ n: string }>(ch, 'SELECT count() AS n FROM system.tables WHERE database = currentDatabase() AND name = {t:String}', { t: `${name}_s3ch_rows_mv` });
      if (Number(r?.n ?? 0) > 0) break;
      if (Date.now() > prepDeadline) throw new BenchFailure(`data source ${name}: tables not prepared within 60 s`);
      await sleep(100);
    }
    await sleep(300); // let the workflow settle into waiting for a sync
    await quiesce();

    const cpuStart = cpuSample();
    const t0 = performance.now();
    const sync = await api('POST', `/v1/datasources/${name}/sync`);
    if (sync.status >= 300) throw new BenchFailure(`sync of ${name} failed (HTTP ${sync.status}): ${JSON.stringify(sync.body)}`);
    const deadline = t0 + opts.timeoutMs;
    let lastReport = t0;
    let success = 0;
    for (;;) {
      const g = await api('GET', `/v1/datasources/${name}`);
      if (g.status !== 200) throw new BenchFailure(`GET /v1/datasources/${name}: HTTP ${g.status}: ${JSON.stringify(g.body)}`);
      const stats = g.body.stats as { files: Record<string, number> };
      success = stats.files.success ?? 0;
      if (success >= files) break;
      const failed = (stats.files.failure ?? 0) + (stats.files.pending_retry ?? 0);
      if (failed > 0) {
        const f = await api('GET', `/v1/datasources/${name}/files?status=${stats.files.failure ? 'failure' : 'pending_retry'}&limit=3`);
        throw new BenchFailure(`data source ${name}: ${failed} file(s) failed or are retrying: ${JSON.stringify(f.body?.items?.map((i: { key: string; error?: string }) => ({ key: i.key, error: i.error })) ?? f.body)}`);
      }
      if (g.body.status?.state === 'error') throw new BenchFailure(`data source ${name} is in state error: ${g.body.status.error}`);
      const now = performance.now();
      if (now > deadline) throw new BenchFailure(`data source ${name}: only ${success}/${files} files imported after ${opts.timeoutMs / 1000} s (files: ${JSON.stringify(stats.files)})`);
      if (now - lastReport > 10_000) {
        lastReport = now;
        step(`  ${success}/${files} files after ${((now - t0) / 1000).toFixed(0)} s`);
      }
      await sleep(POLL_MS);
    }
    const secs = (performance.now() - t0) / 1000;
    const cpu = cpuSince(cpuStart);
    return result(name, label, files, await checkRows(name, files, rowsPerFile), bytes, secs, cpu);
  };

  step(`importFile activity called directly (no Temporal): ${opts.files} large files, ${opts.concurrency} at a time ...`);
  const directLarge = await runDirect('bench_direct_large', 'importFile direct, no Temporal (large)', 'large', largeRefs, opts.rows, largeBytes);
  results.push(directLarge);
  step(`connector: ${opts.files} large files, concurrency ${opts.concurrency} ...`);
  const connLarge = await runConnector('bench_large', 'connector (large files)', 'large', opts.files, opts.rows, largeBytes);
  results.push(connLarge);

  let connSmall: Result | null = null;
  let directSmall: Result | null = null;
  if (opts.smallFiles > 0) {
    step(`importFile activity called directly (no Temporal): ${opts.smallFiles} small files, ${opts.concurrency} at a time ...`);
    directSmall = await runDirect('bench_direct_small', 'importFile direct, no Temporal (small)', 'small', smallRefs, opts.smallRows, smallBytes);
    results.push(directSmall);
    step(`connector: ${opts.smallFiles} small files, concurrency ${opts.concurrency} ...`);
    connSmall = await runConnector('bench_small', 'connector (small files)', 'small', opts.smallFiles, opts.smallRows, smallBytes);
    results.push(connSmall);
  }

  // 7. Report.
  const ratios = {
    connectorVsCeiling: connLarge.rowsPerSecond / ceiling.rowsPerSecond,
    connectorVsCeiling1Thread: connLarge.rowsPerSecond / ceiling1t.rowsPerSecond,
    connectorVsDownload: connLarge.mbPerSecond / download.mbPerSecond,
    connectorVsDirectLarge: connLarge.rowsPerSecond / directLarge.rowsPerSecond,
    connectorVsDirectSmall: connSmall && directSmall ? connSmall.filesPerSecond / directSmall.filesPerSecond : null,
    directSmallMsPerSlot: directSmall ? (directSmall.seconds * 1000 * opts.concurrency) / directSmall.files : null,
    largeFilesPerMinute: connLarge.filesPerSecond * 60,
    smallFilesPerMinute: connSmall ? connSmall.filesPerSecond * 60 : null,
    smallFileMsPerSlot: connSmall ? (connSmall.seconds * 1000 * opts.concurrency) / connSmall.files : null,
    chdbParallelism,
  };
  say();
  printTable(results);
  say();
  say('(ceilings: best of 2 runs; everything else: one run)');
  say(`connector (large files): ${ratios.connectorVsCeiling.toFixed(2)}x of chDB reading the same files directly (ceiling: file() glob)`);
  say(`                         ${ratios.connectorVsCeiling1Thread.toFixed(2)}x of chDB reading them per file with 1 thread each, ${opts.concurrency} at a time`);
  say(`                         ${ratios.connectorVsDownload.toFixed(2)}x of only downloading them from MinIO`);
  say(`                         ${ratios.connectorVsDirectLarge.toFixed(2)}x of its own import activity called without Temporal`);
  say(`backlog drain: ${fmtNum(ratios.largeFilesPerMinute, 1)} large files/minute` +
    (ratios.smallFilesPerMinute !== null ? `, ${fmtInt(ratios.smallFilesPerMinute)} small files/minute` : '') +
    ` (a 5 files/minute cap would take ${fmtNum((opts.files + opts.smallFiles) / 5, 1)} minutes for these ${opts.files + opts.smallFiles} files)`);
  if (ratios.smallFileMsPerSlot !== null) {
    say(`per-file overhead: ${fmtNum(ratios.smallFileMsPerSlot, 0)} ms per small file per concurrency slot (${opts.smallRows} rows each); ` +
      `${fmtNum(ratios.directSmallMsPerSlot!, 0)} ms of it is the import activity itself, the rest Temporal orchestration ` +
      `(connector: ${ratios.connectorVsDirectSmall!.toFixed(2)}x the files/s of the bare activity)`);
  }
  say(`chDB parallelism: ${opts.concurrency} concurrent single-threaded queries ran ${chdbParallelism.toFixed(2)}x as fast as one at a time` +
    (chdbParallelism < 1.3 ? ' (queries are serialized within the process)' : ''));
  say('(ratios and rates from one run on this machine; nothing is asserted about timing)');

  if (opts.out) {
    await mkdir(dirname(opts.out), { recursive: true });
    await writeFile(
      opts.out,
      `${JSON.stringify(
        {
          startedAt: started.toISOString(),
          machine: { cpus: cpus().length, cpuModel: cpus()[0]?.model ?? null, node: process.versions.node, platform: `${process.platform}/${process.arch}` },
          options: { files: opts.files, rows: opts.rows, smallFiles: opts.smallFiles, smallRows: opts.smallRows, concurrency: opts.concurrency },
          results: Object.fromEntries(results.map((r) => [r.name, r])),
          ratios,
        },
        null,
        2,
      )}\n`,
    );
    say(`results written to ${opts.out}`);
  }
}

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
  const msg = err instanceof BenchFailure ? err.message : (err as Error)?.stack ?? String(err);
  process.stderr.write(`\nFAIL: ${msg}\n`);
}
await cleanup();
process.exit(code);
