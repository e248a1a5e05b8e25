import { describe, expect, it } from 'vitest';
import { DEFAULT_LIMITS, dataSourceSpecSchema, normalizeSpec } from '../../schemas/datasource.js';

/** The example spec from the design. */
const example = {
  name: 'events',
  description: 'Click events from the web tier',
  connection: 'local',
  bucketUri: 's3://demo/events/**/*.csv.gz',
  format: 'csv',
  compression: 'gzip',
  csv: { delimiter: ',', header: true },
  schedule: '@auto',
  columns: [
    { name: 'timestamp', type: 'DateTime' },
    { name: 'user_id', type: 'UInt64' },
    { name: 'event', type: 'LowCardinality(String)' },
    { name: 'amount', type: 'Nullable(Decimal(18, 4))', source: 'Amount (EUR)' },
  ],
  engine: {
    partitionKey: 'toYYYYMM(timestamp)',
    sortingKey: 'timestamp, user_id',
    ttl: 'timestamp + INTERVAL 90 DAY',
  },
  limits: { maxFilesPerRun: 1000, concurrency: 8 },
};

type Issue = { path: PropertyKey[]; message: string; code?: string };

function issuesOf(input: unknown): Issue[] {
  const r = dataSourceSpecSchema.safeParse(input);
  if (r.success) throw new Error(`expected ${JSON.stringify(input)} to be rejected`);
  return r.error.issues as Issue[];
}

/** The issue at `path` (dot-joined); fails the test when there is none. */
function issueAt(input: unknown, path: string): Issue {
  const issues = issuesOf(input);
  const found = issues.find((i) => i.path.map(String).join('.') === path);
  if (!found) {
    throw new Error(`no issue at '${path}'; got ${JSON.stringify(issues.map((i) => [i.path.join('.'), i.message]))}`);
  }
  return found;
}

describe('dataSourceSpecSchema: the design example', () => {
  it('parses and normalises with defaults filled in', () => {
    const parsed = dataSourceSpecSchema.safeParse(example);
    expect(parsed.success, JSON.stringify(parsed.error?.issues)).toBe(true);
    const spec = normalizeSpec(parsed.data!);
    expect(spec).toEqual({
      ...example,
      table: 'events',
      mode: 'tracked',
      csv: { delimiter: ',', header: true, skipLines: 0, quote: '"' },
      engine: { engine: 'MergeTree', ...example.engine },
      limits: { maxFilesPerRun: 1000, concurrency: 8, maxFileBytes: DEFAULT_LIMITS.maxFileBytes, maxRowBytes: DEFAULT_LIMITS.maxRowBytes },
    });
  });

  it('fills every default for a minimal spec', () => {
    const spec = normalizeSpec(dataSourceSpecSchema.parse({ name: 'events', connection: 'local', bucketUri: 's3://demo/events/*.csv' }));
    expect(spec.table).toBe('events');
    expect(spec.mode).toBe('tracked');
    expect(spec.schedule).toBe('@auto');
    expect(spec.format).toBe('auto');
    expect(spec.compression).toBe('auto');
    expect(spec.limits).toEqual(DEFAULT_LIMITS);
    expect(spec.engine).toEqual({ engine: 'MergeTree' });
    // format auto may turn out to be CSV, so CSV options get their defaults too.
    expect(spec.csv).toEqual({ delimiter: ',', header: true, skipLines: 0, quote: '"' });
    expect(spec.columns).toBeUndefined();
  });

  it('keeps an explicit table and mode', () => {
    const spec = normalizeSpec(dataSourceSpecSchema.parse({ ...example, table: 'Events_2024', mode: 'ordered' }));
    expect(spec.table).toBe('Events_2024');
    expect(spec.mode).toBe('ordered');
  });

  it('drops CSV options for non-CSV formats', () => {
    const { csv: _csv, ...rest } = example;
    const spec = normalizeSpec(dataSourceSpecSchema.parse({ ...rest, format: 'parquet', bucketUri: 's3://demo/x/*.parquet' }));
    expect(spec.csv).toBeUndefined();
  });

  it('accepts path on ndjson and auto data sources', () => {
    const columns = [{ name: 'user_id', type: 'UInt64', path: '$.user.id' }, { name: 'first', type: 'String', path: '$.items[0]' }];
    const { csv: _csv, ...rest } = example;
    expect(dataSourceSpecSchema.safeParse({ ...rest, format: 'ndjson', columns }).success).toBe(true);
    expect(dataSourceSpecSchema.safeParse({ ...rest, format: 'auto', columns }).success).toBe(true);
  });

  it.each(['a', 'a'.repeat(63), 'events_2024', 'e1'])('accepts the name %j', (name) => {
    expect(dataSourceSpecSchema.safeParse({ ...example, name }).success).toBe(true);
  });

  it.each(['@on-demand', '@every 30s', '@every 1h30m', '@daily', '*/5 * * * *', '0 3 * * MON-FRI'])('accepts the schedule %j', (schedule) => {
    expect(dataSourceSpecSchema.safeParse({ ...example, schedule }).success).toBe(true);
  });
});

describe('dataSourceSpecSchema: rejections name the field and the reason', () => {
  it.each<[what: string, patch: Record<string, unknown>, path: string, reason: RegExp]>([
    ['uppercase name', { name: 'Events' }, 'name', /name must match \^\[a-z\]/],
    ['name starting with a digit', { name: '1abc' }, 'name', /name must match/],
    ['name of 64 characters', { name: 'a'.repeat(64) }, 'name', /name must match .*\{0,62\}/],
    ['empty name', { name: '' }, 'name', /name must match/],
    ['name with a dash', { name: 'my-events' }, 'name', /name must match/],
    ['non-s3 bucketUri', { bucketUri: 'http://x' }, 'bucketUri', /scheme "http:\/\/" is not supported; only s3:\/\//],
    ['uppercase, short bucket', { bucketUri: 's3://AB/x' }, 'bucketUri', /bucket name "AB" is 2 characters long/],
    ['uppercase bucket', { bucketUri: 's3://MyBucket/x' }, 'bucketUri', /may only contain lowercase letters/],
    ['unclosed brace', { bucketUri: 's3://bucket/{a,b' }, 'bucketUri', /unclosed "\{"/],
    ['unmatched brace', { bucketUri: 's3://bucket/a}b' }, 'bucketUri', /unmatched "\}"/],
    ['@every 0s', { schedule: '@every 0s' }, 'schedule', /too short; the minimum interval is 1s/],
    ['minute 61', { schedule: '61 * * * *' }, 'schedule', /minute value 61 is out of range 0-59/],
    ['three cron fields', { schedule: '* * *' }, 'schedule', /has 3 fields; expected 5/],
    ['unknown keyword', { schedule: '@sometimes' }, 'schedule', /unknown keyword "@sometimes"/],
    ['empty schedule', { schedule: '' }, 'schedule', /is empty/],
    ['bad column type', { columns: [{ name: 'x', type: 'Strin' }] }, 'columns.0.type', /invalid ClickHouse type: unknown ClickHouse type 'Strin'/],
    ['bad second column type', { columns: [{ name: 'x', type: 'String' }, { name: 'y', type: 'Nullable(Array(Int8))' }] }, 'columns.1.type', /Array cannot be inside Nullable/],
    ['empty column name', { columns: [{ name: '', type: 'String' }] }, 'columns.0.name', /column name must be 1-256 printable characters/],
    ['control character in a column name', { columns: [{ name: 'a\nb', type: 'String' }] }, 'columns.0.name', /printable/],
    ['no columns', { columns: [] }, 'columns', /at least one column/],
    ['malformed JSONPath', { format: 'ndjson', csv: undefined, columns: [{ name: 'x', type: 'String', path: 'user.id' }] }, 'columns.0.path', /JSONPath/],
    ['unknown format', { format: 'xml' }, 'format', /csv|ndjson|parquet/],
    ['delimiter of two characters', { csv: { delimiter: ';;' } }, 'csv.delimiter', /exactly one character/],
    ['unknown CSV option', { csv: { escape: '\\' } }, 'csv', /escape/],
    ['unknown engine', { engine: { engine: 'Log' } }, 'engine.engine', /MergeTree/],
    ['sortingKey with ;', { engine: { sortingKey: 'timestamp; DROP TABLE users' } }, 'engine.sortingKey', /single expression \(no ';' or comments\)/],
    ['partitionKey with a comment', { engine: { partitionKey: 'toYYYYMM(timestamp) -- x' } }, 'engine.partitionKey', /no ';' or comments/],
    ['ttl with a block comment', { engine: { ttl: 'timestamp /* x */ + INTERVAL 1 DAY' } }, 'engine.ttl', /no ';' or comments/],
    ['empty sortingKey', { engine: { sortingKey: '   ' } }, 'engine.sortingKey', /must not be empty/],
    ['quote in an engine setting', { engine: { settings: { index_granularity: "8192'" } } }, 'engine.settings.index_granularity', /must not contain quotes/],
    ['bad table name', { table: 'my-table' }, 'table', /table must match/],
    ['concurrency 0', { limits: { concurrency: 0 } }, 'limits.concurrency', /expected number to be >=1|>=\s*1/i],
    ['concurrency 65', { limits: { concurrency: 65 } }, 'limits.concurrency', /<=\s*64/],
    ['negative maxFilesPerRun', { limits: { maxFilesPerRun: -1 } }, 'limits.maxFilesPerRun', />=\s*0/],
    ['fractional maxFileBytes', { limits: { maxFileBytes: 1.5 } }, 'limits.maxFileBytes', /int/i],
    ['unknown mode', { mode: 'append' }, 'mode', /tracked|ordered/],
    ['missing connection', { connection: undefined }, 'connection', /expected string|required/i],
    ['empty connection', { connection: '' }, 'connection', /must name a configured connection/],
    ['missing bucketUri', { bucketUri: undefined }, 'bucketUri', /expected string|required/i],
  ])('%s', (_what, patch, path, reason) => {
    const input = { ...example, ...patch };
    expect(issueAt(input, path).message).toMatch(reason);
  });

  it('rejects an unknown top-level field (strict), naming the key', () => {
    const [issue, ...rest] = issuesOf({ ...example, tabel: 'typo' });
    expect(rest).toEqual([]);
    // zod reports unrecognised keys at the object's path and lists them in the message.
    expect(issue!.code).toBe('unrecognized_keys');
    expect(issue!.path.join('.')).toBe('');
    expect((issue as unknown as { keys: string[] }).keys).toEqual(['tabel']);
    expect(issue!.message).toMatch(/Unrecognized key: "tabel"/);
  });

  it('rejects an unknown field in a nested object at that object', () => {
    const issue = issueAt({ ...example, engine: { ...example.engine, orderBy: 'x' } }, 'engine');
    expect(issue.message).toMatch(/Unrecognized key: "orderBy"/);
    expect(issueAt({ ...example, columns: [{ name: 'x', type: 'String', nullable: true }] }, 'columns.0').message).toMatch(/"nullable"/);
  });

  it('rejects duplicate column names at the second occurrence', () => {
    const input = { ...example, columns: [{ name: 'id', type: 'UInt64' }, { name: 'v', type: 'String' }, { name: 'id', type: 'String' }] };
    expect(issueAt(input, 'columns.2.name').message).toMatch(/duplicate column 'id'/);
    expect(issuesOf(input)).toHaveLength(1);
  });

  it('rejects path on a csv data source', () => {
    const input = { ...example, columns: [{ name: 'user_id', type: 'UInt64', path: '$.user.id' }] };
    expect(issueAt(input, 'columns.0.path').message).toMatch(/path is only for ndjson, not csv/);
  });

  it('rejects path on a parquet data source', () => {
    const { csv: _csv, ...rest } = example;
    const input = { ...rest, format: 'parquet', columns: [{ name: 'user_id', type: 'UInt64', path: '$.user.id' }] };
    expect(issueAt(input, 'columns.0.path').message).toMatch(/path is only for ndjson, not parquet/);
  });

  it('rejects csv options on a parquet data source', () => {
    expect(issueAt({ ...example, format: 'parquet' }, 'csv').message).toMatch(/csv options need format csv, not parquet/);
    expect(issueAt({ ...example, format: 'ndjson' }, 'csv').message).toMatch(/not ndjson/);
  });

  it("rejects a table name with the reserved 's3ch_' prefix", () => {
    expect(issueAt({ ...example, table: 's3ch_events' }, 'table').message).toMatch(/starting with 's3ch_' are reserved/);
  });

  // The table defaults to the name, so the name alone must not reach the connector's own tables.
  it("rejects a data source name that would default the table to the reserved prefix", () => {
    for (const name of ['s3ch_events', 's3ch_runs', 's3ch_file_events']) {
      const paths = issuesOf({ ...example, name }).map((i) => i.path.join('.'));
      expect(paths.some((p) => p === 'name' || p === 'table'), `issues at ${paths.join(', ')}`).toBe(true);
    }
  });

  it('reports every independent field error at once', () => {
    const issues = issuesOf({ ...example, name: 'Bad', bucketUri: 'http://x', schedule: '* * *', columns: [{ name: 'x', type: 'Strin' }] });
    expect(issues.map((i) => i.path.join('.')).sort()).toEqual(['bucketUri', 'columns.0.type', 'name', 'schedule']);
  });

  it('rejects non-objects', () => {
    for (const v of [null, 'events', 42, [], undefined]) {
      expect(dataSourceSpecSchema.safeParse(v).success).toBe(false);
    }
  });
});
