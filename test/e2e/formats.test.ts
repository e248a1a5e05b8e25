import { describe, expect, it } from 'vitest';
import { gzipSync } from 'node:zlib';
import { execFileSync } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import type { S3Client } from '@aws-sdk/client-s3';
import { eventually, put, sql, uid, type TestConnector, useTestStack } from '../support/harness.js';
import { adminClient } from '../support/harness.js';
import { reportsRunFinished } from '../support/workflow-wait.js';

/**
 * The fixture matrix: real files through the real path (MinIO -> chDB),
 * asserting exact row counts, exact typed values and exact quarantine rows.
 */
describe('formats, compression, inference and quarantine', () => {
  let c: TestConnector;
  let s3: S3Client;
  let bucket: string;

  useTestStack((stack) => ({ c, s3, bucket } = stack));

  /** Create an on-demand data source over `prefix`, sync once and wait until every file settled. */
  async function load(spec: Record<string, unknown>, files: number) {
    const name = uid('f');
    const res = await c.request('POST', '/v1/datasources', { name, connection: 'local', schedule: '@on-demand', ...spec });
    expect(res.status, JSON.stringify(res.body)).toBe(201);
    await c.request('POST', `/v1/datasources/${name}/sync`);
    const ds = await eventually(`${name}: ${files} files settled`, async () => {
      const r = await c.request('GET', `/v1/datasources/${name}`);
      const f = r.body.stats?.files;
      // The ledger settles before the run ends; the workflow's status (columns, schema) is read once it reports run 1 over.
      return f && f.success + f.failure === files && reportsRunFinished(r.body, `datasource:${name}/1`) ? r.body : null;
    });
    return { name, ds };
  }

  const rows = <T = Record<string, unknown>>(q: string) => sql<T>(c, q);

  it('CSV dialects: delimiter, no header, skip lines, quotes with newlines, BOM, CRLF, empty and header-only files', async () => {
    const p = uid('csv');
    await put(s3, bucket, `${p}/semi.csv`, 'id;name;amount\n1;"a;b";1.5\n2;"say ""hi""";2.25\n');
    await put(s3, bucket, `${p}/multiline.csv`, 'id;name;amount\n3;"line one\nline two";3\n');
    await put(s3, bucket, `${p}/bom_crlf.csv`, '\ufeffid;name;amount\r\n4;ünïcødé ✓;4\r\n5;;\r\n');
    await put(s3, bucket, `${p}/empty.csv`, '');
    await put(s3, bucket, `${p}/header_only.csv`, 'id;name;amount\n');
    const { name } = await load(
      {
        bucketUri: `s3://${bucket}/${p}/*.csv`,
        format: 'csv',
        csv: { delimiter: ';' },
        columns: [
          { name: 'id', type: 'UInt32' },
          { name: 'name', type: 'String' },
          { name: 'amount', type: 'Nullable(Decimal(10, 2))' },
        ],
      },
      5,
    );
    const got = await rows<{ id: number; name: string; amount: string | null }>(`SELECT id, name, toString(amount) AS amount FROM ${name} ORDER BY id`);
    expect(got).toEqual([
      { id: 1, name: 'a;b', amount: '1.5' },
      { id: 2, name: 'say "hi"', amount: '2.25' },
      { id: 3, name: 'line one\nline two', amount: '3' },
      { id: 4, name: 'ünïcødé ✓', amount: '4' },
      { id: 5, name: '', amount: null },
    ]);
  });

  it('CSV without header and with skipped preamble lines, gzip and zstd', async () => {
    const p = uid('csvnh');
    const body = 'exported by tool X\nsecond preamble line\n10,alpha\n11,beta\n';
    await put(s3, bucket, `${p}/a.csv.gz`, gzipSync(body));
    await put(s3, bucket, `${p}/b.csv.zst`, execFileSync('zstd', ['-q', '-c'], { input: body.replace('10,', '20,').replace('11,', '21,') }));
    const { name } = await load(
      {
        bucketUri: `s3://${bucket}/${p}/*`,
        format: 'csv',
        csv: { header: false, skipLines: 2 },
        columns: [
          { name: 'id', type: 'UInt32', source: 'c1' },
          { name: 'label', type: 'String', source: 'c2' },
        ],
      },
      2,
    );
    expect(await rows(`SELECT id, label FROM ${name} ORDER BY id`)).toEqual([
      { id: 10, label: 'alpha' }, { id: 11, label: 'beta' }, { id: 20, label: 'alpha' }, { id: 21, label: 'beta' },
    ]);
  });

  it('zip archives (every data entry loads, other entries are skipped) and compression told by magic bytes', async () => {
    const p = uid('zip');
    const dir = await mkdtemp(join(tmpdir(), 's3ch-zip-'));
    await writeFile(join(dir, 'one.csv'), 'id,label\n1,a\n2,b\n');
    await writeFile(join(dir, 'two.csv'), 'id,label\n3,c\n');
    await writeFile(join(dir, 'README.md'), '# not data\n');
    execFileSync('zip', ['-q', 'bundle.zip', 'one.csv', 'two.csv', 'README.md'], { cwd: dir });
    await put(s3, bucket, `${p}/bundle.zip`, await readFile(join(dir, 'bundle.zip')));
    await put(s3, bucket, `${p}/noext-gzip`, gzipSync('id,label\n4,d\n'));
    await rm(dir, { recursive: true, force: true });
    const { name, ds } = await load(
      { bucketUri: `s3://${bucket}/${p}/*`, format: 'csv', columns: [{ name: 'id', type: 'UInt32' }, { name: 'label', type: 'String' }] },
      2,
    );
    expect(ds.stats.files.success).toBe(2);
    expect(await rows(`SELECT id, label FROM ${name} ORDER BY id`)).toEqual([
      { id: 1, label: 'a' }, { id: 2, label: 'b' }, { id: 3, label: 'c' }, { id: 4, label: 'd' },
    ]);
    const files = await c.request('GET', `/v1/datasources/${name}/files`);
    expect(files.body.items.find((f: any) => f.key === `${p}/bundle.zip`)).toMatchObject({ rows: 3, status: 'success' });
  });

  it('bad values go to quarantine with file, line, raw text, column and reason; good rows load', async () => {
    const p = uid('q');
    await put(s3, bucket, `${p}/mixed.csv`, 'ts,n\n2024-01-01 10:00:00,1\nnot a time,2\n2024-01-03 00:00:00,three\n2024-01-04 00:00:00,4\n');
    const { name, ds } = await load(
      { bucketUri: `s3://${bucket}/${p}/*.csv`, format: 'csv', columns: [{ name: 'ts', type: 'DateTime' }, { name: 'n', type: 'Int32' }] },
      1,
    );
    expect(await rows(`SELECT toString(ts) AS ts, n FROM ${name} ORDER BY n`)).toEqual([
      { ts: '2024-01-01 10:00:00', n: 1 }, { ts: '2024-01-04 00:00:00', n: 4 },
    ]);
    const q = await c.request('GET', `/v1/datasources/${name}/quarantine`);
    expect(q.status).toBe(200);
    expect(q.body.items.map((i: any) => ({ key: i.key, line: i.line, column: i.column, error: i.error, raw: JSON.parse(i.raw) }))).toEqual([
      { key: `${p}/mixed.csv`, line: 2, column: 'ts', error: 'cannot convert to DateTime', raw: { ts: 'not a time', n: '2' } },
      { key: `${p}/mixed.csv`, line: 3, column: 'n', error: 'cannot convert to Int32', raw: { ts: '2024-01-03 00:00:00', n: 'three' } },
    ]);
    expect(ds.stats.rows).toBe(2);
    expect(ds.stats.quarantinedRows).toBe(2);
    const files = await c.request('GET', `/v1/datasources/${name}/files`);
    expect(files.body.items[0]).toMatchObject({ rows: 2, quarantinedRows: 2, status: 'success' });
  });

  it('NDJSON: nested JSONPath columns, missing fields take defaults, invalid lines are quarantined', async () => {
    const p = uid('nd');
    const lines = [
      JSON.stringify({ id: 1, user: { name: 'ada', tags: ['x', 'y'] }, ts: '2024-05-01T12:00:00Z', score: 1.5 }),
      JSON.stringify({ id: 2, user: { name: 'bob' }, ts: '2024-05-02T12:00:00.250Z' }),
      '{"id": 3, "user": {"name": "broken"',
      JSON.stringify({ id: 4, user: { name: null, tags: [] }, ts: 1714608000, score: null }),
      // Valid JSON but no object: no row of defaults.
      '[5, {"name": "array"}]',
      '  "a string"',
    ];
    await put(s3, bucket, `${p}/a.ndjson`, lines.join('\n') + '\n');
    const { name } = await load(
      {
        bucketUri: `s3://${bucket}/${p}/*.ndjson`,
        format: 'ndjson',
        columns: [
          { name: 'id', type: 'UInt32', path: '$.id' },
          { name: 'user_name', type: 'Nullable(String)', path: '$.user.name' },
          { name: 'first_tag', type: 'String', path: '$.user.tags[0]' },
          { name: 'ts', type: "DateTime64(3, 'UTC')", path: '$.ts' },
          { name: 'score', type: 'Float64', path: '$.score' },
        ],
      },
      1,
    );
    expect(await rows(`SELECT id, user_name, first_tag, toString(ts) AS ts, score FROM ${name} ORDER BY id`)).toEqual([
      { id: 1, user_name: 'ada', first_tag: 'x', ts: '2024-05-01 12:00:00.000', score: 1.5 },
      { id: 2, user_name: 'bob', first_tag: '', ts: '2024-05-02 12:00:00.250', score: 0 },
      { id: 4, user_name: null, first_tag: '', ts: '2024-05-02 00:00:00.000', score: 0 },
    ]);
    const q = await c.request('GET', `/v1/datasources/${name}/quarantine`);
    expect(q.body.items.map((i: { line: number }) => i.line).sort()).toEqual([3, 5, 6]);
    const byLine = Object.fromEntries(q.body.items.map((i: { line: number }) => [i.line, i]));
    expect(byLine[3]).toMatchObject({ error: 'invalid JSON', raw: lines[2] });
    expect(byLine[5]).toMatchObject({ error: 'not a JSON object', raw: lines[4] });
    expect(byLine[6]).toMatchObject({ error: 'not a JSON object', raw: lines[5] });
  });

  it('Parquet written by ClickHouse: nulls, timestamps, decimals, dates, lists; columns inferred from the file', async () => {
    const p = uid('pq');
    const path = join(tmpdir(), `${p}.parquet`);
    await (await adminClient()).command({
      query: `INSERT INTO FUNCTION file('${path}', 'Parquet')
              SELECT number AS id,
                     toDateTime64('2024-01-01 00:00:00.123', 3, 'UTC') + number AS ts,
                     toDecimal64(number / 4, 4) AS price,
                     if(number % 2 = 0, NULL, concat('name-', toString(number))) AS label,
                     range(number % 3) AS items,
                     toDate('2024-02-01') + number AS day
              FROM numbers(6) SETTINGS output_format_parquet_compression_method = 'zstd'`,
    });
    await put(s3, bucket, `${p}/part-0.parquet`, await readFile(path));
    await rm(path, { force: true });
    const { name, ds } = await load({ bucketUri: `s3://${bucket}/${p}/*.parquet`, format: 'auto' }, 1);
    expect(ds.stats.files.success).toBe(1);
    expect(ds.columns.map((x: any) => x.name)).toEqual(['id', 'ts', 'price', 'label', 'items', 'day']);
    const got = await rows(`SELECT id, toString(ts) AS ts, toString(price) AS price, label, items, toString(day) AS day FROM ${name} ORDER BY id`);
    expect(got).toHaveLength(6);
    expect(got[1]).toEqual({ id: 1, ts: '2024-01-01 00:00:01.123', price: '0.25', label: 'name-1', items: [0], day: '2024-02-02' });
    expect(got[2]).toMatchObject({ label: null, items: [0, 1] });
    expect(ds.columns).toEqual([
      { name: 'id', type: 'UInt64' }, { name: 'ts', type: "DateTime64(3, 'UTC')" }, { name: 'price', type: 'Decimal(18, 4)' },
      { name: 'label', type: 'Nullable(String)' }, { name: 'items', type: 'Array(UInt8)' }, { name: 'day', type: 'Date32' },
    ]);
  });

  it('columns omitted: CSV schema inferred from the first file and recorded', async () => {
    const p = uid('inf');
    await put(s3, bucket, `${p}/a.csv`, 'event_time,user,value\n2024-03-01 00:00:00,u1,1.5\n2024-03-02 00:00:00,u2,2\n');
    await put(s3, bucket, `${p}/b.csv`, 'event_time,user,value\n2024-03-03 00:00:00,u3,3.25\n');
    const preview = await c.request('POST', '/v1/preview', { connection: 'local', bucketUri: `s3://${bucket}/${p}/*.csv` });
    expect(preview.status, JSON.stringify(preview.body)).toBe(200);
    expect(preview.body.total).toBe(2);
    expect(preview.body.suggestedTimeColumn).toBe('event_time');
    expect(preview.body.columns.map((x: any) => x.name)).toEqual(['event_time', 'user', 'value']);
    const { name, ds } = await load({ bucketUri: `s3://${bucket}/${p}/*.csv`, format: 'csv' }, 2);
    expect(ds.inferredFrom).toBe(`${p}/a.csv`);
    expect(Number((await rows<{ n: string }>(`SELECT count() AS n FROM ${name}`))[0]!.n)).toBe(3);
    expect((await rows<{ s: number }>(`SELECT sum(value) AS s FROM ${name}`))[0]!.s).toBe(6.75);
  });

  it('a CSV without a header, columns inferred (c1, c2, c3): each value lands in its own column', async () => {
    const p = uid('nohdr');
    await put(s3, bucket, `${p}/a.csv`, 'alpha,beta,gamma\ndelta,epsilon,zeta\n');
    const { name, ds } = await load({ bucketUri: `s3://${bucket}/${p}/*.csv`, format: 'csv', csv: { header: false } }, 1);
    expect(ds.columns.map((x: { name: string }) => x.name)).toEqual(['c1', 'c2', 'c3']);
    expect(await rows(`SELECT c1, c2, c3 FROM ${name} ORDER BY c1`)).toEqual([
      { c1: 'alpha', c2: 'beta', c3: 'gamma' },
      { c1: 'delta', c2: 'epsilon', c3: 'zeta' },
    ]);
  });

  it('a column with a DEFAULT the file does not fill takes it, computed from the row', async () => {
    const p = uid('dflt');
    await put(s3, bucket, `${p}/a.csv`, 'ts,label\n2024-03-05 10:00:00,x\n2024-03-06 11:00:00,\n');
    const { name } = await load({
      bucketUri: `s3://${bucket}/${p}/*.csv`,
      format: 'csv',
      columns: [
        { name: 'ts', type: 'DateTime' },
        { name: 'label', type: 'String', default: "'none'" },
        { name: 'day', type: 'Date', default: 'toDate(ts)' },
      ],
    }, 1);
    expect(await rows(`SELECT toString(ts) AS ts, label, toString(day) AS day FROM ${name} ORDER BY ts`)).toEqual([
      { ts: '2024-03-05 10:00:00', label: 'x', day: '2024-03-05' },
      { ts: '2024-03-06 11:00:00', label: 'none', day: '2024-03-06' },
    ]);
  });

  it('schema evolution: a later file with a new column extends the table; older rows read NULL; the status shows the change', async () => {
    const p = uid('evo');
    await put(s3, bucket, `${p}/2024-01.csv`, 'id,name\n1,a\n2,b\n');
    const first = await load({ bucketUri: `s3://${bucket}/${p}/*.csv`, format: 'csv' }, 1);
    const name = first.name;
    await put(s3, bucket, `${p}/2024-02.csv`, 'id,name,country\n3,c,DE\n4,d,FR\n');
    await put(s3, bucket, `${p}/2024-03.csv`, 'id,country\n5,US\n');
    await c.request('POST', `/v1/datasources/${name}/sync`);
    const ds = await eventually('the newer files to load', async () => {
      const r = await c.request('GET', `/v1/datasources/${name}`);
      return r.body.stats.files.success === 3 && reportsRunFinished(r.body, `datasource:${name}/2`) ? r.body : null;
    });
    expect(ds.columns.map((x: any) => x.name)).toEqual(['id', 'name', 'country']);
    expect(ds.columns[2].type).toBe('Nullable(String)');
    expect(ds.schemaChanges).toEqual([expect.objectContaining({ added: ['country'] })]);
    expect(await rows(`SELECT id, name, country FROM ${name} ORDER BY id`)).toEqual([
      { id: 1, name: 'a', country: null }, { id: 2, name: 'b', country: null },
      { id: 3, name: 'c', country: 'DE' }, { id: 4, name: 'd', country: 'FR' },
      { id: 5, name: '', country: 'US' }, // a column the file lacks takes its default
    ]);
  });

  it('rows over limits.maxRowBytes are quarantined with the reason; the rest load', async () => {
    const p = uid('big');
    const long = 'x'.repeat(5000);
    await put(s3, bucket, `${p}/a.csv`, `id,text\n1,short\n2,${long}\n3,also short\n`);
    const { name, ds } = await load(
      { bucketUri: `s3://${bucket}/${p}/*.csv`, format: 'csv', limits: { maxRowBytes: 4096 }, columns: [{ name: 'id', type: 'UInt32' }, { name: 'text', type: 'String' }] },
      1,
    );
    expect(await rows(`SELECT id FROM ${name} ORDER BY id`)).toEqual([{ id: 1 }, { id: 3 }]);
    expect(ds.stats.quarantinedRows).toBe(1);
    const q = await c.request('GET', `/v1/datasources/${name}/quarantine`);
    expect(q.body.items).toHaveLength(1);
    expect(q.body.items[0]).toMatchObject({ line: 2, error: "row is 5001 bytes, over the data source's maxRowBytes of 4096" });
  });
});
