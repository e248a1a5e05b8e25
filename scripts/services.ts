/**
 * Start real services (Temporal dev server, MinIO) as child processes, wait until they
 * are ready, and stop them cleanly.
 *
 * - Child stdout/stderr go straight to `logFile` (opened by us, written by the child) or,
 *   without a log file, are piped and drained into a small in-memory ring buffer, so a
 *   full pipe can never block a child.
 * - Children die with the parent: a process 'exit' handler SIGKILLs any child still
 *   running, and (on POSIX) a tiny `sh` watchdog per child, holding a pipe from us,
 *   SIGKILLs it if the parent disappears without running exit handlers (SIGKILL, OOM).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { closeSync, openSync, readFileSync, writeFileSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { createConnection, createServer } from 'node:net';
import { dirname, join, resolve } from 'node:path';
import { closeConnection, openConnection } from '../temporal/client.js';
import { ensureEngine } from './tools.js';
import { READ_ONLY_SETTINGS } from '../clickhouse/read-only.js';

export interface RunningService {
  name: string;
  pid: number;
  /** SIGTERM, wait, SIGKILL after 10 s. Idempotent. */
  stop(): Promise<void>;
}

export type SearchAttributeType = 'Keyword' | 'Text' | 'Int' | 'Double' | 'Bool' | 'Datetime' | 'KeywordList';

export interface TemporalDevServerOptions {
  bin: string;
  /** SQLite file for persistence; omit for an in-memory server. */
  dbFile?: string;
  /** Bind address for gRPC and UI (default 127.0.0.1). */
  ip?: string;
  port: number;
  uiPort: number;
  /** Namespace to create (and wait for). Default: "default" (always exists). */
  namespace?: string;
  searchAttributes?: Record<string, SearchAttributeType>;
  logFile?: string;
  /** Readiness timeout (default 60 s). */
  readyTimeoutMs?: number;
}

export interface MinioOptions {
  bin: string;
  dataDir: string;
  port: number;
  consolePort: number;
  rootUser: string;
  rootPassword: string;
  logFile?: string;
  env?: Record<string, string>;
  /** Readiness timeout (default 60 s). */
  readyTimeoutMs?: number;
}

const STOP_GRACE_MS = 10_000;
const DEFAULT_READY_TIMEOUT_MS = 60_000;
const LOG_TAIL_LINES = 20;

// ---------------------------------------------------------------------------------------
// Small helpers

/** Ask the OS for a free loopback TCP port. */
export function freePort(): Promise<number> {
  return new Promise((res, rej) => {
    const srv = createServer();
    srv.unref();
    srv.on('error', rej);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      if (addr === null || typeof addr === 'string') {
        srv.close();
        rej(new Error('could not determine a free port'));
        return;
      }
      const { port } = addr;
      srv.close((err) => (err ? rej(err) : res(port)));
    });
  });
}

export interface WaitForOptions {
  /** Poll interval (default 250 ms). */
  intervalMs?: number;
  /** Log file to point to in the timeout error. */
  logFile?: string;
  /** Checked before every poll; if it returns an Error, waiting stops with it. */
  abort?: () => Error | undefined;
}

/**
 * Polls `check` until it returns true. A throwing check counts as "not yet". On timeout
 * throws an error naming `what` (and the log file, when given).
 */
export async function waitFor(
  what: string,
  check: () => Promise<boolean>,
  timeoutMs: number,
  opts: WaitForOptions = {},
): Promise<void> {
  const interval = opts.intervalMs ?? 250;
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  for (;;) {
    const aborted = opts.abort?.();
    if (aborted) throw aborted;
    try {
      if (await check()) return;
      lastError = undefined;
    } catch (err) {
      lastError = err;
    }
    const aborted2 = opts.abort?.();
    if (aborted2) throw aborted2;
    if (Date.now() >= deadline) break;
    await sleep(Math.min(interval, Math.max(0, deadline - Date.now())));
  }
  const why = lastError instanceof Error ? ` Last error: ${lastError.message}` : lastError ? ` Last error: ${String(lastError)}` : '';
  const where = opts.logFile ? ` See the log: ${opts.logFile}` : '';
  throw new Error(`Timed out after ${Math.round(timeoutMs / 1000)}s waiting for ${what}.${why}${where}`);
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** True if something accepts TCP connections on host:port. */
export function tcpOpen(host: string, port: number, timeoutMs = 1000): Promise<boolean> {
  return new Promise((res) => {
    const sock = createConnection({ host, port });
    const done = (ok: boolean): void => {
      sock.removeAllListeners();
      sock.on('error', () => undefined);
      sock.destroy();
      res(ok);
    };
    sock.setTimeout(timeoutMs, () => done(false));
    sock.once('connect', () => done(true));
    sock.once('error', () => done(false));
  });
}

// ---------------------------------------------------------------------------------------
// Child process management

const running = new Set<ChildProcess>();
let exitHandlerInstalled = false;

function installExitHandler(): void {
  if (exitHandlerInstalled) return;
  exitHandlerInstalled = true;
  process.on('exit', () => {
    for (const child of running) {
      try {
        child.kill('SIGKILL');
      } catch {
        /* already gone */
      }
    }
  });
}

/**
 * POSIX watchdog: a tiny `sh` that blocks reading a pipe from us; when this process dies
 * (however: even SIGKILL), the kernel closes the pipe, `read` returns and it SIGKILLs the
 * child. No polling, and unlike `kill -0 <ppid>` it is not fooled by an unreaped zombie.
 */
function spawnWatchdog(childPid: number): ChildProcess | undefined {
  if (process.platform === 'win32') return undefined;
  try {
    const dog = spawn('/bin/sh', ['-c', `read _ignored; kill -9 ${childPid} 2>/dev/null; exit 0`], {
      detached: true,
      stdio: ['pipe', 'ignore', 'ignore'],
    });
    dog.on('error', () => undefined);
    dog.stdin?.on('error', () => undefined);
    // Don't let the watchdog keep our event loop alive.
    (dog.stdin as unknown as { unref?: () => void } | null)?.unref?.();
    dog.unref();
    return dog;
  } catch {
    return undefined;
  }
}

interface Managed {
  child: ChildProcess;
  /** Resolves when the child has exited. */
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  exitInfo(): { code: number | null; signal: NodeJS.Signals | null } | undefined;
  spawnError(): Error | undefined;
  logTail(): string;
  stop(): Promise<void>;
}

function startChild(
  name: string,
  bin: string,
  args: string[],
  opts: { env?: NodeJS.ProcessEnv; logFile?: string },
): Managed {
  installExitHandler();

  let fd: number | undefined;
  const ring: string[] = [];
  if (opts.logFile) {
    fd = openSync(opts.logFile, 'a');
  }
  const child = spawn(bin, args, {
    env: opts.env ?? process.env,
    stdio: fd !== undefined ? ['ignore', fd, fd] : ['ignore', 'pipe', 'pipe'],
  });
  if (fd !== undefined) closeSync(fd); // the child has its own copy
  if (fd === undefined) {
    let partial = '';
    const drain = (buf: Buffer): void => {
      const lines = (partial + buf.toString('utf8')).split(/\r?\n/);
      partial = lines.pop() ?? '';
      for (const l of lines) {
        ring.push(l);
        if (ring.length > 200) ring.shift();
      }
    };
    child.stdout?.on('data', drain);
    child.stderr?.on('data', drain);
  }

  let exitInfo: { code: number | null; signal: NodeJS.Signals | null } | undefined;
  let spawnError: Error | undefined;
  let dog: ChildProcess | undefined;

  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((res) => {
    child.once('error', (err) => {
      spawnError = err;
      if (child.pid === undefined) {
        exitInfo = { code: null, signal: null };
        running.delete(child);
        res(exitInfo);
      }
    });
    child.once('exit', (code, signal) => {
      exitInfo = { code, signal };
      running.delete(child);
      if (dog?.pid) {
        try {
          process.kill(dog.pid, 'SIGKILL');
        } catch {
          /* already gone */
        }
      }
      res(exitInfo);
    });
  });

  if (child.pid !== undefined) {
    running.add(child);
    dog = spawnWatchdog(child.pid);
  }

  const logTail = (): string => {
    let lines: string[];
    if (opts.logFile) {
      try {
        lines = readFileSync(opts.logFile, 'utf8').split(/\r?\n/);
      } catch {
        lines = [];
      }
    } else {
      lines = ring;
    }
    return lines
      .filter((l) => l.trim() !== '')
      .slice(-LOG_TAIL_LINES)
      .join('\n');
  };

  let stopping: Promise<void> | undefined;
  const stop = (): Promise<void> => {
    stopping ??= (async () => {
      if (exitInfo) return;
      child.kill('SIGTERM');
      let timer: NodeJS.Timeout | undefined;
      const graceful = await Promise.race([
        exited.then(() => true),
        new Promise<boolean>((r) => (timer = setTimeout(() => r(false), STOP_GRACE_MS))),
      ]);
      clearTimeout(timer);
      if (!graceful && !exitInfo) {
        child.kill('SIGKILL');
        await exited;
      }
    })();
    return stopping;
  };

  return {
    child,
    exited,
    exitInfo: () => exitInfo,
    spawnError: () => spawnError,
    logTail,
    stop,
  };
}

function describeExit(info: { code: number | null; signal: NodeJS.Signals | null }): string {
  return info.signal ? `signal ${info.signal}` : `exit code ${info.code}`;
}

/** Waits until `ready` succeeds; fails fast (with the log tail) if the child dies first. */
async function waitReady(
  name: string,
  m: Managed,
  what: string,
  check: () => Promise<boolean>,
  timeoutMs: number,
  logFile: string | undefined,
): Promise<void> {
  const abort = (): Error | undefined => {
    const spawnErr = m.spawnError();
    if (spawnErr && m.child.pid === undefined) {
      return new Error(`Failed to start ${name}: ${spawnErr.message}`);
    }
    const info = m.exitInfo();
    if (!info) return undefined;
    const tail = m.logTail();
    return new Error(
      `${name} exited before it was ready (${describeExit(info)}).` +
        (logFile ? ` Log: ${logFile}` : '') +
        (tail ? `\nLast lines of its output:\n${tail}` : ''),
    );
  };
  let abortError: Error | undefined;
  try {
    await waitFor(what, check, timeoutMs, {
      logFile,
      abort: () => (abortError = abort()),
    });
  } catch (err) {
    await m.stop();
    if (err === abortError || !(err instanceof Error)) throw err;
    // Timed out: the child is still alive; include what it said.
    const tail = m.logTail();
    throw new Error(`${err.message}${tail ? `\nLast lines of ${name}'s output:\n${tail}` : ''}`);
  }
}

async function prepareLogFile(logFile: string | undefined): Promise<string | undefined> {
  if (!logFile) return undefined;
  const abs = resolve(logFile);
  await mkdir(dirname(abs), { recursive: true });
  return abs;
}

// ---------------------------------------------------------------------------------------
// Temporal dev server

export async function startTemporalDevServer(
  opts: TemporalDevServerOptions,
): Promise<RunningService & { address: string; uiUrl: string }> {
  const ip = opts.ip ?? '127.0.0.1';
  const namespace = opts.namespace ?? 'default';
  const logFile = await prepareLogFile(opts.logFile);
  const args = [
    'server',
    'start-dev',
    '--ip',
    ip,
    '--port',
    String(opts.port),
    '--ui-port',
    String(opts.uiPort),
    '--log-level',
    'warn',
  ];
  if (opts.dbFile) {
    const db = resolve(opts.dbFile);
    await mkdir(dirname(db), { recursive: true });
    args.push('--db-filename', db);
  }
  if (namespace !== 'default') args.push('--namespace', namespace);
  const searchAttributes = Object.entries(opts.searchAttributes ?? {});
  for (const [key, type] of searchAttributes) args.push('--search-attribute', `${key}=${type}`);

  const m = startChild('temporal', opts.bin, args, { logFile });
  // A wildcard bind is reachable via loopback.
  const host = ip === '0.0.0.0' || ip === '::' ? '127.0.0.1' : ip;
  const address = `${host.includes(':') ? `[${host}]` : host}:${opts.port}`;
  const uiUrl = `http://${host.includes(':') ? `[${host}]` : host}:${opts.uiPort}`;

  await waitReady(
    'temporal',
    m,
    `Temporal dev server on ${address} (namespace "${namespace}")`,
    async () => {
      if (!(await tcpOpen(host, opts.port))) return false;
      const connection = await openConnection({ address, connectTimeout: 2000 });
      try {
        return await connection.withDeadline(Date.now() + 5000, async () => {
          await connection.workflowService.describeNamespace({ namespace });
          if (searchAttributes.length === 0) return true;
          // start-dev registers --search-attribute after the frontend is up: wait for them too.
          const res = await connection.operatorService.listSearchAttributes({ namespace });
          const custom = res.customAttributes ?? {};
          return searchAttributes.every(([key]) => key in custom);
        });
      } finally {
        await closeConnection(connection).catch(() => undefined);
      }
    },
    opts.readyTimeoutMs ?? DEFAULT_READY_TIMEOUT_MS,
    logFile,
  );

  return { name: 'temporal', pid: m.child.pid!, stop: m.stop, address, uiUrl };
}

// ---------------------------------------------------------------------------------------
// MinIO

export async function startMinio(opts: MinioOptions): Promise<RunningService & { endpoint: string }> {
  const logFile = await prepareLogFile(opts.logFile);
  const dataDir = resolve(opts.dataDir);
  await mkdir(dataDir, { recursive: true });
  const args = [
    'server',
    dataDir,
    '--address',
    `127.0.0.1:${opts.port}`,
    '--console-address',
    `127.0.0.1:${opts.consolePort}`,
  ];
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    MINIO_UPDATE: 'off',
    ...opts.env,
    MINIO_ROOT_USER: opts.rootUser,
    MINIO_ROOT_PASSWORD: opts.rootPassword,
  };
  const m = startChild('minio', opts.bin, args, { env, logFile });
  const endpoint = `http://127.0.0.1:${opts.port}`;

  await waitReady(
    'minio',
    m,
    `MinIO on ${endpoint}`,
    async () => {
      const res = await fetch(`${endpoint}/minio/health/live`, { signal: AbortSignal.timeout(2000) });
      await res.body?.cancel();
      return res.status === 200;
    },
    opts.readyTimeoutMs ?? DEFAULT_READY_TIMEOUT_MS,
    logFile,
  );

  return { name: 'minio', pid: m.child.pid!, stop: m.stop, endpoint };
}

// ---------------------------------------------------------------------------------------
// ElasticMQ (an SQS-compatible server; see ensureElasticmq in tools.ts for why not goaws)

export interface ElasticmqOptions {
  java: string;
  /** Directory of ElasticMQ's jars. */
  lib: string;
  /** Where its configuration file goes. */
  dir: string;
  port: number;
  logFile?: string;
  readyTimeoutMs?: number;
}

/** ElasticMQ on 127.0.0.1:`port`, queue URLs `http://127.0.0.1:<port>/000000000000/<name>`, region us-east-1. */
export async function startElasticmq(opts: ElasticmqOptions): Promise<RunningService & { endpoint: string }> {
  const logFile = await prepareLogFile(opts.logFile);
  const dir = resolve(opts.dir);
  await mkdir(dir, { recursive: true });
  const conf = resolve(dir, 'elasticmq.conf');
  writeFileSync(
    conf,
    [
      'include classpath("application.conf")',
      `node-address { protocol = "http", host = "127.0.0.1", port = ${opts.port}, context-path = "" }`,
      `rest-sqs { enabled = true, bind-port = ${opts.port}, bind-hostname = "127.0.0.1", sqs-limits = strict }`,
      'rest-stats { enabled = false }',
      'aws { region = "us-east-1", accountId = "000000000000" }',
      // Its DEBUG default logs every request.
      'pekko.loglevel = "WARNING"',
      '',
    ].join('\n'),
  );
  const args = ['-Xmx256m', '-XX:+UseSerialGC', `-Dconfig.file=${conf}`, '-cp', `${resolve(opts.lib)}/*`, 'org.elasticmq.server.Main'];
  const m = startChild('elasticmq', opts.java, args, { logFile });
  const endpoint = `http://127.0.0.1:${opts.port}`;
  await waitReady(
    'elasticmq',
    m,
    `ElasticMQ on ${endpoint}`,
    async () => {
      const res = await fetch(endpoint, {
        method: 'POST',
        headers: { 'content-type': 'application/x-amz-json-1.0', 'x-amz-target': 'AmazonSQS.ListQueues' },
        body: '{}',
        signal: AbortSignal.timeout(2000),
      });
      await res.body?.cancel();
      return res.status === 200;
    },
    opts.readyTimeoutMs ?? DEFAULT_READY_TIMEOUT_MS,
    logFile,
  );
  return { name: 'elasticmq', pid: m.child.pid!, stop: m.stop, endpoint };
}

// ---------------------------------------------------------------------------------------
// Both, for a test run or a benchmark

/**
 * An in-memory Temporal dev server (with the connector's search attributes)
 * and a MinIO under `dir`, started side by side on free loopback ports, with
 * their logs in `dir`. `stop` stops both.
 */
export async function startLocalServices(opts: {
  tools: { temporal: string; minio: string };
  dir: string;
  minioUser: string;
  minioPassword: string;
}): Promise<{ temporal: RunningService & { address: string; uiUrl: string }; minio: RunningService & { endpoint: string }; stop(): Promise<void> }> {
  const started: RunningService[] = [];
  const stop = async () => {
    await Promise.all(started.map((s) => s.stop().catch(() => undefined)));
  };
  try {
    const [temporal, minio] = await Promise.all([
      startTemporalDevServer({
        bin: opts.tools.temporal,
        port: await freePort(),
        uiPort: await freePort(),
        searchAttributes: { DataSource: 'Keyword', DataSourceState: 'Keyword' },
        logFile: resolve(opts.dir, 'temporal.log'),
      }).then((s) => (started.push(s), s)),
      startMinio({
        bin: opts.tools.minio,
        dataDir: resolve(opts.dir, 'minio'),
        port: await freePort(),
        consolePort: await freePort(),
        rootUser: opts.minioUser,
        rootPassword: opts.minioPassword,
        logFile: resolve(opts.dir, 'minio.log'),
      }).then((s) => (started.push(s), s)),
    ]);
    return { temporal, minio, stop };
  } catch (err) {
    await stop();
    throw err;
  }
}

// ---------------------------------------------------------------------------------------
// ClickHouse: the engine process

/** A ClickHouse user as the engine's configuration knows it. */
export interface EngineUser {
  user: string;
  password: string;
}

export interface ClickHouseEngineOptions {
  /** The launcher (scripts/engine/launcher.c, built by ensureEngine) and libchdb.so. */
  launcher: string;
  library: string;
  /** The engine's own directory: config, users, data and logs live under it. */
  dir: string;
  port: number;
  /**
   * Databases the connector's user owns (DDL and inserts) and the reader may
   * read, as ClickHouse grant patterns (`name` or `prefix*`). Scratch
   * databases of the API's DDL check (`s3ch_scratch_*`) are added for the
   * connector.
   */
  databases: string[];
  /** Memory the whole engine may use (queries, merges, caches), bytes. */
  maxMemory: number;
  /** Each of the mark, primary-index and index-mark caches, bytes. */
  cacheSize: number;
  /** Users' passwords; fresh random ones when omitted (give the same ones to a restart). */
  passwords?: { connector: string; reader: string; control: string };
  /**
   * A user `s3ch_admin` with every right, for test fixtures only (writing
   * Parquet with file(), tables of engines the connector may not create).
   */
  adminPassword?: string;
  /** Readiness timeout (default 60 s). */
  readyTimeoutMs?: number;
}

export interface ClickHouseEngine extends RunningService {
  /** `http://127.0.0.1:<port>` */
  url: string;
  /** DDL and inserts in its databases: the worker's and the API's writes. */
  connector: EngineUser;
  /** SELECT on its databases under a readonly profile whose limits are constraints: /v1/sql and reads. */
  reader: EngineUser;
  passwords: { connector: string; reader: string; control: string };
  /** Resolves when the process has exited, for whatever reason. */
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** Exit of the process, once it has happened; for crash detection. */
  exitInfo(): { code: number | null; signal: NodeJS.Signals | null } | undefined;
  logFile: string;
}

/** The statement the engine's own session blocks in while HTTP serves; stopping the engine kills it. */
const ENGINE_HOLD_QUERY_ID = 's3ch-engine-hold';

/**
 * Limits of the reader's profile: the ones the API puts on each read-only
 * statement (READ_ONLY_SETTINGS), here as the profile's constraints, so that
 * `readonly` is constant and the others are maxima a query may lower but
 * never raise, whatever a `SETTINGS` clause or URL parameter says (ClickHouse
 * refuses the statement). Small blocks keep a reader from starving the imports.
 */
const { readonly: _readonly, result_overflow_mode: _overflow, timeout_overflow_mode: _timeout, ...readOnlyLimits } = READ_ONLY_SETTINGS;
// The same values the API's statements carry: a readonly profile accepts a
// SETTINGS clause only where it changes nothing.
export const READER_LIMITS = { ...readOnlyLimits } as const;

/**
 * System tables each user reads (ClickHouse 26 wants a grant for every
 * system table; the catalogue ones show only what the user may see anyway).
 */
const CATALOGUE_TABLES = ['databases', 'tables', 'columns', 'functions', 'table_functions', 'data_type_families', 'settings', 'merge_tree_settings'];
const CONNECTOR_SYSTEM_TABLES = [...CATALOGUE_TABLES, 'parts', 'processes', 'merges', 'mutations', 'metrics', 'asynchronous_metrics'];

/** Table engines the connector creates (targets, landing and quarantine tables). */
const CONNECTOR_TABLE_ENGINES = ['MergeTree', 'ReplacingMergeTree', 'SummingMergeTree', 'AggregatingMergeTree', 'Null'];

const xmlText = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
const sha256Hex = (s: string) => createHash('sha256').update(s).digest('hex');

/** The grants of the connector's user, as GRANT statements (docs/operations.md lists the same for a server). */
export function connectorGrants(databases: string[]): string[] {
  const on = [...databases, 's3ch_scratch_*'];
  return [
    ...on.map((db) => `GRANT SHOW, SELECT, INSERT, ALTER, CREATE DATABASE, CREATE TABLE, CREATE VIEW, DROP DATABASE, DROP TABLE, DROP VIEW, TRUNCATE, OPTIMIZE ON ${db}.*`),
    'GRANT READ ON S3',
    `GRANT ${CONNECTOR_SYSTEM_TABLES.map((t) => `SELECT ON system.${t}`).join(', ')}`,
    `GRANT ${CONNECTOR_TABLE_ENGINES.map((e) => `TABLE ENGINE ON ${e}`).join(', ')}`,
  ];
}

/** The grants of the API's reader: its databases and the catalogue rows of them. */
export function readerGrants(databases: string[]): string[] {
  return [...databases.map((db) => `GRANT SELECT ON ${db}.*`), `GRANT ${CATALOGUE_TABLES.map((t) => `SELECT ON system.${t}`).join(', ')}`];
}

function engineUsersXml(o: { databases: string[]; passwords: { connector: string; reader: string; control: string }; adminPassword?: string }): string {
  const grants = (qs: string[]) => `<grants>${qs.map((q) => `<query>${xmlText(q)}</query>`).join('')}</grants>`;
  const user = (name: string, password: string | null, profile: string, qs: string[]) =>
    `<${name}>${password === null ? '<password></password>' : `<password_sha256_hex>${sha256Hex(password)}</password_sha256_hex>`}` +
    `<networks><ip>127.0.0.1</ip><ip>::1</ip></networks><profile>${profile}</profile><quota>default</quota>${grants(qs)}</${name}>`;
  const limits = Object.entries(READER_LIMITS);
  return `<clickhouse>
  <profiles>
    <default><async_insert>0</async_insert></default>
    <reader>
      <readonly>1</readonly>
      ${limits.map(([k, v]) => `<${k}>${v}</${k}>`).join('')}
      <result_overflow_mode>${READ_ONLY_SETTINGS.result_overflow_mode}</result_overflow_mode>
      <timeout_overflow_mode>${READ_ONLY_SETTINGS.timeout_overflow_mode}</timeout_overflow_mode>
      <constraints><readonly><const/></readonly><timeout_overflow_mode><const/></timeout_overflow_mode>${limits.map(([k, v]) => `<${k}><max>${v}</max></${k}>`).join('')}</constraints>
    </reader>
  </profiles>
  <quotas><default/></quotas>
  <users>
    ${
      // clickhouse-local's own session signs in as 'default' with an empty
      // password (a password or a network limit stops it from starting), so it
      // exists with what that session needs and nothing else: no database, no
      // table function. (ClickHouse does not apply a rewrite of this file to a
      // running clickhouse-local, so the rights cannot be dropped once serving.)
      user('default', null, 'default', ['GRANT SYSTEM LISTEN ON *.*', 'GRANT SELECT ON system.numbers'])
    }
    ${user('s3ch', o.passwords.connector, 'default', connectorGrants(o.databases))}
    ${user('s3ch_reader', o.passwords.reader, 'reader', readerGrants(o.databases))}
    ${user('s3ch_control', o.passwords.control, 'default', ['GRANT KILL QUERY ON *.*', 'GRANT SELECT ON system.processes'])}
    ${o.adminPassword ? user('s3ch_admin', o.adminPassword, 'default', ['GRANT ALL ON *.*']) : ''}
  </users>
</clickhouse>
`;
}

function engineConfigXml(o: { port: number; dir: string; maxMemory: number; cacheSize: number }): string {
  // ClickHouse's defaults are sized for a dedicated server (5 GiB mark cache,
  // 90% of RAM for queries); an engine sharing a small machine needs them
  // small. The uncompressed cache stays off; the others fill only on use.
  const small = Math.min(o.cacheSize, 16 * 1024 ** 2);
  return `<clickhouse>
  <http_port>${o.port}</http_port>
  <listen_host>127.0.0.1</listen_host>
  <users_config>users.xml</users_config>
  <max_server_memory_usage>${o.maxMemory}</max_server_memory_usage>
  <mark_cache_size>${o.cacheSize}</mark_cache_size>
  <primary_index_cache_size>${o.cacheSize}</primary_index_cache_size>
  <index_mark_cache_size>${o.cacheSize}</index_mark_cache_size>
  <uncompressed_cache_size>0</uncompressed_cache_size>
  <compiled_expression_cache_size>${small}</compiled_expression_cache_size>
  <query_condition_cache_size>${small}</query_condition_cache_size>
  <parquet_metadata_cache_size>${small}</parquet_metadata_cache_size>
  <logger>
    <level>warning</level>
    <log>${xmlText(join(o.dir, 'logs', 'clickhouse.log'))}</log>
    <errorlog>${xmlText(join(o.dir, 'logs', 'clickhouse.err.log'))}</errorlog>
    <size>50M</size>
    <count>2</count>
  </logger>
</clickhouse>
`;
}

async function engineQuery(url: string, who: EngineUser, query: string, timeoutMs = 5000): Promise<Response> {
  return fetch(`${url}/`, {
    method: 'POST',
    headers: { 'X-ClickHouse-User': who.user, 'X-ClickHouse-Key': who.password },
    body: query,
    signal: AbortSignal.timeout(timeoutMs),
  });
}

/**
 * ClickHouse as a process of its own: clickhouse-local from the chDB library,
 * serving ClickHouse's HTTP interface on loopback with its access control.
 * Its session runs `SYSTEM START LISTEN HTTP` and then blocks in one
 * statement; `stop()` kills that statement, which makes ClickHouse shut down
 * normally (a SIGTERM would end it hard), and SIGKILLs it only if that fails.
 * The environment is empty but for PATH and HOME: no token or key of this
 * process reaches the engine.
 */
export async function startClickHouseEngine(opts: ClickHouseEngineOptions): Promise<ClickHouseEngine> {
  const dir = resolve(opts.dir);
  await mkdir(join(dir, 'data'), { recursive: true });
  await mkdir(join(dir, 'logs'), { recursive: true });
  const passwords = opts.passwords ?? { connector: randomBytes(18).toString('base64url'), reader: randomBytes(18).toString('base64url'), control: randomBytes(18).toString('base64url') };
  const usersFile = join(dir, 'users.xml');
  await writeFile(join(dir, 'config.xml'), engineConfigXml({ port: opts.port, dir, maxMemory: opts.maxMemory, cacheSize: opts.cacheSize }), { mode: 0o600 });
  await writeFile(usersFile, engineUsersXml({ databases: opts.databases, passwords, adminPassword: opts.adminPassword }), { mode: 0o600 });
  const logFile = join(dir, 'logs', 'engine.out.log');
  const args = [
    opts.library,
    `--config-file=${join(dir, 'config.xml')}`,
    `--path=${join(dir, 'data')}`,
    '--log-level=warning',
    `--query_id=${ENGINE_HOLD_QUERY_ID}`,
    // One row a second, for ever: the session stays in this statement while HTTP serves.
    '--query=SYSTEM START LISTEN HTTP; SELECT sleepEachRow(1) FROM system.numbers SETTINGS max_block_size = 1 FORMAT Null',
  ];
  const env: NodeJS.ProcessEnv = { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: dir, TZ: 'UTC' };
  const m = startChild('clickhouse', opts.launcher, args, { env, logFile });
  const url = `http://127.0.0.1:${opts.port}`;
  const connector = { user: 's3ch', password: passwords.connector };
  const reader = { user: 's3ch_reader', password: passwords.reader };
  const control = { user: 's3ch_control', password: passwords.control };

  await waitReady(
    'clickhouse',
    m,
    `ClickHouse engine on ${url}`,
    async () => {
      const res = await engineQuery(url, connector, 'SELECT 1');
      await res.body?.cancel();
      return res.status === 200;
    },
    opts.readyTimeoutMs ?? DEFAULT_READY_TIMEOUT_MS,
    logFile,
  );
  let stopping: Promise<void> | undefined;
  const stop = (): Promise<void> => {
    stopping ??= (async () => {
      if (m.exitInfo()) return;
      const killed = await engineQuery(url, control, `KILL QUERY WHERE query_id = '${ENGINE_HOLD_QUERY_ID}' ASYNC`).then(
        async (r) => (await r.body?.cancel(), r.ok),
        () => false,
      );
      let timer: NodeJS.Timeout | undefined;
      const stopped = killed && (await Promise.race([m.exited.then(() => true), new Promise<boolean>((r) => (timer = setTimeout(() => r(false), 30_000)))]));
      clearTimeout(timer);
      if (!stopped && !m.exitInfo()) {
        m.child.kill('SIGKILL');
        await m.exited;
      }
    })();
    return stopping;
  };

  return { name: 'clickhouse', pid: m.child.pid!, url, connector, reader, passwords, stop, exited: m.exited, exitInfo: m.exitInfo, logFile };
}

/**
 * The embedded engine as `npm start`, the benchmark and the tests run it: the
 * launcher built (once), the process started under `dir`, and the
 * CLICKHOUSE_* variables that point a worker or an API at it.
 */
export async function startEmbeddedClickHouse(opts: {
  dir: string;
  database: string;
  maxMemory: number;
  cacheSize: number;
  port?: number;
  /** Adds the user `s3ch_admin` with every right, for a benchmark's or test's own fixtures; never for the connector. */
  adminPassword?: string;
  log?: (line: string) => void;
}): Promise<ClickHouseEngine & { env: Record<'CLICKHOUSE_URL' | 'CLICKHOUSE_USER' | 'CLICKHOUSE_PASSWORD' | 'CLICKHOUSE_READER_USER' | 'CLICKHOUSE_READER_PASSWORD' | 'CLICKHOUSE_DATABASE', string> }> {
  const bins = await ensureEngine({ log: opts.log });
  const engine = await startClickHouseEngine({ ...bins, dir: opts.dir, port: opts.port ?? (await freePort()), databases: [opts.database], maxMemory: opts.maxMemory, cacheSize: opts.cacheSize, adminPassword: opts.adminPassword });
  return {
    ...engine,
    env: {
      CLICKHOUSE_URL: engine.url,
      CLICKHOUSE_USER: engine.connector.user,
      CLICKHOUSE_PASSWORD: engine.connector.password,
      CLICKHOUSE_READER_USER: engine.reader.user,
      CLICKHOUSE_READER_PASSWORD: engine.reader.password,
      CLICKHOUSE_DATABASE: opts.database,
    },
  };
}
