import { afterAll, describe, expect, it } from 'vitest';
import { Session } from 'chdb';
import { buildImportPlan, jsonPathExtract, ndjsonValues, topLevelKey } from '../../activities/ddl.js';
import { readDatasourceFile } from '../../schemas/datasource-file.js';
import { dataSourceSpecSchema, normalizeSpec } from '../../schemas/datasource.js';

/** One embedded ClickHouse for this file, in a temporary directory. */
const session = new Session();
afterAll(() => session.cleanup());

function rows<T>(sql: string): T[] {
  const out = session.query(sql, 'JSONEachRow').trim();
  return out === '' ? [] : out.split('\n').map((l) => JSON.parse(l) as T);
}

const sqlString = (s: string) => `'${s.replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'`;

/** The value jsonPathExtract(path) gives for one NDJSON line, as ClickHouse computes it. */
function extractFrom(line: unknown, path: string): string | null {
  return rows<{ v: string | null }>(`SELECT ${jsonPathExtract(path)} AS v FROM (SELECT ${sqlString(JSON.stringify(line))} AS line)`)[0]!.v;
}

describe('top-level NDJSON keys from one parse per line, run in chDB', () => {
  const lines = [
    '{"s":"plain","n":42,"f":-1.5e3,"b":true,"z":null,"o":{"x":[1,{"y":"z"}]},"a":[1,"two",null],"e":""}',
    '{"s":"quote \\" backslash \\\\ tab \\t nl \\n unicode \\u00e9 ü 日本 \\ud83d\\ude00","n":-9223372036854775808,"f":0.1}',
    '{"n":18446744073709551615,"s":"first","s":"second","k.with.dots":"dotted","k with space":1}',
    '{"o":{},"a":[],"b":false,"n":0}',
    '{}',
    '[1,2,3]',
    '"just a string"',
    '{"s": "spaces around" , "n" : 7 }',
    '{"bad json',
    '{"s":"x","n":123456789012345678901234567890}',
    '',
  ];
  const keys = ['s', 'n', 'f', 'b', 'z', 'o', 'a', 'e', 'missing', 'k.with.dots', 'k with space'];

  it('names only single top-level keys', () => {
    expect(['$.a', "$['a.b']", '$.a.b', '$.a[0]', '$.a[:]', "$.['a']", '$'].map(topLevelKey)).toEqual(['a', 'a.b', null, null, null, null, null]);
  });

  it('gives every value exactly as the JSONPath extraction does, for valid, odd and invalid lines', () => {
    const paths = keys.map((key) => (/^[A-Za-z]+$/.test(key) ? `$.${key}` : `$['${key}']`));
    paths.forEach((path, i) => expect(topLevelKey(path)).toBe(keys[i]));
    // Every column of one data source read together (one parse shared), as the import reads them.
    const read = ndjsonValues(paths);
    const got = rows<Record<string, string | number | null>>(
      `SELECT ${paths.map((p, i) => `${read.values[i]} AS fast${i}, ${jsonPathExtract(p)} AS slow${i}`).join(', ')}, ${read.valid} AS valid, isValidJSON(line) AS expected_valid
       FROM (SELECT arrayJoin([${lines.map(sqlString).join(', ')}]) AS line)`,
    );
    expect(got).toHaveLength(lines.length);
    paths.forEach((_, i) => expect(got.map((r) => r[`fast${i}`]), keys[i]).toEqual(got.map((r) => r[`slow${i}`])));
    expect(got.map((r) => Number(r.valid))).toEqual(got.map((r) => Number(r.expected_valid)));
  });

  it('reads a key no Tuple element can be named, and nested paths, beside the shared parse', () => {
    const paths = ['$.s', "$['k`tick']", "$['back\\slash']", '$.o.x[1].y'];
    const read = ndjsonValues(paths);
    const line = JSON.stringify({ s: 'plain', 'k`tick': 'tick', 'back\\slash': 'slash', o: { x: [1, { y: 'z' }] } });
    const [got] = rows<Record<string, string | null>>(`SELECT ${read.values.map((v, i) => `${v} AS v${i}`).join(', ')}, ${read.valid} AS valid FROM (SELECT ${sqlString(line)} AS line)`);
    expect(got).toEqual({ v0: 'plain', v1: 'tick', v2: 'slash', v3: 'z', valid: 1 });
  });
});

describe('jsonPathExtract, run in chDB', () => {
  const order = {
    id: 7,
    customer: { name: 'Ada', 'e.mail': 'ada@example.com' },
    'key with dots.and spaces': 'odd',
    items: [
      { sku: 'A-1', qty: 2, tags: ['red', 'big'] },
      { sku: 'B-2', qty: 1, tags: [] },
      { qty: 5 },
    ],
    note: null,
  };

  it.each<[string, string | null]>([
    ['$.id', '7'],
    ['$.customer.name', 'Ada'],
    ['$.customer', '{"name":"Ada","e.mail":"ada@example.com"}'],
    ["$.customer.['e.mail']", 'ada@example.com'],
    ["$['key with dots.and spaces']", 'odd'],
    ["$.['key with dots.and spaces']", 'odd'],
    ['$.items[1].sku', 'B-2'],
    // [:] is the whole array; [:].field that field of every element (JSON null where an element lacks it).
    ['$.items[:]', JSON.stringify(order.items)],
    ['$.items[:].sku', '["A-1","B-2",null]'],
    ['$.items[:].qty', '[2,1,5]'],
    ['$.items[:].tags', '[["red","big"],[],null]'],
    ['$.items[:].tags[:]', '[["red","big"],[],null]'],
    // No value: NULL, so the column's default applies.
    ['$.missing', null],
    ['$.missing[:].sku', null],
    ['$.note', null],
    ['$.id[:].x', null],
  ])('%s', (path, expected) => {
    expect(extractFrom(order, path)).toBe(expected);
  });

  it('an array built by [:] reads as the column type with ClickHouse JSON functions', () => {
    const [r] = rows<{ skus: string[]; qty: number[]; tags: string[][] }>(
      `SELECT JSONExtract(assumeNotNull(${jsonPathExtract('$.items[:].sku')}), 'Array(Nullable(String))') AS skus,
              JSONExtract(assumeNotNull(${jsonPathExtract('$.items[:].qty')}), 'Array(UInt32)') AS qty,
              JSONExtract(assumeNotNull(${jsonPathExtract('$.items[:].tags')}), 'Array(Array(String))') AS tags
       FROM (SELECT ${sqlString(JSON.stringify(order))} AS line)`,
    );
    expect(r).toStrictEqual({ skus: ['A-1', 'B-2', null], qty: [2, 1, 5], tags: [['red', 'big'], [], []] });
  });
});

describe('the target table of a .datasource file, created in chDB', () => {
  const FILE = `SCHEMA >
    \`id\` UInt64 \`json:$.id\`,
    \`updated_at\` DateTime64(3) \`json:$.updated_at\`,
    \`deleted\` UInt8 DEFAULT 0 \`json:$.deleted\`,
    \`day\` Date \`json:$.day\` DEFAULT toDate(updated_at),
    \`amount\` Float64 \`json:$.amount\` CODEC(Gorilla, ZSTD(1)),
    \`skus\` Array(String) \`json:$.items[:].sku\`,
    \`total\` SimpleAggregateFunction(sum, UInt64) \`json:$.total\`

ENGINE "ReplacingMergeTree"
ENGINE_PARTITION_KEY "toYYYYMM(day)"
ENGINE_SORTING_KEY "id, intHash32(id)"
ENGINE_SAMPLING_KEY "intHash32(id)"
ENGINE_VER "updated_at"
ENGINE_IS_DELETED "deleted"

INDEXES >
    idx_amount amount TYPE minmax GRANULARITY 4
    idx_skus skus TYPE bloom_filter(0.01) GRANULARITY 1

IMPORT_CONNECTION_NAME conn
IMPORT_BUCKET_URI s3://bucket/orders/*.ndjson
`;

  it('renders DEFAULT, CODEC, INDEX, ReplacingMergeTree(ver, is_deleted) and SAMPLE BY, and ClickHouse creates it', () => {
    const spec = normalizeSpec(dataSourceSpecSchema.parse(readDatasourceFile(FILE, { name: 'orders' }).spec));
    const plan = buildImportPlan('default', spec, spec.columns!, 'ndjson', 'orders');
    const ddl = plan.create[0]!;
    expect(ddl).toContain('`deleted` UInt8 DEFAULT 0');
    expect(ddl).toContain('`day` Date DEFAULT toDate(updated_at)');
    expect(ddl).toContain('`amount` Float64 CODEC(Gorilla, ZSTD(1))');
    expect(ddl).toContain('INDEX `idx_skus` skus TYPE bloom_filter(0.01) GRANULARITY 1');
    expect(ddl).toContain('ENGINE = ReplacingMergeTree(updated_at, deleted)');
    expect(ddl).toContain('SAMPLE BY intHash32(id)');

    session.query(ddl);
    const cols = rows<{ name: string; default_expression: string; compression_codec: string }>(
      "SELECT name, default_expression, compression_codec FROM system.columns WHERE database = 'default' AND table = 'orders' ORDER BY position",
    );
    expect(cols.map((c) => [c.name, c.default_expression, c.compression_codec])).toStrictEqual([
      ['id', '', ''],
      ['updated_at', '', ''],
      ['deleted', '0', ''],
      ['day', 'toDate(updated_at)', ''],
      ['amount', '', 'CODEC(Gorilla(8), ZSTD(1))'],
      ['skus', '', ''],
      ['total', '', ''],
    ]);
    const [table] = rows<{ engine_full: string; sampling_key: string }>("SELECT engine_full, sampling_key FROM system.tables WHERE database = 'default' AND name = 'orders'");
    expect(table!.engine_full).toMatch(/^ReplacingMergeTree\(updated_at, deleted\) PARTITION BY toYYYYMM\(day\) ORDER BY \(id, intHash32\(id\)\) SAMPLE BY intHash32\(id\)/);
    const indexes = rows<{ name: string; type_full: string; granularity: number }>(
      "SELECT name, type_full, granularity FROM system.data_skipping_indices WHERE database = 'default' AND table = 'orders' ORDER BY name",
    );
    expect(indexes).toStrictEqual([
      { name: 'idx_amount', type_full: 'minmax', granularity: 4 },
      { name: 'idx_skus', type_full: 'bloom_filter(0.01)', granularity: 1 },
    ]);
  });
});
