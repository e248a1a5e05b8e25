import type { ClickHouseClient } from '@clickhouse/client';
import type { DataSourceSpec } from '../schemas/datasource.js';
import { parseClickHouseType } from '../schemas/clickhouse-type.js';
import { canonicalColumnType, guardExpression, SqlGuardError } from './sql-guard.js';

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
 * and replaced by ClickHouse's canonical text of it, and every column type
 * replaced by ClickHouse's canonical text of that type: DDL splices only what
 * ClickHouse itself printed from a checked tree or type, never the user's text.
 * Throws SqlGuardError naming the field.
 */
export async function withCheckedExpressions(client: ClickHouseClient, spec: DataSourceSpec): Promise<DataSourceSpec> {
  const copy = structuredClone(spec);
  for (const e of specExpressions(spec)) e.replace(copy, await guardExpression(client, e.value, e.field));
  for (const [i, col] of (copy.columns ?? []).entries()) col.type = await checkedType(client, col.type, `columns.${i}.type`);
  return copy;
}

/**
 * A column type twice checked: the spec schema's own parser (which refuses
 * comments, `$$` strings, `;` and anything outside the type grammar) and
 * ClickHouse's type parser, whose printed text is the one kept, and which the
 * schema's parser must read back as a type too.
 */
async function checkedType(client: ClickHouseClient, type: string, field: string): Promise<string> {
  const local = (t: string) => {
    try {
      return parseClickHouseType(t).text;
    } catch (e) {
      throw new SqlGuardError(field, `invalid ClickHouse type: ${(e as Error).message}`);
    }
  };
  const canonical = await canonicalColumnType(client, local(type), field);
  local(canonical);
  return canonical;
}
