import type { ClickHouseClient } from '@clickhouse/client';
import { randomBytes } from 'node:crypto';
import { guardReadOnlyQuery, type GuardScope } from './sql-guard.js';

export { SqlGuardError } from './sql-guard.js';

export interface ReadOnlyResult {
  meta: Array<{ name: string; type: string }>;
  data: Array<Record<string, unknown>>;
  rows: number;
}

/**
 * Limits ClickHouse enforces on every API query, on top of the allow-list:
 * read-only, bounded in time, memory and result size, and one thread, so an
 * expensive query cannot starve the imports that share the engine (its memory
 * cap is a quarter of embedded chDB's default engine cap of 1 GiB).
 *
 * ClickHouse checks time limits and cancellation between blocks, so blocks
 * are small (`max_block_size`): a function that costs a lot per row is
 * stopped after a few thousand rows, not after a default block of 65,536.
 * The functions whose *one* call is unbounded (edit distances) are refused by
 * the guard; a single value is bounded by the memory cap.
 */
export const READ_ONLY_SETTINGS = {
  readonly: 1,
  max_execution_time: 30,
  timeout_overflow_mode: 'throw',
  max_block_size: 1024,
  max_memory_usage: 256 * 1024 * 1024,
  max_result_rows: 100_000,
  max_result_bytes: 64 * 1024 * 1024,
  result_overflow_mode: 'break',
  max_threads: 1,
  // Hyperscan compiles every pattern of multiMatch*/multiSearch* in one call: bound what it compiles.
  max_hyperscan_regexp_length: 1000,
  max_hyperscan_regexp_total_length: 10_000,
} as const;

/** How long past max_execution_time the API waits before it kills the query itself. */
export const KILL_GRACE_MS = 5_000;

export interface ReadOnlyLimits {
  /** Seconds ClickHouse lets the query run. @default READ_ONLY_SETTINGS.max_execution_time */
  maxExecutionTime?: number;
  /** When the API kills the query itself. @default maxExecutionTime + KILL_GRACE_MS */
  killAfterMs?: number;
}

function settingsClause(maxExecutionTime: number): string {
  return `SETTINGS ${Object.entries({ ...READ_ONLY_SETTINGS, max_execution_time: maxExecutionTime })
    .map(([k, v]) => `${k} = ${typeof v === 'number' ? v : `'${v}'`}`)
    .join(', ')}`;
}

/** Marker in a statement's text, so `KILL QUERY` can find it (chDB assigns its own query ids). */
const MARKER = 's3ch-sql';

/**
 * Run a user's query so that it can only read the connector's tables: the
 * allow-list in sql-guard.ts proves it first, then ClickHouse runs it with
 * READ_ONLY_SETTINGS, carried in the statement's own SETTINGS clause (on chDB
 * a session-wide SET would reach every other statement of that connection;
 * the guard refuses SETTINGS anywhere in user SQL, so nothing inside the
 * query can lift them).
 *
 * If the query still runs `KILL_GRACE_MS` after its time limit (a limit
 * ClickHouse only checks between blocks), the API kills it over another
 * connection (`KILL QUERY`, which embedded chDB honours too), so one query
 * cannot hold an engine connection and a core for long.
 */
export async function runReadOnly(client: ClickHouseClient, query: string, scope: GuardScope, limits: ReadOnlyLimits = {}): Promise<ReadOnlyResult> {
  const guarded = await guardReadOnlyQuery(client, query, scope);
  const maxExecutionTime = limits.maxExecutionTime ?? READ_ONLY_SETTINGS.max_execution_time;
  const id = randomBytes(12).toString('hex');
  const killer = setTimeout(() => {
    // The marker is split in the KILL statement so it never matches itself.
    client
      .command({ query: `KILL QUERY WHERE position(query, concat('${MARKER}', ':${id}')) > 0 ASYNC` })
      .catch(() => undefined);
  }, limits.killAfterMs ?? maxExecutionTime * 1000 + KILL_GRACE_MS);
  try {
    const rs = await client.query({ query: `/* ${MARKER}:${id} */ ${guarded.sql} ${settingsClause(maxExecutionTime)}`, query_params: guarded.params, format: 'JSON' });
    const out = await rs.json<{ meta: ReadOnlyResult['meta']; data: ReadOnlyResult['data']; rows: number }>();
    return { meta: out.meta ?? [], data: out.data ?? [], rows: out.rows ?? 0 };
  } finally {
    clearTimeout(killer);
  }
}
