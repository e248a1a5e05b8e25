import { afterAll, describe, expect, it } from 'vitest';
import { Session } from 'chdb';
import { buildImportPlan } from '../../activities/ddl.js';
import { dataSourceSpecSchema, normalizeSpec } from '../../schemas/datasource.js';

/**
 * The NDJSON reader and conversion views for Array, Map, Tuple and Bool
 * columns, at top-level keys and at JSONPaths (`$.a.b`, `$.items[:].id`),
 * run in chDB: the import plan's own DDL, its insert's SELECT over lines
 * given as a LineAsString input, and the rows and quarantine that result.
 */

const session = new Session();
afterAll(() => session.cleanup());

const sqlString = (s: string) => `'${s.replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'`;
const rows = <T>(sql: string): T[] => {
  const out = session.query(`${sql} SETTINGS output_format_json_quote_64bit_integers = 1`, 'JSONEachRow').trim();
  return out === '' ? [] : out.split('\n').map((l) => JSON.parse(l) as T);
};

let n = 0;
/** Load `lines` through the import plan of `columns`; the typed rows by `id` and the quarantine. */
function load(columns: Array<{ name: string; type: string; path?: string }>, lines: string[]) {
  const name = `nd_${++n}`;
  session.query('CREATE TABLE IF NOT EXISTS default.s3ch_file_rows (datasource String, key String, etag String, rows UInt64, quarantined UInt64) ENGINE = Memory');
  const spec = normalizeSpec(dataSourceSpecSchema.parse({
    name, connection: 'local', bucketUri: 's3://bucket/x/*.ndjson', format: 'ndjson', columns, engine: { engine: 'MergeTree', sortingKey: 'id' },
  }));
  const plan = buildImportPlan('default', spec, spec.columns!, 'ndjson', name);
  for (const ddl of plan.create) session.query(ddl);
  const data = `${lines.join('\n')}\n`;
  session.query(`${plan.insertInto} SELECT ${plan.select}, 'f', 'e', rowNumberInAllBlocks() + 1 FROM format(LineAsString, 'line String', ${sqlString(data)})`);
  return {
    rows: rows<Record<string, unknown>>(`SELECT * FROM default.${name} ORDER BY id`),
    quarantine: rows<{ line: number; column: string; error: string }>(`SELECT toUInt32(_line) AS line, column, error FROM default.${name}_quarantine ORDER BY _line`),
  };
}

describe('NDJSON composite and Bool columns, run in chDB', () => {
  it('JSONPath columns read arrays, maps and tuples from nested objects and from every element of an array', () => {
    const { rows: got, quarantine } = load(
      [
        { name: 'id', type: 'UInt32' },
        { name: 'tags', type: 'Array(String)', path: '$.user.tags' },
        { name: 'skus', type: 'Array(Nullable(String))', path: '$.items[:].sku' },
        { name: 'qty', type: 'Array(UInt8)', path: '$.items[:].qty' },
        { name: 'attrs', type: 'Map(String, Int64)', path: "$['user']['attrs']" },
        { name: 'pos', type: 'Tuple(Float64, Float64)', path: '$.geo.pos' },
        { name: 'ok', type: 'Nullable(Bool)', path: '$.user.ok' },
      ],
      [
        '{"id":1,"user":{"tags":["a","b"],"attrs":{"k":1},"ok":true},"items":[{"sku":"s1","qty":2},{"qty":3}],"geo":{"pos":[1.5,-2]}}',
        '{"id":2,"user":{"tags":[],"attrs":{}},"items":[],"geo":{}}',
        '{"id":3}',
        // Refused as JSONEachRow refuses them: a string holding an array, an element out of range, a tuple too short, a string for a Bool.
        '{"id":4,"user":{"tags":"[\\"a\\"]"}}',
        '{"id":5,"items":[{"qty":300}]}',
        '{"id":6,"geo":{"pos":[1]}}',
        '{"id":7,"user":{"ok":"true"}}',
      ],
    );
    expect(got).toEqual([
      { id: 1, tags: ['a', 'b'], skus: ['s1', null], qty: [2, 3], attrs: { k: '1' }, pos: [1.5, -2], ok: true },
      { id: 2, tags: [], skus: [], qty: [], attrs: {}, pos: [0, 0], ok: null },
      { id: 3, tags: [], skus: [], qty: [], attrs: {}, pos: [0, 0], ok: null },
    ]);
    expect(quarantine).toEqual([
      { line: 4, column: 'tags', error: 'cannot convert to Array(String)' },
      { line: 5, column: 'qty', error: 'cannot convert to Array(UInt8)' },
      { line: 6, column: 'pos', error: 'cannot convert to Tuple(Float64, Float64)' },
      { line: 7, column: 'ok', error: 'cannot convert to Nullable(Bool)' },
    ]);
  });

  it('top-level keys: the issue\'s own lines load (tags, nested arrays, a tuple written as an array)', () => {
    const { rows: got, quarantine } = load(
      [
        { name: 'id', type: 'UInt32' },
        { name: 'tags', type: 'Array(String)' },
        { name: 'groups', type: 'Array(Array(String))' },
        { name: 't', type: 'Tuple(Int64, String)' },
        { name: 'named', type: 'Tuple(a Int64, b LowCardinality(String))' },
        { name: 'name', type: 'String' },
      ],
      [
        '{"id":1,"tags":["a","b"],"groups":[["x"],["y","z"]],"t":[7,"q"],"named":{"b":"x","a":"2","extra":[1]},"name":"n"}',
        '{"id":2,"tags":["it\'s","say \\"hi\\"","back\\\\slash","\\u00e9 \\ud83d\\ude00"],"groups":[[],[""]],"t":[-9223372036854775808,""],"named":{},"name":"m"}',
      ],
    );
    expect(quarantine).toEqual([]);
    expect(got).toEqual([
      { id: 1, tags: ['a', 'b'], groups: [['x'], ['y', 'z']], t: ['7', 'q'], named: { a: '2', b: 'x' }, name: 'n' },
      { id: 2, tags: ["it's", 'say "hi"', 'back\\slash', 'é 😀'], groups: [[], ['']], t: ['-9223372036854775808', ''], named: { a: '0', b: '' }, name: 'm' },
    ]);
  });
});
