import { createClient, type ClickHouseClient } from '@clickhouse/client';
// The value formatting clickhouse-js uses for `param_*` over HTTP, so chDB binds exactly what a server would.
import { formatQueryParams } from '@clickhouse/client-common';
import { Session } from 'chdb';
import { createChdbConnection } from 'chdb/connection';
import { mkdirSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { resolve } from 'node:path';
import { defaultChdbMaxMemory, type Env } from '../schemas/config.js';
import { quoteString } from '../schemas/identifiers.js';

export type Compression = 'none' | 'gzip' | 'zstd';

/**
 * The destination ClickHouse: one `@clickhouse/client` for everything.
 * Embedded chDB and a server run the same statements: ClickHouse reads the
 * objects itself with `s3()`, so no file byte passes through this process.
 */
export interface Destination {
  readonly kind: 'chdb' | 'server';
  /** Short statements: the ledger, DDL, counts. */
  readonly client: ClickHouseClient;
  /**
   * Statements that read objects (inserts, line passes, DESCRIBE of an
   * object). On chDB they run on connections of their own, several at once
   * (`S3CH_CHDB_IMPORT_SLOTS`), so files import side by side and the ledger
   * never waits behind an insert; on a server this is `client`.
   */
  readonly imports: ClickHouseClient;
  readonly database: string;
  /**
   * Local scratch space for zip archives only (chDB's build has no archive
   * reader, so an archive is fetched and its entries read with `file()`);
   * null when ClickHouse is a server, which cannot see this machine's files.
   */
  readonly spoolDir: string | null;
  /**
   * The same destination as the API should use it. On chDB its client runs
   * on connections of its own, so status, file lists and metrics never wait
   * behind an insert; a server's HTTP client is already a connection pool,
   * so there it is this destination itself. Closing it is a no-op: it lives
   * as long as its parent.
   */
  readonly api: Destination;
  close(): Promise<void>;
}

type ClientConnection = NonNullable<NonNullable<Parameters<typeof createClient>[0]>['connection']>;
type ConnParams = { query: string; query_params?: Record<string, unknown>; abort_signal?: AbortSignal };

/**
 * Engine limits of embedded chDB. They are server settings, fixed when the
 * engine starts (the first connection to the data directory passes them).
 */
export interface ChdbEngineOptions {
  /**
   * Memory the whole engine may use (every query, merge and cache), bytes:
   * past it, the query that allocates fails instead of the process growing.
   * @default 1 GiB
   */
  maxMemory: number;
  /** Size of each of the mark, primary-index and index-mark caches, bytes. @default 64 MiB */
  cacheSize: number;
  /** Import statements the engine runs at once. @default defaultImportSlots() */
  importSlots: number;
}

export const CHDB_ENGINE_DEFAULTS: ChdbEngineOptions = { maxMemory: defaultChdbMaxMemory(), cacheSize: 64 * 1024 ** 2, importSlots: defaultImportSlots() };

/** The engine's command line for these limits (clickhouse-local form: server settings as `--name=value`). */
export function chdbEngineArgs(o: ChdbEngineOptions): string[] {
  // ClickHouse's defaults are sized for a dedicated server (5 GiB mark cache,
  // 90% of RAM for queries); a connector sharing a small machine needs them
  // small. The uncompressed cache stays off; the other caches fill only on use
  // but are capped so that nothing grows without bound.
  const small = Math.min(o.cacheSize, 16 * 1024 ** 2);
  return [
    `--max_server_memory_usage=${o.maxMemory}`,
    `--mark_cache_size=${o.cacheSize}`,
    `--primary_index_cache_size=${o.cacheSize}`,
    `--index_mark_cache_size=${o.cacheSize}`,
    '--uncompressed_cache_size=0',
    `--compiled_expression_cache_size=${small}`,
    `--query_condition_cache_size=${small}`,
    `--parquet_metadata_cache_size=${small}`,
  ];
}

/**
 * Bind query parameters with `SET param_<name> = ...` in front of the
 * statement rather than through chdb-node's native binding. chdb-node runs
 * every bound query of the process through ONE queue (its native binder is
 * not safe across connections), so a minutes-long parameterized insert would
 * hold up every parameterized read, on any connection. A `SET` is local to
 * its connection, and each connection here runs one statement at a time, so
 * the values cannot leak into another statement (every statement sets all of
 * its own). Values are formatted as clickhouse-js formats `param_*` for a
 * server, then quoted as a string literal: ClickHouse parses them by the
 * placeholder's type exactly as it would an HTTP parameter.
 */
export function inlineQueryParams<P extends ConnParams>(params: P): P {
  const entries = Object.entries(params.query_params ?? {});
  if (entries.length === 0) return params;
  const sets = entries.map(([name, value]) => {
    if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(name)) throw new Error(`invalid query parameter name ${JSON.stringify(name)}: use letters, digits and _`);
    return `SET param_${name} = ${quoteString(formatQueryParams({ value }))}`;
  });
  return { ...params, query: `${sets.join('; ')}; ${params.query}`, query_params: undefined };
}

/**
 * One chDB connection that runs one statement at a time, queued here in
 * JavaScript. chDB runs a connection's statements one after another anyway,
 * but each call waiting for its turn would hold one of libuv's four worker
 * threads: four queued imports then leave no thread for any other
 * connection's query (or file read), and the API would wait for the inserts
 * after all.
 */
class SerialChdbConnection {
  readonly #inner: ClientConnection;
  #tail: Promise<unknown> = Promise.resolve();

  constructor(path: string) {
    // chdb's connection implements clickhouse-js's Connection contract against its
    // own copy of the common types; the shapes are the same.
    this.#inner = createChdbConnection({ path }) as unknown as ClientConnection;
  }

  #run<P extends ConnParams, T>(params: P, fn: (p: P) => Promise<T>): Promise<T> {
    const start = () => {
      // A statement cancelled while it waited never starts.
      if (params.abort_signal?.aborted) throw new Error('The user aborted a request.');
      return fn(inlineQueryParams(params));
    };
    const p = this.#tail.then(start);
    this.#tail = p.then(
      () => undefined,
      // chDB keeps what a failed statement (a time limit, a KILL) had already
      // formatted and hands it out with the next statement's result on this
      // connection; one statement whose result is thrown away takes it first.
      () => this.#inner.command({ query: 'SELECT 1' }).then(
        () => undefined,
        () => undefined,
      ),
    );
    return p;
  }

  readonly connection: ClientConnection = {
    ping: (p) => this.#run({ query: 'SELECT 1' }, () => this.#inner.ping(p)),
    query: (p) => this.#run(p, (q) => this.#inner.query(q)),
    exec: (p) => this.#run(p, (q) => this.#inner.exec(q)),
    command: (p) => this.#run(p, (q) => this.#inner.command(q)),
    insert: (p) => this.#run(p, (q) => this.#inner.insert(q)),
    close: () => this.#inner.close(),
  } as ClientConnection;
}

/**
 * Several connections behind one client: a statement waits (in order of
 * arrival) for the first idle connection. A long statement then occupies one
 * connection while the next ones go on through the others, instead of being
 * queued behind it on a connection picked when they arrived.
 */
function pooledConnection(members: SerialChdbConnection[]): ClientConnection {
  const free = [...members];
  const waiting: Array<{ take: (m: SerialChdbConnection) => void }> = [];
  const release = (m: SerialChdbConnection) => {
    const w = waiting.shift();
    if (w) w.take(m);
    else free.push(m);
  };
  const acquire = (signal: AbortSignal | undefined): Promise<SerialChdbConnection> => {
    if (signal?.aborted) return Promise.reject(new Error('The user aborted a request.'));
    const m = free.shift();
    if (m) return Promise.resolve(m);
    return new Promise((resolve, reject) => {
      const w = {
        take: (c: SerialChdbConnection) => {
          signal?.removeEventListener('abort', abort);
          resolve(c);
        },
      };
      // A statement cancelled while it waits leaves the line at once.
      const abort = () => {
        waiting.splice(waiting.indexOf(w), 1);
        reject(new Error('The user aborted a request.'));
      };
      signal?.addEventListener('abort', abort, { once: true });
      waiting.push(w);
    });
  };
  const on = async <T>(p: { abort_signal?: AbortSignal }, fn: (c: ClientConnection) => Promise<T>): Promise<T> => {
    const member = await acquire(p.abort_signal);
    try {
      return await fn(member.connection);
    } finally {
      release(member);
    }
  };
  return {
    ping: (p) => on({}, (c) => c.ping(p)),
    query: (p) => on(p, (c) => c.query(p)),
    exec: (p) => on(p, (c) => c.exec(p)),
    command: (p) => on(p, (c) => c.command(p)),
    insert: (p) => on(p, (c) => c.insert(p)),
    close: async () => {
      await Promise.all(members.map((m) => m.connection.close()));
    },
  } as ClientConnection;
}

/** Connections the API's client spreads its statements over. */
const API_CONNECTIONS = 2;

/**
 * Import statements embedded chDB runs at once by default: one per core, two
 * to four. One insert parses in parallel but converts and writes its blocks in
 * one stream (so that a retry cuts the same blocks), which leaves cores idle;
 * two side by side on two cores match ClickHouse reading a glob of the same
 * files. Each insert is capped on its own and the engine in all, so more
 * slots cost memory only up to `S3CH_CHDB_MAX_MEMORY`.
 */
export function defaultImportSlots(): number {
  return Math.min(4, Math.max(2, availableParallelism()));
}

/** Embedded: chDB in this process, through clickhouse-js's connection contract. */
class ChdbDestination implements Destination {
  readonly kind = 'chdb' as const;
  readonly client: ClickHouseClient;
  readonly imports: ClickHouseClient;
  readonly database: string;
  readonly spoolDir: string;
  readonly api: Destination;
  readonly #engine: Session;
  readonly #apiClient: ClickHouseClient;

  constructor(dataDir: string, database: string, engine: ChdbEngineOptions) {
    const chdbDir = resolve(dataDir, 'chdb');
    this.spoolDir = resolve(dataDir, 'spool');
    mkdirSync(chdbDir, { recursive: true });
    mkdirSync(this.spoolDir, { recursive: true });
    // The first connection to a data directory starts the engine with its
    // arguments; later ones join it. This one exists to pass the limits, and
    // is closed last.
    this.#engine = new Session(chdbDir, { connectionArgs: chdbEngineArgs(engine) });
    // The worker's short statements (ledger writes, DDL, counts) on one connection;
    // its imports on a pool of their own, several at once: chDB runs statements of
    // different connections in parallel, and the engine's memory cap bounds them all.
    this.client = createClient({ connection: new SerialChdbConnection(chdbDir).connection, database });
    this.imports = createClient({ connection: pooledConnection(Array.from({ length: engine.importSlots }, () => new SerialChdbConnection(chdbDir))), database });
    // The API's reads go through connections of their own: chDB runs statements
    // of different connections in parallel, and they see the parts an insert on
    // the worker's connection has committed.
    this.#apiClient = createClient({ connection: pooledConnection(Array.from({ length: API_CONNECTIONS }, () => new SerialChdbConnection(chdbDir))), database });
    this.database = database;
    this.api = { kind: 'chdb', client: this.#apiClient, imports: this.#apiClient, database, spoolDir: this.spoolDir, get api() { return this; }, close: async () => undefined };
  }

  async close() {
    await this.#apiClient.close();
    await this.imports.close();
    await this.client.close();
    this.#engine.close();
  }
}

/** Server: a ClickHouse server or ClickHouse Cloud over HTTP. */
class ServerDestination implements Destination {
  readonly kind = 'server' as const;
  readonly client: ClickHouseClient;
  readonly spoolDir = null;
  constructor(readonly database: string, url: string, username: string, password: string) {
    this.client = createClient({ url, username, password, database, request_timeout: 3_600_000 });
  }

  get imports(): ClickHouseClient {
    return this.client;
  }

  get api(): Destination {
    return this;
  }

  async close() {
    await this.client.close();
  }
}

type DestinationEnv = Pick<Env, 'CLICKHOUSE_URL' | 'CLICKHOUSE_USER' | 'CLICKHOUSE_PASSWORD' | 'CLICKHOUSE_DATABASE' | 'S3CH_DATA_DIR'> &
  Partial<Pick<Env, 'S3CH_CHDB_MAX_MEMORY' | 'S3CH_CHDB_CACHE_SIZE' | 'S3CH_CHDB_IMPORT_SLOTS'>>;

export function createDestination(env: DestinationEnv): Destination {
  if (env.CLICKHOUSE_URL) {
    return new ServerDestination(env.CLICKHOUSE_DATABASE, env.CLICKHOUSE_URL, env.CLICKHOUSE_USER, env.CLICKHOUSE_PASSWORD);
  }
  return new ChdbDestination(env.S3CH_DATA_DIR, env.CLICKHOUSE_DATABASE, {
    maxMemory: env.S3CH_CHDB_MAX_MEMORY ?? CHDB_ENGINE_DEFAULTS.maxMemory,
    cacheSize: env.S3CH_CHDB_CACHE_SIZE ?? CHDB_ENGINE_DEFAULTS.cacheSize,
    importSlots: env.S3CH_CHDB_IMPORT_SLOTS ?? CHDB_ENGINE_DEFAULTS.importSlots,
  });
}

/**
 * Render settings as a statement's own `SETTINGS` clause. Settings must never
 * go through the client's `clickhouse_settings` on chDB: there they become
 * session-wide `SET`s that leak into every later (and concurrent) query, e.g.
 * one file's deduplication token applied to another file's insert.
 */
export function renderSettings(settings: Record<string, string | number>): string {
  const parts = Object.entries(settings).map(([k, v]) => {
    if (!/^[a-z_][a-z0-9_]*$/.test(k)) throw new Error(`invalid setting name ${JSON.stringify(k)}`);
    return `${k} = ${typeof v === 'number' ? String(v) : quoteString(v)}`;
  });
  return parts.length ? `SETTINGS ${parts.join(', ')}` : '';
}

/** Run a query and return its rows as objects. */
export async function queryRows<T>(client: ClickHouseClient, query: string, params: Record<string, unknown> = {}, settings: Record<string, string | number> = {}): Promise<T[]> {
  const rs = await client.query({ query: `${query} ${renderSettings(settings)}`, query_params: params, format: 'JSONEachRow' });
  return rs.json<T>();
}
