import { ClickHouseLogLevel, createClient, type ClickHouseClient } from '@clickhouse/client';
import { randomUUID } from 'node:crypto';
import { ConfigError, type Env } from '../schemas/config.js';
import { quoteIdent, quoteString } from '../schemas/identifiers.js';
import { IMPORT_MAX_SECONDS } from './import-settings.js';

export type Compression = 'none' | 'gzip' | 'zstd';

/**
 * The destination ClickHouse: a server spoken to over HTTP with
 * `@clickhouse/client`, whether it is the embedded engine process `npm start`
 * runs, a server of one's own, a cluster or ClickHouse Cloud. ClickHouse reads
 * the objects itself with `s3()`, so no file byte passes through this process
 * (zip entries excepted: they are streamed in the request body).
 */
export interface Destination {
  readonly kind: 'server';
  /** The connector's user: the ledger, DDL, imports. */
  readonly client: ClickHouseClient;
  /** Statements that read objects (inserts, line passes, DESCRIBE of an object): the same client, whose connection pool runs them side by side. */
  readonly imports: ClickHouseClient;
  /**
   * The API's reader (`/v1/sql`): a user with SELECT on the connector's
   * database under a readonly profile whose limits are constraints
   * (CLICKHOUSE_READER_USER). Without one configured, the connector's user,
   * with the read-only settings on each statement.
   */
  readonly reader: ClickHouseClient;
  readonly database: string;
  /** Create the connector's database when it is missing (a request outside it: the client's own names it). */
  ensureDatabase(): Promise<void>;
  close(): Promise<void>;
}

/**
 * Longest an HTTP request may wait for its answer: above every statement's
 * own `max_execution_time` (an import's is IMPORT_MAX_SECONDS), so a
 * statement ends by ClickHouse's limit, with its error, never by the client
 * hanging up while the server goes on.
 */
export const REQUEST_TIMEOUT_MS = (IMPORT_MAX_SECONDS + 300) * 1000;

/** Connections each client keeps: imports side by side, the ledger and the API never waiting behind them. */
const MAX_OPEN_CONNECTIONS = 32;

export interface DestinationConfig {
  url: string;
  user: string;
  password: string;
  database: string;
  reader?: { user: string; password: string };
}

/**
 * A client whose statements are killed on the server when their abort signal
 * fires. Aborting only closes the HTTP request, and a server goes on with an
 * INSERT whose client has gone: a paused or deleted data source's import
 * would commit after the pause. Each statement with a signal gets a query id
 * (when it has none) and an abort sends `KILL QUERY` for it.
 */
function killOnAbort(client: ClickHouseClient): ClickHouseClient {
  const wrap =
    <P extends { abort_signal?: AbortSignal; query_id?: string }, R>(run: (p: P) => Promise<R>) =>
    async (params: P): Promise<R> => {
      const signal = params.abort_signal;
      if (!signal) return run(params);
      const queryId = params.query_id ?? randomUUID();
      const kill = () => {
        void client.command({ query: 'KILL QUERY WHERE query_id = {id:String} ASYNC', query_params: { id: queryId } }).catch(() => undefined);
      };
      if (signal.aborted) throw new Error('The user aborted a request.');
      signal.addEventListener('abort', kill, { once: true });
      try {
        return await run({ ...params, query_id: queryId });
      } finally {
        signal.removeEventListener('abort', kill);
      }
    };
  return new Proxy(client, {
    get(target, prop, receiver) {
      if (prop === 'command' || prop === 'exec' || prop === 'query' || prop === 'insert') {
        const fn = Reflect.get(target, prop, receiver) as (p: object) => Promise<unknown>;
        return wrap(fn.bind(target));
      }
      return Reflect.get(target, prop, receiver);
    },
  });
}

class ServerDestination implements Destination {
  readonly kind = 'server' as const;
  readonly client: ClickHouseClient;
  readonly reader: ClickHouseClient;
  readonly database: string;
  readonly #config: DestinationConfig;

  constructor(c: DestinationConfig) {
    this.#config = c;
    // Failed statements reach the caller as errors (classified, scrubbed of
    // secrets); the client's own log of each would print them a second time, unscrubbed.
    const common = { url: c.url, database: c.database, request_timeout: REQUEST_TIMEOUT_MS, max_open_connections: MAX_OPEN_CONNECTIONS, log: { level: ClickHouseLogLevel.OFF } } as const;
    this.client = killOnAbort(createClient({
      ...common,
      username: c.user,
      password: c.password,
      // The server answers long inserts only at their end: progress headers keep
      // the connection visibly alive through proxies and idle-timeouts on the way.
      clickhouse_settings: { send_progress_in_http_headers: 1, http_headers_progress_interval_ms: '30000' },
    }));
    // The reader's profile is readonly: it may not set anything, so the client sends nothing.
    // Its statements end by the profile's max_execution_time (30 s) long before this timeout.
    this.reader = c.reader ? createClient({ ...common, request_timeout: 120_000, username: c.reader.user, password: c.reader.password }) : this.client;
    this.database = c.database;
  }

  get imports(): ClickHouseClient {
    return this.client;
  }

  async ensureDatabase() {
    const c = this.#config;
    const outside = createClient({ url: c.url, username: c.user, password: c.password, request_timeout: 60_000 });
    try {
      const [row] = await queryRows<{ n: string }>(outside, 'SELECT count() AS n FROM system.databases WHERE name = {db:String}', { db: c.database });
      if (Number(row?.n ?? 0) === 0) await outside.command({ query: `CREATE DATABASE IF NOT EXISTS ${quoteIdent(c.database)}` });
    } finally {
      await outside.close();
    }
  }

  async close() {
    if (this.reader !== this.client) await this.reader.close();
    await this.client.close();
  }
}

type DestinationEnv = Pick<Env, 'CLICKHOUSE_URL' | 'CLICKHOUSE_USER' | 'CLICKHOUSE_PASSWORD' | 'CLICKHOUSE_DATABASE'> & Partial<Pick<Env, 'CLICKHOUSE_READER_USER' | 'CLICKHOUSE_READER_PASSWORD'>>;

export function createDestination(env: DestinationEnv): Destination {
  if (!env.CLICKHOUSE_URL) {
    throw new ConfigError('CLICKHOUSE_URL: required (the URL of a ClickHouse server; `npm start` starts the embedded engine and sets it)');
  }
  return new ServerDestination({
    url: env.CLICKHOUSE_URL,
    user: env.CLICKHOUSE_USER,
    password: env.CLICKHOUSE_PASSWORD,
    database: env.CLICKHOUSE_DATABASE,
    reader: env.CLICKHOUSE_READER_USER ? { user: env.CLICKHOUSE_READER_USER, password: env.CLICKHOUSE_READER_PASSWORD ?? '' } : undefined,
  });
}

/** The oldest ClickHouse the import path is built and tested on. */
export const MIN_CLICKHOUSE_VERSION = '26.7';

/**
 * Settings the import path relies on for its guarantees (deduplication of
 * `INSERT ... SELECT` under a token, ETag-pinned ranged reads, ...): a server
 * without them would import, but without the guarantee.
 */
export const REQUIRED_SETTINGS = [
  'insert_deduplication_token',
  'deduplicate_insert',
  'deduplicate_insert_select',
  's3_validate_etag_on_read',
  's3_skip_empty_files',
  'min_chunk_bytes_for_parallel_parsing',
  'parallelize_output_from_storages',
] as const;

export class IncompatibleServerError extends Error {}

function versionAtLeast(version: string, min: string): boolean {
  const a = version.split('.').map(Number);
  const b = min.split('.').map(Number);
  for (let i = 0; i < b.length; i++) {
    if ((a[i] ?? 0) !== b[i]) return (a[i] ?? 0) > b[i]!;
  }
  return true;
}

/**
 * Check, before anything is imported, that the server is new enough and has
 * every setting the guarantees rely on; the error names the minimum version.
 */
export async function checkServer(client: ClickHouseClient): Promise<{ version: string }> {
  const [row] = await queryRows<{ version: string; missing: string[] }>(
    client,
    'SELECT version() AS version, arrayFilter(s -> s NOT IN (SELECT name FROM system.settings), {required:Array(String)}) AS missing',
    { required: [...REQUIRED_SETTINGS] },
  );
  const version = row?.version ?? '';
  if (!versionAtLeast(version, MIN_CLICKHOUSE_VERSION) || (row?.missing.length ?? 0) > 0) {
    const missing = row?.missing.length ? `; it lacks the settings ${row.missing.join(', ')}` : '';
    throw new IncompatibleServerError(`ClickHouse ${version || '(unknown version)'} is too old for the connector: it needs ClickHouse ${MIN_CLICKHOUSE_VERSION} or newer${missing}`);
  }
  return { version };
}

/**
 * Render settings as a statement's own `SETTINGS` clause: each statement
 * carries every setting its guarantee relies on, whatever the user's profile
 * or server defaults say.
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
