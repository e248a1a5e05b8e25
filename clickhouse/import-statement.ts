import { renderSettings } from './destination.js';

/**
 * The statements of one import, assembled by concatenating parts that are
 * already quoted (identifiers, literals, the s3() source) with ClickHouse
 * query parameters for values: never `String.prototype.replace`, whose `$&`,
 * `$'` and `$$` patterns would rewrite a column name or delimiter with a `$`.
 */

/** Message prefix of the failure raised when the object read is not the version listed. */
export const OBJECT_CHANGED_MARK = 's3ch: object changed after it was listed';

/**
 * Query parameters every import statement uses: `file` (the key, or
 * `key::entry` for a zip entry) and `etag` as the ledger knows them,
 * `path` (`bucket/key`, what `_path` says) and `quotedEtag` (what `_etag`
 * says); and the values of columns that take them from the object
 * (ObjectParams).
 */
export interface ImportParams extends ObjectParams {
  file: string;
  etag: string;
  path: string;
  quotedEtag: string;
}

/**
 * What the columns with `from` read (see buildImportPlan), as text: the
 * object's `key`, `fileName` (the key's last segment, or a zip entry's
 * name), `size` and `lastModified` (ISO 8601 in UTC, whole seconds, as S3's
 * Last-Modified header has it).
 */
export interface ObjectParams {
  key: string;
  fileName: string;
  size: string;
  lastModified: string;
}

/**
 * The object values of a file as listed. They come from the activity's input
 * (the file identity the ledger and the deduplication token use), not from
 * ClickHouse's virtual columns: the same on every attempt, exact for keys
 * ClickHouse would see percent-decoded, and available for a zip entry read
 * with file(), whose `_path`, `_size` and `_time` describe the local copy.
 */
export function objectParams(file: { key: string; size: number; lastModified: string }, entryName?: string): ObjectParams {
  const time = Date.parse(file.lastModified);
  return {
    key: file.key,
    fileName: entryName ?? file.key.slice(file.key.lastIndexOf('/') + 1),
    size: String(file.size),
    lastModified: Number.isNaN(time) ? '' : new Date(Math.floor(time / 1000) * 1000).toISOString().replace('.000Z', 'Z'),
  };
}

/**
 * The `_etag` value of each landing row: the listed ETag, after checking per
 * row that the object ClickHouse opened is that version. (A WHERE on `_etag`
 * would be applied to the listing and skip a replaced object silently.)
 * Ranged reads within one object are pinned with If-Match by
 * `s3_validate_etag_on_read`.
 */
const ETAG_CHECKED = `if(throwIf(_etag != {quotedEtag:String}, '${OBJECT_CHANGED_MARK} (ETag differs)') = 0, {etag:String}, '')`;

/** `WHERE _path = ...` for keys whose glob characters were turned into wildcards (see s3/object-url.ts). */
function pin(globbed: boolean): string {
  return globbed ? ' WHERE _path = {path:String}' : '';
}

/**
 * `INSERT INTO landing (...) SETTINGS ... SELECT <columns>, file, etag, line FROM <source>`.
 * `_line` counts data rows from 1 in file order; the statement reads one
 * file in one ordered stream (parallel parsing keeps order), so it is the
 * same on every attempt.
 */
export function insertStatement(opts: { insertInto: string; select: string; source: string; globbed: boolean; checkEtag: boolean; settings: Record<string, string | number> }): string {
  const etag = opts.checkEtag ? ETAG_CHECKED : '{etag:String}';
  return `${opts.insertInto} ${renderSettings(opts.settings)} SELECT ${opts.select}, {file:String}, ${etag}, rowNumberInAllBlocks() + 1 FROM ${opts.source}${pin(opts.globbed)}`;
}

/**
 * The line pass: ClickHouse reads the object as lines and reports how many
 * and the longest, under a small memory cap. It runs before the insert when
 * the file is compressed (a truncated or corrupt gzip/zstd file then fails
 * before a single row is committed) or larger than the line cap (a line too
 * long to parse in bounded memory fails here, not half-way through the
 * insert). It costs a read and a newline scan, no CSV parsing and none of
 * the conversion views; plain files under the line cap and Parquet skip it.
 */
export function linePassStatement(opts: { source: string; globbed: boolean; settings: Record<string, string | number> }): string {
  return `SELECT count() AS lines, max(length(line)) AS longest, argMax(rowNumberInAllBlocks() + 1, length(line)) AS at, any(${ETAG_CHECKED}) AS etag FROM ${opts.source}${pin(opts.globbed)} ${renderSettings(opts.settings)}`;
}
