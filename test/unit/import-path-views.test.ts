import { afterAll, describe, expect, it } from 'vitest';
import { Session } from 'chdb';
import { buildImportPlan, FILE_ROWS_TABLE } from '../../activities/ddl.js';
import { dataSourceSpecSchema, normalizeSpec, type ColumnSpec } from '../../schemas/datasource.js';

/**
 * The import path's tables and views, created in chDB, with rows pushed
 * through its landing table as an import statement would (raw text per
 * column, then the file, ETag and line): what reaches the typed table.
 */
const session = new Session();
afterAll(() => session.cleanup());

function rows<T>(sql: string): T[] {
  const out = session.query(sql, 'JSONEachRow').trim();
  return out === '' ? [] : out.split('\n').map((l) => JSON.parse(l) as T);
}
const lit = (v: string | null) => (v === null ? 'NULL' : `'${v.replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'`);

let n = 0;
/** Create the import path for these columns in a fresh database and land the given raw rows (one text or NULL per column). */
function land(columns: ColumnSpec[], raw: Array<Array<string | null>>): string {
  const db = `p${++n}`;
  session.query(`CREATE DATABASE ${db}`);
  session.query(`CREATE TABLE ${db}.${FILE_ROWS_TABLE} (datasource LowCardinality(String), key String, etag String, rows UInt64, quarantined UInt64) ENGINE = SummingMergeTree ORDER BY (datasource, key, etag)`);
  const spec = normalizeSpec(dataSourceSpecSchema.parse({ name: 't', connection: 'local', bucketUri: 's3://bucket/p/*.csv', format: 'csv', columns }));
  const plan = buildImportPlan(db, spec, spec.columns!, 'csv', 't');
  for (const sql of plan.create) session.query(sql);
  const values = raw.map((r, line) => `(${r.map(lit).join(', ')}, '', '', 'f.csv', 'e', ${line + 1})`).join(', ');
  session.query(`${plan.insertInto} VALUES ${values}`);
  return `${db}.t`;
}

describe('the import path in chDB', () => {
  it('columns named like the internal ones (c1, c2, c3: a CSV without a header) each get their own value', () => {
    const cols = [{ name: 'c1', type: 'String' }, { name: 'c2', type: 'String' }, { name: 'c3', type: 'UInt8' }, { name: 'c0', type: 'String' }];
    const t = land(cols, [['first', 'second', '3', 'zeroth'], ['a', 'b', '4', 'z']]);
    expect(rows(`SELECT * FROM ${t} ORDER BY c3`)).toEqual([
      { c1: 'first', c2: 'second', c3: 3, c0: 'zeroth' },
      { c1: 'a', c2: 'b', c3: 4, c0: 'z' },
    ]);
  });

  it('a column with a DEFAULT takes it where the file has no value (missing or empty), computed from the row', () => {
    const cols = [
      { name: 'ts', type: 'DateTime' },
      { name: 'day', type: 'Date', default: 'toDate(ts)' },
      { name: 'n', type: 'UInt8', default: '7' },
      { name: 's', type: 'String', default: "concat('no ', 'label')" },
      { name: 'plain', type: 'UInt8' },
    ];
    const t = land(cols, [
      ['2024-03-05 10:00:00', null, null, null, null],
      ['2024-03-06 11:00:00', '', '', '', ''],
      ['2024-03-07 12:00:00', '2020-01-01', '0', 'given', '5'],
    ]);
    expect(rows(`SELECT toString(ts) AS ts, toString(day) AS day, n, s, plain FROM ${t} ORDER BY ts`)).toEqual([
      { ts: '2024-03-05 10:00:00', day: '2024-03-05', n: 7, s: 'no label', plain: 0 },
      { ts: '2024-03-06 11:00:00', day: '2024-03-06', n: 7, s: 'no label', plain: 0 },
      { ts: '2024-03-07 12:00:00', day: '2020-01-01', n: 0, s: 'given', plain: 5 },
    ]);
  });

  it('an import path without such names or defaults keeps the view text it always had', () => {
    const spec = normalizeSpec(dataSourceSpecSchema.parse({ name: 't', connection: 'local', bucketUri: 's3://bucket/p/*.csv', format: 'csv', columns: [{ name: 'a', type: 'String' }, { name: 'b', type: 'UInt8' }] }));
    const plan = buildImportPlan('db', spec, spec.columns!, 'csv', 't');
    expect(plan.create).toContain('CREATE MATERIALIZED VIEW IF NOT EXISTS `db`.`t_s3ch_typed_mv` TO `db`.`t` AS SELECT c0 AS `a`, c1 AS `b` FROM `db`.`t_s3ch_converted` WHERE _s3ch_ok');
  });
});
