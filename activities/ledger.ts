import type { ClickHouseClient } from '@clickhouse/client';
import { quoteIdent } from '../schemas/identifiers.js';
import { DEDUP_WINDOW, FILE_ROWS_TABLE } from './ddl.js';
import { queryRows } from '../clickhouse/destination.js';

/**
 * The per-file ledger: an append-only log of status transitions in ClickHouse.
 * It is what the API lists and what discovery consults to skip files already
 * settled; it never decides whether rows are inserted twice (the commit
 * records and the move's token do: activities/commit.ts).
 */
export const FILE_STATUSES = ['queued', 'running', 'success', 'failure', 'pending_retry', 'paused', 'cancelled'] as const;
export type FileStatus = (typeof FILE_STATUSES)[number];

export const LEDGER_TABLE = 's3ch_file_events';
export const RUNS_TABLE = 's3ch_runs';

/**
 * The order of one file version's events, for every query that takes its
 * latest state (`argMax(x, LEDGER_ORDER)`, see `latestOf`):
 *
 * - `success` first: once a version's rows are in, it is imported, whatever a
 *   late writer says after (a `cancelled` from an activity aborted after its
 *   success was written, a stale worker's `running` or `pending_retry`).
 * - then `seq`, the time ClickHouse itself received the event (`now64(9)` at
 *   insert), never a writer's clock: two workers with skewed clocks cannot
 *   reorder a version's history. The attempt number is no ordering key: it
 *   restarts at 1 in every run, and `queued`/`paused` carry 0.
 *
 * Rows written before `seq` existed read it as their `at`, so old data dirs
 * keep their order.
 *
 * The order is the tuple `(status = 'success', seq)` written as one Int128
 * (the success bit above every nanosecond `seq` can hold, so the order is
 * the same for any DateTime64(9)): argMax compares it as a number, about a
 * third of the CPU of a tuple, which is what status counts and file pages
 * over 100,000-file ledgers spend their time on.
 *
 * In the SELECT that uses it, alias no result `status`: ClickHouse would
 * resolve `status` inside the order to that alias (ILLEGAL_AGGREGATION).
 */
export const LEDGER_ORDER = "bitShiftLeft(toInt128(status = 'success'), 64) + toUnixTimestamp64Nano(seq)";
/** `argMax(column, LEDGER_ORDER)`: the column's value in a version's latest event. */
export const latestOf = (column: string) => `argMax(${column}, ${LEDGER_ORDER})`;
/** A file version's latest status (use with GROUP BY datasource?, key, etag). */
export const LATEST_STATUS = latestOf('status');
/** How many times a version was attempted: every import attempt, in every run, writes `running` once. */
export const ATTEMPTS = "countIf(status = 'running')";

/** Columns of one event as the writers send them (`seq` is ClickHouse's to fill). */
const EVENT_STRUCTURE =
  "datasource String, key String, etag String, size UInt64, attempt UInt32, status String, rows UInt64, quarantined_rows UInt64, bytes UInt64, error String, run_id String, at DateTime64(3, 'UTC'), generation UInt32";
const EVENT_COLUMNS = 'datasource, key, etag, size, attempt, status, rows, quarantined_rows, bytes, error, run_id, at, generation';
/**
 * Events sent per statement: their text travels as a query parameter, which a
 * ClickHouse server reads from the URL (1 MiB by default, and URL encoding can
 * triple JSON), so keep it well below that.
 */
const MAX_EVENT_CHARS_PER_INSERT = 64 * 1024;

export interface FileEvent {
  datasource: string;
  key: string;
  etag: string;
  size: number;
  attempt: number;
  status: FileStatus;
  rows?: number;
  quarantined_rows?: number;
  bytes?: number;
  error?: string;
  run_id?: string;
  /** 0 for the import of a version; 1, 2, ... for each deliberate re-import of it. */
  generation?: number;
}

export interface RunRecord {
  datasource: string;
  run_id: string;
  trigger: string;
  started_at: string;
  finished_at: string;
  files_found: number;
  files_imported: number;
  files_failed: number;
  rows: number;
  bytes: number;
}

const ts = (d = new Date()) => d.toISOString().replace('T', ' ').replace('Z', '');

/** A data source's counters from the ledger (see Ledger.stats). */
export interface LedgerStats {
  files: Record<FileStatus, number>;
  rows: number;
  bytes: number;
  quarantinedRows: number;
  /** Ledger rows the counters were computed from. */
  events: number;
}

export class Ledger {
  constructor(private readonly client: ClickHouseClient, private readonly database: string) {}

  private t(name: string) {
    return `${quoteIdent(this.database)}.${quoteIdent(name)}`;
  }

  async ensureTables(): Promise<void> {
    if (this.database !== 'default') await this.client.command({ query: `CREATE DATABASE IF NOT EXISTS ${quoteIdent(this.database)}` });
    await this.client.command({
      query: `CREATE TABLE IF NOT EXISTS ${this.t(LEDGER_TABLE)} (
        datasource LowCardinality(String), key String, etag String, size UInt64, attempt UInt32,
        status LowCardinality(String), rows UInt64, quarantined_rows UInt64, bytes UInt64,
        error String, run_id String, at DateTime64(3, 'UTC'), seq DateTime64(9, 'UTC') DEFAULT at, generation UInt32 DEFAULT 0)
        ENGINE = MergeTree ORDER BY (datasource, key, etag, at)`,
    });
    // Ledgers written before `seq` existed: their rows read it as `at` (the old order), new rows get ClickHouse's time.
    const [hasSeq] = await queryRows<{ n: string }>(
      this.client,
      'SELECT count() AS n FROM system.columns WHERE database = {db:String} AND table = {t:String} AND name = \'seq\'',
      { db: this.database, t: LEDGER_TABLE },
    );
    if (Number(hasSeq?.n ?? 0) === 0) {
      await this.client.command({ query: `ALTER TABLE ${this.t(LEDGER_TABLE)} ADD COLUMN IF NOT EXISTS seq DateTime64(9, 'UTC') DEFAULT at` });
    }
    // Ledgers written before re-imports existed: their events are generation 0, the first import.
    const [hasGeneration] = await queryRows<{ n: string }>(
      this.client,
      'SELECT count() AS n FROM system.columns WHERE database = {db:String} AND table = {t:String} AND name = \'generation\'',
      { db: this.database, t: LEDGER_TABLE },
    );
    if (Number(hasGeneration?.n ?? 0) === 0) {
      await this.client.command({ query: `ALTER TABLE ${this.t(LEDGER_TABLE)} ADD COLUMN IF NOT EXISTS generation UInt32 DEFAULT 0` });
    }
    await this.client.command({
      query: `CREATE TABLE IF NOT EXISTS ${this.t(RUNS_TABLE)} (
        datasource LowCardinality(String), run_id String, trigger LowCardinality(String),
        started_at DateTime64(3, 'UTC'), finished_at DateTime64(3, 'UTC'),
        files_found UInt64, files_imported UInt64, files_failed UInt64, rows UInt64, bytes UInt64)
        ENGINE = MergeTree ORDER BY (datasource, started_at)`,
    });
    await this.client.command({
      query: `CREATE TABLE IF NOT EXISTS ${this.t(FILE_ROWS_TABLE)} (
        datasource LowCardinality(String), key String, etag String, rows UInt64, quarantined UInt64)
        ENGINE = SummingMergeTree ORDER BY (datasource, key, etag)
        SETTINGS non_replicated_deduplication_window = ${DEDUP_WINDOW}`,
    });
  }

  /**
   * Append events. `at` is the writer's clock (shown to people); `seq` is
   * filled by ClickHouse in the same statement (INSERT ... SELECT now64(9)),
   * and it alone orders a version's events.
   */
  async record(events: FileEvent[]): Promise<void> {
    if (events.length === 0) return;
    const at = ts();
    const lines = events.map((e) => JSON.stringify({ rows: 0, quarantined_rows: 0, bytes: 0, error: '', run_id: '', generation: 0, ...e, at }));
    for (let i = 0; i < lines.length; ) {
      let chars = 0;
      let j = i;
      while (j < lines.length && (j === i || chars + lines[j]!.length < MAX_EVENT_CHARS_PER_INSERT)) chars += lines[j++]!.length + 1;
      await this.client.command({
        query: `INSERT INTO ${this.t(LEDGER_TABLE)} (${EVENT_COLUMNS}, seq)
                SELECT ${EVENT_COLUMNS}, now64(9, 'UTC') FROM format(JSONEachRow, {structure:String}, {events:String})`,
        query_params: { structure: EVENT_STRUCTURE, events: lines.slice(i, j).join('\n') },
      });
      i = j;
    }
  }

  async recordRun(run: RunRecord): Promise<void> {
    await this.client.insert({ table: this.t(RUNS_TABLE), format: 'JSONEachRow', values: [run] });
  }

  /** Of the given (key, etag) pairs, those whose latest status is settled (success or failure). */
  async settled(datasource: string, keys: string[]): Promise<Set<string>> {
    if (keys.length === 0) return new Set();
    const rows = await queryRows<{ key: string; etag: string }>(
      this.client,
      `SELECT key, etag FROM ${this.t(LEDGER_TABLE)}
       WHERE datasource = {ds:String} AND key IN {keys:Array(String)}
       GROUP BY key, etag HAVING ${LATEST_STATUS} IN ('success', 'failure')`,
      { ds: datasource, keys },
    );
    return new Set(rows.map((r) => `${r.key}\u0000${r.etag}`));
  }

  /** Mark older failed versions of a key as cancelled: a newer version of the object has been imported. */
  async supersede(datasource: string, key: string, etag: string): Promise<void> {
    const stale = await queryRows<{ etag: string; size: string }>(
      this.client,
      `SELECT etag, ${latestOf('size')} AS size FROM ${this.t(LEDGER_TABLE)}
       WHERE datasource = {ds:String} AND key = {key:String} AND etag != {etag:String}
       GROUP BY etag HAVING ${LATEST_STATUS} IN ('failure', 'pending_retry', 'queued')`,
      { ds: datasource, key, etag },
    );
    await this.record(stale.map((s) => ({ datasource, key, etag: s.etag, size: Number(s.size), attempt: 0, status: 'cancelled', error: `superseded by version ${etag}` })));
  }

  /**
   * Keys whose latest version failed, in key order after `after`, at most
   * `limit`: what "retry every failed file" works through a page at a time.
   * A key whose object was found gone (recorded with an empty ETag) is left out.
   */
  async failedKeys(datasource: string, after: string | undefined, limit: number): Promise<string[]> {
    const rows = await queryRows<{ key: string }>(
      this.client,
      `SELECT key FROM (
         SELECT key, etag, ${LATEST_STATUS} AS latest, max(seq) AS last FROM ${this.t(LEDGER_TABLE)}
         WHERE datasource = {ds:String} AND key > {after:String} GROUP BY key, etag)
       GROUP BY key HAVING argMax(latest, last) = 'failure' AND argMax(etag, last) != ''
       ORDER BY key LIMIT {limit:UInt32}`,
      { ds: datasource, after: after ?? '', limit },
    );
    return rows.map((r) => r.key);
  }

  /**
   * Failed keys after `after`, read `page` at a time for as long as the reader
   * still needs some (`page - taken()`): a reader that skips keys (objects
   * found gone) gets a full page all the same, so a short one is the last.
   */
  async *failedKeysFilling(datasource: string, after: string | undefined, page: number, taken: () => number): AsyncGenerator<string> {
    let from = after;
    for (;;) {
      const want = page - taken();
      if (want <= 0) return;
      const keys = await this.failedKeys(datasource, from, want);
      yield* keys;
      if (keys.length < want) return;
      from = keys[keys.length - 1];
    }
  }

  /**
   * Files by their latest status, with row/byte totals, per data source (all
   * of them, or one); `events` is how many ledger rows were read for them,
   * what the read cost.
   */
  async allStats(datasource?: string): Promise<Array<{ datasource: string; status: string; files: number; rows: number; bytes: number; quarantined: number; events: number }>> {
    const rows = await queryRows<{ datasource: string; status: string; files: string; rows: string; bytes: string; quarantined: string; events: string }>(
      this.client,
      `SELECT datasource, latest AS status, count() AS files, sum(rows) AS rows, sum(bytes) AS bytes, sum(quarantined) AS quarantined, sum(events) AS events FROM (
         SELECT datasource, ${LATEST_STATUS} AS latest, ${latestOf('rows')} AS rows, ${latestOf('bytes')} AS bytes, ${latestOf('quarantined_rows')} AS quarantined, count() AS events
         FROM ${this.t(LEDGER_TABLE)} ${datasource === undefined ? '' : 'WHERE datasource = {ds:String}'} GROUP BY datasource, key, etag)
       GROUP BY datasource, latest ORDER BY datasource, latest`,
      { ds: datasource ?? '' },
    );
    return rows.map((r) => ({ datasource: r.datasource, status: r.status, files: Number(r.files), rows: Number(r.rows), bytes: Number(r.bytes), quarantined: Number(r.quarantined), events: Number(r.events) }));
  }

  /**
   * One data source's file counts by status and the totals of its imported
   * files (rows/bytes count only successes), and the ledger events read.
   */
  async stats(datasource: string): Promise<LedgerStats> {
    const files = Object.fromEntries(FILE_STATUSES.map((s) => [s, 0])) as Record<FileStatus, number>;
    let rows = 0, bytes = 0, quarantinedRows = 0, events = 0;
    for (const r of await this.allStats(datasource)) {
      if ((FILE_STATUSES as readonly string[]).includes(r.status)) files[r.status as FileStatus] = r.files;
      if (r.status === 'success') {
        rows += r.rows;
        bytes += r.bytes;
        quarantinedRows += r.quarantined;
      }
      events += r.events;
    }
    return { files, rows, bytes, quarantinedRows, events };
  }

  async runCounts(): Promise<Array<{ datasource: string; runs: number; lastFinished: number }>> {
    const rows = await queryRows<{ datasource: string; runs: string; last: string }>(
      this.client,
      `SELECT datasource, count() AS runs, toUnixTimestamp(max(finished_at)) AS last FROM ${this.t(RUNS_TABLE)} GROUP BY datasource ORDER BY datasource`,
    );
    return rows.map((r) => ({ datasource: r.datasource, runs: Number(r.runs), lastFinished: Number(r.last) }));
  }

  /** Forget which files a data source imported (its table was dropped, so they are not in), keeping its runs. */
  async forgetFiles(datasource: string): Promise<void> {
    for (const table of [LEDGER_TABLE, FILE_ROWS_TABLE]) {
      await this.client.command({ query: `DELETE FROM ${this.t(table)} WHERE datasource = {ds:String}`, query_params: { ds: datasource } });
    }
  }

  async deleteDataSource(datasource: string): Promise<void> {
    for (const table of [LEDGER_TABLE, RUNS_TABLE, FILE_ROWS_TABLE]) {
      await this.client.command({
        query: `DELETE FROM ${this.t(table)} WHERE datasource = {ds:String}`,
        query_params: { ds: datasource },
      });
    }
  }
}
