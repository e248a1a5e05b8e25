import type { ClickHouseClient } from '@clickhouse/client';
import type { DataSourceSpec } from '../schemas/datasource.js';
import { guardExpression } from './sql-guard.js';

/** A SQL expression inside a spec: where it is (the field named in errors) and how to put a checked one back. */
interface SpecExpression {
  field: string;
  value: string;
  replace(spec: DataSourceSpec, canonical: string): void;
}

type Loose = Record<string, unknown>;

/**
 * Every user-written SQL expression in a spec. Engine keys and TTL, plus the
 * optional column defaults and skip-index expressions where the spec has them.
 */
function specExpressions(spec: DataSourceSpec): SpecExpression[] {
  const out: SpecExpression[] = [];
  const engine = spec.engine as unknown as Loose;
  for (const key of ['partitionKey', 'sortingKey', 'primaryKey', 'ttl', 'samplingKey', 'ver', 'isDeleted']) {
    const value = engine[key];
    if (typeof value === 'string') out.push({ field: `engine.${key}`, value, replace: (s, c) => void ((s.engine as unknown as Loose)[key] = c) });
  }
  const indexes = engine.indexes;
  if (Array.isArray(indexes)) {
    indexes.forEach((ix: Loose, i) => {
      if (typeof ix?.expr === 'string') out.push({ field: `engine.indexes.${i}.expr`, value: ix.expr, replace: (s, c) => void (((s.engine as unknown as Loose).indexes as Loose[])[i]!.expr = c) });
    });
  }
  (spec.columns ?? []).forEach((col, i) => {
    const value = (col as unknown as Loose).default;
    if (typeof value === 'string') out.push({ field: `columns.${i}.default`, value, replace: (s, c) => void ((s.columns![i] as unknown as Loose).default = c) });
  });
  return out;
}

/**
 * The spec with every expression checked against the allow-list (sql-guard.ts)
 * and replaced by ClickHouse's canonical text of it: DDL splices only what
 * ClickHouse itself printed from a checked tree, never the user's text.
 * Throws SqlGuardError naming the field.
 */
export async function withCheckedExpressions(client: ClickHouseClient, spec: DataSourceSpec): Promise<DataSourceSpec> {
  const copy = structuredClone(spec);
  for (const e of specExpressions(spec)) e.replace(copy, await guardExpression(client, e.value, e.field));
  return copy;
}
