/**
 * Which files are imported together in one activity and one insert (pure
 * code: the workflow plans batches with it, the batch activity checks its
 * input with it). Where per-file overhead dominates (an activity, ledger
 * writes, a statement per file), small files go many to an insert.
 */

/** A file at most this big is small: its per-file overhead outweighs its bytes. */
export const SMALL_FILE_BYTES = 1024 * 1024;
/** Files per batch, at most. */
export const MAX_BATCH_FILES = 100;
/** Bytes (as listed) per batch, at most: the whole batch is one insert block (see activities/import-batch.ts). */
export const MAX_BATCH_BYTES = 64 * 1024 * 1024;

interface FileLike {
  key: string;
  size: number;
}

interface SpecLike {
  format: string;
  compression: string;
  limits: { maxFileBytes: number; maxBatchFiles?: number };
}

const DATA_NAME = /\.(csv|tsv|txt|ndjson|jsonl|json|parquet)(\.(gz|gzip|zst|zstd))?$/i;

/**
 * Whether a file may be imported in a batch. Kept as single-file imports:
 * large files (their own insert is cheap next to their bytes), zip archives
 * (read entry by entry), keys with glob characters (read through a wildcard
 * and pinned by `_path`), names whose compression or format only their first
 * bytes could tell, and files over the data source's maxFileBytes (the
 * single-file path refuses them with its own error).
 */
export function isBatchable(spec: SpecLike, file: FileLike): boolean {
  if (file.size > SMALL_FILE_BYTES) return false;
  if (spec.limits.maxFileBytes > 0 && file.size > spec.limits.maxFileBytes) return false;
  if (/[*?{}]/.test(file.key)) return false;
  if (spec.compression === 'zip' || /\.zip$/i.test(file.key)) return false;
  if ((spec.compression === 'auto' || spec.format === 'auto') && !DATA_NAME.test(file.key)) return false;
  return true;
}

/**
 * Split files into batches and single-file imports. Batching pays only when
 * there are more small files than concurrent imports; batches are sized so
 * every import slot gets one (up to MAX_BATCH_FILES / MAX_BATCH_BYTES each),
 * in the order the files came. A batch of one is a single-file import.
 */
export function planBatches<F extends FileLike>(spec: SpecLike, files: F[], concurrency: number): { batches: F[][]; singles: F[] } {
  const cap = Math.min(MAX_BATCH_FILES, spec.limits.maxBatchFiles ?? MAX_BATCH_FILES);
  const small = files.filter((f) => isBatchable(spec, f));
  const singles = files.filter((f) => !isBatchable(spec, f));
  if (cap <= 1 || small.length <= Math.max(1, concurrency)) return { batches: [], singles: files };
  const perBatch = Math.min(cap, Math.max(2, Math.ceil(small.length / Math.max(1, concurrency))));
  const batches: F[][] = [];
  let current: F[] = [];
  let bytes = 0;
  for (const f of small) {
    if (current.length && (current.length >= perBatch || bytes + f.size > MAX_BATCH_BYTES)) {
      batches.push(current);
      current = [];
      bytes = 0;
    }
    current.push(f);
    bytes += f.size;
  }
  if (current.length) batches.push(current);
  for (const b of batches) if (b.length === 1) singles.push(b[0]!);
  return { batches: batches.filter((b) => b.length > 1), singles };
}
