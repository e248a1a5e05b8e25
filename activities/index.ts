import { withCheckedExpressions } from '../clickhouse/spec-expressions.js';
import { SqlGuardError } from '../clickhouse/sql-guard.js';
import { Context, CancelledFailure } from '@temporalio/activity';
import { ApplicationFailure } from '@temporalio/common';
import { GetObjectCommand, HeadObjectCommand } from '@aws-sdk/client-s3';
import { createSchemaTools } from './schema.js';
import { createHash } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { finished, pipeline } from 'node:stream/promises';
import type { Readable } from 'node:stream';
import { keyAfter, modifiedSince, type ColumnSpec, type DataSourceSpec } from '../schemas/datasource.js';
import { parseBucketUri, compileGlob } from '../schemas/glob.js';
import { quoteIdent, quoteString } from '../schemas/identifiers.js';
import { buildImportPlan, dropStatements, tableNames, type ResolvedFormat } from './ddl.js';
import { queryRows, type Compression, type Destination } from '../clickhouse/destination.js';
import { classify, toApplicationFailure, ImportError } from './errors.js';
import { isDataFileName, resolveCompression, resolveFormat } from './formats.js';
import { forEachZipEntry, sniffCompression } from './zip.js';
import { Ledger, type FileStatus } from './ledger.js';
import type { S3Connections, S3Credentials } from '../s3/connections.js';
import { objectUrl } from '../s3/object-url.js';
import { s3Source, scrubSecrets } from '../clickhouse/s3-source.js';
import { insertStatement, linePassStatement, objectParams, type ImportParams } from '../clickhouse/import-statement.js';
import { stageSettings, S3_READ_SETTINGS, linePassMemoryLimit, maxLineBytes, IMPORT_MAX_SECONDS } from '../clickhouse/import-settings.js';

import type { FileRef } from './schema.js';
export type { FileRef } from './schema.js';
import { createBatchImport } from './import-batch.js';
import { CommitRecords, createCommitPath, dropStages, sweepStages, type CommitHooks } from './commit.js';
export type { ImportBatchInput, ImportBatchResult } from './import-batch.js';

export type { DiscoverInput, DiscoverResult } from './discovery.js';
import { createDiscovery, type DiscoverInput, type DiscoverResult } from './discovery.js';

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
  /**
   * A deliberate re-import: the file loads once more as this generation. Its
   * id goes into the deduplication token, fixed here in the input, so every
   * attempt of this import shares one token (a retry adds nothing twice)
   * while another re-import of the file gets another.
   */
  reimport?: { generation: number; id: string };
}

/** Failure type an import ends with when its file has columns the table lacks; details[0] is ColumnSpec[]. */
export const SCHEMA_CHANGED = 'schema_changed';

export interface ImportResult {
  rows: number;
  quarantinedRows: number;
  bytes: number;
}

export interface ReimportPageInput {
  dataSource: string;
  spec: DataSourceSpec;
  since?: string;
  until?: string;
  after?: string;
  limit: number;
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

export interface ImportHooks extends CommitHooks {
  /** When an import starts, after its heartbeat timer and before its first statement. */
  onStart?(file: FileRef, attempt: number): void | Promise<void>;
  /** After a file's rows are committed (moved into the target and recorded), before its ledger entry says success. */
  afterInsert?(file: FileRef, attempt: number): void | Promise<void>;
  /** Before a file's rows are read into the attempt's staging tables. */
  beforeInsert?(file: FileRef, attempt: number): void | Promise<void>;
  /** When a batch import starts, with its files (then the per-file hooks run for each). */
  onBatch?(files: FileRef[], attempt: number): void | Promise<void>;
}


const HEARTBEAT_EVERY_MS = 2000;

/** A type made nullable where ClickHouse allows it, so rows from older files read NULL. */
function nullableType(type: string): string {
  return /^(Nullable|Array|Map|Tuple|LowCardinality|JSON|Dynamic)\b/.test(type) ? type : `Nullable(${type})`;
}

/** The identity of one file version (or zip entry: `key::index::name`); its hash is the insert's deduplication token. */
export function dedupToken(dataSource: string, key: string, etag: string, reimportId?: string): string {
  // A first import's token is unchanged by re-imports existing: tables loaded before keep deduplicating it.
  const identity = `${dataSource}\u0000${key}\u0000${etag}` + (reimportId === undefined ? '' : `\u0000reimport\u0000${reimportId}`);
  return 's3ch-' + createHash('sha256').update(identity).digest('hex');
}

function heartbeatSafely(details: unknown) {
  try {
    Context.current().heartbeat(details);
  } catch {
    // Outside an activity context (unit tests): nothing to report to.
  }
}

/**
 * Heartbeat on a timer from an activity's first line, whatever it waits on:
 * with embedded chDB every statement (a ledger write, a DESCRIBE) can queue
 * behind another file's long insert, and silence past the heartbeat timeout
 * would look like a dead worker. Returns a stop function; `details` is read
 * at each beat, so callers update it as they go.
 */
export function startHeartbeat(details: Record<string, unknown> = {}): () => void {
  let ctx: Context;
  try {
    ctx = Context.current();
  } catch {
    return () => undefined; // Outside an activity (unit tests, the bench's direct calls): nothing to report to.
  }
  ctx.heartbeat(details);
  const timer = setInterval(() => ctx.heartbeat(details), HEARTBEAT_EVERY_MS);
  return () => clearInterval(timer);
}

async function withHeartbeat<T>(details: Record<string, unknown>, fn: () => Promise<T>): Promise<T> {
  const stop = startHeartbeat(details);
  try {
    return await fn();
  } finally {
    stop();
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
  const records = new CommitRecords(destination.client, metaDatabase ?? db);
  const commit = createCommitPath({ destination, records, hooks });

  /**
   * Run one import statement with its secrets scrubbed from any error, and
   * the object's name instead of a local path in the message.
   */
  async function run(query: string, params: ImportParams, secrets: string[], signal: AbortSignal | undefined, label?: { path: string; name: string }) {
    try {
      await destination.imports.command({ query, query_params: { ...params }, abort_signal: signal });
    } catch (err) {
      if (label && err instanceof Error) err.message = err.message.split(label.path).join(label.name);
      throw scrubSecrets(err, secrets);
    }
  }

  /** Versions that staged no row are still what was listed, or the import fails as changed or missing (see CommitInput.verifyUnread). */
  async function verifyUnread(spec: DataSourceSpec, files: FileRef[], signal: AbortSignal | undefined): Promise<void> {
    const { bucket } = parseBucketUri(spec.bucketUri);
    for (const f of files) {
      await s3.client(spec.connection).send(new HeadObjectCommand({ Bucket: bucket, Key: f.key, IfMatch: `"${f.etag}"` }), { abortSignal: signal });
    }
  }

  /** The compression of an object whose name does not say: its first bytes (a ranged read of 8 bytes, pinned to the listed version). */
  async function sniff(spec: DataSourceSpec, file: FileRef, signal: AbortSignal | undefined): Promise<Compression | 'zip'> {
    const { bucket } = parseBucketUri(spec.bucketUri);
    const obj = await s3.client(spec.connection).send(new GetObjectCommand({ Bucket: bucket, Key: file.key, Range: 'bytes=0-7', IfMatch: `"${file.etag}"` }), { abortSignal: signal });
    return sniffCompression(Buffer.from(await obj.Body!.transformToByteArray()));
  }

  /**
   * One object, read by ClickHouse itself: a decompression pass first for
   * gzip/zstd (a truncated or corrupt file fails before any row is
   * committed), then one INSERT ... SELECT FROM s3() into the landing table.
   */
  async function importObject(o: { dataSource: string; spec: DataSourceSpec; columns: ColumnSpec[]; file: FileRef; compression: Compression; credentials: S3Credentials | null; signal?: AbortSignal; progress: Record<string, unknown>; insertInto: string; extra: Record<string, string | number> }) {
    const { spec, file } = o;
    const format = resolveFormat(spec, file.key);
    const plan = buildImportPlan(db, spec, o.columns, format, o.dataSource);
    const conn = s3.get(spec.connection);
    const { bucket } = parseBucketUri(spec.bucketUri);
    const target = objectUrl(conn, bucket, file.key);
    const params: ImportParams = { file: file.key, etag: file.etag, path: target.path, quotedEtag: `"${file.etag}"`, ...objectParams(file) };
    const compression = format === 'parquet' ? 'none' : o.compression;
    const lineCap = maxLineBytes(spec.limits.maxRowBytes);
    if (format !== 'parquet' && (compression !== 'none' || file.size > lineCap)) {
      o.progress.phase = 'line pass';
      const lines = s3Source({ url: target.url, credentials: o.credentials, format: 'LineAsString', structure: 'line String', compression });
      const tooLong = (at: string) => new ImportError('too_large', `${at} is longer than ${lineCap} bytes: refused before parsing to keep memory bounded (rows over limits.maxRowBytes are quarantined; lines this long fail the file)`);
      let pass: { longest: string; at: string } | undefined;
      try {
        [pass] = await queryRows<{ longest: string; at: string }>(
          destination.imports,
          linePassStatement({ source: lines.sql, globbed: target.globbed, settings: { ...S3_READ_SETTINGS, max_memory_usage: linePassMemoryLimit(spec.limits.maxRowBytes), max_execution_time: IMPORT_MAX_SECONDS } }),
          { ...params },
        );
      } catch (err) {
        // Over the pass's memory cap: only a line far over the cap (or a decompression bomb) gets there.
        if ((err as { type?: string }).type === 'MEMORY_LIMIT_EXCEEDED') throw tooLong('a line');
        throw scrubSecrets(err, lines.secrets);
      }
      if (pass && Number(pass.longest) > lineCap) throw tooLong(`line ${pass.at}`);
    }
    o.progress.phase = 'insert';
    const source = s3Source({ url: target.url, credentials: o.credentials, format: plan.inputFormat, structure: plan.structure, compression });
    await run(
      insertStatement({
        insertInto: o.insertInto,
        select: plan.select,
        source: source.sql,
        globbed: target.globbed,
        checkEtag: true,
        settings: { ...plan.settings, ...stageSettings(spec.limits.maxRowBytes), ...o.extra },
      }),
      params, source.secrets, o.signal,
    );
  }

  /**
   * A zip archive. ClickHouse's S3 reader has no archive support in this
   * engine build (`s3('a.zip :: entry')` fails with "minizip library is
   * disabled"), and a server cannot read the worker's disk: the archive is
   * fetched to the worker's temporary directory (its directory is at the
   * end), and each data entry is streamed to ClickHouse in the body of an
   * `INSERT ... SELECT ... FROM input()`; a gzip or zstd entry goes as it is,
   * with its Content-Encoding, and ClickHouse decompresses it. Each entry has
   * its own deduplication token over its index and name, so two entries with
   * one name both load. Entries whose format cannot be told are skipped.
   */
  async function importZip(o: { dataSource: string; spec: DataSourceSpec; columns: ColumnSpec[]; file: FileRef; signal: AbortSignal; progress: Record<string, unknown>; insertInto: string; extra: Record<string, string | number> }) {
    const { spec, file } = o;
    const { bucket } = parseBucketUri(spec.bucketUri);
    const dir = await mkdtemp(join(tmpdir(), 's3ch-zip-'));
    const archive = join(dir, 'archive.zip');
    o.progress.phase = 'download';
    try {
      // IfMatch pins the version that was listed: a file replaced mid-download fails loudly.
      const obj = await s3.client(spec.connection).send(new GetObjectCommand({ Bucket: bucket, Key: file.key, IfMatch: `"${file.etag}"` }), { abortSignal: o.signal });
      await pipeline(obj.Body as Readable, createWriteStream(archive), { signal: o.signal });
      let imported = 0;
      await forEachZipEntry(archive, async (entry) => {
        o.progress.entry = entry.name;
        // Not a data file (README, manifest...): skipped.
        if (!isDataFileName(entry.name)) return;
        const inner = resolveCompression({ compression: 'auto' }, entry.name);
        if (inner === 'zip') throw new ImportError('bad_file', `zip entry ${entry.name} is itself a zip archive; nested archives are not read`);
        const format = resolveFormat(spec, entry.name);
        const plan = buildImportPlan(db, spec, o.columns, format, o.dataSource);
        const id = `${file.key}::${entry.name}`;
        const query = insertStatement({
          insertInto: o.insertInto,
          select: plan.select,
          source: `input(${quoteString(plan.structure)})`,
          globbed: false,
          // input() has no _etag: the archive was fetched with If-Match, so it is the listed version.
          checkEtag: false,
          settings: { ...plan.settings, ...stageSettings(spec.limits.maxRowBytes), ...o.extra },
        });
        // A zip entry's rows keep the archive's key, ETag, size and time; their file name is the entry's.
        const params: ImportParams = { file: id, etag: file.etag, path: '', quotedEtag: '', ...objectParams(file, entry.name) };
        // The entry's stream fails when the archive lies (an entry longer than
        // its header says, a bad CRC). The HTTP client that reads it as the
        // request body does not listen for that, so it is caught here: it ends
        // the statement and fails the file, instead of an uncaught stream error
        // ending the worker.
        const values = await entry.open();
        let entryError: Error | undefined;
        const entryFailed = new AbortController();
        values.on('error', (err: Error) => {
          entryError = err;
          entryFailed.abort();
        });
        try {
          const result = await destination.imports.exec({
            query: `${query} FORMAT ${plan.inputFormat}`,
            query_params: { ...params },
            values,
            abort_signal: AbortSignal.any([o.signal, entryFailed.signal]),
            http_headers: inner && inner !== 'none' ? { 'Content-Encoding': inner } : {},
          });
          result.stream.resume();
          await finished(result.stream);
        } catch (err) {
          if (entryError && !o.signal.aborted) throw new ImportError('bad_file', `zip entry ${entry.name} is damaged: ${entryError.message}`);
          throw scrubSecrets(err, []);
        }
        if (entryError) throw new ImportError('bad_file', `zip entry ${entry.name} is damaged: ${entryError.message}`);
        imported++;
      });
      if (imported === 0) throw new ImportError('bad_file', `${file.key}: the zip archive has no entry of a known data format (csv, tsv, ndjson, jsonl, json, parquet)`);
    } finally {
      await rm(dir, { recursive: true, force: true });
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
    // Partition columns inference suggests are not new content: only the reference file's partitions become columns.
    return inferred.filter((c) => c.from === undefined && !known.has(c.name)).map((c) => ({ ...c, type: nullableType(c.type) }));
  }

  async function existingColumns(table: string): Promise<ColumnSpec[] | null> {
    const rows = await queryRows<{ name: string; type: string }>(
      destination.client,
      `SELECT name, type FROM system.columns WHERE database = {db:String} AND table = {t:String} AND default_kind NOT IN ('MATERIALIZED', 'ALIAS') ORDER BY position`,
      { db, t: table },
    );
    return rows.length ? rows : null;
  }

  async function prepare(dataSource: string, userSpec: DataSourceSpec): Promise<PrepareResult> {
    // DDL splices only ClickHouse's canonical text of allow-listed expressions, whoever wrote the spec.
    const spec = await withCheckedExpressions(destination.client, userSpec).catch((e: unknown) => {
      throw e instanceof SqlGuardError ? ApplicationFailure.nonRetryable(e.message, 'bad_spec') : e;
    });
    await ledger.ensureTables();
    await records.ensureTable();
    // Staging tables of attempts killed before they recorded anything: nothing will move them.
    await sweepStages(destination, records, dataSource, spec.table).catch(() => 0);
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
  }

  const discover = createDiscovery({ ledger, pages: schema.matchingPages });
  const importBatch = createBatchImport({ destination, s3, ledger, metaDatabase: metaDatabase ?? db, hooks, startHeartbeat, commit, verifyUnread });

  async function importOne({ dataSource, spec, columns, file, runId, evolve, reimport }: ImportInput): Promise<ImportResult> {
    const ctx = Context.current();
    // Heartbeats start before anything that can wait on ClickHouse (the ledger write included).
    const progress: Record<string, unknown> = { phase: 'start', size: file.size };
    const stopBeat = startHeartbeat(progress);
    const attempt = ctx.info.attempt;
    const base = { datasource: dataSource, key: file.key, etag: file.etag, size: file.size, attempt, run_id: runId, generation: reimport?.generation ?? 0 };
    /** The rows may be moving into the target: from then on only a retry (which moves the recorded stage) may finish. */
    let recorded = false;
    try {
      await hooks?.onStart?.(file, attempt);
      await ledger.record([{ ...base, status: 'running' }]);
      if (spec.limits.maxFileBytes > 0 && file.size > spec.limits.maxFileBytes) {
        throw new ImportError('too_large', `file is ${file.size} bytes, over the data source's maxFileBytes of ${spec.limits.maxFileBytes}`);
      }
      if (evolve) {
        progress.phase = 'schema';
        const added = await newColumns(spec, columns, file);
        if (added.length) {
          await ledger.record([{ ...base, status: 'queued', error: `new columns ${added.map((c) => c.name).join(', ')}: the table is extended first` }]);
          throw ApplicationFailure.create({ type: SCHEMA_CHANGED, nonRetryable: true, message: `new columns: ${added.map((c) => c.name).join(', ')}`, details: [added] });
        }
      }
      const signal = ctx.cancellationSignal;
      // The staging tables' columns are the same whatever the format: any plan of the data source makes them.
      let planFormat: ResolvedFormat = 'csv';
      try {
        planFormat = resolveFormat(spec, file.key);
      } catch {
        // A zip archive under format auto: its entries say their formats.
      }
      const plan = buildImportPlan(db, spec, columns, planFormat, dataSource);
      const counted = await commit({
        dataSource, table: spec.table, plan, files: [file], generation: reimport?.generation ?? 0,
        token: dedupToken(dataSource, file.key, file.etag, reimport?.id), attempt, signal, progress,
        stage: async (insertInto, extra) => {
          // The name says; only a name without a data extension is sniffed by its first bytes.
          const compression = resolveCompression(spec, file.key) ?? (isDataFileName(file.key) ? 'none' : await sniff(spec, file, signal));
          await hooks?.beforeInsert?.(file, attempt);
          if (compression === 'zip') {
            await importZip({ dataSource, spec, columns, file, signal, progress, insertInto, extra });
          } else {
            const credentials = await s3.credentials(spec.connection);
            await importObject({ dataSource, spec, columns, file, compression, credentials, signal, progress, insertInto, extra });
          }
        },
        // Every staged row is this version's (a zip entry's `_file` is `key::entry`).
        versionOf: () => file,
        verifyUnread: (unread) => verifyUnread(spec, unread, signal),
        onRecorded: () => {
          recorded = true;
        },
      });
      await hooks?.afterInsert?.(file, attempt);
      const { rows, quarantined } = counted.get(`${file.key}\u0000${file.etag}`) ?? { rows: 0, quarantined: 0 };
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
      const af = recorded ? ApplicationFailure.create({ type: failure.kind, message: failure.message, nonRetryable: false }) : toApplicationFailure(failure);
      await ledger
        .record([{ ...base, status: af.nonRetryable ? 'failure' : 'pending_retry', error: failure.message }])
        .catch(() => undefined);
      throw af;
    } finally {
      stopBeat();
    }
  }

  async function evolve({ spec, columns, add }: { dataSource: string; spec: DataSourceSpec; columns: ColumnSpec[]; add: ColumnSpec[] }): Promise<ColumnSpec[]> {
    const names = tableNames(db, spec.table);
    const have = new Set(columns.map((c) => c.name));
    const fresh = add.filter((c) => !have.has(c.name));
    for (const c of fresh) {
      await destination.client.command({ query: `ALTER TABLE ${names.target} ADD COLUMN IF NOT EXISTS ${quoteIdent(c.name)} ${c.type}` });
    }
    return [...columns, ...fresh];
  }


  async function retryLookup({ dataSource, spec, keys, onlyUnsettled, after, limit }: { dataSource: string; spec: DataSourceSpec; keys?: string[]; onlyUnsettled?: boolean; after?: string; limit?: number }): Promise<FileRef[]> {
    const explicit = Boolean(keys?.length);
    // Without keys: a page of the files whose latest status is failure (key order, after `after`), looked up at
    // their current version, so a file fixed in place (new ETag) is retried as what is there now. Objects found
    // gone do not make the page short: the next failures are read in their place, so a short page is the last.
    const wanted = explicit ? keys! : ledger.failedKeysFilling(dataSource, after, limit ?? 10_000, () => out.length);
    const match = compileGlob(parseBucketUri(spec.bucketUri).pattern);
    const out: FileRef[] = [];
    for await (const key of wanted) {
      if (onlyUnsettled && !(match(key) && keyAfter(key, spec.startAfter))) continue;
      try {
        const ref = await schema.currentVersion(spec, key);
        // A notified object outside `since` is not imported, as the listing would not import it.
        if (onlyUnsettled && !modifiedSince(ref.lastModified, spec.since)) continue;
        out.push(ref);
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
  }


  /**
   * One page of a re-import window: objects the glob matches whose
   * last-modified time is in [since, until), in key order after `after`.
   * `next` is where the following page starts (null: the window is done).
   * Keys outside the data source's startAfter/since are included: a
   * re-import is asked for by name or time, on purpose.
   */
  async function reimportPage({ spec, since, until, after, limit }: ReimportPageInput): Promise<{ files: FileRef[]; next: string | null }> {
    const lo = since === undefined ? -Infinity : Date.parse(since);
    const hi = until === undefined ? Infinity : Date.parse(until);
    const files: FileRef[] = [];
    let listed = 0;
    try {
      for await (const page of schema.matchingPages(spec, { startAfter: after, signal: currentSignal() })) {
        listed += page.listed;
        for (const f of page.files) {
          const t = Date.parse(f.lastModified);
          if (!(t >= lo && t < hi)) continue;
          files.push(f);
          if (files.length >= limit) return { files, next: f.key };
        }
        heartbeatSafely({ listed, found: files.length });
      }
    } catch (e) {
      throw toApplicationFailure(classify(e));
    }
    return { files, next: null };
  }

  return {
    /** Make the tables, the landing table and the views exist for a spec. Idempotent. */
    async prepareDataSource({ dataSource, spec }: PrepareInput): Promise<PrepareResult> {
      return withHeartbeat({ phase: 'prepare' }, () => prepare(dataSource, spec));
    },

    /** List the bucket under the glob's literal prefix and return the next batch of files not yet settled. */
    async discoverFiles(input: DiscoverInput): Promise<DiscoverResult> {
      return withHeartbeat({ phase: 'discover' }, () => discover(input));
    },

    /** The same discovery for a tick between sweeps, run as a local activity (which has no heartbeats). */
    async listNewFiles(input: DiscoverInput): Promise<DiscoverResult> {
      return discover(input);
    },

    /** Load one object: ClickHouse reads it from S3 itself and parses it natively; no file byte passes through the worker. */
    async importFile(input: ImportInput): Promise<ImportResult> {
      return importOne(input);
    },

    /** Load many small files in one insert, with per-file status and rows (see activities/import-batch.ts). */
    importBatch,

    /** Add columns a newer file brought (nullable: older rows read NULL); returns the full column list. */
    async evolveSchema(input: { dataSource: string; spec: DataSourceSpec; columns: ColumnSpec[]; add: ColumnSpec[] }): Promise<ColumnSpec[]> {
      return withHeartbeat({ phase: 'evolve' }, () => evolve(input));
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
    async filesToRetry(input: { dataSource: string; spec: DataSourceSpec; keys?: string[]; onlyUnsettled?: boolean; after?: string; limit?: number }): Promise<FileRef[]> {
      return withHeartbeat({ phase: 'retry lookup' }, () => retryLookup(input));
    },

    /** A page of the objects a re-import window covers (by last-modified time). */
    async filesToReimport(input: ReimportPageInput): Promise<{ files: FileRef[]; next: string | null }> {
      return withHeartbeat({ phase: 'reimport lookup' }, () => reimportPage(input));
    },

    /** Remove a data source's import path; its table and ledger rows only when asked. */
    async dropDataSource({ dataSource, spec, dropTable, dropLedger }: { dataSource: string; spec: DataSourceSpec; dropTable: boolean; dropLedger: boolean }): Promise<void> {
      for (const sql of dropStatements(tableNames(db, spec.table), dropTable)) await destination.client.command({ query: sql });
      await dropStages(destination, spec.table);
      // With the table gone, the ledger's and the commit records' word that its files are in is no longer true:
      // a data source made again under the name loads them again.
      if (dropLedger) await ledger.deleteDataSource(dataSource);
      else if (dropTable) await ledger.forgetFiles(dataSource);
      if (dropLedger || dropTable) await records.deleteDataSource(dataSource);
    },
  };
}

export type Activities = ReturnType<typeof createActivities>;
