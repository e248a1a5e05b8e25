import { randomBytes } from 'node:crypto';
import type { ClickHouseClient } from '@clickhouse/client';
import { quoteIdent } from '../schemas/identifiers.js';
import { queryRows, renderSettings, type Destination } from '../clickhouse/destination.js';
import { IMPORT_MAX_SECONDS, moveSettings } from '../clickhouse/import-settings.js';
import type { ImportPlan, StageNames, StagePlan } from './ddl.js';
import type { FileRef } from './schema.js';

/**
 * Exactly once, by construction: how a file version's rows reach the target.
 *
 * 1. Is it in? The commit records (`s3ch_commits`) are asked first. A
 *    version recorded `committed` is in: nothing is read again. A version
 *    recorded `staged` (an earlier attempt staged it and may have begun the
 *    move) is rolled forward: its staged table is moved again under the token
 *    recorded with it, which adds only what the earlier move did not commit.
 * 2. Stage: the remaining versions are read into tables of this attempt's
 *    own (fresh names): a Null landing table and a view converting into a
 *    MergeTree of converted rows with their verdicts. A failure here commits
 *    nothing anywhere that is read; an insert a cancelled or killed attempt
 *    leaves running on the server writes into a table nobody moves.
 * 3. Record `staged` (one insert: the table, the token and each version's
 *    counts), only if the attempt is still live (not cancelled or timed out).
 *    From here on every later attempt rolls this stage forward rather than
 *    read the files again, so the move is always of these very rows.
 * 4. Move: the quarantined rows, then the good rows, each one deterministic
 *    `INSERT ... SELECT` from the staged table in (file, line) order under a
 *    token fixed before the attempt (token + `-q`, token + `-rows`): run again,
 *    the same statement over the same rows cuts the same blocks, so the
 *    target drops every block it already has. Materialized views on the
 *    target fire as for any insert. The move is never aborted halfway by a
 *    cancellation: it finishes.
 * 5. Record `committed`, then drop the staged table.
 *
 * The re-run of a move in 1 deduplicates within the target's deduplication
 * window (non_replicated_deduplication_window blocks on MergeTree;
 * replicated_deduplication_window blocks and _seconds on Replicated/Shared
 * engines). A move is re-run only when `committed` was not recorded, i.e.
 * the attempt died between the move and that record, and the next attempt
 * comes within a heartbeat timeout and a retry backoff; `committed` itself
 * answers every later question for good.
 */

export const COMMITS_TABLE = 's3ch_commits';

/** A file version as the commit records know it. */
export interface VersionRef {
  key: string;
  etag: string;
}

export interface VersionCounts {
  rows: number;
  quarantined: number;
}

type Lookup = { state: 'committed'; counts: VersionCounts } | { state: 'staged'; stage: string; token: string } | { state: 'none' };

const id = (v: VersionRef) => `${v.key}\u0000${v.etag}`;

/** The commit record: one row per (version, generation) and state, appended (never updated). */
export class CommitRecords {
  constructor(private readonly client: ClickHouseClient, private readonly database: string) {}

  private get table() {
    return `${quoteIdent(this.database)}.${quoteIdent(COMMITS_TABLE)}`;
  }

  async ensureTable(): Promise<void> {
    await this.client.command({
      query: `CREATE TABLE IF NOT EXISTS ${this.table} (
        datasource LowCardinality(String), key String, etag String, generation UInt32,
        state LowCardinality(String), stage String, token String, rows UInt64, quarantined UInt64,
        at DateTime64(9, 'UTC') DEFAULT now64(9, 'UTC'))
        ENGINE = MergeTree ORDER BY (datasource, key, etag, generation, at)`,
    });
  }

  async append(dataSource: string, generation: number, state: 'staged' | 'committed' | 'abandoned', stage: string, token: string, versions: Array<VersionRef & VersionCounts>): Promise<void> {
    if (versions.length === 0) return;
    // One insert, one part: a batch's versions are recorded together or not at all.
    await this.client.insert({
      table: this.table,
      format: 'JSONEachRow',
      columns: ['datasource', 'key', 'etag', 'generation', 'state', 'stage', 'token', 'rows', 'quarantined'],
      values: versions.map((v) => ({ datasource: dataSource, key: v.key, etag: v.etag, generation, state, stage, token, rows: v.rows, quarantined: v.quarantined })),
    });
  }

  /** What the records say of each version: committed (with its counts), staged and not committed (the stage to roll forward), or nothing. */
  async lookup(dataSource: string, generation: number, versions: VersionRef[]): Promise<Map<string, Lookup>> {
    const out = new Map<string, Lookup>(versions.map((v) => [id(v), { state: 'none' }]));
    if (versions.length === 0) return out;
    const rows = await queryRows<{ key: string; etag: string; committed: number; rows: string; quarantined: string; stage: string; token: string; open: number }>(
      this.client,
      `SELECT key, etag,
              countIf(state = 'committed') > 0 AS committed,
              argMaxIf(rows, at, state = 'committed') AS rows, argMaxIf(quarantined, at, state = 'committed') AS quarantined,
              argMaxIf(stage, at, state IN ('staged', 'abandoned')) AS stage, argMaxIf(token, at, state IN ('staged', 'abandoned')) AS token,
              argMaxIf(state, at, state IN ('staged', 'abandoned')) = 'staged' AS open
       FROM ${this.table}
       WHERE datasource = {ds:String} AND generation = {g:UInt32} AND key IN {keys:Array(String)}
       GROUP BY key, etag`,
      { ds: dataSource, g: generation, keys: [...new Set(versions.map((v) => v.key))] },
    );
    for (const r of rows) {
      const k = `${r.key}\u0000${r.etag}`;
      if (!out.has(k)) continue;
      if (Number(r.committed)) out.set(k, { state: 'committed', counts: { rows: Number(r.rows), quarantined: Number(r.quarantined) } });
      else if (Number(r.open)) out.set(k, { state: 'staged', stage: r.stage, token: r.token });
    }
    return out;
  }

  /** The versions one stage holds, with their counts (as recorded when it was staged). */
  async stagedVersions(dataSource: string, generation: number, stage: string): Promise<Array<VersionRef & VersionCounts>> {
    const rows = await queryRows<{ key: string; etag: string; rows: string; quarantined: string }>(
      this.client,
      `SELECT key, etag, any(rows) AS rows, any(quarantined) AS quarantined FROM ${this.table}
       WHERE datasource = {ds:String} AND generation = {g:UInt32} AND stage = {stage:String} AND state = 'staged' GROUP BY key, etag`,
      { ds: dataSource, g: generation, stage },
    );
    return rows.map((r) => ({ key: r.key, etag: r.etag, rows: Number(r.rows), quarantined: Number(r.quarantined) }));
  }

  /** Stages recorded and never committed (what a sweep must keep). */
  async openStages(dataSource: string): Promise<Set<string>> {
    const rows = await queryRows<{ stage: string }>(
      this.client,
      `SELECT stage FROM ${this.table} WHERE datasource = {ds:String} AND stage != ''
       GROUP BY stage HAVING countIf(state = 'staged') > 0 AND countIf(state IN ('committed', 'abandoned')) = 0`,
      { ds: dataSource },
    );
    return new Set(rows.map((r) => r.stage));
  }

  async deleteDataSource(dataSource: string): Promise<void> {
    await this.client.command({ query: `DELETE FROM ${this.table} WHERE datasource = {ds:String}`, query_params: { ds: dataSource } });
  }
}

/** Name prefix of a table's staging tables; the suffix is the attempt's start time (base 36 ms) and a random part. */
export const stagePrefix = (table: string) => `${table}_s3ch_stage_`;

/** Fresh staging table names for one attempt. */
export function stageNames(db: string, table: string): StageNames & { name: string } {
  const name = `${stagePrefix(table)}${Date.now().toString(36)}_${randomBytes(4).toString('hex')}`;
  const q = (t: string) => `${quoteIdent(db)}.${quoteIdent(t)}`;
  return { name, stage: q(name), landing: q(`${name}_landing`), view: q(`${name}_mv`) };
}

export type CommitStep = 'stage' | 'move';

export interface CommitHooks {
  /** Before an attempt's staging tables are made (nothing of its files read yet). */
  beforeStage?(files: FileRef[], attempt: number): void | Promise<void>;
  /** After the files are staged and the stage recorded, before the move into the target. */
  beforeMove?(files: FileRef[], attempt: number): void | Promise<void>;
  /** After the move into the target, before the commit is recorded. */
  afterMove?(files: FileRef[], attempt: number): void | Promise<void>;
  /** Extra settings for a step's statements (fault injection: a low max_partitions_per_insert_block, a memory limit). */
  settings?(step: CommitStep, files: FileRef[], attempt: number): Record<string, string | number> | undefined;
}

export interface CommitInput {
  dataSource: string;
  /** The target table's name (unquoted), which staging tables are named after. */
  table: string;
  /** The import plan (any of the files' formats: the landing and converted columns are the same). */
  plan: ImportPlan;
  files: FileRef[];
  generation: number;
  /** The move's deduplication token, fixed in the activity input. */
  token: string;
  attempt: number;
  signal: AbortSignal | undefined;
  progress: Record<string, unknown>;
  /** Read the files into the attempt's landing table: `insertInto` is `INSERT INTO <landing> (...)`; `settings` are extra settings for the statements. */
  stage(insertInto: string, settings: Record<string, string | number>): Promise<void>;
  /** Called once the rows of this import may be in the target (a stage recorded, or an earlier one being moved): from then on, only a retry may finish it. */
  onRecorded?(): void;
  /**
   * Check that versions which staged no row at all are still the objects
   * listed (a HEAD pinned to the ETag): ClickHouse skips an object replaced by
   * an empty one (`s3_skip_empty_files`) and finds nothing under a key gone,
   * so no row's ETag check ran; throws if one is not.
   */
  verifyUnread?(versions: FileRef[]): Promise<void>;
  /** Which version a staged `_file` value belongs to (a zip entry's is `key::entry`). */
  versionOf(file: string, etag: string): VersionRef;
}

export class CancelledBeforeMove extends Error {
  constructor() {
    super('import cancelled before its rows were moved');
  }
}

export function createCommitPath({ destination, records, hooks }: { destination: Destination; records: CommitRecords; hooks?: CommitHooks }) {
  const db = destination.database;

  async function tableExists(name: string): Promise<boolean> {
    const [row] = await queryRows<{ n: string }>(destination.client, 'SELECT count() AS n FROM system.tables WHERE database = {db:String} AND name = {t:String}', { db, t: name });
    return Number(row?.n ?? 0) > 0;
  }

  /**
   * The move of one stage: quarantine first, then the rows; each a no-op where the target has its blocks
   * already. A part with no rows in the stage (by the counts recorded with it) is no statement at all.
   */
  async function move(plan: ImportPlan, stageName: string, token: string, extra: Record<string, string | number>, staged: VersionCounts[]) {
    const n: StageNames = { stage: `${quoteIdent(db)}.${quoteIdent(stageName)}`, landing: '', view: '' };
    const s: StagePlan = plan.stage(n);
    const parts = [['q', s.moveQuarantine, staged.some((v) => v.quarantined > 0)], ['rows', s.moveRows, staged.some((v) => v.rows > 0)]] as const;
    for (const [part, m, any] of parts) {
      if (!any) continue;
      // No abort signal: a move once begun finishes (a server would finish it anyway); its re-run is a no-op.
      await destination.imports.command({ query: `${m.insertInto} ${renderSettings({ ...moveSettings(`${token}-${part}`), ...extra })} ${m.select}` });
    }
  }

  /** Drop a stage's tables; not awaited where nothing needs them gone (a later prepare sweeps what a crash leaves). */
  async function drop(stageName: string) {
    const q = (t: string) => `${quoteIdent(db)}.${quoteIdent(t)}`;
    // One statement for the three (DROP TABLE takes a view too), the view first so nothing writes into the others.
    await destination.client.command({ query: `DROP TABLE IF EXISTS ${q(`${stageName}_mv`)}, ${q(`${stageName}_landing`)}, ${q(stageName)}` }).catch(() => undefined);
  }

  /** Move a recorded stage again, record it committed and drop it; its versions' counts. */
  async function rollForward(i: CommitInput, stageName: string, token: string): Promise<Array<VersionRef & VersionCounts>> {
    const versions = await records.stagedVersions(i.dataSource, i.generation, stageName);
    if (!(await tableExists(stageName))) {
      // Gone (its data source was deleted and made again): nothing to move; its versions are imported afresh.
      await records.append(i.dataSource, i.generation, 'abandoned', stageName, token, versions);
      return [];
    }
    i.progress.phase = 'move (earlier attempt)';
    await hooks?.beforeMove?.(i.files, i.attempt);
    await move(i.plan, stageName, token, hooks?.settings?.('move', i.files, i.attempt) ?? {}, versions);
    await records.append(i.dataSource, i.generation, 'committed', stageName, token, versions);
    void drop(stageName);
    return versions;
  }

  /** Commit the input's versions exactly once; returns each version's rows and quarantined rows. */
  // Once per process: a data source prepared by an earlier version never prepares again to make it.
  let ready: Promise<void> | null = null;

  return async function commit(i: CommitInput): Promise<Map<string, VersionCounts>> {
    await (ready ??= records.ensureTable().catch((e: unknown) => {
      ready = null;
      throw e;
    }));
    const result = new Map<string, VersionCounts>();
    i.progress.phase = 'checking';
    const known = await records.lookup(i.dataSource, i.generation, i.files);
    const stages = new Map<string, string>();
    for (const [k, l] of known) {
      if (l.state === 'committed') result.set(k, l.counts);
      else if (l.state === 'staged') stages.set(l.stage, l.token);
    }
    if (stages.size) i.onRecorded?.();
    for (const [stageName, token] of stages) {
      for (const v of await rollForward(i, stageName, token)) result.set(id(v), v);
    }
    const todo = i.files.filter((f) => !result.has(id(f)));
    if (todo.length === 0) return result;

    await hooks?.beforeStage?.(todo, i.attempt);
    const names = stageNames(db, i.table);
    const s = i.plan.stage(names);
    let recorded = false;
    try {
      i.progress.phase = 'stage';
      for (const sql of s.create) await destination.client.command({ query: sql });
      await i.stage(s.insertInto, hooks?.settings?.('stage', todo, i.attempt) ?? {});
      const counted = await queryRows<{ file: string; etag: string; rows: string; quarantined: string }>(destination.client, s.counts);
      const staged = new Map<string, VersionRef & VersionCounts>(todo.map((f) => [id(f), { key: f.key, etag: f.etag, rows: 0, quarantined: 0 }]));
      for (const c of counted) {
        const v = staged.get(id(i.versionOf(c.file, c.etag)));
        if (!v) throw new Error(`staged rows of ${c.file} belong to no file of this import`);
        v.rows += Number(c.rows);
        v.quarantined += Number(c.quarantined);
      }
      await i.verifyUnread?.(todo.filter((f) => f.size > 0 && (() => {
        const v = staged.get(id(f))!;
        return v.rows + v.quarantined === 0;
      })()));
      // Only a live attempt commits: a cancelled one (a pause, a delete) or one the server
      // gave up on (heartbeat timeout: the signal aborts) leaves its stage unrecorded, never moved.
      if (i.signal?.aborted) throw new CancelledBeforeMove();
      await records.append(i.dataSource, i.generation, 'staged', names.name, i.token, [...staged.values()]);
      recorded = true;
      i.onRecorded?.();
      await hooks?.beforeMove?.(todo, i.attempt);
      i.progress.phase = 'move';
      await move(i.plan, names.name, i.token, hooks?.settings?.('move', todo, i.attempt) ?? {}, [...staged.values()]);
      await hooks?.afterMove?.(todo, i.attempt);
      await records.append(i.dataSource, i.generation, 'committed', names.name, i.token, [...staged.values()]);
      for (const v of staged.values()) result.set(id(v), v);
      void drop(names.name);
      return result;
    } finally {
      // An unrecorded stage is never moved: it goes now (its landing table first, so an insert a
      // cancelled attempt left running stops writing). A recorded one stays until its move is recorded.
      if (!recorded) await drop(names.name);
    }
  };
}

/** Stages of a table no open commit record needs and older than any import could run: left by killed workers. */
export async function sweepStages(destination: Destination, records: CommitRecords, dataSource: string, table: string): Promise<number> {
  const prefix = stagePrefix(table);
  const rows = await queryRows<{ name: string }>(
    destination.client,
    'SELECT name FROM system.tables WHERE database = {db:String} AND startsWith(name, {p:String})',
    { db: destination.database, p: prefix },
  );
  const open = await records.openStages(dataSource);
  let dropped = 0;
  for (const { name } of rows) {
    const base = name.replace(/_(landing|mv)$/, '');
    const born = parseInt(base.slice(prefix.length).split('_')[0] ?? '', 36);
    if (open.has(base) || !(Date.now() - born > (IMPORT_MAX_SECONDS + 3600) * 1000)) continue;
    const kind = name.endsWith('_mv') ? 'VIEW' : 'TABLE';
    await destination.client.command({ query: `DROP ${kind} IF EXISTS ${quoteIdent(destination.database)}.${quoteIdent(name)}` });
    dropped++;
  }
  return dropped;
}

/** Drop every staging table of a table (its import path is being removed). */
export async function dropStages(destination: Destination, table: string): Promise<void> {
  const rows = await queryRows<{ name: string; engine: string }>(
    destination.client,
    'SELECT name, engine FROM system.tables WHERE database = {db:String} AND startsWith(name, {p:String})',
    { db: destination.database, p: stagePrefix(table) },
  );
  // Views first: a view's target must outlive it.
  for (const r of [...rows].sort((a, b) => Number(b.engine === 'MaterializedView') - Number(a.engine === 'MaterializedView'))) {
    await destination.client.command({ query: `DROP ${r.engine === 'MaterializedView' ? 'VIEW' : 'TABLE'} IF EXISTS ${quoteIdent(destination.database)}.${quoteIdent(r.name)}` });
  }
}
