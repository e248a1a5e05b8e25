import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { existsSync, mkdtempSync, readdirSync, readFileSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import type { S3Client } from '@aws-sdk/client-s3';
import { runReadOnly } from '../../clickhouse/read-only.js';
import { adminClient, createBucket, processDestination, put, startTestConnector, testS3, uid, type TestConnector } from '../support/harness.js';

type Res = Awaited<ReturnType<TestConnector['request']>>;

/** Refused by the request's validation or the spec's checks, before ClickHouse ran any of it. */
const SPEC_REFUSED = /^(invalid request json|the data source spec is invalid)/;

/**
 * The guards work on structure: ClickHouse's parse, read token by token and
 * node by node, never lines of its printed output. Each payload below reached
 * host files, the process environment, a server-side request or a written
 * file on the release before this one; here each is refused (4xx) by a
 * read-only, a notify and an admin token alike, and nothing happened: no host
 * data in any answer, no request to the listening server, no file, no table.
 */
describe('locked down: the guards parse, they do not read text', () => {
  let c: TestConnector;
  let s3: S3Client;
  let bucket: string;
  let ssrf: Server;
  let ssrfHits = 0;
  let port = 0;
  const dir = mkdtempSync(join(tmpdir(), 's3ch-structure-'));
  const host = readFileSync('/etc/hostname', 'utf8').trim() || hostname();
  const R = { authorization: 'Bearer read-tok' };
  const N = { authorization: 'Bearer hook-tok' };
  const A = { authorization: 'Bearer admin-tok' };
  const created: string[] = [];

  beforeAll(async () => {
    ssrf = createServer((req, res) => {
      ssrfHits++;
      res.end('line from the server\n');
    });
    await new Promise<void>((r) => ssrf.listen(0, '127.0.0.1', () => r()));
    port = (ssrf.address() as AddressInfo).port;
    c = await startTestConnector({ S3CH_API_TOKENS: 'admin-tok,ro:read-tok,notify:hook-tok' });
    s3 = testS3();
    bucket = await createBucket(s3);
    await put(s3, bucket, 's/a.csv', 'ts,id\n2024-01-01 00:00:00,1\n');
  });
  afterAll(async () => {
    for (const name of created) await c?.request('DELETE', `/v1/datasources/${name}?dropTable=true`, undefined, A).catch(() => undefined);
    await c?.stop();
    s3?.destroy();
    await new Promise((r) => ssrf?.close(r));
  });

  /** Nothing of the host, the process or its secrets in an answer. */
  function expectNothingLeaked(res: Res) {
    const text = JSON.stringify(res.body);
    expect(text).not.toContain(host);
    expect(text).not.toMatch(/root:x:0:0|PATH=|HOME=|S3CH_|AWS_SECRET|minioadmin|admin-tok|line from the server/);
  }

  /**
   * A 4xx naming `field`, with nothing leaked. `by` is who refused: the guard
   * or the spec's validation (not ClickHouse failing later, by luck or
   * after a 30 s time limit, with the payload already run).
   */
  function refused(res: Res, field = 'query', by: RegExp | null = /^the query is not allowed$/): string {
    expect(res.status, JSON.stringify(res.body)).toBeGreaterThanOrEqual(400);
    expect(res.status, JSON.stringify(res.body)).toBeLessThan(500);
    expectNothingLeaked(res);
    if (by !== null) expect(res.body.detail, JSON.stringify(res.body)).toMatch(by);
    const found = (res.body.errors as Array<{ field: string; message: string }> | undefined)?.find((e) => e.field === field);
    expect(found, `an error at '${field}' in ${JSON.stringify(res.body)}`).toBeDefined();
    return found!.message;
  }

  const url = (path: string) => `http://127.0.0.1:${port}/${path}`;
  const outfile = () => join(dir, `${uid('out')}.txt`);

  /** Each payload, each a finding of the attack or a variant of one. */
  const payloads: Array<[string, () => string]> = [
    // 1. Control characters in names rewrote the printed tree.
    ['newline alias hides file()', () => "SELECT 1 AS `a\nb`, file('/etc/hostname') AS f"],
    ['newline alias after the call', () => "SELECT identity(substring(file('/etc/passwd'), 1, 40)) AS `x)\nz`"],
    ['newline alias reads system.databases', () => 'SELECT 1 AS `a\nb`, name FROM system.databases'],
    ['newline alias reads system.processes', () => 'SELECT 1 AS `a\nb`, query FROM system.processes'],
    ['double-quoted alias with a newline', () => `SELECT 1 AS "a\nb", file('/etc/hostname') AS f`],
    ['carriage return', () => "SELECT 1 AS `a\rb`, file('/etc/hostname') AS f"],
    ['tab', () => "SELECT 1 AS `a\tb`, file('/etc/hostname') AS f"],
    ['vertical tab', () => "SELECT 1 AS `a\u000bb`, file('/etc/hostname') AS f"],
    ['unit separator', () => "SELECT 1 AS `a\u001fb`, file('/etc/hostname') AS f"],
    ['DEL', () => "SELECT 1 AS `a\u007fb`, file('/etc/hostname') AS f"],
    ['NEL', () => "SELECT 1 AS `a\u0085b`, file('/etc/hostname') AS f"],
    ['Unicode line separator', () => "SELECT 1 AS `a\u2028b`, file('/etc/hostname') AS f"],
    ['Unicode paragraph separator', () => "SELECT 1 AS `a\u2029b`, file('/etc/hostname') AS f"],
    ['a newline written as an escape', () => "SELECT 1 AS `a\\nb`, file('/etc/hostname') AS f"],
    ['a newline written as a hex escape', () => "SELECT 1 AS `a\\x0Ab`, file('/etc/hostname') AS f"],
    ['a newline in a column name of a subquery', () => "SELECT * FROM (SELECT 1 AS `\n  Function file`) "],
    // 2. APPLY(fn) was never checked.
    ['APPLY(file) reads /proc/self/environ', () => "SELECT * APPLY(file) FROM (SELECT '/proc/self/environ' AS p)"],
    ['APPLY file without parentheses', () => "SELECT * APPLY file FROM (SELECT '/proc/self/environ' AS p)"],
    ['COLUMNS(...) APPLY(file)', () => "SELECT COLUMNS('p') APPLY(file) FROM (SELECT '/etc/hostname' AS p)"],
    ['APPLY of a lambda', () => "SELECT * APPLY(x -> file(x)) FROM (SELECT '/etc/hostname' AS p)"],
    ['nested APPLY', () => "SELECT * APPLY(lower) APPLY(file) FROM (SELECT '/etc/hostname' AS p)"],
    ['EXCEPT then APPLY', () => "SELECT * EXCEPT (q) APPLY(file) FROM (SELECT '/etc/hostname' AS p, 1 AS q)"],
    ['REPLACE with file()', () => "SELECT * REPLACE (file('/etc/hostname') AS p) FROM (SELECT 'x' AS p)"],
    ['APPLY(hostName)', () => 'SELECT * APPLY(hostName) FROM (SELECT 1 AS p)'],
    ['APPLY(joinGet)', () => "SELECT * APPLY(joinGet) FROM (SELECT 't' AS p)"],
    ['APPLY in a subquery', () => "SELECT * FROM (SELECT * APPLY(file) FROM (SELECT '/etc/hostname' AS p))"],
    // 3. SETTINGS in a subquery lifted readonly and the limits.
    ['SETTINGS readonly=0 in a subquery', () => 'SELECT * FROM (SELECT 1 AS x SETTINGS readonly = 0)'],
    ['url() behind a newline alias and SETTINGS', () => `SELECT 1 AS \`a\nb\`, * FROM (SELECT * FROM url('${url('a')}', LineAsString) SETTINGS readonly = 0)`],
    ['file() table function behind SETTINGS', () => "SELECT 1 AS `a\nb`, * FROM (SELECT * FROM file('/etc/hostname', LineAsString) SETTINGS readonly = 0)"],
    ['SETTINGS in a scalar subquery', () => 'SELECT (SELECT 1 SETTINGS max_execution_time = 0) AS x'],
    ['SETTINGS in IN', () => 'SELECT 1 IN (SELECT 1 SETTINGS readonly = 0)'],
    ['url() directly', () => `SELECT * FROM url('${url('b')}', LineAsString)`],
    ['url() in a scalar subquery', () => `SELECT (SELECT * FROM url('${url('c')}', LineAsString)) AS x`],
    ['INTO OUTFILE behind a newline alias', () => `SELECT 1 AS \`a\nb\` INTO OUTFILE '${outfile()}'`],
    // 5. A core held for an hour by one row at a time.
    ['editDistance of 64 KiB strings', () => 'SELECT sum(editDistance(randomString(65536), randomString(65536 + i))) FROM system.one ARRAY JOIN range(1000) AS i'],
    ['levenshteinDistance (its alias)', () => 'SELECT levenshteinDistance(randomString(65536), randomString(65536))'],
    ['damerauLevenshteinDistance', () => 'SELECT damerauLevenshteinDistance(randomString(65536), randomString(65536))'],
    ['editDistance through APPLY', () => 'SELECT * APPLY(editDistance) FROM (SELECT 1 AS p)'],
    ['a quadratic arrayFold', () => 'SELECT length(arrayFold((acc, x) -> arrayPushBack(acc, x), range(1000000), emptyArrayUInt64())) AS n'],
    ['hasSubstr of two large arrays', () => 'SELECT hasSubstr(range(1000000), arrayConcat(range(999999), [7]))'],
    // 6. The IN family, qualified names and the catalogue.
    ['inIgnoreSet reads system.processes', () => 'SELECT inIgnoreSet(1, system.processes)'],
    ['notInIgnoreSet reads system.users', () => 'SELECT notInIgnoreSet(1, system.users)'],
    ['globalNotNullInIgnoreSet', () => 'SELECT globalNotNullInIgnoreSet(1, `system`.`settings`)'],
    ['a dot inside a quoted database name', () => 'SELECT * FROM `default.secret`.t'],
    ['host paths of the catalogue', () => 'SELECT data_paths FROM system.tables'],
    ['host paths of parts', () => 'SELECT path FROM system.parts'],
    ['dictionary reads', () => "SELECT dictGet('d', 'a', toUInt64(1))"],
    ['joinGet', () => "SELECT joinGet('t', 'a', 1)"],
  ];

  it.each(payloads)('/v1/sql, %s: 400 for read-only and admin, 403 for notify, nothing happens', async (_what, payload) => {
    for (const who of [R, A]) {
      const query = payload();
      const res = await c.request('POST', '/v1/sql', { query }, who);
      // The catalogue's path columns do not exist in the view the query reads: ClickHouse says so.
      refused(res, 'query', /host paths/.test(_what) ? null : /^the query is not allowed$/);
    }
    const res = await c.request('POST', '/v1/sql', { query: payload() }, N);
    expect(res.status, JSON.stringify(res.body)).toBe(403);
    expectNothingLeaked(res);
  });

  it('no request reached the listening server and no file was written by any of them', async () => {
    expect(ssrfHits).toBe(0);
    expect(readdirSync(dir)).toEqual([]);
  });

  it('the catalogue shows the connector\'s database only, without host paths', async () => {
    const dest = await processDestination();
    // Another database, made by an administrator: the connector's user may not.
    const admin = await adminClient();
    await admin.command({ query: 'CREATE DATABASE IF NOT EXISTS `default.secret`' });
    await admin.command({ query: "CREATE TABLE IF NOT EXISTS `default.secret`.t ENGINE = Memory AS SELECT 'the other database' AS s" });
    await admin.command({ query: `CREATE TABLE IF NOT EXISTS ${dest.database}.structure_own ENGINE = Memory AS SELECT toUInt8(1) AS a` });
    const own = dest.database;
    const q = async (query: string) => {
      const res = await c.request('POST', '/v1/sql', { query }, R);
      expect(res.status, JSON.stringify(res.body)).toBe(200);
      return res.body.data as Array<Record<string, unknown>>;
    };
    expect(await q('SELECT DISTINCT database FROM system.tables')).toEqual([{ database: own }]);
    expect(await q("SELECT count() AS n FROM system.tables WHERE database = 'system'")).toEqual([{ n: expect.anything() }]);
    expect(Number((await q("SELECT count() AS n FROM system.tables WHERE database = 'system'"))[0]!.n)).toBe(0);
    expect(await q('SELECT DISTINCT database FROM system.columns')).toEqual([{ database: own }]);
    expect((await q('SELECT name FROM system.databases')).map((r) => r.name)).toEqual([own]);
    const all = JSON.stringify(await q('SELECT * FROM system.tables AS t'));
    expect(all).not.toContain('the other database');
    expect(all).not.toContain('default.secret');
    expect(all).not.toMatch(/data_paths|metadata_path/);
    // A join of catalogue tables reads the same scoped views, aliased or not.
    const joined = await q('SELECT DISTINCT c.database AS d FROM system.tables AS t INNER JOIN system.columns AS c ON t.name = c.table AND t.database = c.database');
    expect(joined).toEqual([{ d: own }]);
    expect(await q(`SELECT DISTINCT database FROM ${own}.structure_own JOIN system.columns ON 1 WHERE database != ''`)).toEqual([{ database: own }]);
    // Reads that were always fine still are.
    expect(await q("SELECT if(count() > 0, 'yes', 'no') AS ok FROM system.one")).toEqual([{ ok: 'yes' }]);
    expect(await q("SELECT * APPLY(length) FROM (SELECT 'abc' AS p)")).toEqual([{ 'length(p)': expect.anything() }]);
    expect(await q("SELECT arrayMap(x -> upper(x), ['a']) AS r, 'tab\there' AS s")).toEqual([{ r: ['A'], s: 'tab\there' }]);
  });

  describe('spec expressions and column types (admin)', () => {
    const spec = (over: Record<string, unknown> = {}) => ({
      name: uid('st'),
      connection: 'local',
      bucketUri: `s3://${bucket}/s/*.csv`,
      format: 'csv',
      schedule: '@on-demand',
      columns: [
        { name: 'ts', type: 'DateTime' },
        { name: 'id', type: 'UInt64' },
      ],
      engine: { sortingKey: 'ts' },
      ...over,
    });

    async function tableExists(name: string): Promise<boolean> {
      const dest = await processDestination();
      const rs = await dest.client.query({ query: 'SELECT count() AS n FROM system.tables WHERE name = {t:String}', query_params: { t: name }, format: 'JSONEachRow' });
      return Number((await rs.json<{ n: string }>())[0]!.n) > 0;
    }

    const typeAttack = (wrapper: (inner: string) => string) => (path: string, table: string) =>
      wrapper(`) ENGINE = Memory; SELECT * FROM file($$/etc/hostname$$, LineAsString) INTO OUTFILE $$${path}$$; CREATE TABLE IF NOT EXISTS ${table} (a String --`);
    it.each<[string, (path: string, table: string) => string]>([
      ['JSON with a comment hiding a statement', typeAttack((s) => `JSON(/*'*/ max_dynamic_paths = 1${s}')`)],
      ['Dynamic with a comment hiding a statement', typeAttack((s) => `Dynamic(/*'*/ max_types = 1${s}')`)],
      ['SimpleAggregateFunction parameters hiding a statement', typeAttack((s) => `SimpleAggregateFunction(groupArrayArray(/*'*/ 1${s}'), Array(String))`)],
      ['a line comment', () => 'UInt64 -- trailing'],
      ['a hash comment', () => 'UInt64 # trailing'],
      ['a block comment', () => 'Nullable(/* x */ String)'],
      ['a $$ string', () => 'DateTime($$UTC$$)'],
      ['a second statement', (path) => `UInt64; SELECT 1 INTO OUTFILE '${path}'`],
      ['a newline inside a JSON path', () => 'JSON(`a\nb` UInt32)'],
      ['an expression as a JSON setting', () => 'JSON(max_dynamic_paths = file(1))'],
    ])('columns[1].type, %s: 400 naming columns.1.type, no file, no table', async (_what, make) => {
      const path = outfile();
      const table = uid('pwn');
      const body = spec({ columns: [{ name: 'ts', type: 'DateTime' }, { name: 'id', type: make(path, table) }] });
      const res = await c.request('POST', '/v1/datasources', body, A);
      if (res.status === 201) created.push(body.name);
      expect(refused(res, 'columns.1.type', SPEC_REFUSED).length).toBeGreaterThan(0);
      expect(existsSync(path)).toBe(false);
      expect(await tableExists(table)).toBe(false);
      expect(await tableExists(body.name)).toBe(false);
    });

    it.each<[string, Record<string, unknown>]>([
      ['columns.1.default', { columns: [{ name: 'ts', type: 'DateTime' }, { name: 'id', type: 'String', default: "concat(('' AS `a\nb`), file('/etc/hostname'))" }] }],
      ['columns.1.default', { columns: [{ name: 'ts', type: 'DateTime' }, { name: 'id', type: 'String', default: "arrayStringConcat(arrayMap(x -> file(x), ['/etc/hostname']))" }] }],
      ['columns.1.default', { columns: [{ name: 'ts', type: 'DateTime' }, { name: 'id', type: 'String', default: "toString(dictGet('d', 'a', toUInt64(1)))" }] }],
      ['columns.1.default', { columns: [{ name: 'ts', type: 'DateTime' }, { name: 'id', type: 'String', default: "toString(joinGet('t', 'a', 1))" }] }],
      ['columns.1.default', { columns: [{ name: 'ts', type: 'DateTime' }, { name: 'id', type: 'UInt64', default: 'editDistance(randomString(65536), randomString(65536))' }] }],
      ['columns.1.default', { columns: [{ name: 'ts', type: 'DateTime' }, { name: 'id', type: 'String', default: "identity(file('/etc/hostname')) AS `x)\rz`" }] }],
      ['engine.sortingKey', { engine: { sortingKey: "ts, identity('' AS `a\u2028b`)" } }],
      ['engine.ttl', { engine: { sortingKey: 'ts', ttl: "ts + toIntervalDay(length(file('/etc/hostname') AS `q\nr`))" } }],
      ['engine.partitionKey', { engine: { sortingKey: 'ts', partitionKey: 'toYYYYMM(ts) SETTINGS readonly = 0' } }],
    ])('%s reading outside the row: 400 naming the field, no table', async (field, over) => {
      const body = spec(over);
      const res = await c.request('POST', '/v1/datasources', body, A);
      if (res.status === 201) created.push(body.name);
      refused(res, field, SPEC_REFUSED);
      expect(await tableExists(body.name)).toBe(false);
    });

    it('the same type attacks by PATCH and in a .datasource file: 400, the spec unchanged, no file, no table', async () => {
      const body = spec();
      const ok = await c.request('POST', '/v1/datasources', body, A);
      expect(ok.status, JSON.stringify(ok.body)).toBe(201);
      created.push(body.name);
      const path = outfile();
      const table = uid('pwn');
      const attack = typeAttack((x) => `JSON(/*'*/ max_dynamic_paths = 1${x}')`)(path, table);
      const patched = await c.request('PATCH', `/v1/datasources/${body.name}`, { columns: [{ name: 'ts', type: 'DateTime' }, { name: 'id', type: attack }] }, A);
      expect(refused(patched, 'columns.1.type', SPEC_REFUSED)).toMatch(/comments are not allowed in a type/);
      expect((await c.request('GET', `/v1/datasources/${body.name}`, undefined, A)).body.columns[1]).toEqual({ name: 'id', type: 'UInt64' });
      const name = uid('stf');
      const file = ['SCHEMA >', '    `ts` DateTime,', `    \`id\` ${attack}`, '', 'ENGINE "MergeTree"', 'ENGINE_SORTING_KEY "ts"', '', 'IMPORT_SERVICE s3', 'IMPORT_CONNECTION_NAME local', `IMPORT_BUCKET_URI s3://${bucket}/s/*.csv`, 'IMPORT_SCHEDULE @on-demand', ''].join('\n');
      const viaFile = await c.request('POST', `/v1/datasources?name=${name}`, file, { ...A, 'content-type': 'text/plain' });
      if (viaFile.status === 201) created.push(name);
      expect(viaFile.status, JSON.stringify(viaFile.body)).toBe(400);
      expect(JSON.stringify(viaFile.body)).toMatch(/comments are not allowed in a type/);
      expectNothingLeaked(viaFile);
      expect(existsSync(path)).toBe(false);
      expect(await tableExists(table)).toBe(false);
      expect(await tableExists(name)).toBe(false);
    });

    it('a type is stored as ClickHouse prints it: a quoted JSON path with -- in it stays a name', async () => {
      const body = spec({ columns: [{ name: 'ts', type: 'DateTime' }, { name: 'id', type: 'UInt64' }, { name: 'j', type: 'JSON(max_dynamic_paths = 4, `a -- b`.c UInt32)' }] });
      const res = await c.request('POST', '/v1/datasources', body, A);
      expect(res.status, JSON.stringify(res.body)).toBe(201);
      created.push(body.name);
      const sync = await c.request('POST', `/v1/datasources/${body.name}/sync`, undefined, A);
      expect(sync.status).toBeLessThan(300);
    });
  });

  it('a query over its time limit is stopped by ClickHouse, and one the API kills is cancelled, while other reads are answered', async () => {
    const dest = await processDestination();
    const scope = { databases: ['default'], defaultDatabase: 'default' };
    // 10^9 rows of a cheap function: far longer than the limits below on any machine.
    const slow = 'SELECT sum(cityHash64(i, j, k)) AS s FROM system.one ARRAY JOIN range(1000) AS i ARRAY JOIN range(1000) AS j ARRAY JOIN range(1000) AS k';
    await expect(runReadOnly(dest.client, slow, scope, { maxExecutionTime: 1 })).rejects.toThrow(/TIMEOUT_EXCEEDED|Timeout exceeded|time limit/i);
    const killed = runReadOnly(dest.client, slow, scope, { maxExecutionTime: 3600, killAfterMs: 500 }).then(
      () => null,
      (err: Error) => err,
    );
    const other = await c.request('POST', '/v1/sql', { query: 'SELECT 1 AS one' }, R);
    expect(other.status, JSON.stringify(other.body)).toBe(200);
    expect((await killed)?.message).toMatch(/cancel/i);
    // Nothing of the stopped queries reaches the next answers on those connections (chDB kept it before).
    for (let i = 0; i < 4; i++) {
      const after = await c.request('POST', '/v1/sql', { query: `SELECT ${i} AS n` }, R);
      expect(after.body, JSON.stringify(after.body)).toMatchObject({ data: [{ n: i }], rows: 1 });
    }
  });
});

