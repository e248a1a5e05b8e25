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
import { stageSettings } from '../clickhouse/import-settings.js';
import { renderSettings } from '../clickhouse/destination.js';
import { buildImportPlan } from './ddl.js';
import type { createCommitPath } from './commit.js';
import { queryRows, type Destination } from '../clickhouse/destination.js';
import { classify, isNonRetryable, toApplicationFailure } from './errors.js';
import { resolveCompression, resolveFormat } from './formats.js';
import { LATEST_STATUS, LEDGER_TABLE, latestOf, type FileEvent, type Ledger } from './ledger.js';
import type { S3Connections } from '../s3/connections.js';
import type { FileRef } from './schema.js';

/**
 * Many small files in one activity and one insert.
 *
 * Exactly once, the argument: the batch goes through the commit path of
 * activities/commit.ts like every import. Its versions are looked up in the
 * commit records first (committed: in; staged by an earlier attempt: that
 * stage is moved again), the rest are read in one statement (one SELECT per
 * file, each pinned to its ETag, joined by UNION ALL) into this attempt's own
 * staging tables, recorded as staged, moved into the target under the batch's
 * token (a hash of its sorted (key, ETag) list, fixed by the activity input)
 * and recorded as committed.
 *
 * - A file problem while staging (bad data, an object gone or changed: what
 *   retrying cannot fix) leaves nothing recorded and nothing moved: the
 *   activity *completes* returning every file not in as `split`, and the
 *   workflow imports them one by one (their own tokens, retries, statuses).
 * - Any failure once the stage is recorded is retried, never split: every
 *   later attempt, of this batch or of one of its files alone (after the
 *   batch's retries ran out), finds the stage recorded and moves it again
 *   under the batch's token, so a part of the move that committed is not
 *   added twice and the rest is added once.
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
  /** The commit path every import goes through (activities/commit.ts). */
  commit: ReturnType<typeof createCommitPath>;
  /** See CommitInput.verifyUnread. */
  verifyUnread(spec: DataSourceSpec, files: FileRef[], signal: AbortSignal | undefined): Promise<void>;
}

export function createBatchImport({ destination, s3, ledger, metaDatabase, hooks, startHeartbeat, commit, verifyUnread }: BatchDeps) {
  const db = destination.database;
  const meta = (t: string) => `${quoteIdent(metaDatabase)}.${quoteIdent(t)}`;

  /** The batch's insert: one SELECT per file (each pinned to its ETag), joined by UNION ALL, in one statement. */
  function statement(dataSource: string, spec: DataSourceSpec, columns: ColumnSpec[], files: FileRef[], credentials: Awaited<ReturnType<S3Connections['credentials']>>, insertInto: string, extra: Record<string, string | number>) {
    const conn = s3.get(spec.connection);
    const { bucket } = parseBucketUri(spec.bucketUri);
    const selects: string[] = [];
    const params: Record<string, string> = {};
    let settings: Record<string, string | number> = {};
    let secrets: string[] = [];
    files.forEach((file, i) => {
      const format = resolveFormat(spec, file.key);
      const plan = buildImportPlan(db, spec, columns, format, dataSource);
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
    const all = { ...settings, ...stageSettings(spec.limits.maxRowBytes), ...extra };
    return { query: `${insertInto} ${renderSettings(all)} ${selects.join(' UNION ALL ')}`, params, secrets };
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
    const progressOf = { recorded: false };
    try {
      await hooks?.onBatch?.(files, attempt);
      for (const f of files) await hooks?.onStart?.(f, attempt);
      await ledger.record(files.map((f) => event(f, { status: 'running' })));
      const signal = ctx.cancellationSignal;
      const plan = buildImportPlan(db, spec, columns, resolveFormat(spec, files[0]!.key), dataSource);
      const counted = await commit({
        dataSource, table: spec.table, plan, files, generation: 0, token: batchToken(dataSource, files), attempt, signal, progress,
        stage: async (insertInto, extra) => {
          for (const f of files) await hooks?.beforeInsert?.(f, attempt);
          progress.phase = 'insert';
          const credentials = await s3.credentials(spec.connection);
          const { query, params, secrets } = statement(dataSource, spec, columns, files, credentials, insertInto, extra);
          try {
            await destination.imports.command({ query, query_params: params, abort_signal: signal });
          } catch (err) {
            throw scrubSecrets(err, secrets);
          }
        },
        versionOf: (file, etag) => ({ key: file, etag }),
        verifyUnread: (unread) => verifyUnread(spec, unread, signal),
        onRecorded: () => {
          progressOf.recorded = true;
        },
      });
      for (const f of files) await hooks?.afterInsert?.(f, attempt);
      return { files: await succeed(files, counted), split: [] };
    } catch (e) {
      if (ctx.cancellationSignal.aborted) {
        await ledger.record(files.map((f) => event(f, { status: 'cancelled', error: 'cancelled' }))).catch(() => undefined);
        throw e instanceof CancelledFailure ? e : new CancelledFailure('import cancelled');
      }
      const failure = classify(e);
      // A ClickHouse server too old for a setting rejects the statement before it runs.
      const rejected = (e as { type?: string } | null)?.type === 'UNKNOWN_SETTING';
      if ((isNonRetryable(failure.kind) || rejected) && !progressOf.recorded) {
        // A file problem while staging: nothing was recorded or moved, so each file goes its own way now
        // (each one's commit-record lookup still finds a version an earlier batch committed).
        return { files: [], split: files, splitReason: failure.message };
      }
      await ledger.record(files.map((f) => event(f, { status: 'pending_retry', error: failure.message }))).catch(() => undefined);
      // Once staged, only a move of that stage may add the rows: retried, never split.
      if (progressOf.recorded) throw ApplicationFailure.create({ type: failure.kind, message: failure.message, nonRetryable: false });
      throw toApplicationFailure(failure);
    } finally {
      stopBeat();
    }
  };
}
