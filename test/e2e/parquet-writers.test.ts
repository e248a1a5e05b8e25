import { describe, expect, it } from 'vitest';
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import type { S3Client } from '@aws-sdk/client-s3';
import { queryRows } from '../../clickhouse/destination.js';
import { eventually, put, sql, uid, type TestConnector, useTestStack } from '../support/harness.js';
import { adminClient } from '../support/harness.js';
import { reportsRunFinished } from '../support/workflow-wait.js';

/**
 * Parquet written by third-party writers (pyarrow, DuckDB), committed under
 * test/fixtures/parquet/ (see its README.md and generate.py), loaded through
 * the real path: MinIO -> spool -> chDB, with declared columns, with inferred
 * columns, and with renames and retypes.
 */

const FIXTURES = fileURLToPath(new URL('../fixtures/parquet/', import.meta.url));

/** Epoch microseconds of a UTC wall-clock time (months 1-based). */
const micros = (y: number, mo: number, d: number, h = 0, mi = 0, s = 0, us = 0) => Date.UTC(y, mo - 1, d, h, mi, s) * 1000 + us;

/** The rows generate.py writes into every pyarrow_<codec>.parquet, as read back from the typed table. */
const PYARROW_ROWS = [
  {
    id: 1, name: 'alpha', price: '12.34',
    ts_ms: '2024-01-02 03:04:05.678', ms: Date.UTC(2024, 0, 2, 3, 4, 5, 678),
    ts_us_tz: '2024-06-30 23:59:59.999999', us: micros(2024, 6, 30, 23, 59, 59, 999_999),
    day: '2024-02-29', tags: ['a', 'b'], flag: true, score: 1.5,
  },
  {
    id: 2, name: null, price: null,
    ts_ms: '1969-12-31 23:59:59.999', ms: -1,
    ts_us_tz: '1970-01-01 00:00:00.000001', us: 1,
    day: '1969-07-20', tags: [], flag: false, score: -0.25,
  },
  {
    id: 3, name: 'ü✓', price: '-0.01',
    ts_ms: '2000-02-29 12:00:00.001', ms: Date.UTC(2000, 1, 29, 12, 0, 0, 1),
    ts_us_tz: '2000-01-01 00:00:00.123456', us: micros(2000, 1, 1, 0, 0, 0, 123_456),
    // A null list is read as an empty array: ClickHouse arrays are not nullable.
    day: '2000-01-01', tags: [], flag: null, score: 0.1,
  },
  {
    id: 4, name: 'alpha', price: '9999999999.99',
    ts_ms: '2038-01-19 03:14:08.000', ms: Date.UTC(2038, 0, 19, 3, 14, 8),
    ts_us_tz: '2038-01-19 03:14:08.500000', us: micros(2038, 1, 19, 3, 14, 8, 500_000),
    day: '2100-12-31', tags: ["it's", 'ü✓', null], flag: true, score: 1e300,
  },
  {
    id: 5, name: 'beta', price: '0',
    ts_ms: '2024-03-10 02:30:00.005', ms: Date.UTC(2024, 2, 10, 2, 30, 0, 5),
    ts_us_tz: '2024-03-31 01:30:00.000000', us: micros(2024, 3, 31, 1, 30),
    day: '1970-01-01', tags: ['x'], flag: false, score: null,
  },
];

const PYARROW_SELECT = (table: string) => `
  SELECT id, name, toString(price) AS price,
         toString(ts_ms) AS ts_ms, toUnixTimestamp64Milli(t.ts_ms) AS ms,
         toString(ts_us_tz) AS ts_us_tz, toUnixTimestamp64Micro(t.ts_us_tz) AS us,
         toString(day) AS day, tags, flag, score
  FROM ${table} AS t ORDER BY id`;

/** What ClickHouse (chDB 3.4 / ClickHouse 26.7) reports for the pyarrow files: every Parquet field is optional, so every scalar is Nullable. */
const PYARROW_INFERRED = [
  { name: 'id', type: 'Nullable(Int64)' },
  { name: 'name', type: 'Nullable(String)' },
  { name: 'price', type: 'Nullable(Decimal(12, 2))' },
  // isAdjustedToUTC=false (a naive timestamp) is read as UTC too.
  { name: 'ts_ms', type: "Nullable(DateTime64(3, 'UTC'))" },
  { name: 'ts_us_tz', type: "Nullable(DateTime64(6, 'UTC'))" },
  { name: 'day', type: 'Nullable(Date32)' },
  { name: 'tags', type: 'Array(Nullable(String))' },
  { name: 'flag', type: 'Nullable(Bool)' },
  { name: 'score', type: 'Nullable(Float64)' },
];

const PYARROW_DECLARED = [
  { name: 'id', type: 'Int64' },
  { name: 'name', type: 'Nullable(String)' },
  { name: 'price', type: 'Nullable(Decimal(12, 2))' },
  { name: 'ts_ms', type: "DateTime64(3, 'UTC')" },
  { name: 'ts_us_tz', type: "DateTime64(6, 'UTC')" },
  { name: 'day', type: 'Date32' },
  { name: 'tags', type: 'Array(Nullable(String))' },
  { name: 'flag', type: 'Nullable(Bool)' },
  { name: 'score', type: 'Nullable(Float64)' },
];

const DUCKDB_ROWS = [
  { i: -3, s: 'ü✓ drei', d: '-0.0001', ts: '1969-12-31 23:59:59.999999', ts_us: -1, tstz: '1970-01-01 00:00:00.000001', tstz_us: 1, dt: '1900-01-01', l: [] },
  {
    i: 1, s: 'one', d: '1234.5678',
    ts: '2024-01-02 03:04:05.123456', ts_us: micros(2024, 1, 2, 3, 4, 5, 123_456),
    tstz: '2024-01-02 03:04:05.654321', tstz_us: micros(2024, 1, 2, 3, 4, 5, 654_321),
    dt: '2024-02-29', l: [1, 2, 3],
  },
  { i: 2, s: null, d: null, ts: null, ts_us: null, tstz: null, tstz_us: null, dt: null, l: [] },
  {
    i: 2147483647, s: '', d: '99999999999999.9999',
    ts: '2262-04-11 23:47:16.000000', ts_us: micros(2262, 4, 11, 23, 47, 16),
    tstz: '2100-12-31 23:59:59.999999', tstz_us: micros(2100, 12, 31, 23, 59, 59, 999_999),
    dt: '2299-12-31', l: [null, -2147483648],
  },
];

const DUCKDB_SELECT = (table: string) => `
  SELECT i, s, toString(d) AS d,
         toString(ts) AS ts, toUnixTimestamp64Micro(t.ts) AS ts_us,
         toString(tstz) AS tstz, toUnixTimestamp64Micro(t.tstz) AS tstz_us,
         toString(dt) AS dt, l
  FROM ${table} AS t ORDER BY i`;

const DUCKDB_INFERRED = [
  { name: 'i', type: 'Nullable(Int32)' },
  { name: 's', type: 'Nullable(String)' },
  { name: 'd', type: 'Nullable(Decimal(18, 4))' },
  // DuckDB TIMESTAMP (isAdjustedToUTC=false) and TIMESTAMPTZ are both read as UTC.
  { name: 'ts', type: "Nullable(DateTime64(6, 'UTC'))" },
  { name: 'tstz', type: "Nullable(DateTime64(6, 'UTC'))" },
  { name: 'dt', type: 'Nullable(Date32)' },
  { name: 'l', type: 'Array(Nullable(Int32))' },
];

const MULTI_INFERRED = [
  { name: 'id', type: 'Nullable(Int64)' },
  { name: 'bucket', type: 'Nullable(String)' },
  { name: 'amount', type: 'Nullable(Decimal(12, 2))' },
  { name: 'ts', type: "Nullable(DateTime64(6, 'UTC'))" },
];

describe('Parquet from real writers (pyarrow, DuckDB)', () => {
  let c: TestConnector;
  let s3: S3Client;
  let bucket: string;
  /** Fixture file name -> prefix it was uploaded under. */
  const prefixes = new Map<string, string>();

  useTestStack((stack) => ({ c, s3, bucket } = stack));

  const rows = <T = Record<string, unknown>>(q: string) => sql<T>(c, q);
  const count = async (table: string) => Number((await rows<{ n: string | number }>(`SELECT count() AS n FROM ${table}`))[0]!.n);

  /** Upload a fixture once, under a prefix of its own; returns its bucketUri. */
  async function upload(fixture: string): Promise<string> {
    let p = prefixes.get(fixture);
    if (!p) {
      p = uid('pw');
      await put(s3, bucket, `${p}/${fixture}`, await readFile(`${FIXTURES}${fixture}`));
      prefixes.set(fixture, p);
    }
    return `s3://${bucket}/${p}/*.parquet`;
  }

  /** What ClickHouse itself reports for the fixture file. */
  async function describeFixture(fixture: string) {
    // The administrator reads the fixture from disk: the connector's user may not read files.
    return queryRows<{ name: string; type: string }>(await adminClient(), `DESCRIBE TABLE file({path:String}, 'Parquet')`, { path: `${FIXTURES}${fixture}` });
  }

  async function get(name: string) {
    const r = await c.request('GET', `/v1/datasources/${name}`);
    expect(r.status, JSON.stringify(r.body)).toBe(200);
    return r.body;
  }

  async function runs(name: string): Promise<any[]> {
    const r = await c.request('GET', `/v1/datasources/${name}/runs`);
    expect(r.status, JSON.stringify(r.body)).toBe(200);
    return r.body.items;
  }

  /** Create an on-demand data source, sync once and wait until its one file settled. */
  async function load(spec: Record<string, unknown>) {
    const name = uid('pq');
    const res = await c.request('POST', '/v1/datasources', { name, connection: 'local', schedule: '@on-demand', ...spec });
    expect(res.status, JSON.stringify(res.body)).toBe(201);
    expect((await c.request('POST', `/v1/datasources/${name}/sync`)).status).toBe(202);
    const ds = await eventually(`${name}: its file settled`, async () => {
      const b = await get(name);
      const f = b.stats?.files;
      // The workflow's own word that run 1 is over: its status (columns, inferredFrom) is final then.
      return f && f.success + f.failure === 1 && reportsRunFinished(b, `datasource:${name}/1`) && b.status.inFlight.length === 0 ? b : null;
    });
    expect(ds.stats.files, JSON.stringify(ds.status)).toMatchObject({ success: 1, failure: 0 });
    return { name, ds };
  }

  /** Sync again, wait for that run to finish, and check it added no row and settled no new file. */
  async function resyncAddsNothing(name: string, expectedRows: number) {
    const before = (await runs(name)).length;
    expect((await c.request('POST', `/v1/datasources/${name}/sync`)).status).toBe(202);
    const ds = await eventually(`${name}: the second run finished`, async () => {
      // Runs first: a status read before them could predate the run they list.
      const items = await runs(name);
      if (items.length <= before) return null;
      const b = await get(name);
      return reportsRunFinished(b, items[0].runId) && b.status.inFlight.length === 0 ? b : null;
    });
    expect(await count(name)).toBe(expectedRows);
    expect(ds.stats.rows).toBe(expectedRows);
    expect(ds.stats.files).toMatchObject({ success: 1, failure: 0 });
    const latest = (await runs(name))[0]!;
    expect(latest).toMatchObject({ filesImported: 0, filesFailed: 0, rows: 0 });
  }

  async function fileLedger(name: string) {
    const r = await c.request('GET', `/v1/datasources/${name}/files`);
    expect(r.status).toBe(200);
    return r.body.items as any[];
  }

  describe.each(['snappy', 'zstd', 'gzip'])('pyarrow, %s, one row group, dictionary-encoded name', (codec) => {
    const fixture = `pyarrow_${codec}.parquet`;

    it('declared columns: exact values for every type; a second sync adds nothing', async () => {
      const { name, ds } = await load({ bucketUri: await upload(fixture), format: 'parquet', columns: PYARROW_DECLARED });
      expect(ds.stats).toMatchObject({ rows: 5, quarantinedRows: 0 });
      expect(await rows(PYARROW_SELECT(name))).toEqual(PYARROW_ROWS);
      // Types are exactly as declared (nullability included).
      const types = await rows<{ name: string; type: string }>(`SELECT name, type FROM system.columns WHERE database = currentDatabase() AND table = '${name}' ORDER BY position`);
      expect(types).toEqual(PYARROW_DECLARED);
      expect(await fileLedger(name)).toEqual([expect.objectContaining({ key: `${prefixes.get(fixture)}/${fixture}`, status: 'success', rows: 5, quarantinedRows: 0 })]);
      await resyncAddsNothing(name, 5);
    });

    it('format auto, no columns: inferred from the file as ClickHouse describes it, values load', async () => {
      const { name, ds } = await load({ bucketUri: await upload(fixture), format: 'auto' });
      expect(ds.inferredFrom).toBe(`${prefixes.get(fixture)}/${fixture}`);
      expect(ds.columns).toEqual(await describeFixture(fixture).then((r) => r.map(({ name: n, type }) => ({ name: n, type }))));
      expect(ds.columns).toEqual(PYARROW_INFERRED);
      expect(ds.stats).toMatchObject({ rows: 5, quarantinedRows: 0 });
      expect(await rows(PYARROW_SELECT(name))).toEqual(PYARROW_ROWS);
      await resyncAddsNothing(name, 5);
    });
  });

  it('pyarrow: preview of a Parquet location reports the same inferred columns', async () => {
    const res = await c.request('POST', '/v1/preview', { connection: 'local', bucketUri: await upload('pyarrow_snappy.parquet') });
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    expect(res.body.total).toBe(1);
    expect(res.body.columns).toEqual(PYARROW_INFERRED);
  });

  it('pyarrow: renamed (source) and retyped columns map; a column the file lacks reads NULL', async () => {
    const { name, ds } = await load({
      bucketUri: await upload('pyarrow_snappy.parquet'),
      format: 'parquet',
      columns: [
        { name: 'item_id', source: 'id', type: 'UInt32' },
        { name: 'price_text', source: 'price', type: 'String' },
        { name: 'label', source: 'name', type: 'String' },
        { name: 'happened_at', source: 'ts_us_tz', type: "DateTime64(6, 'UTC')" },
        { name: 'at_nanos', source: 'ts_ms', type: "DateTime64(9, 'UTC')" },
        { name: 'score_text', source: 'score', type: 'Nullable(String)' },
        // A null element of a list takes the element type's default, as a null scalar does in a non-Nullable column.
        { name: 'tag_list', source: 'tags', type: 'Array(String)' },
        { name: 'flag_num', source: 'flag', type: 'Nullable(UInt8)' },
        { name: 'day_text', source: 'day', type: 'String' },
        { name: 'not_in_file', type: 'Nullable(String)' },
      ],
    });
    expect(ds.stats).toMatchObject({ rows: 5, quarantinedRows: 0 });
    expect(
      await rows(`SELECT item_id, price_text, label, toUnixTimestamp64Micro(happened_at) AS us, toString(at_nanos) AS at_nanos,
                         score_text, tag_list, flag_num, day_text, not_in_file FROM ${name} ORDER BY item_id`),
    ).toEqual([
      { item_id: 1, price_text: '12.34', label: 'alpha', us: PYARROW_ROWS[0]!.us, at_nanos: '2024-01-02 03:04:05.678000000', score_text: '1.5', tag_list: ['a', 'b'], flag_num: 1, day_text: '2024-02-29', not_in_file: null },
      { item_id: 2, price_text: '', label: '', us: 1, at_nanos: '1969-12-31 23:59:59.999000000', score_text: '-0.25', tag_list: [], flag_num: 0, day_text: '1969-07-20', not_in_file: null },
      { item_id: 3, price_text: '-0.01', label: 'ü✓', us: PYARROW_ROWS[2]!.us, at_nanos: '2000-02-29 12:00:00.001000000', score_text: '0.1', tag_list: [], flag_num: null, day_text: '2000-01-01', not_in_file: null },
      { item_id: 4, price_text: '9999999999.99', label: 'alpha', us: PYARROW_ROWS[3]!.us, at_nanos: '2038-01-19 03:14:08.000000000', score_text: '1e300', tag_list: ["it's", 'ü✓', ''], flag_num: 1, day_text: '2100-12-31', not_in_file: null },
      { item_id: 5, price_text: '0', label: 'beta', us: PYARROW_ROWS[4]!.us, at_nanos: '2024-03-10 02:30:00.005000000', score_text: null, tag_list: ['x'], flag_num: 0, day_text: '1970-01-01', not_in_file: null },
    ]);
    const types = await rows<{ name: string; type: string }>(`SELECT name, type FROM system.columns WHERE database = currentDatabase() AND table = '${name}' ORDER BY position`);
    expect(types.map((t) => t.type)).toEqual([
      'UInt32', 'String', 'String', "DateTime64(6, 'UTC')", "DateTime64(9, 'UTC')", 'Nullable(String)', 'Array(String)', 'Nullable(UInt8)', 'String', 'Nullable(String)',
    ]);
    await resyncAddsNothing(name, 5);
  });

  /**
   * Narrowing retypes: a value that does not fit the declared type must be
   * quarantined with its column and reason (as it is for CSV and NDJSON), never
   * loaded changed and never fail the rest of the file.
   *
   * Parquet scalars are read as text and converted with the same checked
   * casts as CSV and NDJSON, so the Parquet reader never narrows a value on
   * its own.
   */
  async function quarantineOf(name: string) {
    const q = await c.request('GET', `/v1/datasources/${name}/quarantine`);
    expect(q.status).toBe(200);
    return (q.body.items as any[]).map((i) => ({ line: i.line, column: i.column, error: i.error }));
  }

  it('DuckDB: an integer that does not fit the declared UInt32 is quarantined, not wrapped', async () => {
    const { name, ds } = await load({ bucketUri: await upload('duckdb_zstd.parquet'), format: 'parquet', columns: [{ name: 'i', type: 'UInt32' }] });
    expect(await rows(`SELECT i FROM ${name} ORDER BY i`)).toEqual([{ i: 1 }, { i: 2 }, { i: 2147483647 }]);
    expect(await quarantineOf(name)).toEqual([{ line: 1, column: 'i', error: 'cannot convert to UInt32' }]);
    expect(ds.stats).toMatchObject({ rows: 3, quarantinedRows: 1 });
  });

  it('pyarrow: a float that does not fit the declared Float32 is quarantined, not turned into inf', async () => {
    const { name, ds } = await load({
      bucketUri: await upload('pyarrow_snappy.parquet'), format: 'parquet',
      columns: [{ name: 'id', type: 'Int64' }, { name: 'score', type: 'Nullable(Float32)' }],
    });
    // (Today row 4 loads with score = inf.)
    expect(await rows(`SELECT id, toString(score) AS score FROM ${name} ORDER BY id`)).toEqual([
      { id: 1, score: '1.5' }, { id: 2, score: '-0.25' }, { id: 3, score: '0.1' }, { id: 5, score: null },
    ]);
    expect(await quarantineOf(name)).toEqual([{ line: 4, column: 'score', error: 'cannot convert to Nullable(Float32)' }]);
    expect(ds.stats).toMatchObject({ rows: 4, quarantinedRows: 1 });
  });

  it('DuckDB: dates outside the declared Date range are quarantined, not clamped', async () => {
    const { name, ds } = await load({
      bucketUri: await upload('duckdb_zstd.parquet'), format: 'parquet',
      columns: [{ name: 'i', type: 'Int64' }, { name: 'dt', type: 'Nullable(Date)' }],
    });
    expect(await rows(`SELECT i, toString(dt) AS dt FROM ${name} ORDER BY i`)).toEqual([{ i: 1, dt: '2024-02-29' }, { i: 2, dt: null }]);
    expect(await quarantineOf(name)).toEqual([
      { line: 1, column: 'dt', error: 'cannot convert to Nullable(Date)' },
      { line: 4, column: 'dt', error: 'cannot convert to Nullable(Date)' },
    ]);
    expect(ds.stats).toMatchObject({ rows: 2, quarantinedRows: 2 });
  });

  it('pyarrow: a timestamp before 1970 declared as DateTime is quarantined, not clamped to the epoch', async () => {
    const { name, ds } = await load({
      bucketUri: await upload('pyarrow_snappy.parquet'), format: 'parquet',
      columns: [{ name: 'id', type: 'Int64' }, { name: 'ts_ms', type: "DateTime('UTC')" }],
    });
    expect(await rows(`SELECT id, toString(ts_ms) AS ts FROM ${name} ORDER BY id`)).toEqual([
      { id: 1, ts: '2024-01-02 03:04:05' }, { id: 3, ts: '2000-02-29 12:00:00' }, { id: 4, ts: '2038-01-19 03:14:08' }, { id: 5, ts: '2024-03-10 02:30:00' },
    ]);
    expect(await quarantineOf(name)).toEqual([{ line: 2, column: 'ts_ms', error: "cannot convert to DateTime('UTC')" }]);
    expect(ds.stats).toMatchObject({ rows: 4, quarantinedRows: 1 });
  });

  it('DuckDB: text that is not a number, declared Nullable(Int32), is quarantined, not loaded as NULL', async () => {
    const { name, ds } = await load({
      bucketUri: await upload('duckdb_zstd.parquet'), format: 'parquet',
      columns: [{ name: 'i', type: 'Int64' }, { name: 's', type: 'Nullable(Int32)' }],
    });
    expect(await rows(`SELECT i, s FROM ${name} ORDER BY i`)).toEqual([{ i: 2, s: null }, { i: 2147483647, s: null }]);
    expect(await quarantineOf(name)).toEqual([
      { line: 1, column: 's', error: 'cannot convert to Nullable(Int32)' },
      { line: 2, column: 's', error: 'cannot convert to Nullable(Int32)' },
    ]);
    expect(ds.stats).toMatchObject({ rows: 2, quarantinedRows: 2 });
  });

  it('pyarrow: a decimal that overflows the declared precision quarantines its row; the rest of the file loads', async () => {
    const name = uid('pq');
    const res = await c.request('POST', '/v1/datasources', {
      name, connection: 'local', schedule: '@on-demand', bucketUri: await upload('pyarrow_snappy.parquet'), format: 'parquet',
      columns: [{ name: 'id', type: 'Int64' }, { name: 'price', type: 'Nullable(Decimal(9, 2))' }],
    });
    expect(res.status, JSON.stringify(res.body)).toBe(201);
    await c.request('POST', `/v1/datasources/${name}/sync`);
    const ds = await eventually(`${name}: its file settled`, async () => {
      const b = await get(name);
      const f = b.stats?.files;
      return f && f.success + f.failure === 1 && b.status.state !== 'syncing' ? b : null;
    });
    expect(ds.stats.files).toMatchObject({ success: 1, failure: 0 });
    expect(await rows(`SELECT id, toString(price) AS price FROM ${name} ORDER BY id`)).toEqual([
      { id: 1, price: '12.34' }, { id: 2, price: null }, { id: 3, price: '-0.01' }, { id: 5, price: '0' },
    ]);
    expect(await quarantineOf(name)).toEqual([{ line: 4, column: 'price', error: 'cannot convert to Nullable(Decimal(9, 2))' }]);
  });

  it('pyarrow: a timestamp column declared with a non-UTC time zone keeps the same instant', async () => {
    const { name } = await load({
      bucketUri: await upload('pyarrow_snappy.parquet'),
      format: 'parquet',
      columns: [
        { name: 'id', type: 'Int64' },
        { name: 'ts_us_tz', type: "DateTime64(6, 'America/New_York')" },
        { name: 'ts_ms', type: "DateTime64(3, 'Asia/Tokyo')" },
      ],
    });
    expect(await rows(`SELECT id, toUnixTimestamp64Micro(ts_us_tz) AS us, toUnixTimestamp64Milli(ts_ms) AS ms FROM ${name} ORDER BY id`)).toEqual(
      PYARROW_ROWS.map((r) => ({ id: r.id, us: r.us, ms: r.ms })),
    );
  });

  describe('pyarrow, 10,000 rows in 10 row groups (zstd, delta-encoded id and ts)', () => {
    const fixture = 'pyarrow_multi_rowgroup.parquet';

    async function checkAll(name: string) {
      expect(await count(name)).toBe(10_000);
      expect(
        await rows(`SELECT count(DISTINCT t.id) AS ids, min(t.id) AS lo, max(t.id) AS hi, sum(t.id) AS total, toString(sum(t.amount)) AS amount,
                           toString(min(t.ts)) AS first, toString(max(t.ts)) AS last,
                           countIf(toUnixTimestamp64Micro(t.ts) != toUnixTimestamp64Micro(toDateTime64('2024-01-01 00:00:00', 6, 'UTC')) + t.id * 1000000) AS off_ts,
                           countIf(t.amount * 100 != t.id) AS off_amount, countIf(t.bucket != concat('b', toString(t.id % 7))) AS off_bucket
                    FROM ${name} AS t`),
      ).toEqual([{ ids: 10_000, lo: 0, hi: 9999, total: 49_995_000, amount: '499950', first: '2024-01-01 00:00:00.000000', last: '2024-01-01 02:46:39.000000', off_ts: 0, off_amount: 0, off_bucket: 0 }]);
      expect(await rows(`SELECT bucket, count() AS n FROM ${name} GROUP BY bucket ORDER BY bucket`)).toEqual([
        { bucket: 'b0', n: 1429 }, { bucket: 'b1', n: 1429 }, { bucket: 'b2', n: 1429 }, { bucket: 'b3', n: 1429 },
        { bucket: 'b4', n: 1428 }, { bucket: 'b5', n: 1428 }, { bucket: 'b6', n: 1428 },
      ]);
      // Rows on both sides of row-group boundaries.
      expect(await rows(`SELECT t.id AS id, t.bucket AS bucket, toString(t.amount) AS amount, toString(t.ts) AS ts FROM ${name} AS t WHERE t.id IN (999, 1000, 9999) ORDER BY t.id`)).toEqual([
        { id: 999, bucket: 'b5', amount: '9.99', ts: '2024-01-01 00:16:39.000000' },
        { id: 1000, bucket: 'b6', amount: '10', ts: '2024-01-01 00:16:40.000000' },
        { id: 9999, bucket: 'b3', amount: '99.99', ts: '2024-01-01 02:46:39.000000' },
      ]);
    }

    it('declared columns: every row of every row group, exact values; a second sync adds nothing', async () => {
      const { name, ds } = await load({
        bucketUri: await upload(fixture),
        format: 'parquet',
        columns: [
          { name: 'id', type: 'UInt64' },
          { name: 'bucket', type: 'LowCardinality(String)' },
          { name: 'amount', type: 'Decimal(12, 2)' },
          { name: 'ts', type: "DateTime64(6, 'UTC')" },
        ],
        engine: { sortingKey: 'id' },
      });
      expect(ds.stats).toMatchObject({ rows: 10_000, quarantinedRows: 0 });
      expect(await fileLedger(name)).toEqual([expect.objectContaining({ status: 'success', rows: 10_000, quarantinedRows: 0 })]);
      await checkAll(name);
      await resyncAddsNothing(name, 10_000);
    });

    it('format auto, no columns: inferred as ClickHouse describes the file, every row loads', async () => {
      const { name, ds } = await load({ bucketUri: await upload(fixture), format: 'auto' });
      expect(ds.columns).toEqual(await describeFixture(fixture).then((r) => r.map(({ name: n, type }) => ({ name: n, type }))));
      expect(ds.columns).toEqual(MULTI_INFERRED);
      expect(ds.stats).toMatchObject({ rows: 10_000, quarantinedRows: 0 });
      await checkAll(name);
      await resyncAddsNothing(name, 10_000);
    });
  });

  describe('DuckDB, zstd', () => {
    const fixture = 'duckdb_zstd.parquet';

    it('declared columns: ints, varchar, decimal(18,4), timestamp, timestamptz, date, list, nulls; a second sync adds nothing', async () => {
      const { name, ds } = await load({
        bucketUri: await upload(fixture),
        format: 'parquet',
        columns: [
          { name: 'i', type: 'Int32' },
          { name: 's', type: 'Nullable(String)' },
          { name: 'd', type: 'Nullable(Decimal(18, 4))' },
          { name: 'ts', type: "Nullable(DateTime64(6, 'UTC'))" },
          { name: 'tstz', type: "Nullable(DateTime64(6, 'UTC'))" },
          { name: 'dt', type: 'Nullable(Date32)' },
          { name: 'l', type: 'Array(Nullable(Int32))' },
        ],
      });
      expect(ds.stats).toMatchObject({ rows: 4, quarantinedRows: 0 });
      expect(await rows(DUCKDB_SELECT(name))).toEqual(DUCKDB_ROWS);
      await resyncAddsNothing(name, 4);
    });

    it('format auto, no columns: inferred as ClickHouse describes the file, values load', async () => {
      const { name, ds } = await load({ bucketUri: await upload(fixture), format: 'auto' });
      expect(ds.columns).toEqual(await describeFixture(fixture).then((r) => r.map(({ name: n, type }) => ({ name: n, type }))));
      expect(ds.columns).toEqual(DUCKDB_INFERRED);
      expect(ds.stats).toMatchObject({ rows: 4, quarantinedRows: 0 });
      expect(await rows(DUCKDB_SELECT(name))).toEqual(DUCKDB_ROWS);
      await resyncAddsNothing(name, 4);
    });

    it('renames and retypes: i widened to Int64, d as String, tstz renamed, dt as Date32, list elements widened', async () => {
      const { name, ds } = await load({
        bucketUri: await upload(fixture),
        format: 'parquet',
        columns: [
          { name: 'n', source: 'i', type: 'Int64' },
          { name: 'amount_text', source: 'd', type: 'Nullable(String)' },
          { name: 'happened_at', source: 'tstz', type: "Nullable(DateTime64(6, 'UTC'))" },
          { name: 'day', source: 'dt', type: 'Nullable(Date32)' },
          { name: 'numbers', source: 'l', type: 'Array(Int64)' },
        ],
      });
      expect(ds.stats).toMatchObject({ rows: 4, quarantinedRows: 0 });
      expect(await rows(`SELECT n, amount_text, toUnixTimestamp64Micro(happened_at) AS us, toString(day) AS day, numbers FROM ${name} ORDER BY n`)).toEqual([
        { n: -3, amount_text: '-0.0001', us: 1, day: '1900-01-01', numbers: [] },
        { n: 1, amount_text: '1234.5678', us: DUCKDB_ROWS[1]!.tstz_us, day: '2024-02-29', numbers: [1, 2, 3] },
        { n: 2, amount_text: null, us: null, day: null, numbers: [] },
        { n: 2147483647, amount_text: '99999999999999.9999', us: DUCKDB_ROWS[3]!.tstz_us, day: '2299-12-31', numbers: [0, -2147483648] },
      ]);
      await resyncAddsNothing(name, 4);
    });

    it('a list declared as a scalar fails the file at once with the reason; nothing loads', async () => {
      const bad = uid('pq');
      const res = await c.request('POST', '/v1/datasources', {
        name: bad, connection: 'local', schedule: '@on-demand', bucketUri: await upload(fixture), format: 'parquet',
        columns: [{ name: 'i', type: 'Int32' }, { name: 'l', type: 'String' }],
      });
      expect(res.status, JSON.stringify(res.body)).toBe(201);
      await c.request('POST', `/v1/datasources/${bad}/sync`);
      const failed = await eventually(`${bad}: its file settled`, async () => {
        const b = await get(bad);
        const f = b.stats?.files;
        return f && f.success + f.failure === 1 && b.status.state !== 'syncing' ? b : null;
      });
      expect(failed.stats.files).toMatchObject({ success: 0, failure: 1 });
      expect(await count(bad)).toBe(0);
      const [file] = await fileLedger(bad);
      expect(file.error).toMatch(/column l doesn't match parquet schema/);
      expect(file).toMatchObject({ status: 'failure', rows: 0, attempts: 1 });
    });
  });
});
