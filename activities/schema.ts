import { GetObjectCommand, ListObjectsV2Command, type S3Client } from '@aws-sdk/client-s3';
import { gunzipSync, constants as zlibConstants } from 'node:zlib';
import { createWriteStream } from 'node:fs';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { randomUUID } from 'node:crypto';
import { pipeline } from 'node:stream/promises';
import type { Readable } from 'node:stream';
import type { ColumnSpec, DataSourceSpec } from '../schemas/datasource.js';
import { parseBucketUri, compileGlob } from '../schemas/glob.js';
import { isTimeType, parseClickHouseType } from '../schemas/clickhouse-type.js';
import { queryRows, type Destination } from './destination.js';
import { ImportError } from './errors.js';
import { resolveCompression, resolveFormat } from './formats.js';
import { sniffCompression } from './zip.js';
import type { S3Connections } from './s3.js';

export interface FileRef {
  key: string;
  etag: string;
  size: number;
  lastModified: string;
}

/** Largest Parquet file read whole for schema inference. */
const PARQUET_INFERENCE_MAX_BYTES = 1024 * 1024 * 1024;

export const stripQuotes = (etag: string | undefined) => (etag ?? '').replace(/^"|"$/g, '');

/** Listing and schema inference, shared by activities and the API's preview. */
export function createSchemaTools({ destination, s3 }: { destination: Destination; s3: S3Connections }) {
  async function listPage(client: S3Client, bucket: string, prefix: string, token?: string, startAfter?: string, signal?: AbortSignal) {
    return client.send(
      new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix, ContinuationToken: token, StartAfter: token ? undefined : startAfter, MaxKeys: 1000 }),
      { abortSignal: signal },
    );
  }

  async function firstMatchingObject(spec: DataSourceSpec): Promise<FileRef | null> {
    const { bucket, pattern, listPrefix } = parseBucketUri(spec.bucketUri);
    const match = compileGlob(pattern);
    const client = s3.client(spec.connection);
    let token: string | undefined;
    do {
      const page = await listPage(client, bucket, listPrefix, token);
      const hit = (page.Contents ?? []).find((o) => o.Key && match(o.Key) && (o.Size ?? 0) > 0);
      if (hit) return { key: hit.Key!, etag: stripQuotes(hit.ETag), size: hit.Size ?? 0, lastModified: hit.LastModified?.toISOString() ?? '' };
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (token);
    return null;
  }

  /** Infer columns from the head of one file, with ClickHouse's own schema inference. */
  async function inferColumns(spec: DataSourceSpec, file: FileRef): Promise<ColumnSpec[]> {
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
      },
    );
    return rows.map((r, i) => ({
      name: format === 'csv' && !csv.header ? `c${i + 1}` : r.name,
      type: r.type,
      ...(format === 'ndjson' ? { path: `$.${r.name}` } : {}),
    }));
  }


  /**
   * Parquet keeps its schema in the footer, so the reference file is read
   * whole into the spool and described by ClickHouse. That needs ClickHouse to
   * see local files (chDB); against a server, columns must be declared.
   */
  async function inferParquetColumns(spec: DataSourceSpec, file: FileRef): Promise<ColumnSpec[]> {
    if (!destination.spoolDir) throw new ImportError('config', 'schema inference for Parquet needs embedded ClickHouse; declare columns');
    if (file.size > PARQUET_INFERENCE_MAX_BYTES) {
      throw new ImportError('config', `reference file ${file.key} is ${file.size} bytes; Parquet inference reads at most ${PARQUET_INFERENCE_MAX_BYTES}: declare columns`);
    }
    const { bucket } = parseBucketUri(spec.bucketUri);
    const obj = await s3.client(spec.connection).send(new GetObjectCommand({ Bucket: bucket, Key: file.key }));
    const path = join(destination.spoolDir, `${randomUUID()}.parquet`);
    try {
      await pipeline(obj.Body as Readable, createWriteStream(path));
      const rows = await queryRows<{ name: string; type: string }>(destination.client, `DESCRIBE TABLE file({path:String}, 'Parquet')`, { path });
      return rows.map((r) => ({ name: r.name, type: r.type }));
    } finally {
      await rm(path, { force: true });
    }
  }

  /** The first `limit` objects the bucketUri matches, and how many were seen in all (up to `scanLimit`). */
  async function matchingObjects(spec: Pick<DataSourceSpec, 'bucketUri' | 'connection'>, limit: number, scanLimit = 100_000): Promise<{ files: FileRef[]; total: number; complete: boolean }> {
    const { bucket, pattern, listPrefix } = parseBucketUri(spec.bucketUri);
    const match = compileGlob(pattern);
    const client = s3.client(spec.connection);
    const files: FileRef[] = [];
    let total = 0, scanned = 0;
    let token: string | undefined;
    do {
      const page = await listPage(client, bucket, listPrefix, token);
      for (const o of page.Contents ?? []) {
        scanned++;
        if (!o.Key || o.Key.endsWith('/') || !match(o.Key)) continue;
        total++;
        if (files.length < limit) files.push({ key: o.Key, etag: stripQuotes(o.ETag), size: o.Size ?? 0, lastModified: o.LastModified?.toISOString() ?? '' });
      }
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (token && scanned < scanLimit);
    return { files, total, complete: !token };
  }

  return { listPage, firstMatchingObject, inferColumns, matchingObjects };
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
