import { createClient, type ClickHouseClient } from '@clickhouse/client';
import { createChdbConnection } from 'chdb/connection';
import { mkdirSync, createWriteStream } from 'node:fs';
import { rm } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { randomUUID } from 'node:crypto';
import { pipeline } from 'node:stream/promises';
import { Transform, type Readable } from 'node:stream';
import { createGunzip } from 'node:zlib';
import type { Env } from '../schemas/config.js';
import { quoteString } from '../schemas/identifiers.js';

export type Compression = 'none' | 'gzip' | 'zstd';

/** What one streamed insert needs: the SELECT to run over the file's rows. */
export interface StreamInsert {
  /**
   * `INSERT INTO t (...) {settings} SELECT ... FROM {source}`: `{source}` is
   * replaced by the row source (a local file for chDB, the request body for a
   * server) and `{settings}` by a SETTINGS clause.
   */
  sql: string;
  /** ClickHouse input format, e.g. CSVWithNames. */
  format: string;
  /** Structure the source is read with, e.g. "`a` Nullable(String), `b` Nullable(String)". */
  structure: string;
  compression: Compression;
  body: Readable;
  settings: Record<string, string | number>;
  /** Rendered into the statement's own SETTINGS clause (see renderSettings). */
  /** Query parameters referenced by `sql` as {name:Type}. */
  params: Record<string, unknown>;
  signal?: AbortSignal;
  /** Text formats: refuse the file when a (decompressed) line is longer than this. */
  maxLineBytes?: number;
  /** What the source is called in error messages (the object key), instead of a local spool path. */
  label?: string;
  /** Called as bytes of the body are consumed, for heartbeats. */
  onBytes?: (bytes: number) => void;
}

/**
 * The destination ClickHouse: one `@clickhouse/client` for everything, plus
 * the one operation that differs between embedded chDB and a server — how a
 * file's bytes reach the engine for a native-format INSERT.
 */
export interface Destination {
  readonly kind: 'chdb' | 'server';
  readonly client: ClickHouseClient;
  readonly database: string;
  /** Where objects are spooled for ClickHouse to read locally (chDB); null when ClickHouse is a server. */
  readonly spoolDir: string | null;
  insertStream(insert: StreamInsert): Promise<void>;
  /** Run a user's query with readonly=1 and result limits; returns ClickHouse's JSON output. */
  readOnlyQuery(query: string): Promise<ReadOnlyResult>;
  close(): Promise<void>;
}

export interface ReadOnlyResult {
  meta: Array<{ name: string; type: string }>;
  data: Array<Record<string, unknown>>;
  rows: number;
}

/** Limits for user queries through the API: read-only, bounded in rows and time. */
const READ_ONLY_SETTINGS = { readonly: 1, max_result_rows: 100_000, result_overflow_mode: 'break', max_execution_time: 60 } as const;

export class ReadOnlyViolation extends Error {}

/** Table functions that only generate data; every other one reaches files, URLs or other servers. */
const SAFE_TABLE_FUNCTIONS = new Set(['numbers', 'numbers_mt', 'zeros', 'zeros_mt', 'generate_series', 'values', 'null']);
/** Scalar functions that read from outside the database. */
const OUTSIDE_FUNCTIONS = new Set(['file', 'url', 's3', 'hdfs', 'azureblobstorage']);

/**
 * Run a user's query so that it can only read. chDB has one session per
 * process and a separate session does not see fresh parts, so the guarantee
 * cannot come from a read-only session: ClickHouse's own parser proves the
 * text is one statement of a reading kind, with no SETTINGS of its own (which
 * could lift readonly) and no table functions (file(), url(), s3() reach
 * outside the database), and it then runs with readonly = 1.
 */
export async function runReadOnly(client: ClickHouseClient, query: string): Promise<ReadOnlyResult> {
  const [formatted] = await queryRows<{ f: string }>(client, 'SELECT formatQuery({q:String}) AS f', { q: query });
  const text = formatted!.f;
  if (!/^(SELECT|WITH|SHOW|DESCRIBE|DESC|EXISTS)\b/i.test(text)) {
    throw new ReadOnlyViolation('only SELECT, WITH, SHOW, DESCRIBE and EXISTS queries are allowed');
  }
  // CSV, because chDB answers EXPLAIN in CSV whatever format is asked for; one quoted AST node per line.
  const csv = await (await client.query({ query: `EXPLAIN AST ${text}`, format: 'CSV' })).text();
  const ast = csv.split('\n').map((line) => line.trim().replace(/^"(.*)"$/, '$1').replace(/""/g, '"').trim());
  ast.forEach((node, i) => {
    if (node === 'Set' || node.startsWith('Set ')) throw new ReadOnlyViolation('SETTINGS clauses are not allowed in API queries');
    const fn = /^Function (\S+)/.exec(node)?.[1];
    if (fn && OUTSIDE_FUNCTIONS.has(fn.toLowerCase())) throw new ReadOnlyViolation(`function ${fn}() reads outside the database and is not allowed in API queries`);
    const tableFn = ast[i - 1]?.startsWith('TableExpression') ? fn : undefined;
    if (tableFn && !SAFE_TABLE_FUNCTIONS.has(tableFn.toLowerCase())) {
      throw new ReadOnlyViolation(`table function ${tableFn}() is not allowed in API queries (allowed: ${[...SAFE_TABLE_FUNCTIONS].join(', ')})`);
    }
  });
  if (/\bFORMAT\s+\w+\s*$/i.test(text)) throw new ReadOnlyViolation('FORMAT clauses are not allowed: results are JSON');
  const rs = await client.query({ query: `${text} ${renderSettings(READ_ONLY_SETTINGS)}`, format: 'JSON' });
  const out = await rs.json<{ meta: ReadOnlyResult['meta']; data: ReadOnlyResult['data']; rows: number }>();
  return { meta: out.meta ?? [], data: out.data ?? [], rows: out.rows ?? 0 };
}

function countBytes(body: Readable, onBytes?: (n: number) => void): Readable {
  if (!onBytes) return body;
  let total = 0;
  body.on('data', (chunk: Buffer) => {
    total += chunk.length;
    onBytes(total);
  });
  return body;
}

/**
 * Embedded: chDB's client connection materialises an insert body as one
 * string, which would hold a whole file in memory and mangle binary formats.
 * Instead the object is spooled to a local file and ClickHouse reads it with
 * `file()`, which streams, decompresses and parses natively in parallel.
 */
class ChdbDestination implements Destination {
  readonly kind = 'chdb' as const;
  readonly client: ClickHouseClient;
  readonly database: string;
  readonly spoolDir: string;

  constructor(dataDir: string, database: string) {
    const chdbDir = resolve(dataDir, 'chdb');
    this.spoolDir = resolve(dataDir, 'spool');
    mkdirSync(chdbDir, { recursive: true });
    mkdirSync(this.spoolDir, { recursive: true });
    // chdb's connection implements clickhouse-js's Connection contract against its
    // own copy of the common types; the shapes are the same.
    const connection = createChdbConnection({ path: chdbDir }) as unknown as NonNullable<Parameters<typeof createClient>[0]>['connection'];
    this.client = createClient({ connection, database });
    this.database = database;
  }

  async insertStream(insert: StreamInsert): Promise<void> {
    const path = join(this.spoolDir, `${randomUUID()}.part`);
    try {
      // Checked while spooling, before ClickHouse commits any block: gzip end to
      // end (a truncated or corrupt file is refused), and line lengths (a line
      // too long to parse in bounded memory is refused).
      const check = spoolCheck(insert.compression, insert.maxLineBytes);
      await Promise.all([
        pipeline(countBytes(insert.body, insert.onBytes), ...(check ? [check.tee] : []), createWriteStream(path), { signal: insert.signal }),
        check?.done,
      ]);
      const source = `file(${quoteString(path)}, ${quoteString(insert.format)}, ${quoteString(insert.structure)}, ${quoteString(insert.compression)})`;
      await this.client.command({
        query: insert.sql.replace('{settings}', renderSettings(insert.settings)).replace('{source}', source),
        query_params: insert.params,
        abort_signal: insert.signal,
      });
    } catch (err) {
      if (err instanceof Error) err.message = err.message.split(path).join(insert.label ?? 'the file');
      throw err;
    } finally {
      await rm(path, { force: true });
    }
  }

  async readOnlyQuery(query: string): Promise<ReadOnlyResult> {
    return runReadOnly(this.client, query);
  }

  async close() {
    await this.client.close();
  }
}

/**
 * Server: the object's bytes go straight from S3 into the HTTP request body;
 * ClickHouse decompresses (Content-Encoding) and parses them with `input()`.
 */
class ServerDestination implements Destination {
  readonly kind = 'server' as const;
  readonly client: ClickHouseClient;
  readonly spoolDir = null;
  constructor(readonly database: string, url: string, username: string, password: string) {
    this.client = createClient({ url, username, password, database, request_timeout: 3_600_000 });
  }

  async insertStream(insert: StreamInsert): Promise<void> {
    const source = `input(${quoteString(insert.structure)})`;
    const headers: Record<string, string> = {};
    if (insert.compression !== 'none') headers['Content-Encoding'] = insert.compression;
    const result = await this.client.exec({
      query: `${insert.sql.replace('{settings}', renderSettings(insert.settings)).replace('{source}', source)} FORMAT ${insert.format}`,
      values: countBytes(insert.body, insert.onBytes),
      query_params: insert.params,
      abort_signal: insert.signal,
      http_headers: headers,
    });
    // Drain the (empty) response so the socket is released.
    result.stream.resume();
  }

  async readOnlyQuery(query: string): Promise<ReadOnlyResult> {
    return runReadOnly(this.client, query);
  }

  async close() {
    await this.client.close();
  }
}

export function createDestination(env: Pick<Env, 'CLICKHOUSE_URL' | 'CLICKHOUSE_USER' | 'CLICKHOUSE_PASSWORD' | 'CLICKHOUSE_DATABASE' | 'S3CH_DATA_DIR'>): Destination {
  if (env.CLICKHOUSE_URL) {
    return new ServerDestination(env.CLICKHOUSE_DATABASE, env.CLICKHOUSE_URL, env.CLICKHOUSE_USER, env.CLICKHOUSE_PASSWORD);
  }
  return new ChdbDestination(env.S3CH_DATA_DIR, env.CLICKHOUSE_DATABASE);
}

/** Thrown while spooling when a line is longer than the data source allows parsing. */
export class LineTooLongError extends Error {}

/** Tracks line lengths over a byte stream; throws once a line exceeds `max`. */
function lineGuard(max: number): (chunk: Buffer) => void {
  let current = 0;
  let line = 1;
  return (chunk) => {
    let from = 0;
    for (;;) {
      const nl = chunk.indexOf(10, from);
      const end = nl === -1 ? chunk.length : nl;
      current += end - from;
      if (current > max) {
        throw new LineTooLongError(`line ${line} is longer than ${max} bytes: refused before parsing to keep memory bounded (rows over limits.maxRowBytes are quarantined; lines this long fail the file)`);
      }
      if (nl === -1) return;
      current = 0;
      line++;
      from = nl + 1;
    }
  };
}

/**
 * A pass-through stage for spooling that inflates gzip data (discarding it)
 * and/or watches line lengths of the decompressed text; `done` rejects on
 * corrupt gzip or an over-long line.
 */
function spoolCheck(compression: Compression, maxLineBytes: number | undefined): { tee: Transform; done: Promise<void> } | null {
  const guard = maxLineBytes ? lineGuard(maxLineBytes) : null;
  if (compression === 'gzip') {
    const gunzip = createGunzip();
    const done = new Promise<void>((resolve, reject) => {
      gunzip.on('data', (chunk: Buffer) => {
        try {
          guard?.(chunk);
        } catch (err) {
          gunzip.destroy();
          reject(err);
        }
      });
      gunzip.once('end', () => resolve());
      gunzip.once('error', (err) => reject(new Error(`not valid gzip data (${err.message}): the file is truncated or corrupt`)));
    });
    const tee = new Transform({
      transform(chunk, _enc, cb) {
        if (gunzip.destroyed) return cb(null, chunk);
        if (gunzip.write(chunk)) cb(null, chunk);
        else gunzip.once('drain', () => cb(null, chunk));
      },
      flush(cb) {
        gunzip.end();
        cb();
      },
    });
    return { tee, done };
  }
  if (compression === 'none' && guard) {
    const tee = new Transform({
      transform(chunk: Buffer, _enc, cb) {
        try {
          guard(chunk);
          cb(null, chunk);
        } catch (err) {
          cb(err as Error);
        }
      },
    });
    return { tee, done: Promise.resolve() };
  }
  return null;
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
