import { createClient, type ClickHouseClient } from '@clickhouse/client';
import { createChdbConnection } from 'chdb/connection';
import { mkdirSync } from 'node:fs';
import { resolve } from 'node:path';
import type { Env } from '../schemas/config.js';
import { quoteString } from '../schemas/identifiers.js';

export type Compression = 'none' | 'gzip' | 'zstd';

/**
 * The destination ClickHouse: one `@clickhouse/client` for everything.
 * Embedded chDB and a server run the same statements: ClickHouse reads the
 * objects itself with `s3()`, so no file byte passes through this process.
 */
export interface Destination {
  readonly kind: 'chdb' | 'server';
  readonly client: ClickHouseClient;
  readonly database: string;
  /**
   * Local scratch space for zip archives only (chDB's build has no archive
   * reader, so an archive is fetched and its entries read with `file()`);
   * null when ClickHouse is a server, which cannot see this machine's files.
   */
  readonly spoolDir: string | null;
  close(): Promise<void>;
}

/** Embedded: chDB in this process, through clickhouse-js's connection contract. */
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


  async close() {
    await this.client.close();
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
