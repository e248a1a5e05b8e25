import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { S3Client } from '@aws-sdk/client-s3';
import { WorkflowNotFoundError } from '@temporalio/client';
import { workflowIdFor } from '../../workflows/messages.js';
import { createBucket, eventually, minioConnection, put, sql, startTestConnector, testS3, uid, type TestConnector, expectProblem } from '../support/harness.js';
import type { Connection } from '../../schemas/connection.js';
import { reportsRunFinished } from '../support/workflow-wait.js';

type Res = Awaited<ReturnType<TestConnector['request']>>;
type FieldError = { field: string; message: string };

/**
 * Bad input through the real stack (Temporal dev server + MinIO + chDB): it is
 * rejected with problem+json naming the field, and nothing is created. Then the
 * read-only SQL endpoint, and failures at run time that must be visible in the
 * data source's status without taking the worker down.
 */
describe('bad input is rejected and changes nothing', () => {
  let c: TestConnector;
  let s3: S3Client;
  let bucket: string;
  const created: string[] = [];

  beforeAll(async () => {
    c = await startTestConnector();
    s3 = testS3();
    bucket = await createBucket(s3);
  });
  afterAll(async () => {
    for (const name of created) {
      await c?.request('DELETE', `/v1/datasources/${name}?dropTable=true`).catch(() => undefined);
    }
    await c?.stop();
    s3?.destroy();
  });

  /** A valid spec (explicit columns, so validation includes the ClickHouse dry run); `over` breaks it. */
  const spec = (over: Record<string, unknown> = {}) => ({
    name: uid('bad'),
    connection: 'local',
    bucketUri: `s3://${bucket}/bad/*.csv`,
    format: 'csv',
    schedule: '@on-demand',
    columns: [
      { name: 'ts', type: 'DateTime' },
      { name: 'id', type: 'UInt64' },
    ],
    engine: { sortingKey: 'ts' },
    ...over,
  });


  function errorsOf(res: Res): FieldError[] {
    expect(Array.isArray(res.body.errors), `errors[] in ${JSON.stringify(res.body)}`).toBe(true);
    return res.body.errors as FieldError[];
  }

  function errorAt(res: Res, field: string): FieldError {
    const errors = errorsOf(res);
    const found = errors.find((e) => e.field === field);
    expect(found, `an error at '${field}' in ${JSON.stringify(errors)}`).toBeDefined();
    return found!;
  }

  /** No table (nor its satellites, nor a leftover dry-run table) and no workflow. */
  async function expectNothingCreated(name: string) {
    expect(await sql<{ result: number }>(c, `EXISTS TABLE ${name}`)).toEqual([{ result: 0 }]);
    const tables = await sql<{ name: string }>(
      c,
      `SELECT name FROM system.tables WHERE database = currentDatabase() AND (startsWith(name, '${name}') OR startsWith(name, 's3ch_validate_'))`,
    );
    expect(tables).toEqual([]);
    const get = await c.request('GET', `/v1/datasources/${name}`);
    expectProblem(get, 404);
    await expect(c.client.workflow.getHandle(workflowIdFor(name)).describe()).rejects.toBeInstanceOf(WorkflowNotFoundError);
  }

  async function create(body: Record<string, unknown>) {
    const res = await c.request('POST', '/v1/datasources', body);
    if (res.status === 201) created.push(body.name as string);
    return res;
  }

  describe('POST /v1/datasources: rejected by the spec schema', () => {
    it.each<[what: string, over: Record<string, unknown>, field: string, reason: RegExp]>([
      ['bucket URI with another scheme', { bucketUri: 'http://x' }, 'bucketUri', /only s3:\/\/ is allowed/],
      ['bucket URI with an invalid bucket name', { bucketUri: 's3://AB/x' }, 'bucketUri', /bucket name "AB"/],
      ['glob with an unclosed brace', { bucketUri: 's3://bucket/{a,b' }, 'bucketUri', /unclosed "\{"/],
      ['glob with an unmatched brace', { bucketUri: 's3://bucket/a}.csv' }, 'bucketUri', /unmatched "\}"/],
      ['cron minute out of range', { schedule: '61 * * * *' }, 'schedule', /minute value 61 is out of range/],
      ['cron with three fields', { schedule: '* * *' }, 'schedule', /has 3 fields; expected 5/],
      ['@every 0s', { schedule: '@every 0s' }, 'schedule', /too short/],
      ['unknown column type', { columns: [{ name: 'x', type: 'Strin' }] }, 'columns.0.type', /unknown ClickHouse type 'Strin'/],
      ['Array inside Nullable', { columns: [{ name: 'x', type: 'String' }, { name: 'y', type: 'Nullable(Array(Int8))' }] }, 'columns.1.type', /cannot be inside Nullable/],
      ['duplicate column', { columns: [{ name: 'x', type: 'String' }, { name: 'x', type: 'String' }] }, 'columns.1.name', /duplicate column 'x'/],
      ['engine clause with ;', { engine: { sortingKey: 'ts; DROP TABLE s3ch_runs' } }, 'engine.sortingKey', /no ';' or comments/],
      ['reserved table prefix', { table: 's3ch_mine' }, 'table', /reserved/],
      ['csv options on parquet', { format: 'parquet' , csv: { delimiter: ';' } }, 'csv', /need format csv/],
    ])('%s → 400 at the field', async (_what, over, field, reason) => {
      const body = spec(over);
      const res = await create(body);
      expectProblem(res, 400);
      expect(errorAt(res, field).message).toMatch(reason);
      await expectNothingCreated(body.name);
    });

    it('bad name → 400 at name', async () => {
      const res = await create(spec({ name: 'Bad-Name' }));
      expectProblem(res, 400);
      expect(errorAt(res, 'name').message).toMatch(/name must match/);
    });

    it('unknown field → 400 naming the key', async () => {
      const body = spec({ tabel: 'typo' });
      const res = await create(body);
      expectProblem(res, 400);
      // zod reports unrecognised keys on the enclosing object, so the field is the body itself;
      // the message names the key. (Naming it in `field` would be better; see the report.)
      const err = errorsOf(res).find((e) => e.field === 'tabel' || (e.field === '(body)' && /"tabel"/.test(e.message)));
      expect(err, JSON.stringify(res.body)).toBeDefined();
      await expectNothingCreated(body.name);
    });

    it('unknown connection → 400 at connection', async () => {
      const body = spec({ connection: 'nope' });
      const res = await create(body);
      expectProblem(res, 400);
      expect(errorAt(res, 'connection').message).toMatch(/unknown connection 'nope'; configured: local/);
      await expectNothingCreated(body.name);
    });
  });

  describe('POST /v1/datasources: rejected by ClickHouse in the dry run', () => {
    it.each<[what: string, over: Record<string, unknown>, reason: RegExp]>([
      ['sorting key on a missing column', { engine: { sortingKey: 'no_such_column' } }, /no_such_column/],
      ['TTL that does not parse', { engine: { sortingKey: 'ts', ttl: 'not a valid ttl (((' } }, /Syntax error/],
      ['TTL of the wrong type', { engine: { sortingKey: 'ts', ttl: 'id + INTERVAL 1 DAY' } }, /Illegal types|INTERVAL|Interval/i],
      ['partition key on a missing column', { engine: { partitionKey: 'toYYYYMM(nope)' } }, /nope/],
      // The type parser lets this through; ClickHouse does not.
      ['column type only ClickHouse rejects', { columns: [{ name: 'x', type: 'Nullable(LowCardinality(String))' }], engine: {} }, /cannot be inside Nullable/],
    ])('%s → 400, nothing created', async (_what, over, reason) => {
      const body = spec(over);
      const res = await create(body);
      expectProblem(res, 400);
      const errors = errorsOf(res);
      expect(errors).toHaveLength(1);
      expect(errors[0]!.field).toMatch(/^(engine|columns)/);
      expect(errors[0]!.message).toMatch(reason);
      // The message speaks of the user's table, not the scratch table of the dry run.
      expect(errors[0]!.message).not.toMatch(/s3ch_validate_/);
      await expectNothingCreated(body.name);
    });

    // The dry run creates clause by clause, so the rejection names the clause.
    it.each<[what: string, field: string, engine: Record<string, string>]>([
      ['sorting key on a missing column', 'engine.sortingKey', { sortingKey: 'no_such_column' }],
      ['TTL that does not parse', 'engine.ttl', { sortingKey: 'ts', ttl: 'not a valid ttl (((' }],
    ])('%s is attributed to %s', async (_what, field, engine) => {
      const res = await create(spec({ engine }));
      expectProblem(res, 400);
      expect(errorsOf(res).map((e) => e.field)).toEqual([field]);
    });
  });

  describe('POST /v1/datasources: rejected before the spec is read', () => {
    it('malformed JSON → 400', async () => {
      const name = uid('bad');
      const res = await c.request('POST', '/v1/datasources', `{"name":"${name}","connection":"local","bucketUri":`, { 'content-type': 'application/json' });
      expectProblem(res, 400);
      expect(res.body.detail).toMatch(/malformed JSON/i);
      await expectNothingCreated(name);
    });

    it('a body over 1 MiB → 413', async () => {
      const body = spec({ description: 'x'.repeat(1024 * 1024 + 1) });
      const res = await create(body);
      expectProblem(res, 413);
      expect(res.body.detail).toMatch(/1048576 bytes/);
      await expectNothingCreated(body.name);
    });

    it('text/plain is read as a .datasource file: without ?name= → 400 at name; JSON text → 400 naming the line', async () => {
      const body = spec();
      const noName = await c.request('POST', '/v1/datasources', JSON.stringify(body), { 'content-type': 'text/plain' });
      expectProblem(noName, 400);
      expect(noName.body.errors.map((e: { field: string }) => e.field)).toEqual(['name']);
      const notAFile = await c.request('POST', `/v1/datasources?name=${body.name}`, JSON.stringify(body), { 'content-type': 'text/plain' });
      expectProblem(notAFile, 400);
      expect(notAFile.body.errors[0].field).toMatch(/^line \d+$/);
      await expectNothingCreated(body.name);
    });
  });

  describe('names', () => {
    it('creating the same name twice → 409, and the first spec stands', async () => {
      const first = spec();
      expect((await create(first)).status).toBe(201);
      // Valid on its own (the 409 comes after validation), but a different spec.
      const again = await create({ ...first, bucketUri: `s3://${bucket}/other/*.csv`, schedule: '@hourly' });
      expectProblem(again, 409);
      expect(again.body.detail).toMatch(new RegExp(`'${first.name}' already exists`));
      const got = await c.request('GET', `/v1/datasources/${first.name}`);
      expect(got.status).toBe(200);
      expect(got.body.bucketUri).toBe(first.bucketUri);
      expect(got.body.schedule).toBe('@on-demand');
      expect(got.body.columns).toEqual(first.columns);
      const cols = await eventually('the table of the first spec', async () => {
        const rows = await sql<{ name: string }>(c, `SELECT name FROM system.columns WHERE database = currentDatabase() AND table = '${first.name}' ORDER BY position`);
        return rows.length ? rows : null;
      });
      expect(cols.map((r) => r.name)).toEqual(['ts', 'id']);
    });

    it('GET an unknown data source → 404 problem+json', async () => {
      const res = await c.request('GET', '/v1/datasources/nope');
      expectProblem(res, 404);
      expect(res.body.detail).toMatch(/no data source named 'nope'/);
    });

    it('GET with a malformed name → 400 at name', async () => {
      const res = await c.request('GET', '/v1/datasources/Not-A-Name');
      expectProblem(res, 400);
      expect(errorAt(res, 'name').message).toMatch(/name must match/);
    });
  });
});

describe('POST /v1/sql is read-only', () => {
  let c: TestConnector;
  const guard = uid('sql_guard');

  beforeAll(async () => {
    c = await startTestConnector();
    // A fixture table made behind the API's back: the API must not be able to change it.
    await c.destination.client.command({ query: `CREATE TABLE ${guard} (id UInt64) ENGINE = MergeTree ORDER BY id` });
    await c.destination.client.command({ query: `INSERT INTO ${guard} VALUES (1), (2), (3)` });
  });
  afterAll(async () => {
    await c?.destination.client.command({ query: `DROP TABLE IF EXISTS ${guard}` }).catch(() => undefined);
    await c?.stop();
  });

  async function guardIntact() {
    const rows = await sql<{ n: number | string; s: number | string }>(c, `SELECT count() AS n, sum(id) AS s FROM ${guard}`);
    expect(rows.map((r) => [Number(r.n), Number(r.s)])).toEqual([[3, 6]]);
  }

  it('a normal SELECT → 200 with { meta, data, rows }', async () => {
    const res = await c.request('POST', '/v1/sql', { query: `SELECT id, toString(id) AS s FROM ${guard} ORDER BY id` });
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^application\/json/);
    expect(res.body.meta).toEqual([{ name: 'id', type: 'UInt64' }, { name: 's', type: 'String' }]);
    expect(res.body.data.map((r: { id: unknown; s: string }) => [Number(r.id), r.s])).toEqual([[1, '1'], [2, '2'], [3, '3']]);
    expect(res.body.rows).toBe(3);
  });

  it('EXISTS TABLE answers 1 and 0', async () => {
    expect(await sql(c, `EXISTS TABLE ${guard}`)).toEqual([{ result: 1 }]);
    expect(await sql(c, 'EXISTS TABLE no_such_table_here')).toEqual([{ result: 0 }]);
  });

  it.each([
    ['INSERT', () => `INSERT INTO ${guard} VALUES (4)`],
    ['INSERT … SELECT', () => `INSERT INTO ${guard} SELECT 5`],
    ['DROP TABLE', () => `DROP TABLE ${guard}`],
    ['TRUNCATE', () => `TRUNCATE TABLE ${guard}`],
    ['ALTER … DELETE', () => `ALTER TABLE ${guard} DELETE WHERE 1`],
    ['CREATE TABLE', () => `CREATE TABLE ${guard}_x (a UInt8) ENGINE = Memory`],
    ['OPTIMIZE', () => `OPTIMIZE TABLE ${guard} FINAL`],
    ['SET', () => 'SET readonly = 0'],
    ['multi-statement', () => `SELECT 1; DROP TABLE ${guard}`],
    ['multi-statement with INSERT', () => `SELECT 1; INSERT INTO ${guard} VALUES (4)`],
    ['table function file()', () => "SELECT * FROM file('/etc/passwd')"],
    ['table function file() in a subquery', () => "SELECT count() FROM (SELECT * FROM file('/etc/passwd', 'LineAsString'))"],
    ['table function url()', () => "SELECT * FROM url('http://127.0.0.1:9/', 'LineAsString')"],
    ['SETTINGS readonly=0', () => `SELECT count() FROM ${guard} SETTINGS readonly=0`],
    ['SETTINGS readonly=0 then INSERT', () => `INSERT INTO ${guard} SETTINGS readonly=0 VALUES (4)`],
    ['FORMAT clause', () => `SELECT * FROM ${guard} FORMAT TSV`],
  ])('%s → 400, nothing changed', async (_what, query) => {
    const res = await c.request('POST', '/v1/sql', { query: query() });
    expect(res.status, JSON.stringify(res.body)).toBe(400);
    expect(res.headers.get('content-type')).toMatch(/^application\/problem\+json/);
    expect(res.body.errors?.[0]?.field).toBe('query');
    expect(res.body.errors[0].message).toEqual(expect.any(String));
    await guardIntact();
    expect(await sql(c, `EXISTS TABLE ${guard}_x`)).toEqual([{ result: 0 }]);
  });

  it('an empty query or an unknown field → 400', async () => {
    expect((await c.request('POST', '/v1/sql', { query: '' })).status).toBe(400);
    const extra = await c.request('POST', '/v1/sql', { query: 'SELECT 1', settings: { readonly: 0 } });
    expect(extra.status).toBe(400);
    expect(extra.headers.get('content-type')).toMatch(/^application\/problem\+json/);
  });

  // ClickHouse's own parser checks every query: no function or table function may reach outside the database.
  it('the scalar file() function cannot read local files', async () => {
    const res = await c.request('POST', '/v1/sql', { query: "SELECT file('/etc/passwd') AS f" });
    expect(res.status).toBe(400);
  });

  it('DESCRIBE over url() makes no request', async () => {
    const hits: string[] = [];
    const server = createServer((req, res) => {
      hits.push(req.url ?? '');
      res.end('secret_a,secret_b\n1,2\n');
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
    try {
      const { port } = server.address() as AddressInfo;
      const res = await c.request('POST', '/v1/sql', { query: `DESCRIBE TABLE url('http://127.0.0.1:${port}/meta', 'CSVWithNames')` });
      expect(hits).toEqual([]);
      expect(res.status).toBe(400);
    } finally {
      server.close();
    }
  });
});

describe('run-time failures are visible and do not stop the worker', () => {
  let c: TestConnector;
  let s3: S3Client;
  let bucket: string;

  beforeAll(async () => {
    c = await startTestConnector({}, { badcreds: { ...minioConnection(), secretAccessKey: 'not-the-secret' } as Connection });
    s3 = testS3();
    bucket = await createBucket(s3);
  });
  afterAll(async () => {
    await c?.stop();
    s3?.destroy();
  });

  const columns = [
    { name: 'ts', type: 'DateTime' },
    { name: 'id', type: 'UInt64' },
  ];

  async function runsCount(name: string): Promise<number> {
    const res = await c.request('GET', `/v1/datasources/${name}/runs`);
    return res.status === 200 ? (res.body.items.length as number) : 0;
  }

  it('a bucket that does not exist: status.error says so, and a valid data source still imports', async () => {
    const missingBucket = uid('missing').replace(/_/g, '-');
    const broken = uid('nobucket');
    const res = await c.request('POST', '/v1/datasources', {
      name: broken,
      connection: 'local',
      bucketUri: `s3://${missingBucket}/x/*.csv`,
      format: 'csv',
      schedule: '@on-demand',
      columns,
    });
    // The bucket is not looked at on create; the failure shows up at run time.
    expect(res.status, JSON.stringify(res.body)).toBe(201);
    expect((await c.request('POST', `/v1/datasources/${broken}/sync`)).status).toBe(202);

    const failed = await eventually(`${broken} to report the missing bucket`, async () => {
      const r = await c.request('GET', `/v1/datasources/${broken}`);
      return r.status === 200 && r.body.status.error && r.body.lastRun?.finishedAt && r.body.status.state !== 'syncing' ? r.body : null;
    });
    expect(failed.status.error).toMatch(/bucket does not exist|NoSuchBucket/i);
    expect(failed.status.state).toMatch(/^(error|idle)$/);
    expect(failed.lastRun).toMatchObject({ filesFound: 0, filesImported: 0 });
    expect(await runsCount(broken)).toBe(1);

    // The worker is still working: a valid data source created afterwards imports its file.
    const good = uid('good');
    await put(s3, bucket, 'good/a.csv', 'ts,id\n2024-01-01 00:00:00,1\n2024-01-01 00:00:01,2\n2024-01-01 00:00:02,3\n');
    const ok = await c.request('POST', '/v1/datasources', {
      name: good,
      connection: 'local',
      bucketUri: `s3://${bucket}/good/*.csv`,
      format: 'csv',
      schedule: '@on-demand',
      columns,
    });
    expect(ok.status, JSON.stringify(ok.body)).toBe(201);
    expect((await c.request('POST', `/v1/datasources/${good}/sync`)).status).toBe(202);
    await eventually(`${good} to import 3 rows`, async () => {
      const rows = await sql<{ n: number | string }>(c, `SELECT count() AS n FROM ${good}`);
      return Number(rows[0]?.n) === 3;
    });
    const goodView = await eventually(`${good} to finish its run`, async () => {
      const r = await c.request('GET', `/v1/datasources/${good}`);
      return r.status === 200 && r.body.lastRun?.finishedAt && r.body.status.state !== 'syncing' ? r.body : null;
    });
    expect(goodView.status.state).toBe('idle');
    expect(goodView.status.error).toBeNull();
    expect(goodView.stats.files.success).toBe(1);

    // The broken one still answers and fails the same way on the next sync.
    expect((await c.request('POST', `/v1/datasources/${broken}/sync`)).status).toBe(202);
    const again = await eventually(`${broken} to finish a second run`, async () => {
      const r = await c.request('GET', `/v1/datasources/${broken}`);
      return reportsRunFinished(r.body, `${workflowIdFor(broken)}/2`) && (await runsCount(broken)) >= 2 ? r.body : null;
    });
    expect(again.status.error).toMatch(/bucket does not exist|NoSuchBucket/i);
  });

  it('wrong credentials: status.error names the access problem, and nothing is imported', async () => {
    const name = uid('badcreds');
    await put(s3, bucket, 'creds/a.csv', 'ts,id\n2024-01-01 00:00:00,1\n');
    const res = await c.request('POST', '/v1/datasources', {
      name, connection: 'badcreds', bucketUri: `s3://${bucket}/creds/*.csv`, format: 'csv', schedule: '@on-demand', columns,
    });
    expect(res.status, JSON.stringify(res.body)).toBe(201);
    await c.request('POST', `/v1/datasources/${name}/sync`);
    const failed = await eventually(`${name} to report the access problem`, async () => {
      const r = await c.request('GET', `/v1/datasources/${name}`);
      return r.status === 200 && r.body.status.error && r.body.status.state !== 'syncing' ? r.body : null;
    });
    expect(failed.status.error).toMatch(/denied access|SignatureDoesNotMatch|credentials/i);
    expect(failed.status.error).not.toContain('not-the-secret');
    expect(failed.stats.files.success).toBe(0);
  });
});
