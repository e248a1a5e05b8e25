import type { ClickHouseClient } from '@clickhouse/client';
import { queryRows } from '../clickhouse/destination.js';
import { quoteIdent } from '../schemas/identifiers.js';

export const TABLE_CLAIMS_TABLE = 's3ch_table_claims';

/**
 * Which data source said it feeds which table, so "is this table free?" is
 * one indexed lookup instead of a scan of every data source's memo.
 *
 * A claim is a hint, never the truth: rows are only ever added (at create, and
 * when a PATCH moves a data source to another table), so a claim may be stale
 * (the data source was deleted, or moved on). The caller confirms each
 * claimant with its workflow (running, and its spec still names the table):
 * that costs one describe per claimant, and a table has one live claimant at
 * most.
 */
export class TableClaims {
  private ready: Promise<void> | null = null;

  constructor(
    private readonly client: ClickHouseClient,
    private readonly database: string,
    /** Every running data source's (name, table), read once when the claims table is new: data sources created before it existed. */
    private readonly existing: () => AsyncIterable<{ name: string; table: string }>,
  ) {}

  private t() {
    return `${quoteIdent(this.database)}.${quoteIdent(TABLE_CLAIMS_TABLE)}`;
  }

  /** Create the table once per process (and fill it from the running data sources when it is new). */
  ensure(): Promise<void> {
    this.ready ??= this.create().catch((err) => {
      this.ready = null; // try again on the next call
      throw err;
    });
    return this.ready;
  }

  private async create() {
    const [row] = await queryRows<{ n: string }>(
      this.client,
      'SELECT count() AS n FROM system.tables WHERE database = {db:String} AND name = {t:String}',
      { db: this.database, t: TABLE_CLAIMS_TABLE },
    );
    const isNew = Number(row?.n ?? 0) === 0;
    if (this.database !== 'default') await this.client.command({ query: `CREATE DATABASE IF NOT EXISTS ${quoteIdent(this.database)}` });
    await this.client.command({
      query: `CREATE TABLE IF NOT EXISTS ${this.t()} (table String, datasource String, at DateTime64(3, 'UTC') DEFAULT now64(3))
              ENGINE = ReplacingMergeTree(at) ORDER BY (table, datasource)`,
    });
    if (!isNew) return;
    const found: Array<{ name: string; table: string }> = [];
    for await (const ds of this.existing()) found.push(ds);
    await this.insert(found);
  }

  private async insert(claims: Array<{ name: string; table: string }>) {
    if (claims.length === 0) return;
    await this.client.insert({ table: this.t(), format: 'JSONEachRow', values: claims.map((c) => ({ table: c.table, datasource: c.name })) });
  }

  async claim(table: string, name: string): Promise<void> {
    await this.ensure();
    await this.insert([{ name, table }]);
  }

  /** Data sources other than `except` that have claimed `table` at some point (to be confirmed by the caller). */
  async claimants(table: string, except: string): Promise<string[]> {
    await this.ensure();
    const rows = await queryRows<{ datasource: string }>(
      this.client,
      `SELECT DISTINCT datasource FROM ${this.t()} WHERE table = {t:String} AND datasource != {n:String}`,
      { t: table, n: except },
    );
    return rows.map((r) => r.datasource);
  }
}
