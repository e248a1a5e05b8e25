import type { ClickHouseClient } from '@clickhouse/client';
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
 */
export const READ_ONLY_SETTINGS = {
  readonly: 1,
  max_execution_time: 30,
  max_memory_usage: 256 * 1024 * 1024,
  max_result_rows: 100_000,
  max_result_bytes: 64 * 1024 * 1024,
  result_overflow_mode: 'break',
  max_threads: 1,
} as const;

function settingsClause(): string {
  return `SETTINGS ${Object.entries(READ_ONLY_SETTINGS)
    .map(([k, v]) => `${k} = ${typeof v === 'number' ? v : `'${v}'`}`)
    .join(', ')}`;
}

/**
 * Run a user's query so that it can only read the connector's tables: the
 * allow-list in sql-guard.ts proves it first, then ClickHouse runs it with
 * READ_ONLY_SETTINGS, carried in the statement's own SETTINGS clause (on chDB
 * a session-wide SET would reach every other statement of that connection).
 */
export async function runReadOnly(client: ClickHouseClient, query: string, scope: GuardScope): Promise<ReadOnlyResult> {
  const guarded = await guardReadOnlyQuery(client, query, scope);
  const rs = await client.query({ query: `${guarded.sql} ${settingsClause()}`, query_params: guarded.params, format: 'JSON' });
  const out = await rs.json<{ meta: ReadOnlyResult['meta']; data: ReadOnlyResult['data']; rows: number }>();
  return { meta: out.meta ?? [], data: out.data ?? [], rows: out.rows ?? 0 };
}
