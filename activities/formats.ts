import type { DataSourceSpec } from '../schemas/datasource.js';
import type { ResolvedFormat } from './ddl.js';
import type { Compression } from '../clickhouse/destination.js';
import { ImportError } from './errors.js';

const COMPRESSION_SUFFIX: Array<[RegExp, Compression | 'zip']> = [
  [/\.(gz|gzip)$/i, 'gzip'],
  [/\.(zst|zstd)$/i, 'zstd'],
  [/\.zip$/i, 'zip'],
];

/** Compression of an object: declared in the spec, or by the key's extension (null: the name does not say). */
export function resolveCompression(spec: Pick<DataSourceSpec, 'compression'>, key: string): Compression | 'zip' | null {
  if (spec.compression !== 'auto') return spec.compression;
  for (const [re, kind] of COMPRESSION_SUFFIX) if (re.test(key)) return kind;
  return null;
}

/** Format of an object: declared in the spec, or by the key's extension once compression suffixes are removed. */
export function resolveFormat(spec: Pick<DataSourceSpec, 'format'>, key: string): ResolvedFormat {
  if (spec.format !== 'auto') return spec.format;
  const bare = key.replace(/\.(gz|gzip|zst|zstd|zip)$/i, '');
  if (/\.(csv|tsv|txt)$/i.test(bare)) return 'csv';
  if (/\.(ndjson|jsonl|json)$/i.test(bare)) return 'ndjson';
  if (/\.parquet$/i.test(bare)) return 'parquet';
  throw new ImportError('config', `${key}: cannot tell the format from the name; set format to csv, ndjson or parquet`);
}

/** Whether a name looks like a data file (used to pick entries out of zip archives). */
export function isDataFileName(name: string): boolean {
  return /\.(csv|tsv|txt|ndjson|jsonl|json|parquet)(\.(gz|gzip|zst|zstd))?$/i.test(name);
}
