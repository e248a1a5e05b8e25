import type { DataSourceSpec } from '../schemas/datasource.js';
import type { ResolvedFormat } from './ddl.js';
import type { Compression } from './destination.js';
import { ImportError } from './errors.js';

const COMPRESSION_SUFFIX: Array<[RegExp, Compression | 'zip']> = [
  [/\.(gz|gzip)$/i, 'gzip'],
  [/\.(zst|zstd)$/i, 'zstd'],
  [/\.zip$/i, 'zip'],
];

/** Compression of an object: declared in the spec, or by the key's extension. */
export function resolveCompression(spec: Pick<DataSourceSpec, 'compression'>, key: string): Compression {
  let c: Compression | 'zip' = 'none';
  if (spec.compression !== 'auto') c = spec.compression;
  else for (const [re, kind] of COMPRESSION_SUFFIX) if (re.test(key)) c = kind;
  if (c === 'zip') throw new ImportError('config', `${key}: zip archives are not supported yet; use gzip or zstd`);
  return c;
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
