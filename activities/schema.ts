import { GetObjectCommand, HeadObjectCommand, ListObjectsV2Command } from '@aws-sdk/client-s3';
import { gunzipSync, constants as zlibConstants } from 'node:zlib';
import { hivePartitions, type ColumnSpec, type DataSourceSpec } from '../schemas/datasource.js';
import { isValidColumnName } from '../schemas/identifiers.js';
import { parseBucketUri, compileGlob } from '../schemas/glob.js';
import { isTimeType, parseClickHouseType } from '../schemas/clickhouse-type.js';
import { queryRows, type Destination } from '../clickhouse/destination.js';
import { ImportError } from './errors.js';
import { resolveCompression, resolveFormat } from './formats.js';
import { sniffCompression } from './zip.js';
import type { S3Connections } from '../s3/connections.js';
import { objectUrl } from '../s3/object-url.js';
import { s3Source, scrubSecrets } from '../clickhouse/s3-source.js';
import { S3_READ_SETTINGS } from '../clickhouse/import-settings.js';

export interface FileRef {
  key: string;
  etag: string;
  size: number;
  lastModified: string;
}

export const stripQuotes = (etag: string | undefined) => (etag ?? '').replace(/^"|"$/g, '');

/** Listing and schema inference, shared by activities and the API's preview. */
export function createSchemaTools({ destination, s3 }: { destination: Destination; s3: S3Connections }) {
  /**
   * The objects a bucketUri matches, a listing page at a time: from the glob's
   * literal prefix (after `startAfter` when given), matched on the full key,
   * folders left out. `listed` counts every key the page held.
   */
  async function* matchingPages(
    spec: Pick<DataSourceSpec, 'bucketUri' | 'connection'>,
    opts: { startAfter?: string; signal?: AbortSignal } = {},
  ): AsyncGenerator<{ files: FileRef[]; listed: number; lastKey: string | null }> {
    const { bucket, pattern, listPrefix } = parseBucketUri(spec.bucketUri);
    const match = compileGlob(pattern);
    const client = s3.client(spec.connection);
    let token: string | undefined;
    do {
      const page = await client.send(
        new ListObjectsV2Command({ Bucket: bucket, Prefix: listPrefix, ContinuationToken: token, StartAfter: token ? undefined : opts.startAfter, MaxKeys: 1000 }),
        { abortSignal: opts.signal },
      );
      const contents = page.Contents ?? [];
      const files = contents
        // A zero-byte key ending in "/" is a folder marker; one with content is a file (S3 allows both).
        .filter((o) => o.Key && !(o.Key.endsWith('/') && !o.Size) && match(o.Key))
        .map((o) => ({ key: o.Key!, etag: stripQuotes(o.ETag), size: o.Size ?? 0, lastModified: o.LastModified?.toISOString() ?? '' }));
      // The page's last key, matching or not: incremental listings continue after it.
      yield { files, listed: contents.length, lastKey: contents.at(-1)?.Key ?? null };
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (token);
  }

  /** One object's current version (HEAD). */
  async function currentVersion(spec: Pick<DataSourceSpec, 'bucketUri' | 'connection'>, key: string): Promise<FileRef> {
    const { bucket } = parseBucketUri(spec.bucketUri);
    const h = await s3.client(spec.connection).send(new HeadObjectCommand({ Bucket: bucket, Key: key }));
    return { key, etag: stripQuotes(h.ETag), size: h.ContentLength ?? 0, lastModified: h.LastModified?.toISOString() ?? '' };
  }

  /** The first non-empty object the bucketUri matches: the reference file for inference. */
  async function firstMatchingObject(spec: DataSourceSpec): Promise<FileRef | null> {
    for await (const page of matchingPages(spec)) {
      const hit = page.files.find((f) => f.size > 0);
      if (hit) return hit;
    }
    return null;
  }

  /**
   * Infer columns from the head of one file, with ClickHouse's own schema
   * inference, followed by a `from: hive` column for each `name=value`
   * folder of its key that the content has no column for.
   */
  async function inferColumns(spec: DataSourceSpec, file: FileRef): Promise<ColumnSpec[]> {
    const content = await inferContentColumns(spec, file);
    return [...content, ...partitionColumns(file.key, content)];
  }

  async function inferContentColumns(spec: DataSourceSpec, file: FileRef): Promise<ColumnSpec[]> {
    const format = resolveFormat(spec, file.key);
    if (format === 'parquet') return inferParquetColumns(spec, file);
    const declared = resolveCompression(spec, file.key);
    const { bucket } = parseBucketUri(spec.bucketUri);
    const obj = await s3.client(spec.connection).send(new GetObjectCommand({ Bucket: bucket, Key: file.key, Range: 'bytes=0-1048575' }));
    let head = Buffer.from(await obj.Body!.transformToByteArray());
    const compression = declared ?? sniffCompression(head);
    if (compression === 'zip') throw new ImportError('config', 'schema inference for zip archives is not supported yet: declare columns');
    if (compression === 'gzip') head = gunzipSync(head, { finishFlush: zlibConstants.Z_SYNC_FLUSH });
    if (compression === 'zstd') throw new ImportError('config', 'schema inference for zstd files is not supported yet: declare columns');
    let text = head.toString('utf8');
    // Keep whole lines only: the sample was cut at an arbitrary byte.
    if (head.length >= 1048576 || compression !== 'none') text = text.slice(0, text.lastIndexOf('\n') + 1);
    if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
    const csv = spec.csv ?? { delimiter: ',', header: true, skipLines: 0, quote: '"' as const };
    const inputFormat = format === 'ndjson' ? 'JSONEachRow' : csv.header ? 'CSVWithNames' : 'CSV';
    const rows = await queryRows<{ name: string; type: string }>(
      destination.client,
      `DESCRIBE TABLE format(${inputFormat}, {data:String})`,
      { data: text },
      {
        schema_inference_make_columns_nullable: 'auto',
        format_csv_delimiter: csv.delimiter,
        input_format_csv_skip_first_lines: csv.skipLines,
        input_format_json_infer_incomplete_types_as_strings: 1,
        // An array of mixed values (`[1, "x"]`) is suggested as Array(String), as JSONEachRow reads it,
        // not Array(Dynamic).
        input_format_json_infer_array_of_dynamic_from_array_of_different_types: 0,
      },
    );
    return rows.map((r, i) => ({
      name: format === 'csv' && !csv.header ? `c${i + 1}` : r.name,
      type: r.type,
      ...(format === 'ndjson' ? { path: `$.${r.name}` } : {}),
    }));
  }


  /**
   * Parquet keeps its schema in the footer: ClickHouse reads it with ranged
   * reads (`DESCRIBE s3(...)`), whatever the file's size, on chDB and a server alike.
   */
  async function inferParquetColumns(spec: DataSourceSpec, file: FileRef): Promise<ColumnSpec[]> {
    const { bucket } = parseBucketUri(spec.bucketUri);
    const target = objectUrl(s3.get(spec.connection), bucket, file.key);
    const source = s3Source({ url: target.url, credentials: await s3.credentials(spec.connection), format: 'Parquet', structure: 'auto', compression: 'none' });
    try {
      const rows = await queryRows<{ name: string; type: string }>(destination.imports, `DESCRIBE TABLE ${source.sql}`, {}, { ...S3_READ_SETTINGS });
      return rows.map((r) => ({ name: r.name, type: r.type }));
    } catch (err) {
      throw scrubSecrets(err, source.secrets);
    }
  }

  /** The first `limit` objects the bucketUri matches, and how many were seen in all (up to `scanLimit` keys listed). */
  async function matchingObjects(spec: Pick<DataSourceSpec, 'bucketUri' | 'connection'>, limit: number, scanLimit = 100_000): Promise<{ files: FileRef[]; total: number; complete: boolean }> {
    const files: FileRef[] = [];
    let total = 0;
    let scanned = 0;
    for await (const page of matchingPages(spec)) {
      total += page.files.length;
      files.push(...page.files.slice(0, limit - files.length));
      scanned += page.listed;
      if (scanned >= scanLimit) return { files, total, complete: false };
    }
    return { files, total, complete: true };
  }

  return { matchingPages, currentVersion, firstMatchingObject, inferColumns, matchingObjects };
}

/**
 * Columns for the hive-style partitions of a key (`dt=2024-05-01/region=eu/`),
 * typed by their value: Date, DateTime, Int64 (no leading zeros, so `07`
 * stays text), otherwise String. Names the content already has are left out.
 */
export function partitionColumns(key: string, content: ReadonlyArray<Pick<ColumnSpec, 'name'>>): ColumnSpec[] {
  const taken = new Set(content.map((c) => c.name));
  return hivePartitions(key)
    .filter((p) => isValidColumnName(p.name) && !taken.has(p.name))
    .map((p) => ({ name: p.name, type: partitionType(p.value), from: 'hive' as const }));
}

function partitionType(value: string): string {
  if (/^\d{4}-\d{2}-\d{2}$/.test(value)) return 'Date';
  if (/^\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}(:\d{2})?(Z|[+-]\d{2}:?\d{2})?$/.test(value)) return 'DateTime';
  if (/^-?(0|[1-9]\d{0,17})$/.test(value)) return 'Int64';
  return 'String';
}

/** A time column to suggest for ORDER BY / PARTITION BY: the first DateTime/Date column. */
export function suggestTimeColumn(columns: ColumnSpec[]): string | null {
  for (const c of columns) {
    try {
      if (isTimeType(parseClickHouseType(c.type).base)) return c.name;
    } catch {
      // Types that do not parse are not time columns.
    }
  }
  return null;
}
