/**
 * Settings of every import statement. They go into the statement's own
 * SETTINGS clause (see renderSettings): on chDB, client-level settings would
 * become session-wide and leak into concurrent queries.
 */

/** Rows and bytes a move's insert blocks are squashed to: fixed, so a move run again cuts the same blocks. */
export const INSERT_BLOCK_ROWS = 1_048_449;
export const INSERT_BLOCK_BYTES = 64 * 1024 * 1024;
/** Longest an import statement may run (the import activity's start-to-close timeout is 6 h). */
export const IMPORT_MAX_SECONDS = 6 * 3600;

/**
 * Longest physical line a text file may have. Rows over maxRowBytes are
 * quarantined row by row; a line far beyond that would make ClickHouse hold
 * it whole in memory, so the file is refused instead (by the line pass).
 */
export function maxLineBytes(maxRowBytes: number): number {
  return Math.max(64 * 1024 * 1024, 8 * maxRowBytes);
}

/**
 * Memory the line pass may use: enough for one line at the cap (a string
 * grows by doubling) and the read buffers, so a longer line fails it early,
 * with the worker's memory bounded, before the insert holds anything.
 */
export function linePassMemoryLimit(maxRowBytes: number): number {
  return 2 * maxLineBytes(maxRowBytes) + 32 * 1024 * 1024;
}

/**
 * Memory one insert statement may use: a bound on what any file can cost,
 * far above what parsing and converting clean blocks needs (about 300 MiB
 * for the benchmark's 2M-row files), so only a hostile file reaches it.
 */
export function importMemoryLimit(maxRowBytes: number): number {
  return Math.max(1024 ** 3, 4 * linePassMemoryLimit(maxRowBytes));
}

/**
 * S3 reads: at most three tries of a request inside ClickHouse (as the
 * worker's own SDK client), which absorb a momentary blip; Temporal's retry
 * policy, with backoff and a `pending_retry` in the ledger, owns the rest.
 * (ClickHouse's default would retry a failing request 500 times.)
 */
export const S3_READ_SETTINGS = {
  s3_retry_attempts: 2,
  s3_max_single_read_retries: 0,
  s3_connect_timeout_ms: 2000,
  // Every ranged read carries If-Match: a file replaced mid-read fails instead of mixing versions.
  s3_validate_etag_on_read: 1,
  s3_skip_empty_files: 1,
} as const;

/**
 * Settings of the statement that reads files into an attempt's staging
 * tables. Nothing is deduplicated there (the tables are the attempt's own);
 * what matters is `_line`, each row's line (or Parquet row) number in its
 * file: one ordered stream (parallel parsing keeps file order, Parquet row
 * groups are read in parallel and put back in order) so `rowNumberInAllBlocks()`
 * is the row's place in the file on every attempt.
 */
export function stageSettings(maxRowBytes: number): Record<string, string | number> {
  return {
    ...S3_READ_SETTINGS,
    insert_deduplicate: 0,
    input_format_parallel_parsing: 1,
    input_format_parquet_preserve_order: 1,
    parallelize_output_from_storages: 0,
    max_insert_threads: 1,
    max_memory_usage: importMemoryLimit(maxRowBytes),
    max_execution_time: IMPORT_MAX_SECONDS,
  };
}

/**
 * Settings of a move from a staged table into the target (see
 * activities/commit.ts). The token numbers the move's blocks; the SELECT reads
 * the staged rows in (file, line) order, and squashing is fixed, so a move
 * run again over the same staged table cuts the same blocks and the target
 * drops every one it has. A move is never refused for the partitions its
 * rows span (the user's PARTITION BY decides those; a refusal after some
 * tables took their part is how rows were lost before), and its blocks are
 * deduplicated in the target's materialized views as well.
 */
export function moveSettings(token: string): Record<string, string | number> {
  return {
    insert_deduplicate: 1,
    insert_deduplication_token: token,
    deduplicate_blocks_in_dependent_materialized_views: 1,
    max_partitions_per_insert_block: 0,
    throw_on_max_partitions_per_insert_block: 0,
    max_insert_threads: 1,
    max_insert_block_size: INSERT_BLOCK_ROWS,
    min_insert_block_size_rows: INSERT_BLOCK_ROWS,
    min_insert_block_size_bytes: INSERT_BLOCK_BYTES,
    max_execution_time: IMPORT_MAX_SECONDS,
  };
}

/**
 * Settings of a deduplicated insert straight from a source (one ordered
 * stream, fixed squashing). Imports no longer rely on these (a retry's blocks
 * need not match: see activities/commit.ts); kept for the import profile
 * and the engine's own measurements in test/e2e/import-path.test.ts.
 */
export function dedupSettings(token: string): Record<string, string | number> {
  return {
    insert_deduplicate: 1,
    // Pinned whatever the server's or profile's defaults: ClickHouse 26's default
    // for INSERT ... SELECT ('enable_when_possible') silently skips deduplication
    // when it deems the SELECT unstable; 'force_enable' fails the statement
    // instead, so a retry can never add rows twice unnoticed.
    deduplicate_insert_select: 'force_enable',
    // A server whose profile turns async inserts on would queue an insert and
    // answer before its rows are committed.
    async_insert: 0,
    insert_deduplication_token: token,
    deduplicate_blocks_in_dependent_materialized_views: 1,
    input_format_parallel_parsing: 1,
    min_chunk_bytes_for_parallel_parsing: 10 * 1024 * 1024,
    max_insert_threads: 1,
    parallelize_output_from_storages: 0,
    max_insert_block_size: INSERT_BLOCK_ROWS,
    min_insert_block_size_rows: INSERT_BLOCK_ROWS,
    min_insert_block_size_bytes: INSERT_BLOCK_BYTES,
  };
}

export function importSettings(token: string, maxRowBytes: number): Record<string, string | number> {
  return {
    ...S3_READ_SETTINGS,
    ...dedupSettings(token),
    max_memory_usage: importMemoryLimit(maxRowBytes),
    max_execution_time: IMPORT_MAX_SECONDS,
  };
}
