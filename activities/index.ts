import { Context, CancelledFailure } from '@temporalio/activity';
import { ApplicationFailure } from '@temporalio/common';
import { GetObjectCommand } from '@aws-sdk/client-s3';
import { createSchemaTools } from './schema.js';
import { createHash } from 'node:crypto';
import type { Readable } from 'node:stream';
import type { ColumnSpec, DataSourceSpec } from '../schemas/datasource.js';
import { parseBucketUri, compileGlob } from '../schemas/glob.js';
import { quoteIdent } from '../schemas/identifiers.js';
import { buildImportPlan, dropStatements, tableNames, type ResolvedFormat } from './ddl.js';
import { queryRows, type Compression, type Destination } from './destination.js';
import { classify, toApplicationFailure, ImportError } from './errors.js';
import { isDataFileName, resolveCompression, resolveFormat } from './formats.js';
import { forEachZipEntry, sniffCompression, type ZipEntry } from './zip.js';
import { createWriteStream } from 'node:fs';
import { rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomUUID } from 'node:crypto';
import { pipeline } from 'node:stream/promises';
import { Ledger, type FileStatus } from './ledger.js';
import type { S3Connections } from './s3.js';

import type { FileRef } from './schema.js';
export type { FileRef } from './schema.js';

export interface DiscoverInput {
  dataSource: string;
  spec: DataSourceSpec;
  runId: string;
  /** Most new files to return (a batch); the rest come in the next batch. */
  limit: number;
  /**
   * List only keys after this one: the ordered-mode marker, or in tracked mode
   * where the previous batch of the same sweep stopped (so a large backlog is
   * listed once, not once per batch).
   */
  startAfter?: string;
}

export interface DiscoverResult {
  files: FileRef[];
  /** True when more new files remain beyond this batch. */
  more: boolean;
  /** With `more`: the key to continue after in the next batch of this sweep. */
  cursor: string | null;
  listed: number;
}

export interface PrepareInput {
  dataSource: string;
  spec: DataSourceSpec;
}

export interface PrepareResult {
  /** Columns in use (declared, inferred or from an existing table); null while no file exists to infer from. */
  columns: ColumnSpec[] | null;
  inferredFrom: string | null;
}

export interface ImportInput {
  dataSource: string;
  spec: DataSourceSpec;
  columns: ColumnSpec[];
  file: FileRef;
  runId: string;
  /** Columns were inferred: a file with new columns stops with `schema_changed` so the table can grow first. */
  evolve?: boolean;
}

/** Failure type an import ends with when its file has columns the table lacks; details[0] is ColumnSpec[]. */
export const SCHEMA_CHANGED = 'schema_changed';

export interface ImportResult {
  rows: number;
  quarantinedRows: number;
  bytes: number;
}

export interface RecordStatusInput {
  dataSource: string;
  files: FileRef[];
  status: FileStatus;
  attempt?: number;
  error?: string;
  runId?: string;
}

export interface ActivityDeps {
  destination: Destination;
  s3: S3Connections;
  /** Where the connector keeps its own tables (ledger, runs). */
  metaDatabase?: string;
  /** Fault-injection points for the failure tests; never set in production. */
  hooks?: ImportHooks;
  /** One line per sync run that found files (npm start and the standalone worker print these). */
  log?: (line: string) => void;
}

export interface ImportHooks {
  /** After a file's rows are inserted, before its ledger entry says success. */
  afterInsert?(file: FileRef, attempt: number): void | Promise<void>;
  /** Before a file's insert starts. */
  beforeInsert?(file: FileRef, attempt: number): void | Promise<void>;
}


/** The identity of one file version; its hash is the insert's deduplication token. */
const HEARTBEAT_EVERY_MS = 2000;

/**
 * Longest physical line a text file may have. Rows over maxRowBytes are
 * quarantined row by row; a line far beyond that would make ClickHouse hold
 * it whole in memory, so the file is refused instead.
 */
export function maxLineBytes(maxRowBytes: number): number {
  return Math.max(64 * 1024 * 1024, 8 * maxRowBytes);
}

/** A type made nullable where ClickHouse allows it, so rows from older files read NULL. */
function nullableType(type: string): string {
  return /^(Nullable|Array|Map|Tuple|LowCardinality|JSON|Dynamic)\b/.test(type) ? type : `Nullable(${type})`;
}

/** Read the first bytes of a stream and put them back, for sniffing. */
async function peek(stream: Readable, n: number): Promise<{ head: Buffer; stream: Readable }> {
  const head = await new Promise<Buffer>((resolve, reject) => {
    const cleanup = () => {
      stream.off('readable', onReadable);
      stream.off('end', onEnd);
      stream.off('error', onError);
    };
    const onReadable = () => {
      const chunk = stream.read() as Buffer | null;
      if (chunk === null) return;
      cleanup();
      resolve(chunk);
    };
    const onEnd = () => {
      cleanup();
      resolve(Buffer.alloc(0));
    };
    const onError = (err: Error) => {
      cleanup();
      reject(err);
    };
    stream.on('readable', onReadable);
    stream.once('end', onEnd);
    stream.once('error', onError);
  });
  if (head.length) stream.unshift(head);
  return { head: head.subarray(0, n), stream };
}

export function dedupToken(dataSource: string, key: string, etag: string): string {
  return 's3ch-' + createHash('sha256').update(`${dataSource}\u0000${key}\u0000${etag}`).digest('hex');
}

function heartbeatSafely(details: unknown) {
  try {
    Context.current().heartbeat(details);
  } catch {
    // Outside an activity context (unit tests): nothing to report to.
  }
}

export function currentSignal(): AbortSignal | undefined {
  try {
    return Context.current().cancellationSignal;
  } catch {
    return undefined;
  }
}

export function createActivities({ destination, s3, metaDatabase, hooks, log }: ActivityDeps) {
  const db = destination.database;
  const ledger = new Ledger(destination.client, metaDatabase ?? db);

  const schema = createSchemaTools({ destination, s3 });

  /**
   * A zip object is spooled to local disk (its directory is at the end) and
   * each data entry is inserted as its own source with its own deduplication
   * token (`key::entry`). Entries whose format cannot be told are skipped.
   */
  async function importZip(body: Readable, file: FileRef, signal: AbortSignal, onEntry: (entry: ZipEntry) => Promise<boolean>): Promise<void> {
    const dir = destination.spoolDir ?? tmpdir();
    const path = join(dir, `${randomUUID()}.zip`);
    try {
      await pipeline(body, createWriteStream(path), { signal });
      let imported = 0;
      await forEachZipEntry(path, async (entry) => {
        if (await onEntry(entry)) imported++;
      });
      if (imported === 0) throw new ImportError('bad_file', `${file.key}: the zip archive has no entry of a known data format (csv, tsv, ndjson, jsonl, json, parquet)`);
    } finally {
      await rm(path, { force: true });
    }
  }

  /** Columns this file has that the table lacks (CSV with a header, NDJSON; by ClickHouse's inference on the file's head). */
  async function newColumns(spec: DataSourceSpec, columns: ColumnSpec[], file: FileRef): Promise<ColumnSpec[]> {
    let format: ResolvedFormat;
    try {
      format = resolveFormat(spec, file.key);
    } catch {
      return [];
    }
    if (format === 'parquet' || (format === 'csv' && spec.csv?.header === false)) return [];
    const compression = resolveCompression(spec, file.key);
    if (compression === 'zip' || compression === 'zstd') return [];
    const known = new Set(columns.flatMap((c) => [c.name, c.source ?? c.name, c.path?.replace(/^\$\./, '') ?? c.name]));
    const inferred = await schema.inferColumns(spec, file).catch(() => [] as ColumnSpec[]);
    return inferred.filter((c) => !known.has(c.name)).map((c) => ({ ...c, type: nullableType(c.type) }));
  }

  async function existingColumns(table: string): Promise<ColumnSpec[] | null> {
    const rows = await queryRows<{ name: string; type: string }>(
      destination.client,
      `SELECT name, type FROM system.columns WHERE database = {db:String} AND table = {t:String} AND default_kind NOT IN ('MATERIALIZED', 'ALIAS') ORDER BY position`,
      { db, t: table },
    );
    return rows.length ? rows : null;
  }

  return {
    /** Make the tables, the landing table and the views exist for a spec. Idempotent. */
    async prepareDataSource({ dataSource, spec }: PrepareInput): Promise<PrepareResult> {
      await ledger.ensureTables();
      s3.get(spec.connection);
      let columns = spec.columns ?? (await existingColumns(spec.table));
      let inferredFrom: string | null = null;
      if (!columns) {
        const ref = await schema.firstMatchingObject(spec).catch((e) => {
          throw toApplicationFailure(classify(e));
        });
        if (!ref) return { columns: null, inferredFrom: null };
        columns = await schema.inferColumns(spec, ref);
        inferredFrom = ref.key;
      }
      const plan = buildImportPlan(db, spec, columns, 'csv', dataSource);
      // The landing table and views are rebuilt only when the plan changes, so an
      // unchanged data source keeps the same views (and deduplication state).
      const planHash = createHash('sha256').update(plan.create.join('\n')).digest('hex').slice(0, 16);
      const landingName = `${spec.table}_s3ch_landing`;
      const [current] = await queryRows<{ comment: string }>(
        destination.client,
        'SELECT comment FROM system.tables WHERE database = {db:String} AND name = {t:String}',
        { db, t: landingName },
      );
      if (current?.comment !== `plan:${planHash}`) {
        for (const sql of dropStatements(plan.names, false)) await destination.client.command({ query: sql });
        for (const sql of plan.create) {
          const withComment = sql.includes('ENGINE = Null') ? `${sql} COMMENT 'plan:${planHash}'` : sql;
          await destination.client.command({ query: withComment });
        }
      }
      return { columns, inferredFrom };
    },

    /** List the bucket under the glob's literal prefix and return the next batch of files not yet settled. */
    async discoverFiles({ dataSource, spec, runId, limit, startAfter }: DiscoverInput): Promise<DiscoverResult> {
      const found: FileRef[] = [];
      let listed = 0;
      let more = false;
      try {
        for await (const page of schema.matchingPages(spec, { startAfter, signal: currentSignal() })) {
          listed += page.listed;
          const settled = await ledger.settled(dataSource, page.files.map((f) => f.key));
          for (const f of page.files) {
            if (settled.has(`${f.key}\u0000${f.etag}`)) continue;
            if (found.length >= limit) {
              more = true;
              break;
            }
            found.push(f);
          }
          heartbeatSafely({ listed, found: found.length });
          if (more) break;
        }
      } catch (e) {
        throw toApplicationFailure(classify(e));
      }
      await ledger.record(found.map((f) => ({ datasource: dataSource, key: f.key, etag: f.etag, size: f.size, attempt: 0, status: 'queued', run_id: runId })));
      // Listing is in key order, so the last file taken is where the next batch continues.
      return { files: found, more, cursor: more ? found[found.length - 1]?.key ?? null : null, listed };
    },

    /** Stream one object from S3 into ClickHouse; ClickHouse parses it natively. */
    async importFile({ dataSource, spec, columns, file, runId, evolve }: ImportInput): Promise<ImportResult> {
      const ctx = Context.current();
      const attempt = ctx.info.attempt;
      const base = { datasource: dataSource, key: file.key, etag: file.etag, size: file.size, attempt, run_id: runId };
      await ledger.record([{ ...base, status: 'running' }]);
      let beat: ReturnType<typeof setInterval> | undefined;
      let body: Readable | undefined;
      try {
        if (spec.limits.maxFileBytes > 0 && file.size > spec.limits.maxFileBytes) {
          throw new ImportError('too_large', `file is ${file.size} bytes, over the data source's maxFileBytes of ${spec.limits.maxFileBytes}`);
        }
        if (evolve) {
          const added = await newColumns(spec, columns, file);
          if (added.length) {
            await ledger.record([{ ...base, status: 'queued', error: `new columns ${added.map((c) => c.name).join(', ')}: the table is extended first` }]);
            throw ApplicationFailure.create({ type: SCHEMA_CHANGED, nonRetryable: true, message: `new columns: ${added.map((c) => c.name).join(', ')}`, details: [added] });
          }
        }
        const { bucket } = parseBucketUri(spec.bucketUri);
        const signal = ctx.cancellationSignal;
        // IfMatch pins the version that was listed: a file replaced mid-import fails loudly instead of mixing versions.
        const obj = await s3.client(spec.connection).send(new GetObjectCommand({ Bucket: bucket, Key: file.key, IfMatch: `"${file.etag}"` }), { abortSignal: signal });
        body = obj.Body as Readable;
        let compression = resolveCompression(spec, file.key);
        if (compression === null) {
          // The name does not say: the first bytes do.
          const peeked = await peek(body, 8);
          body = peeked.stream;
          compression = sniffCompression(peeked.head);
        }
        // Heartbeat on a timer, not only on bytes: ClickHouse may parse a spooled
        // file for minutes after the download ended, and silence would look like a dead worker.
        const progress: { phase: string; bytes: number; size: number; entry?: string } = { phase: 'download', bytes: 0, size: file.size };
        beat = setInterval(() => ctx.heartbeat(progress), HEARTBEAT_EVERY_MS);
        await hooks?.beforeInsert?.(file, attempt);
        const insertOne = async (source: Readable, id: string, name: string, comp: Compression) => {
          const format = resolveFormat(spec, name);
          const plan = buildImportPlan(db, spec, columns, format, dataSource);
          await destination.insertStream({
            maxLineBytes: format === 'parquet' ? undefined : maxLineBytes(spec.limits.maxRowBytes),
            sql: plan.insertSql,
            format: plan.inputFormat,
            structure: plan.structure,
            compression: comp,
            body: source,
            label: id,
            params: { file: id, etag: file.etag },
            settings: {
              ...plan.settings,
              insert_deduplicate: 1,
              insert_deduplication_token: dedupToken(dataSource, id, file.etag),
              deduplicate_blocks_in_dependent_materialized_views: 1,
              // One insert stream keeps block boundaries identical on a retry, so
              // every block of a half-finished insert is recognised as a duplicate.
              max_threads: 1,
              max_insert_threads: 1,
            },
            signal,
            onBytes: (bytes) => {
              progress.bytes = bytes;
              if (bytes >= file.size) progress.phase = 'insert';
            },
          });
        };
        if (compression === 'zip') {
          await importZip(body, file, signal, async (entry) => {
            progress.entry = entry.name;
            // Not a data file (README, manifest...): skipped.
            if (!isDataFileName(entry.name)) return false;
            const inner = resolveCompression({ compression: 'auto' }, entry.name);
            if (inner === 'zip') throw new ImportError('bad_file', `zip entry ${entry.name} is itself a zip archive; nested archives are not read`);
            await insertOne(await entry.open(), `${file.key}::${entry.name}`, entry.name, inner ?? 'none');
            return true;
          });
        } else {
          await insertOne(body, file.key, file.key, compression);
        }
        await hooks?.afterInsert?.(file, attempt);
        ctx.heartbeat({ phase: 'counting' });
        const { rows, quarantined } = await ledger.fileRows(dataSource, file.key, file.etag);
        await ledger.record([{ ...base, status: 'success', rows, quarantined_rows: quarantined, bytes: file.size }]);
        // Older versions of this key that failed will never be retried now: say so, rather than leave them as failures.
        await ledger.supersede(dataSource, file.key, file.etag);
        return { rows, quarantinedRows: quarantined, bytes: file.size };
      } catch (e) {
        if (e instanceof ApplicationFailure && e.type === SCHEMA_CHANGED) throw e;
        if (ctx.cancellationSignal.aborted) {
          await ledger.record([{ ...base, status: 'cancelled', error: 'cancelled' }]).catch(() => undefined);
          throw e instanceof CancelledFailure ? e : new CancelledFailure('import cancelled');
        }
        const failure = classify(e);
        const af = toApplicationFailure(failure);
        await ledger
          .record([{ ...base, status: af.nonRetryable ? 'failure' : 'pending_retry', error: failure.message }])
          .catch(() => undefined);
        throw af;
      } finally {
        clearInterval(beat);
        // Release the S3 connection whatever happened (a failure before the body was read leaves it open).
        body?.destroy();
      }
    },

    /** Add columns a newer file brought (nullable: older rows read NULL); returns the full column list. */
    async evolveSchema({ spec, columns, add }: { dataSource: string; spec: DataSourceSpec; columns: ColumnSpec[]; add: ColumnSpec[] }): Promise<ColumnSpec[]> {
      const names = tableNames(db, spec.table);
      const have = new Set(columns.map((c) => c.name));
      const fresh = add.filter((c) => !have.has(c.name));
      for (const c of fresh) {
        await destination.client.command({ query: `ALTER TABLE ${names.target} ADD COLUMN IF NOT EXISTS ${quoteIdent(c.name)} ${c.type}` });
      }
      return [...columns, ...fresh];
    },

    /** Record a status for files the workflow settles itself (retries exhausted, cancelled before start, paused). */
    async recordFileStatus({ dataSource, files, status, attempt, error, runId }: RecordStatusInput): Promise<void> {
      await ledger.record(files.map((f) => ({ datasource: dataSource, key: f.key, etag: f.etag, size: f.size, attempt: attempt ?? 0, status, error, run_id: runId })));
    },

    async recordRun(run: Parameters<Ledger['recordRun']>[0]): Promise<void> {
      await ledger.recordRun(run);
      if (log && (run.files_found > 0 || run.files_failed > 0)) {
        const seconds = (Date.parse(run.finished_at.replace(' ', 'T') + 'Z') - Date.parse(run.started_at.replace(' ', 'T') + 'Z')) / 1000;
        log(`[${run.datasource}] ${run.trigger} run: ${run.files_imported}/${run.files_found} files, ${run.rows.toLocaleString('en-US')} rows in ${seconds.toFixed(1)} s` + (run.files_failed ? `, ${run.files_failed} failed (GET /v1/datasources/${run.datasource}/files?status=failure)` : ''));
      }
    },

    /** Files to import again: the listed keys (current version from S3) or every file whose latest status is failure. */
    async filesToRetry({ dataSource, spec, keys, onlyUnsettled, after, limit }: { dataSource: string; spec: DataSourceSpec; keys?: string[]; onlyUnsettled?: boolean; after?: string; limit?: number }): Promise<FileRef[]> {
      const explicit = Boolean(keys?.length);
      // Without keys: a page of the files whose latest status is failure (key order, after `after`), looked up at
      // their current version, so a file fixed in place (new ETag) is retried as what is there now. Objects found
      // gone do not make the page short: the next failures are read in their place, so a short page is the last.
      const wanted = explicit ? keys! : ledger.failedKeysFilling(dataSource, after, limit ?? 10_000, () => out.length);
      const match = compileGlob(parseBucketUri(spec.bucketUri).pattern);
      const out: FileRef[] = [];
      for await (const key of wanted) {
        if (onlyUnsettled && !match(key)) continue;
        try {
          out.push(await schema.currentVersion(spec, key));
        } catch (e) {
          const failure = classify(e);
          // A notified object may be gone already: the listing safety net decides then.
          if (onlyUnsettled) continue;
          if (explicit) throw ApplicationFailure.nonRetryable(`cannot retry ${key}: ${failure.message}`, 'retry_failed');
          // Gone for good: record why, so it stops being listed as a failure to retry.
          if (failure.kind === 'object_missing') {
            await ledger.record([{ datasource: dataSource, key, etag: '', size: 0, attempt: 0, status: 'failure', error: failure.message }]);
            continue;
          }
          throw toApplicationFailure(failure);
        }
        heartbeatSafely({ checked: out.length });
      }
      if (!onlyUnsettled) return out;
      const settled = await ledger.settled(dataSource, out.map((f) => f.key));
      const fresh = out.filter((f) => !settled.has(`${f.key}\u0000${f.etag}`));
      await ledger.record(fresh.map((f) => ({ datasource: dataSource, key: f.key, etag: f.etag, size: f.size, attempt: 0, status: 'queued' })));
      return fresh;
    },

    /** Remove a data source's import path; its table and ledger rows only when asked. */
    async dropDataSource({ dataSource, spec, dropTable, dropLedger }: { dataSource: string; spec: DataSourceSpec; dropTable: boolean; dropLedger: boolean }): Promise<void> {
      for (const sql of dropStatements(tableNames(db, spec.table), dropTable)) await destination.client.command({ query: sql });
      if (dropLedger) await ledger.deleteDataSource(dataSource);
    },
  };
}

export type Activities = ReturnType<typeof createActivities>;
