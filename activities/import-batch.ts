import { Context, CancelledFailure } from '@temporalio/activity';
import { ApplicationFailure } from '@temporalio/common';
import { createHash } from 'node:crypto';
import type { ColumnSpec, DataSourceSpec } from '../schemas/datasource.js';
import { parseBucketUri } from '../schemas/glob.js';
import { quoteIdent } from '../schemas/identifiers.js';
import { isBatchable } from '../schemas/import-batches.js';
import { objectUrl } from '../s3/object-url.js';
import { s3Source, scrubSecrets } from '../clickhouse/s3-source.js';
import { insertStatement, objectParams, type ImportParams } from '../clickhouse/import-statement.js';
import { importSettings } from '../clickhouse/import-settings.js';
import { renderSettings } from '../clickhouse/destination.js';
import { buildImportPlan, FILE_ROWS_TABLE } from './ddl.js';
import { queryRows, type Destination } from '../clickhouse/destination.js';
import { classify, isNonRetryable, toApplicationFailure } from './errors.js';
import { resolveCompression, resolveFormat } from './formats.js';
import { LATEST_STATUS, LEDGER_TABLE, latestOf, type FileEvent, type Ledger } from './ledger.js';
import type { S3Connections } from '../s3/connections.js';
import type { FileRef } from './schema.js';

/**
 * Many small files in one activity and one insert.
 *
 * Exactly once, the argument:
 *
 * 1. The batch is fixed in the activity input, so every attempt of the
 *    activity inserts the same (key, ETag) list under the same
 *    `insert_deduplication_token` (a hash of that sorted list).
 * 2. The insert is all-or-nothing: squashing is set so that the whole batch
 *    (at most MAX_BATCH_BYTES of small files, bounded in memory by
 *    max_memory_usage) becomes one block, so each table behind the landing
 *    table receives one part, `<token>_0`, or none. Nothing is written before
 *    the last row of the last file is read, so a bad file, a changed object
 *    or a worker killed mid-read leaves nothing behind.
 * 3. Every attempt first reads which of its versions already have rows
 *    counted by the rows view (written by the same insert): those are in,
 *    from an earlier attempt (all of the batch, by 2) or an earlier import,
 *    and are left out. A retried attempt after a committed insert therefore
 *    inserts nothing; one after a kill between the insert's parts re-runs the
 *    same list under the same token, and the parts already written are
 *    dropped as duplicates.
 * 4. When the insert fails on a file problem (bad data, object gone or
 *    changed: what retrying cannot fix), nothing of it was committed (2), and
 *    the activity *completes* returning every file as `split`: the workflow
 *    imports them one by one (their own tokens, retries and statuses), and
 *    this activity, being complete, is never run again — so its token never
 *    commits later beside the single-file tokens.
 * 5. Retryable failures (S3 or ClickHouse unavailable) are retried as the
 *    batch. If they outlast the retry policy, the workflow imports each file
 *    as a batch of one, which checks its rows first (3) and splits to the
 *    single-file path only for a version with no rows in.
 *
 * Left open: a worker killed after an insert wrote the target table's part
 * but before the rows view's, followed by a file problem on the retry (an
 * object deleted or replaced in between), would split files whose rows are
 * in the target table. Both in one batch is the narrow case it takes.
 */

export interface ImportBatchInput {
  dataSource: string;
  spec: DataSourceSpec;
  columns: ColumnSpec[];
  files: FileRef[];
  runId: string;
}

export interface BatchFileResult {
  key: string;
  etag: string;
  rows: number;
  quarantinedRows: number;
  bytes: number;
}

export interface ImportBatchResult {
  /** Files the batch imported, each with its own row counts. */
  files: BatchFileResult[];
  /** Files to import one by one: the batch failed on a file problem and committed nothing. */
  split: FileRef[];
  /** Why the batch was split (the first failure ClickHouse reported). */
  splitReason?: string;
}

/** The batch's deduplication token: a hash over its sorted (key, ETag) list. */
export function batchToken(dataSource: string, files: Array<Pick<FileRef, 'key' | 'etag'>>): string {
  const ids = files.map((f) => `${f.key}\u0000${f.etag}`).sort();
  return 's3ch-batch-' + createHash('sha256').update(`${dataSource}\u0001${ids.join('\u0001')}`).digest('hex');
}

/**
 * One block for the whole batch: squashing thresholds far above any batch,
 * so the insert writes one part per table or none. Both the minimums (a
 * block is cut only once they are reached) and, under
 * `use_strict_insert_block_limits`, the maximums: without it, the
 * deduplicating path of the materialized views cuts blocks at the default
 * 1,048,449 rows whatever the minimums say (measured on chDB 26: a
 * 1.3-million-row batch became two parts). Memory stays bounded by
 * max_memory_usage: a batch too big for it fails whole and is split.
 */
export const ONE_BLOCK_SETTINGS = {
  use_strict_insert_block_limits: 1,
  max_insert_block_size: 1_000_000_000_000,
  max_insert_block_size_rows: 1_000_000_000_000,
  max_insert_block_size_bytes: 1024 ** 4,
  min_insert_block_size_rows: 1_000_000_000_000,
  min_insert_block_size_bytes: 1024 ** 4,
  min_insert_block_size_rows_for_materialized_views: 1_000_000_000_000,
  min_insert_block_size_bytes_for_materialized_views: 1024 ** 4,
} as const;

/**
 * Rename the query parameters of one file's SELECT (`{file:String}` ->
 * `{file_3:String}`), only those the import passes, so each file of the
 * batch has its own key, ETag and path.
 */
function renameParams(sql: string, params: Record<string, string>, i: number): { sql: string; params: Record<string, string> } {
  let out = sql;
  const renamed: Record<string, string> = {};
  for (const [name, value] of Object.entries(params)) {
    out = out.split(`{${name}:`).join(`{${name}_${i}:`);
    renamed[`${name}_${i}`] = value;
  }
  return { sql: out, params: renamed };
}

export interface BatchDeps {
  destination: Destination;
  s3: S3Connections;
  ledger: Ledger;
  metaDatabase: string;
  hooks?: {
    onStart?(file: FileRef, attempt: number): void | Promise<void>;
    beforeInsert?(file: FileRef, attempt: number): void | Promise<void>;
    afterInsert?(file: FileRef, attempt: number): void | Promise<void>;
    onBatch?(files: FileRef[], attempt: number): void | Promise<void>;
  };
  startHeartbeat(details: Record<string, unknown>): () => void;
}

export function createBatchImport({ destination, s3, ledger, metaDatabase, hooks, startHeartbeat }: BatchDeps) {
  const db = destination.database;
  const meta = (t: string) => `${quoteIdent(metaDatabase)}.${quoteIdent(t)}`;

  /** The batch's insert: one SELECT per file (each pinned to its ETag), joined by UNION ALL, in one statement. */
  function statement(dataSource: string, spec: DataSourceSpec, columns: ColumnSpec[], files: FileRef[], credentials: Awaited<ReturnType<S3Connections['credentials']>>) {
    const conn = s3.get(spec.connection);
    const { bucket } = parseBucketUri(spec.bucketUri);
    const selects: string[] = [];
    const params: Record<string, string> = {};
    let settings: Record<string, string | number> = {};
    let insertInto = '';
    let secrets: string[] = [];
    files.forEach((file, i) => {
      const format = resolveFormat(spec, file.key);
      const plan = buildImportPlan(db, spec, columns, format, dataSource);
      insertInto = plan.insertInto;
      settings = { ...settings, ...plan.settings };
      const compression = format === 'parquet' ? 'none' : resolveCompression(spec, file.key) ?? 'none';
      if (compression === 'zip') throw new Error(`${file.key}: zip archives are not batched`);
      // (Batchable keys have no glob characters, so the URL names the object itself: no listing, no _path pin.)
      const target = objectUrl(conn, bucket, file.key);
      const source = s3Source({ url: target.url, credentials, format: plan.inputFormat, structure: plan.structure, compression });
      secrets = source.secrets;
      const one: ImportParams = { file: file.key, etag: file.etag, path: target.path, quotedEtag: `"${file.etag}"`, ...objectParams(file) };
      const select = insertStatement({ insertInto: '', select: plan.select, source: source.sql, globbed: target.globbed, checkEtag: true, settings: {} }).trim();
      const r = renameParams(select, { ...one } as unknown as Record<string, string>, i);
      selects.push(r.sql);
      Object.assign(params, r.params);
    });
    const all = { ...settings, ...importSettings(batchToken(dataSource, files), spec.limits.maxRowBytes), ...ONE_BLOCK_SETTINGS };
    return { query: `${insertInto} ${renderSettings(all)} ${selects.join(' UNION ALL ')}`, params, secrets };
  }

  /** Rows and quarantined rows per file version of the batch, counted by the import path (one query). */
  async function counts(dataSource: string, files: FileRef[]): Promise<Map<string, { rows: number; quarantined: number }>> {
    const rows = await queryRows<{ key: string; etag: string; rows: string; quarantined: string }>(
      destination.client,
      `SELECT key, etag, sum(rows) AS rows, sum(quarantined) AS quarantined FROM ${meta(FILE_ROWS_TABLE)}
       WHERE datasource = {ds:String} AND key IN {keys:Array(String)} GROUP BY key, etag`,
      { ds: dataSource, keys: files.map((f) => f.key) },
    );
    return new Map(rows.map((r) => [`${r.key}\u0000${r.etag}`, { rows: Number(r.rows) - Number(r.quarantined), quarantined: Number(r.quarantined) }]));
  }

  /** Older failed versions of the batch's keys are superseded by the versions just imported (one query, one write). */
  async function supersede(dataSource: string, files: FileRef[]) {
    const current = new Map(files.map((f) => [f.key, f.etag]));
    const stale = await queryRows<{ key: string; etag: string; size: string }>(
      destination.client,
      `SELECT key, etag, ${latestOf('size')} AS size FROM ${meta(LEDGER_TABLE)}
       WHERE datasource = {ds:String} AND key IN {keys:Array(String)}
       GROUP BY key, etag HAVING ${LATEST_STATUS} IN ('failure', 'pending_retry', 'queued')`,
      { ds: dataSource, keys: [...current.keys()] },
    );
    await ledger.record(
      stale
        .filter((s) => current.get(s.key) !== s.etag)
        .map((s) => ({ datasource: dataSource, key: s.key, etag: s.etag, size: Number(s.size), attempt: 0, status: 'cancelled', error: `superseded by version ${current.get(s.key)}` })),
    );
  }

  return async function importBatch({ dataSource, spec, columns, files, runId }: ImportBatchInput): Promise<ImportBatchResult> {
    const ctx = Context.current();
    const attempt = ctx.info.attempt;
    const progress: Record<string, unknown> = { phase: 'start', files: files.length };
    const stopBeat = startHeartbeat(progress);
    const event = (f: FileRef, e: Partial<FileEvent> & Pick<FileEvent, 'status'>): FileEvent => ({ datasource: dataSource, key: f.key, etag: f.etag, size: f.size, attempt, run_id: runId, ...e });
    // A file the batch path must not take (the plan and this check are the same pure function,
    // so this happens only with an input built by hand): all go one by one, before anything is written.
    const refused = files.find((f) => !isBatchable(spec, f));
    if (refused || new Set(files.map((f) => f.key)).size !== files.length) {
      stopBeat();
      return { files: [], split: files, splitReason: refused ? `${refused.key} is not imported in batches` : 'a key appears twice in the batch' };
    }
    /** Record success (one ledger write) for files whose rows are counted, and supersede their older failed versions. */
    const succeed = async (done: FileRef[], counted: Map<string, { rows: number; quarantined: number }>): Promise<BatchFileResult[]> => {
      progress.phase = 'recording';
      const out = done.map((f) => {
        const c = counted.get(`${f.key}\u0000${f.etag}`) ?? { rows: 0, quarantined: 0 };
        return { key: f.key, etag: f.etag, rows: c.rows, quarantinedRows: c.quarantined, bytes: f.size };
      });
      await ledger.record(done.map((f, i) => event(f, { status: 'success', rows: out[i]!.rows, quarantined_rows: out[i]!.quarantinedRows, bytes: f.size })));
      await supersede(dataSource, done);
      return out;
    };
    let inserted = false;
    let todo = files;
    let before = new Map<string, { rows: number; quarantined: number }>();
    try {
      await hooks?.onBatch?.(files, attempt);
      for (const f of files) await hooks?.onStart?.(f, attempt);
      await ledger.record(files.map((f) => event(f, { status: 'running' })));
      const signal = ctx.cancellationSignal;
      // Versions whose rows are already counted are in (an earlier attempt of this batch, which is
      // all-or-nothing, or an earlier import of the same version): only the others are inserted.
      before = await counts(dataSource, files);
      todo = files.filter((f) => !before.has(`${f.key}\u0000${f.etag}`));
      for (const f of files) await hooks?.beforeInsert?.(f, attempt);
      if (todo.length) {
        progress.phase = 'insert';
        const credentials = await s3.credentials(spec.connection);
        const { query, params, secrets } = statement(dataSource, spec, columns, todo, credentials);
        try {
          await destination.imports.command({ query, query_params: params, abort_signal: signal });
        } catch (err) {
          throw scrubSecrets(err, secrets);
        }
      }
      inserted = true;
      for (const f of files) await hooks?.afterInsert?.(f, attempt);
      progress.phase = 'counting';
      return { files: await succeed(files, todo.length ? await counts(dataSource, files) : before), split: [] };
    } catch (e) {
      if (ctx.cancellationSignal.aborted) {
        await ledger.record(files.map((f) => event(f, { status: 'cancelled', error: 'cancelled' }))).catch(() => undefined);
        throw e instanceof CancelledFailure ? e : new CancelledFailure('import cancelled');
      }
      const failure = classify(e);
      // A ClickHouse server too old for the one-block settings rejects the statement before it runs.
      const rejected = (e as { type?: string } | null)?.type === 'UNKNOWN_SETTING';
      if ((isNonRetryable(failure.kind) || rejected) && !inserted) {
        // A file problem: the one-block insert committed nothing, so each file goes its own way now.
        const loaded = files.filter((f) => !todo.includes(f));
        return { files: loaded.length ? await succeed(loaded, before) : [], split: todo, splitReason: failure.message };
      }
      await ledger.record(files.map((f) => event(f, { status: 'pending_retry', error: failure.message }))).catch(() => undefined);
      // After the insert, only the same batch may run again (its token deduplicates): never split then.
      if (inserted) throw ApplicationFailure.create({ type: failure.kind, message: failure.message, nonRetryable: false });
      throw toApplicationFailure(failure);
    } finally {
      stopBeat();
    }
  };
}
