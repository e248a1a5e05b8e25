import { describe, expect, it } from 'vitest';
import { DatasourceFileError, readDatasourceFile, toDatasourceFile } from '../../schemas/datasource-file.js';
import { dataSourceSpecSchema, type DataSourceSpecInput } from '../../schemas/datasource.js';

/** The minimal import section, for tests about other keys. */
const IMPORT = 'IMPORT_SERVICE s3\nIMPORT_CONNECTION_NAME conn\nIMPORT_BUCKET_URI s3://bucket/data/*.ndjson\n';

const read = (text: string) => readDatasourceFile(text, { name: 'events' });

function errorOf(text: string): DatasourceFileError {
  try {
    read(text);
  } catch (e) {
    if (e instanceof DatasourceFileError) return e;
    throw e;
  }
  throw new Error('expected readDatasourceFile to throw');
}

/** Zod's issues for a spec, as `path: message`. */
function issues(spec: DataSourceSpecInput): string[] {
  const r = dataSourceSpecSchema.safeParse(spec);
  return r.success ? [] : r.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`);
}

describe('values, as Tinybird reads them', () => {
  it('drops a trailing # comment outside quotes and one pair of quotes', () => {
    const { spec } = read(`IMPORT_CONNECTION_NAME 'conn' # the reader role
IMPORT_BUCKET_URI "s3://bucket/a#b/*.ndjson" # '#' inside quotes stays
IMPORT_SCHEDULE @auto#no space needed
ENGINE_SORTING_KEY ts, id   # sorted by time
`);
    expect([spec.connection, spec.bucketUri, spec.schedule, spec.engine]).toStrictEqual(['conn', 's3://bucket/a#b/*.ndjson', '@auto', { sortingKey: 'ts, id' }]);
  });

  it('KEY > with a trailing comment opens a block', () => {
    expect(read(`ENGINE_TTL > # ninety days\n    ts + INTERVAL 90 DAY\n${IMPORT}`).spec.engine).toStrictEqual({ ttl: 'ts + INTERVAL 90 DAY' });
  });

  it('a lower-case key at column 0 ends an indented block; in an unindented block only a capitalised one does', () => {
    const indented = read(`schema >\n    a String\n    b String\nengine MergeTree\n${IMPORT}`).spec;
    expect([indented.columns, indented.engine]).toStrictEqual([[{ name: 'a', type: 'String' }, { name: 'b', type: 'String' }], { engine: 'MergeTree' }]);
    const flat = read(`SCHEMA >\na String\nversion UInt32\ntype String\nENGINE MergeTree\n${IMPORT}`).spec;
    expect([flat.columns, flat.engine]).toStrictEqual([
      [{ name: 'a', type: 'String' }, { name: 'version', type: 'UInt32' }, { name: 'type', type: 'String' }],
      { engine: 'MergeTree' },
    ]);
  });

  it('every TOKEN line is a warning of its own, in file order; other keys given twice are still an error', () => {
    const { warnings } = read(`TOKEN a READ\n${IMPORT}TOKEN "b c" APPEND\n`);
    expect(warnings.map((w) => w.slice(0, w.indexOf(' is ignored')))).toStrictEqual(['line 1: TOKEN a READ', 'line 5: TOKEN "b c" APPEND']);
    expect(errorOf(`ENGINE MergeTree\nENGINE MergeTree\n${IMPORT}`).reason).toBe('ENGINE is given twice (first at line 1)');
  });

  it('a block of ignored lines is one warning naming its lines and its content', () => {
    const { warnings } = read(`SHARED_WITH >\n    ws_one\n\n    ws_two\n${IMPORT}`);
    expect(warnings).toStrictEqual(['lines 1-4: SHARED_WITH > ws_one ws_two is ignored: sharing with other Tinybird workspaces has no equivalent here']);
  });
});

describe('SCHEMA clauses', () => {
  it('reads DEFAULT with quotes, parentheses, backticks and NULL, before or after the path, and CODEC anywhere after the type', () => {
    const { spec } = read(`SCHEMA >
    a String DEFAULT concat('x, y', \`b\`) \`json:$.a\`,
    b Nullable(String) \`json:$.b\` DEFAULT NULL,
    c UInt64 CODEC(Delta(8), ZSTD(1)) DEFAULT 1 \`json:$.c\`,
    d DOUBLE PRECISION DEFAULT -1.5 -- a comment, with a comma
${IMPORT}`);
    expect(spec.columns).toStrictEqual([
      { name: 'a', type: 'String', path: '$.a', default: "concat('x, y', `b`)" },
      { name: 'b', type: 'Nullable(String)', path: '$.b', default: 'NULL' },
      { name: 'c', type: 'UInt64', path: '$.c', default: '1', codec: 'Delta(8), ZSTD(1)' },
      { name: 'd', type: 'DOUBLE PRECISION', default: '-1.5' },
    ]);
    expect(issues(spec)).toStrictEqual([]);
  });

  it('a type ClickHouse does not know is an error naming the line and the column', () => {
    const e = errorOf(`SCHEMA >\n    a String,\n    b Strin\n${IMPORT}`);
    expect([e.line, e.reason]).toStrictEqual([3, "column `b`: unknown ClickHouse type 'Strin'"]);
  });

  it('Parquet: a json path naming a nested field is refused, since Parquet columns are read by name', () => {
    const e = errorOf(`SCHEMA >\n    a String \`json:$.a.b\`\n${IMPORT.replace('*.ndjson', '*.parquet')}`);
    expect(e.line).toBe(1);
    expect(e.reason).toContain('Parquet columns are read by name, so json:$.a.b cannot be used');
  });

  it('IMPORT_FORMAT parquet turns json paths into column sources too', () => {
    const { spec } = read(`SCHEMA >\n    a String \`json:$.a\`,\n    b String \`json:$.B\`\n${IMPORT}IMPORT_FORMAT parquet\n`);
    expect([spec.format, spec.columns]).toStrictEqual(['parquet', [{ name: 'a', type: 'String' }, { name: 'b', type: 'String', source: 'B' }]]);
  });
});

describe('INDEXES', () => {
  it('reads one index per line, with or without INDEX and a trailing comma, GRANULARITY optional', () => {
    const { spec } = read(`INDEXES >
    INDEX ix_a lower(a) TYPE tokenbf_v1(256, 2, 0) GRANULARITY 2,
    ix_b b TYPE minmax
${IMPORT}`);
    expect(spec.engine).toStrictEqual({
      indexes: [
        { name: 'ix_a', expr: 'lower(a)', type: 'tokenbf_v1(256, 2, 0)', granularity: 2 },
        { name: 'ix_b', expr: 'b', type: 'minmax' },
      ],
    });
  });

  it('a line that is not an index is an error naming it', () => {
    const e = errorOf(`INDEXES >\n    ix_a lower(a)\n${IMPORT}`);
    expect([e.line, e.reason]).toStrictEqual([2, 'INDEXES: expected "name expression TYPE type GRANULARITY n", got "ix_a lower(a)"']);
  });
});

describe('the spec schema checks the new fields', () => {
  const base: DataSourceSpecInput = { name: 'x', connection: 'c', bucketUri: 's3://bucket/*.ndjson', columns: [{ name: 'a', type: 'UInt8' }] };

  it.each<[string, DataSourceSpecInput, string[]]>([
    ['ver on MergeTree', { ...base, engine: { ver: 'a' } }, ['engine.ver: ver and isDeleted are for ReplacingMergeTree, not MergeTree']],
    ['isDeleted without ver', { ...base, engine: { engine: 'ReplacingMergeTree', isDeleted: 'a' } }, ['engine.isDeleted: isDeleted needs ver (ReplacingMergeTree(ver, is_deleted))']],
    [
      'two indexes with one name',
      { ...base, engine: { indexes: [{ name: 'i', expr: 'a', type: 'minmax' }, { name: 'i', expr: 'a', type: 'set(0)' }] } },
      ["engine.indexes.1.name: duplicate index 'i'"],
    ],
    ['an index type with an expression', { ...base, engine: { indexes: [{ name: 'i', expr: 'a', type: 'set(a + 1)' }] } }, ['engine.indexes.0.type: index type must be a skip index type like minmax, set(100) or bloom_filter(0.01)']],
    ['a codec with an expression', { ...base, columns: [{ name: 'a', type: 'UInt8', codec: 'ZSTD(now())' }] }, ["columns.0.codec: codec must be a list of codecs like 'Delta, ZSTD(1)' (the text inside CODEC(...))"]],
    ['two statements in a default', { ...base, columns: [{ name: 'a', type: 'UInt8', default: '1; DROP TABLE t' }] }, ["columns.0.default: default must be a single expression (no ';' or comments)"]],
    ['a comment in a default', { ...base, columns: [{ name: 'a', type: 'String', default: "'x' /* y */" }] }, ["columns.0.default: default must be a single expression (no ';' or comments)"]],
    ['a JSONPath that is not one', { ...base, columns: [{ name: 'a', type: 'String', path: '$.a[*]' }] }, ["columns.0.path: path must be a JSONPath like $.a.b, $.items[0], $.items[:].id or $['key']"]],
  ])('%s is refused', (_what, spec, expected) => {
    expect(issues(spec)).toStrictEqual(expected);
  });

  it('accepts every new field together', () => {
    const spec: DataSourceSpecInput = {
      ...base,
      columns: [
        { name: 'a', type: 'UInt8', path: "$.x[:].y['z.w']", default: '0', codec: 'T64, LZ4' },
        { name: 'v', type: 'DateTime' },
      ],
      engine: { engine: 'ReplacingMergeTree', ver: 'v', isDeleted: 'a', samplingKey: 'a', sortingKey: 'a', indexes: [{ name: 'i', expr: 'a', type: 'bloom_filter(0.01)', granularity: 1 }] },
    };
    expect(issues(spec)).toStrictEqual([]);
  });
});

describe('toDatasourceFile with the new fields', () => {
  it.each<[string, DataSourceSpecInput]>([
    [
      'defaults, codecs, indexes, ver, isDeleted and a sampling key',
      {
        name: 'orders',
        connection: 'c',
        bucketUri: 's3://b/orders/*.ndjson',
        format: 'ndjson',
        columns: [
          { name: 'id', type: 'UInt64', path: '$.id' },
          { name: 'v', type: 'DateTime64(3)', path: '$.meta.v', default: 'now64(3)', codec: 'DoubleDelta, ZSTD(1)' },
          { name: 'gone', type: 'UInt8', path: "$['is gone']", default: '0' },
          { name: 'skus', type: 'Array(String)', path: '$.lines[:].sku' },
          { name: 'note', type: 'String', default: "concat('a, b', '#')" },
        ],
        engine: {
          engine: 'ReplacingMergeTree',
          sortingKey: 'id, intHash32(id)',
          samplingKey: 'intHash32(id)',
          ttl: "toDateTime(v) + INTERVAL 1 YEAR # kept a year",
          ver: 'v',
          isDeleted: 'gone',
          indexes: [
            { name: 'ix', expr: 'skus', type: 'bloom_filter(0.01)', granularity: 2 },
            { name: 'iy', expr: 'lower(note)', type: 'minmax' },
          ],
        },
      },
    ],
    [
      'Parquet columns renamed from the file',
      { name: 'p', connection: 'c', bucketUri: 's3://b/p/*.parquet', format: 'parquet', columns: [{ name: 'a', type: 'String', source: 'A' }, { name: 'b', type: 'String', source: 'b c' }, { name: 'c', type: 'String' }] },
    ],
    ['Parquet by IMPORT_FORMAT', { name: 'p', connection: 'c', bucketUri: 's3://b/p/*', format: 'parquet', columns: [{ name: 'a', type: 'String', source: 'x' }] }],
    ['values holding #', { name: 'h', connection: 'c#1', bucketUri: "s3://b/a#'1'/*.csv", format: 'csv', schedule: '@auto' }],
    ['a multi-line type', { name: 'm', connection: 'c', bucketUri: 's3://b/x', columns: [{ name: 't', type: 'Tuple(\n        a String,\n        b UInt8\n    )' }] }],
  ])('%s read back as written', (_what, spec) => {
    expect(readDatasourceFile(toDatasourceFile(spec), { name: spec.name })).toStrictEqual({ spec: { format: 'auto', ...spec }, warnings: [] });
  });

  it('refuses what it cannot write', () => {
    const base = { name: 'x', connection: 'c', bucketUri: 's3://b/x' };
    expect(() => toDatasourceFile({ ...base, format: 'csv', columns: [{ name: 'a', type: 'String', source: 'A' }] })).toThrow(/no key for columns\[0\]\.source$/);
    // Polling options are the connector's own: an export that dropped them would read back as a different spec.
    expect(() => toDatasourceFile({ ...base, sweepInterval: '10m' })).toThrow(/no key for sweepInterval$/);
    expect(() => toDatasourceFile({ ...base, schedule: '@auto', maxIdleInterval: '15m' })).toThrow(/no key for maxIdleInterval$/);
    expect(() => toDatasourceFile({ ...base, connection: `a#b'c"` })).toThrow(/no key for connection \(contains #, ' and "\)$/);
    expect(() => toDatasourceFile({ ...base, columns: [{ name: 'a', type: 'String', default: "'x'\n\n" }] })).toThrow(/columns\[0\]\.default \(blank or comment lines\)/);
  });
});
