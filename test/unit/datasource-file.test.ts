import { describe, it, expect } from 'vitest';
import { DatasourceFileError, parseDatasourceFile, toDatasourceFile } from '../../schemas/datasource-file.js';
import { dataSourceSpecSchema, type DataSourceSpecInput } from '../../schemas/datasource.js';

/** A Tinybird S3 connector data source, as a Tinybird user would have it in their project. */
const PAGE_VIEWS = `# Page views from the web tracker, landed in S3 by the collector.
DESCRIPTION >
    Page views collected by the web tracker.

    One gzipped NDJSON file per collector per minute.

SCHEMA >
    \`timestamp\` DateTime64(3, 'UTC') \`json:$.timestamp\`,
    \`event_id\` UUID \`json:$.id\`,
    \`user_id\` String \`json:$.user.id\`,
    \`country\` LowCardinality(String) \`json:$.geo.country\`,
    \`referrer\` Nullable(String) \`json:$.context.page.referrer\`,
    \`tags\` Array(String) \`json:$.tags\`,
    \`first_tag\` String \`json:$.tags[0]\`,
    \`duration_ms\` UInt32 \`json:$.metrics.duration_ms\`

ENGINE "MergeTree"
ENGINE_PARTITION_KEY "toYYYYMM(timestamp)"
ENGINE_SORTING_KEY "country, user_id, timestamp"
ENGINE_TTL "toDateTime(timestamp) + toIntervalDay(90)"
ENGINE_SETTINGS "index_granularity=8192, storage_policy='default'"

IMPORT_SERVICE s3
IMPORT_CONNECTION_NAME events_bucket
IMPORT_BUCKET_URI s3://acme-events/page_views/**/*.ndjson.gz
IMPORT_SCHEDULE @auto
IMPORT_STRATEGY APPEND
`;

const PAGE_VIEWS_SPEC: DataSourceSpecInput = {
  name: 'page_views',
  description: 'Page views collected by the web tracker.\n\nOne gzipped NDJSON file per collector per minute.',
  connection: 'events_bucket',
  bucketUri: 's3://acme-events/page_views/**/*.ndjson.gz',
  format: 'ndjson',
  schedule: '@auto',
  columns: [
    { name: 'timestamp', type: "DateTime64(3, 'UTC')", path: '$.timestamp' },
    { name: 'event_id', type: 'UUID', path: '$.id' },
    { name: 'user_id', type: 'String', path: '$.user.id' },
    { name: 'country', type: 'LowCardinality(String)', path: '$.geo.country' },
    { name: 'referrer', type: 'Nullable(String)', path: '$.context.page.referrer' },
    { name: 'tags', type: 'Array(String)', path: '$.tags' },
    { name: 'first_tag', type: 'String', path: '$.tags[0]' },
    { name: 'duration_ms', type: 'UInt32', path: '$.metrics.duration_ms' },
  ],
  engine: {
    engine: 'MergeTree',
    partitionKey: 'toYYYYMM(timestamp)',
    sortingKey: 'country, user_id, timestamp',
    ttl: 'toDateTime(timestamp) + toIntervalDay(90)',
    settings: { index_granularity: 8192, storage_policy: 'default' },
  },
};

/** The minimal import section, for tests about other keys. */
const IMPORT = `IMPORT_SERVICE s3
IMPORT_CONNECTION_NAME conn
IMPORT_BUCKET_URI s3://bucket/data/*.csv
`;

function parse(text: string, name = 'events'): DataSourceSpecInput {
  return parseDatasourceFile(text, { name });
}

function errorOf(text: string): DatasourceFileError {
  try {
    parse(text);
  } catch (e) {
    if (e instanceof DatasourceFileError) return e;
    throw e;
  }
  throw new Error('expected parseDatasourceFile to throw');
}

describe('parseDatasourceFile: a realistic Tinybird S3 data source', () => {
  it('parses into the exact expected spec', () => {
    expect(parse(PAGE_VIEWS, 'page_views')).toStrictEqual(PAGE_VIEWS_SPEC);
  });

  it('gives a spec that passes dataSourceSpecSchema', () => {
    const result = dataSourceSpecSchema.safeParse(parse(PAGE_VIEWS, 'page_views'));
    expect(result.error?.issues).toBeUndefined();
    expect(result.success).toBe(true);
  });

  it('parses the same with CRLF line endings', () => {
    expect(parse(PAGE_VIEWS.replace(/\n/g, '\r\n'), 'page_views')).toStrictEqual(PAGE_VIEWS_SPEC);
  });

  it('parses the same with tab indentation, a BOM and trailing whitespace', () => {
    const text = '\uFEFF' + PAGE_VIEWS.replace(/^ {4}/gm, '\t').replace(/\n/g, '  \n');
    expect(parse(text, 'page_views')).toStrictEqual(PAGE_VIEWS_SPEC);
  });

  it('accepts bare names, no trailing commas, single-quoted import values and lower-case keys', () => {
    const text = `schema >
    timestamp DateTime \`json:$.ts\`
    user_id String \`json:$.user.id\`

engine ReplacingMergeTree
IMPORT_SERVICE 's3_iamrole'
IMPORT_CONNECTION_NAME 'conn'
IMPORT_BUCKET_URI 's3://bucket/a/*.json'
IMPORT_SCHEDULE '@on-demand'
import_strategy 'append'
`;
    expect(parse(text)).toStrictEqual({
      name: 'events',
      connection: 'conn',
      bucketUri: 's3://bucket/a/*.json',
      format: 'ndjson',
      schedule: '@on-demand',
      columns: [
        { name: 'timestamp', type: 'DateTime', path: '$.ts' },
        { name: 'user_id', type: 'String', path: '$.user.id' },
      ],
      engine: { engine: 'ReplacingMergeTree' },
    });
  });
});

describe('parseDatasourceFile: SCHEMA', () => {
  it('keeps types with parentheses, commas and quotes whole', () => {
    const text = `SCHEMA >
    \`ts\` DateTime64(3, 'UTC'),
    \`m\` Map(String, Array(Nullable(Int64))),
    \`e\` Enum8('a, b' = 1, 'c)' = 2),
    \`d\` Decimal(18, 4)

${IMPORT}`;
    expect(parse(text).columns).toStrictEqual([
      { name: 'ts', type: "DateTime64(3, 'UTC')" },
      { name: 'm', type: 'Map(String, Array(Nullable(Int64)))' },
      { name: 'e', type: "Enum8('a, b' = 1, 'c)' = 2)" },
      { name: 'd', type: 'Decimal(18, 4)' },
    ]);
  });

  it('without json paths the format is auto', () => {
    const spec = parse(`SCHEMA >\n    \`a\` String,\n    \`b\` Int32\n${IMPORT}`);
    expect(spec.format).toBe('auto');
    expect(spec.columns).toStrictEqual([
      { name: 'a', type: 'String' },
      { name: 'b', type: 'Int32' },
    ]);
  });

  it('allows a type split over lines, several columns on a line, and comments', () => {
    const text = `SCHEMA >
    # identifiers first
    \`a\` String, \`b\` Int32,
    \`c\` Tuple(
        x Float64,
        y Float64
    ) \`json:$.point\`,
    \`weird name, with \\\` backtick\` String \`json:$['weird key']\`

${IMPORT}`;
    expect(parse(text).columns).toStrictEqual([
      { name: 'a', type: 'String' },
      { name: 'b', type: 'Int32' },
      { name: 'c', type: 'Tuple(\n        x Float64,\n        y Float64\n    )', path: '$.point' },
      { name: 'weird name, with ` backtick', type: 'String', path: "$['weird key']" },
    ]);
  });

  it.each([
    ['no type', '    `user_id` `json:$.user.id`,', 'column `user_id` has no type'],
    ['name only', '    `user_id`,', 'column `user_id` has no type'],
    ['MATERIALIZED', '    `user_id` String MATERIALIZED lower(name),', 'MATERIALIZED columns are computed by ClickHouse, not read from files: not supported (column `user_id`)'],
    ['NOT NULL', '    `user_id` String NOT NULL,', 'NULL / NOT NULL (use Nullable(T) as the type) is not supported (column `user_id`)'],
    ['an empty DEFAULT', '    `user_id` String DEFAULT `json:$.u`,', 'column `user_id`: DEFAULT needs an expression'],
    ['CODEC without a list', '    `user_id` String CODEC ZSTD,', 'column `user_id`: CODEC needs a list in parentheses'],
    ['a default with no type', "    `user_id` DEFAULT 'x',", 'column `user_id` has no type'],
    ['junk after the type', '    `user_id` String junk,', "column `user_id`: unexpected 'junk' after the type"],
    ['an AggregateFunction state', '    `user_id` AggregateFunction(uniq, String),', 'column `user_id`: AggregateFunction columns hold partial aggregation states, which files cannot provide'],
    ['two commas', '    `user_id` String,,', 'empty column definition'],
  ])('a malformed column (%s) is an error naming its line', (_what, bad, reason) => {
    const text = `DESCRIPTION >\n    x\n\nSCHEMA >\n    \`a\` String,\n${bad}\n    \`b\` String\n\n${IMPORT}`;
    const e = errorOf(text);
    expect(e.line).toBe(6);
    expect(e.reason).toContain(reason);
    expect(e.message).toMatch(/^line 6: /);
  });

  it('an unclosed parenthesis names the line where the column starts', () => {
    const e = errorOf(`SCHEMA >\n    \`a\` String,\n    \`b\` Array(String\n\n${IMPORT}`);
    expect(e.line).toBe(3);
    expect(e.reason).toContain("unclosed '('");
  });

  it('an empty SCHEMA block is an error', () => {
    const e = errorOf(`SCHEMA >\n\n${IMPORT}`);
    expect(e.line).toBe(1);
    expect(e.reason).toBe('SCHEMA has no columns');
  });
});

describe('parseDatasourceFile: ENGINE keys', () => {
  it('strips one pair of double quotes, treats empty values as unset and parses settings', () => {
    const text = `ENGINE MergeTree
ENGINE_PARTITION_KEY ""
ENGINE_SORTING_KEY "tuple()"
ENGINE_PRIMARY_KEY ""id""
ENGINE_TTL
ENGINE_SETTINGS "index_granularity=8192, ratio=0.5, allow_nullable_key=true, policy='hot', big=18446744073709551615, bare=abc"
${IMPORT}`;
    expect(parse(text).engine).toStrictEqual({
      engine: 'MergeTree',
      sortingKey: 'tuple()',
      primaryKey: '"id"',
      settings: { index_granularity: 8192, ratio: 0.5, allow_nullable_key: true, policy: 'hot', big: '18446744073709551615', bare: 'abc' },
    });
  });

  it('leaves engine out when every ENGINE value is empty', () => {
    const spec = parse(`ENGINE_PARTITION_KEY ""\nENGINE_SORTING_KEY ""\n${IMPORT}`);
    expect(spec).not.toHaveProperty('engine');
  });

  it('accepts a multi-line expression in a block', () => {
    const spec = parse(`ENGINE_TTL >\n    timestamp\n      + INTERVAL 30 DAY\n${IMPORT}`);
    expect(spec.engine).toStrictEqual({ ttl: 'timestamp\n  + INTERVAL 30 DAY' });
  });

  it('rejects an engine the connector cannot create', () => {
    const e = errorOf(`ENGINE "CollapsingMergeTree"\n${IMPORT}`);
    expect(e.line).toBe(1);
    expect(e.reason).toContain('ENGINE CollapsingMergeTree is not supported');
  });

  it('rejects a malformed setting', () => {
    const e = errorOf(`\nENGINE_SETTINGS "index_granularity"\n${IMPORT}`);
    expect(e.line).toBe(2);
    expect(e.reason).toContain('expected name=value');
  });
});

describe('parseDatasourceFile: IMPORT keys', () => {
  it.each([
    ['csv', { format: 'csv' }],
    ['CSV.gz', { format: 'csv', compression: 'gzip' }],
    ['ndjson.zst', { format: 'ndjson', compression: 'zstd' }],
    ['"parquet"', { format: 'parquet' }],
    ['jsonl', { format: 'ndjson' }],
  ])('IMPORT_FORMAT %s', (value, expected) => {
    const spec = parse(`${IMPORT}IMPORT_FORMAT ${value}\n`);
    expect({ format: spec.format, compression: spec.compression }).toStrictEqual({ compression: undefined, ...expected });
  });

  it('IMPORT_FORMAT overrides the format the json paths imply', () => {
    const spec = parse(`SCHEMA >\n    a String \`json:$.a\`\n${IMPORT}IMPORT_FORMAT auto\n`);
    expect(spec.format).toBe('auto');
  });

  it('an unknown IMPORT_FORMAT is an error naming the line', () => {
    const e = errorOf(`${IMPORT}IMPORT_FORMAT tsv\n`);
    expect(e.line).toBe(4);
    expect(e.reason).toContain('IMPORT_FORMAT tsv is not supported');
  });

  it.each([
    ['2024-06-01T00:00:00Z', '2024-06-01T00:00:00Z'],
    ["'2024-06-01T08:30:00+02:00'", '2024-06-01T08:30:00+02:00'],
    ['2024-06-01 08:30:00', '2024-06-01T08:30:00Z'],
    ['2024-06-01', '2024-06-01T00:00:00Z'],
  ])('IMPORT_FROM_TIMESTAMP %s is since %s (no zone: UTC), and is written back', (value, since) => {
    const spec = parse(`${IMPORT}IMPORT_FROM_TIMESTAMP ${value}\n`);
    expect(spec.since).toBe(since);
    expect(toDatasourceFile(spec)).toContain(`IMPORT_FROM_TIMESTAMP ${since}\n`);
    expect(parse(toDatasourceFile(spec))).toStrictEqual(spec);
  });

  it.each(['yesterday', '2024-13-01T00:00:00Z', '2024-06-01T25:00:00Z', '1717200000'])('IMPORT_FROM_TIMESTAMP %s is an error naming the line', (value) => {
    const e = errorOf(`${IMPORT}IMPORT_FROM_TIMESTAMP ${value}\n`);
    expect([e.line, e.reason.startsWith(`IMPORT_FROM_TIMESTAMP ${value} is not a date-time`)]).toStrictEqual([4, true]);
  });

  it('startAfter has no .datasource key: the writer says so', () => {
    expect(() => toDatasourceFile({ ...parse(IMPORT), startAfter: 'data/2024' })).toThrow(/no key for startAfter/);
  });

  it('passes a cron or @every schedule through', () => {
    expect(parse(`${IMPORT}IMPORT_SCHEDULE */5 * * * *\n`).schedule).toBe('*/5 * * * *');
    expect(parse(`${IMPORT}IMPORT_SCHEDULE @every 10m\n`).schedule).toBe('@every 10m');
  });

  it('REPLACE strategy is an error naming the line', () => {
    const e = errorOf(`${IMPORT}\n# strategy\nIMPORT_STRATEGY REPLACE\n`);
    expect(e.line).toBe(6);
    expect(e.reason).toContain('IMPORT_STRATEGY REPLACE is not supported');
  });

  it('an unknown strategy is an error naming the line', () => {
    const e = errorOf(`${IMPORT}IMPORT_STRATEGY upsert\n`);
    expect(e.line).toBe(4);
    expect(e.reason).toContain('only APPEND');
  });

  it.each(['ftp', '""'])('IMPORT_SERVICE %s is an error listing the allowed values', (service) => {
    const e = errorOf(`DESCRIPTION x\nIMPORT_SERVICE ${service}\nIMPORT_CONNECTION_NAME c\nIMPORT_BUCKET_URI s3://b/x\n`);
    expect(e.line).toBe(2);
    expect(e.reason).toMatch(/^IMPORT_SERVICE .* is not supported; allowed values: s3, s3_iamrole$/);
  });

  it('IMPORT_SERVICE is optional and case-insensitive', () => {
    expect(parse('IMPORT_CONNECTION_NAME c\nIMPORT_BUCKET_URI s3://b/x\n').connection).toBe('c');
    expect(parse('IMPORT_SERVICE S3\nIMPORT_CONNECTION_NAME c\nIMPORT_BUCKET_URI s3://b/x\n').bucketUri).toBe('s3://b/x');
  });

  it('a missing connection or bucket URI is an error for the whole file (line 0)', () => {
    const noConnection = errorOf('IMPORT_SERVICE s3\nIMPORT_BUCKET_URI s3://b/x\n');
    expect([noConnection.line, noConnection.reason]).toEqual([0, expect.stringContaining('IMPORT_CONNECTION_NAME is missing')]);
    const noBucket = errorOf('IMPORT_SERVICE s3\nIMPORT_CONNECTION_NAME c\nIMPORT_BUCKET_URI ""\n');
    expect([noBucket.line, noBucket.reason]).toEqual([0, expect.stringContaining('IMPORT_BUCKET_URI is missing')]);
  });
});

describe('parseDatasourceFile: unsupported keys and layout errors', () => {
  it.each([
    ['ENGINE_SUMMING_COLUMNS "a, b"', 'ENGINE_SUMMING_COLUMNS is not supported yet'],
    ['ENGINE_SIGN sign', 'ENGINE_SIGN is for (Versioned)CollapsingMergeTree, which is not supported'],
    ['ENGINE_FOO x', 'unsupported key ENGINE_FOO: the ENGINE_ keys read are'],
    ['IMPORT_QUERY_TIMEOUT 5', 'unsupported key IMPORT_QUERY_TIMEOUT: the IMPORT_ keys read are'],
    ['EXPORT_SERVICE s3', 'unsupported key EXPORT_SERVICE: it belongs in a Tinybird .pipe file'],
    ['SOMETHING_ELSE x', 'unsupported key SOMETHING_ELSE'],
  ])('%s is an error naming the line and the key', (line, reason) => {
    const text = `# header\nDESCRIPTION >\n    text\n\nSCHEMA >\n    \`a\` String\n\n${IMPORT}\n${line}\n    indented body\n`;
    const e = errorOf(text);
    expect(e).toBeInstanceOf(DatasourceFileError);
    expect(e.line).toBe(12);
    expect(e.reason.startsWith(reason)).toBe(true);
    expect(e.message).toBe(`line 12: ${e.reason}`);
  });

  it('a key given twice is an error naming the second line', () => {
    const e = errorOf(`${IMPORT}IMPORT_BUCKET_URI s3://other/x\n`);
    expect(e.line).toBe(4);
    expect(e.reason).toBe('IMPORT_BUCKET_URI is given twice (first at line 3)');
  });

  it('an indented key line outside a block is read as a key, as Tinybird does', () => {
    expect(parse(`ENGINE MergeTree\n    ENGINE_SORTING_KEY a\n${IMPORT}`).engine).toStrictEqual({ engine: 'MergeTree', sortingKey: 'a' });
  });

  it('an indented line that follows no block and is no key is an error', () => {
    const e = errorOf(`ENGINE MergeTree\n    sorted by a\n${IMPORT}`);
    expect(e.line).toBe(2);
    expect(e.reason).toContain('indented line outside a block');
  });

  it('a line at column 0 that is no key is an error', () => {
    const e = errorOf(`ENGINE MergeTree\n"quoted"\n${IMPORT}`);
    expect(e.line).toBe(2);
    expect(e.reason).toContain('expected "KEY value" or "KEY >"');
  });

  it('comments and blank lines are ignored, and a column-0 comment does not end a block', () => {
    const text = `\n# top\n\nDESCRIPTION >\n    # Heading\n# a comment\n\n    body\n\n${IMPORT}# end\n`;
    expect(parse(text).description).toBe('# Heading\n\nbody');
  });

  it('a single-line DESCRIPTION loses one pair of double quotes', () => {
    expect(parse(`DESCRIPTION "Raw \\"events\\""\n${IMPORT}`).description).toBe('Raw \\"events\\"');
    expect(parse(`DESCRIPTION Raw events\n${IMPORT}`).description).toBe('Raw events');
  });
});

describe('toDatasourceFile', () => {
  it('round-trips the realistic spec exactly', () => {
    const text = toDatasourceFile(PAGE_VIEWS_SPEC);
    expect(parse(text, 'page_views')).toStrictEqual(PAGE_VIEWS_SPEC);
  });

  it('round-trips a parsed file', () => {
    const spec = parse(PAGE_VIEWS, 'page_views');
    expect(parse(toDatasourceFile(spec), 'page_views')).toStrictEqual(spec);
  });

  it.each<[string, DataSourceSpecInput]>([
    [
      'csv with compression and every engine key',
      {
        name: 'orders',
        description: '  Orders export.\n\n  # Not a comment\nSecond paragraph.',
        connection: "'quoted' connection",
        bucketUri: 's3://orders-bucket/exports/{2024,2025}/*.csv.gz',
        format: 'csv',
        compression: 'gzip',
        schedule: '0 */2 * * *',
        columns: [
          { name: 'order id', type: 'UInt64' },
          { name: 'we`ird\\name', type: "Enum8('a, b' = 1, 'c' = 2)" },
          { name: 'amount', type: 'Decimal(18, 4)' },
        ],
        engine: {
          engine: 'ReplacingMergeTree',
          partitionKey: '"toYYYYMM(created_at)"',
          sortingKey: 'order_id',
          primaryKey: 'order_id',
          ttl: 'created_at\n  + INTERVAL 1 YEAR',
          settings: { index_granularity: 1024, flag: false, label: 'x y', numeric_text: '0042' },
        },
      },
    ],
    ['the minimum', { name: 'minimal', connection: 'c', bucketUri: 's3://bkt/x' }],
    ['auto format despite json paths', { name: 'n', connection: 'c', bucketUri: 's3://bkt/x', format: 'auto', columns: [{ name: 'a', type: 'String', path: '$.a' }] }],
    ['parquet with zstd', { name: 'p', connection: 'c', bucketUri: 's3://bkt/*.parquet', format: 'parquet', compression: 'zstd', schedule: '@every 5m' }],
  ])('round-trips %s', (_what, spec) => {
    const text = toDatasourceFile(spec);
    const back = parse(text, spec.name);
    // The reader always states the format; every other field comes back as written.
    expect(back).toStrictEqual({ format: 'auto', ...spec });
    expect(dataSourceSpecSchema.parse(back)).toStrictEqual(dataSourceSpecSchema.parse(spec));
  });

  it('writes Tinybird-style text', () => {
    expect(toDatasourceFile({ name: 'x', connection: 'c', bucketUri: 's3://b/*.ndjson', format: 'ndjson', columns: [{ name: 'a', type: 'String', path: '$.a.b' }], engine: { sortingKey: 'a' } })).toBe(
      `SCHEMA >
    \`a\` String \`json:$.a.b\`

ENGINE_SORTING_KEY "a"

IMPORT_SERVICE s3
IMPORT_CONNECTION_NAME c
IMPORT_BUCKET_URI s3://b/*.ndjson
IMPORT_STRATEGY APPEND
`,
    );
  });

  it('refuses specs the format cannot say', () => {
    const base = { name: 'x', connection: 'c', bucketUri: 's3://b/x' };
    expect(() => toDatasourceFile({ ...base, table: 'other', csv: { header: false }, limits: { concurrency: 2 } })).toThrow(
      /no key for table, csv, limits$/,
    );
    expect(() => toDatasourceFile({ ...base, mode: 'ordered' })).toThrow(/no key for mode$/);
    expect(() => toDatasourceFile({ ...base, compression: 'none' })).toThrow(/compression none/);
    expect(() => toDatasourceFile({ ...base, columns: [{ name: 'a', type: 'String', source: 'A' }] })).toThrow(/columns\[0\]\.source/);
    expect(() => toDatasourceFile({ ...base, table: 'x', mode: 'tracked', compression: 'auto' })).not.toThrow();
  });
});
