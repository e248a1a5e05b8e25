import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import type { S3Client } from '@aws-sdk/client-s3';
import { MAX_COLUMNS } from '../../schemas/datasource.js';
import { createBucket, processDestination, put, sql, startTestConnector, testS3, uid, type TestConnector } from '../support/harness.js';
import { adminClient } from '../support/harness.js';

type Res = Awaited<ReturnType<TestConnector['request']>>;

/**
 * Attacks through the public API on the real stack: nothing a token holder
 * sends may write or read the host's files, switch off exactly-once, or let
 * two data sources corrupt one table. Each case names the class of attack,
 * not only one spelling of it.
 */
describe('locked down', () => {
  let c: TestConnector;
  let s3: S3Client;
  let bucket: string;
  const dir = mkdtempSync(join(tmpdir(), 's3ch-lockdown-'));
  const host = readFileSync('/etc/hostname', 'utf8').trim() || hostname();
  const created: string[] = [];

  beforeAll(async () => {
    c = await startTestConnector();
    s3 = testS3();
    bucket = await createBucket(s3);
    await put(s3, bucket, 'l/a.csv', 'ts,id\n2024-01-01 00:00:00,1\n');
  });
  afterAll(async () => {
    for (const name of created) await c?.request('DELETE', `/v1/datasources/${name}?dropTable=true`).catch(() => undefined);
    await c?.stop();
    s3?.destroy();
  });

  const spec = (over: Record<string, unknown> = {}) => ({
    name: uid('lk'),
    connection: 'local',
    bucketUri: `s3://${bucket}/l/*.csv`,
    format: 'csv',
    schedule: '@on-demand',
    columns: [
      { name: 'ts', type: 'DateTime' },
      { name: 'id', type: 'UInt64' },
    ],
    engine: { sortingKey: 'ts' },
    ...over,
  });

  async function create(body: Record<string, unknown>) {
    const res = await c.request('POST', '/v1/datasources', body);
    if (res.status === 201) created.push(body.name as string);
    return res;
  }

  function fieldError(res: Res, field: string): string {
    expect(res.status, JSON.stringify(res.body)).toBeGreaterThanOrEqual(400);
    expect(res.status, JSON.stringify(res.body)).toBeLessThan(500);
    const found = (res.body.errors as Array<{ field: string; message: string }> | undefined)?.find((e) => e.field === field);
    expect(found, `an error at '${field}' in ${JSON.stringify(res.body)}`).toBeDefined();
    return found!.message;
  }

  describe('POST /v1/sql writes no file and reads only the connector\'s tables', () => {
    it.each([
      ['INTO OUTFILE', (p: string) => `SELECT 42 AS x INTO OUTFILE '${p}'`],
      ['INTO OUTFILE TRUNCATE', (p: string) => `SELECT 42 AS x INTO OUTFILE '${p}' TRUNCATE`],
      ['INTO OUTFILE APPEND', (p: string) => `select 1 into outfile '${p}' append`],
      ['INTO OUTFILE AND STDOUT', (p: string) => `SELECT 1 INTO OUTFILE '${p}' AND STDOUT`],
      ['INTO OUTFILE with compression', (p: string) => `SELECT 1 INTO OUTFILE '${p}' COMPRESSION 'gzip'`],
      ['INTO OUTFILE after a UNION', (p: string) => `SELECT 1 UNION ALL SELECT 2 INTO OUTFILE '${p}'`],
      ['INTO OUTFILE on a WITH query', (p: string) => `WITH 1 AS a SELECT a INTO OUTFILE '${p}'`],
      ['INTO OUTFILE on SHOW TABLES', (p: string) => `SHOW TABLES INTO OUTFILE '${p}'`],
      ['INTO OUTFILE on EXISTS', (p: string) => `EXISTS TABLE x INTO OUTFILE '${p}'`],
      ['INTO OUTFILE on DESCRIBE', (p: string) => `DESCRIBE TABLE x INTO OUTFILE '${p}'`],
      ['INTO OUTFILE on EXPLAIN', (p: string) => `EXPLAIN SELECT 1 INTO OUTFILE '${p}'`],
    ])('%s: 400, and the file is neither created nor changed', async (_what, query) => {
      const fresh = join(dir, `${uid('out')}.txt`);
      const res = await c.request('POST', '/v1/sql', { query: query(fresh) });
      expect(res.status, JSON.stringify(res.body)).toBe(400);
      expect(existsSync(fresh)).toBe(false);
      // An existing file (a shell profile, the data dir...) is not truncated or appended to either.
      const existing = join(dir, `${uid('keep')}.txt`);
      writeFileSync(existing, 'precious\n');
      expect((await c.request('POST', '/v1/sql', { query: query(existing) })).status).toBe(400);
      expect(readFileSync(existing, 'utf8')).toBe('precious\n');
    });

    it.each([
      ['file() with backticks', "SELECT `file`('/etc/hostname') AS f"],
      ['file() in upper case', "SELECT FILE('/etc/hostname') AS f"],
      ['file() in a subquery', "SELECT * FROM (SELECT file('/etc/hostname') AS f)"],
      ['file() in a WHERE', "SELECT 1 WHERE file('/etc/hostname') != ''"],
      ['file() in a lambda', "SELECT arrayMap(x -> file(x), ['/etc/hostname'])"],
      ['the file table function', "SELECT * FROM file('/etc/hostname', 'LineAsString')"],
      ['a backticked table function', "SELECT * FROM `file`('/etc/hostname', 'LineAsString')"],
      ['a table function in a JOIN', "SELECT * FROM system.one JOIN file('/etc/hostname', 'LineAsString') AS f ON 1"],
      ['a table function in IN', "SELECT 1 IN (SELECT * FROM file('/etc/hostname', 'LineAsString'))"],
      ['url()', "SELECT * FROM url('http://127.0.0.1:1/x', 'CSV', 'a String')"],
      ['s3()', "SELECT * FROM s3('http://127.0.0.1:1/b/k', 'CSV', 'a String')"],
      ['numbers() (no table functions at all)', 'SELECT * FROM numbers(10)'],
      ['getSetting()', "SELECT getSetting('readonly')"],
      ['hostName()', 'SELECT hostName()'],
      ['dictGet()', "SELECT dictGet('d', 'a', 1)"],
      ['a system table with secrets', 'SELECT * FROM system.named_collections'],
      ['a system table via IN', 'SELECT 1 IN system.users'],
      ['system.settings', 'SELECT * FROM system.settings'],
      ['a SETTINGS clause', 'SELECT 1 SETTINGS readonly = 0'],
      ['a SETTINGS clause in a subquery', 'SELECT * FROM (SELECT 1 SETTINGS readonly = 0)'],
      ['a FORMAT clause', 'SELECT 1 FORMAT TSV'],
      ['two statements', 'SELECT 1; SELECT 2'],
      ['a write', 'INSERT INTO s3ch_runs SELECT * FROM s3ch_runs'],
      ['DDL', 'CREATE TABLE x (a Int8) ENGINE = Memory'],
      ['SYSTEM', 'SYSTEM FLUSH LOGS'],
      ['SET', 'SET readonly = 0'],
      ['a query parameter', 'SELECT {p:String}'],
    ])('%s: 400 naming `query`, and nothing of the host in the answer', async (_what, query) => {
      const res = await c.request('POST', '/v1/sql', { query });
      expect(res.status, JSON.stringify(res.body)).toBe(400);
      expect(fieldError(res, 'query').length).toBeGreaterThan(0);
      expect(JSON.stringify(res.body)).not.toContain(host);
    });

    it('reading queries work: aggregates, WITH, UNION, subqueries, the catalogue, SHOW/DESCRIBE/EXISTS', async () => {
      const [agg] = await sql<{ n: unknown; s: unknown }>(c, 'SELECT count() AS n, sumIf(number, number > 1) AS s FROM (SELECT 1 AS number UNION ALL SELECT 3) WHERE number != 2');
      expect([Number(agg!.n), Number(agg!.s)]).toEqual([2, 3]);
      const [w] = await sql<{ total: unknown; d: string }>(c, "WITH [1, 2, 3] AS xs SELECT arraySum(arrayMap(x -> x * 2, xs)) AS total, DATE_TRUNC('day', toDateTime('2024-05-01 10:00:00', 'UTC')) AS d");
      expect([Number(w!.total), w!.d]).toEqual([12, '2024-05-01 00:00:00']);
      expect((await sql<{ name: string }>(c, "SELECT name FROM system.tables WHERE database = currentDatabase() AND name = 's3ch_runs'")).length).toBeLessThanOrEqual(1);
      expect(await sql(c, 'EXISTS TABLE no_such_table_here')).toEqual([{ result: 0 }]);
      const tables = await sql<{ name: string }>(c, 'SHOW TABLES');
      expect(Array.isArray(tables)).toBe(true);
    });
  });

  describe('spec expressions are checked on the parsed tree', () => {
    it.each([
      ['engine.partitionKey', { engine: { sortingKey: 'ts', partitionKey: "toUInt8(`file`('/etc/hostname'))" } }],
      ['engine.sortingKey', { engine: { sortingKey: "cityHash64(file('/etc/hostname'))" } }],
      ['engine.primaryKey', { engine: { sortingKey: 'ts', primaryKey: "FILE('/etc/hostname')" } }],
      ['engine.ttl', { engine: { sortingKey: 'ts', ttl: "ts + toIntervalDay(length(file('/etc/hostname')))" } }],
      ['engine.partitionKey', { engine: { sortingKey: 'ts', partitionKey: "(SELECT * FROM file('/etc/hostname', 'LineAsString'))" } }],
      ['engine.partitionKey', { engine: { sortingKey: 'ts', partitionKey: "dictGet('d', 'a', id)" } }],
      ['engine.sortingKey', { engine: { sortingKey: "ts FROM file('/etc/hostname', 'LineAsString')" } }],
      ['engine.sortingKey', { engine: { sortingKey: "getSetting('max_threads')" } }],
      ['engine.sortingKey', { engine: { sortingKey: 'ts UNION ALL SELECT 1' } }],
      ['engine.partitionKey', { engine: { sortingKey: 'ts', partitionKey: 'sum(id)' } }],
      ['columns.1.default', { columns: [{ name: 'ts', type: 'DateTime' }, { name: 'id', type: 'UInt64', default: "length(file('/etc/hostname'))" }] }],
    ])('%s reading a file: 400 naming the field, nothing of the host echoed, nothing created', async (field, over) => {
      const body = spec(over);
      const res = await create(body);
      expect(res.status, JSON.stringify(res.body)).toBe(400);
      expect(fieldError(res, field)).toMatch(/not allowed|must be an expression/);
      expect(JSON.stringify(res.body)).not.toContain(host);
      expect(await sql(c, `EXISTS TABLE ${body.name}`)).toEqual([{ result: 0 }]);
    });

    it('the dry run leaves no scratch table or database behind, and a good spec loads with its keys in place', async () => {
      const body = spec({ engine: { sortingKey: 'ts, id', partitionKey: 'toYYYYMM(ts)', ttl: 'ts + INTERVAL 3650 DAY' } });
      const bad = await create(spec({ engine: { sortingKey: 'no_such_column' } }));
      expect(fieldError(bad, 'engine.sortingKey')).toMatch(/no_such_column/);
      const res = await create(body);
      expect(res.status, JSON.stringify(res.body)).toBe(201);
      // The spec keeps what the user wrote; the table has ClickHouse's canonical form of it.
      expect(res.body.engine).toMatchObject({ ttl: 'ts + INTERVAL 3650 DAY' });
      const scratch = await sql(c, "SELECT name FROM system.databases WHERE startsWith(name, 's3ch_scratch_')");
      expect(scratch).toEqual([]);
    });
  });

  describe('exactly-once cannot be switched off', () => {
    it.each(['non_replicated_deduplication_window', 'replicated_deduplication_window', 'replicated_deduplication_window_seconds'])(
      'engine.settings.%s: 400 naming the setting',
      async (setting) => {
        const res = await create(spec({ engine: { sortingKey: 'ts', settings: { [setting]: 0 } } }));
        expect(fieldError(res, `engine.settings.${setting}`)).toMatch(/deduplication/);
      },
    );

    it('an existing table that does not deduplicate is refused with what to change; one that does is accepted', async () => {
      const dest = await processDestination();
      const plain = uid('plain');
      const logTable = uid('logt');
      const good = uid('dedup');
      await dest.client.command({ query: `CREATE TABLE ${plain} (ts DateTime, id UInt64) ENGINE = MergeTree ORDER BY ts` });
      // The connector's own user may not create a Log table at all: the administrator makes it.
      await (await adminClient()).command({ query: `CREATE TABLE ${logTable} (ts DateTime, id UInt64) ENGINE = Log` });
      await dest.client.command({ query: `CREATE TABLE ${good} (ts DateTime, id UInt64) ENGINE = MergeTree ORDER BY ts SETTINGS non_replicated_deduplication_window = 1000` });
      expect(fieldError(await create(spec({ table: plain })), 'table')).toMatch(/non_replicated_deduplication_window = 0.*MODIFY SETTING/);
      expect(fieldError(await create(spec({ table: logTable })), 'table')).toMatch(/engine Log/);
      const ok = await create(spec({ table: good }));
      expect(ok.status, JSON.stringify(ok.body)).toBe(201);
    });
  });

  it('a second data source on a table already fed by another: 409 naming it, by create and by PATCH', async () => {
    const table = uid('shared');
    const first = spec({ table });
    expect((await create(first)).status).toBe(201);
    const second = await create(spec({ table }));
    expect(second.status, JSON.stringify(second.body)).toBe(409);
    expect(second.body.detail).toContain(first.name);
    const other = spec();
    expect((await create(other)).status).toBe(201);
    const moved = await c.request('PATCH', `/v1/datasources/${other.name}`, { table, force: true });
    expect(moved.status, JSON.stringify(moved.body)).toBe(409);
    expect(moved.body.detail).toContain(first.name);
    // The first data source is untouched and still answers.
    expect((await c.request('GET', `/v1/datasources/${first.name}`)).body.table).toBe(table);
  });

  it(`more than ${MAX_COLUMNS} columns: 400 naming columns`, async () => {
    const columns = Array.from({ length: MAX_COLUMNS + 1 }, (_, i) => ({ name: `c${i}`, type: 'String' }));
    const res = await create(spec({ columns, engine: {} }));
    expect(fieldError(res, 'columns')).toMatch(new RegExp(`at most ${MAX_COLUMNS}`));
  });
});
