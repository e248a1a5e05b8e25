import { describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { fileURLToPath } from 'node:url';
import { HeadObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { eventually, put, sql, uid, type TestConnector, useTestStack } from '../support/harness.js';
import { reportsRunFinished } from '../support/workflow-wait.js';

/**
 * Rows that remember their file: columns filled from the object (key, file
 * name, ETag, size, last-modified time, line) and from hive partitions of the
 * key, through the real path (MinIO -> chDB) for CSV, NDJSON, Parquet and a
 * zip entry, with exact values; a bad partition is quarantined with the
 * reason; importing a file again adds nothing.
 */

const PARQUET = fileURLToPath(new URL('../fixtures/parquet/', import.meta.url));

describe('row lineage and hive partition columns', () => {
  let c: TestConnector;
  let s3: S3Client;
  let bucket: string;

  useTestStack((stack) => ({ c, s3, bucket } = stack));

  const rows = <T = Record<string, unknown>>(q: string) => sql<T>(c, q);

  /** What S3 says about an object: the values the lineage columns must hold. */
  async function head(key: string) {
    const h = await s3.send(new HeadObjectCommand({ Bucket: bucket, Key: key }));
    return {
      etag: (h.ETag ?? '').replace(/"/g, ''),
      size: h.ContentLength!,
      // ClickHouse's toString of a DateTime in UTC.
      mtime: h.LastModified!.toISOString().slice(0, 19).replace('T', ' '),
    };
  }

  async function runs(name: string) {
    return (await c.request('GET', `/v1/datasources/${name}/runs`)).body.items as { runId: string; trigger: string; filesFound: number; filesImported: number }[];
  }

  /** Wait until `n` runs of the data source are over, with no file in flight. */
  async function waitForRuns(name: string, n: number) {
    return eventually(`${name}: ${n} runs finished`, async () => {
      const items = await runs(name);
      if (items.length < n) return null;
      const ds = (await c.request('GET', `/v1/datasources/${name}`)).body;
      return reportsRunFinished(ds, items[0]!.runId) && ds.status.inFlight.length === 0 ? ds : null;
    });
  }

  /** Create an on-demand data source (JSON spec or .datasource text), sync once and wait for the run. */
  async function load(spec: Record<string, unknown> | string, name = uid('lin')) {
    const res = typeof spec === 'string'
      ? await c.request('POST', `/v1/datasources?name=${name}`, spec, { 'content-type': 'text/plain' })
      : await c.request('POST', '/v1/datasources', { name, connection: 'local', schedule: '@on-demand', ...spec });
    expect(res.status, JSON.stringify(res.body)).toBe(201);
    await c.request('POST', `/v1/datasources/${name}/sync`);
    const ds = await waitForRuns(name, 1);
    return { name, ds };
  }

  const count = async (table: string) => Number((await rows<{ n: string }>(`SELECT count() AS n FROM ${table}`))[0]!.n);

  it('CSV: key, file, ETag, size, last-modified, line and typed hive columns are exact; a bad partition is quarantined; importing again adds nothing', async () => {
    const p = uid('csv');
    const a = `${p}/dt=2024-05-01/region=eu/part-0001.csv`;
    // A space in the key and a percent-escaped partition value (as Spark writes a ':').
    const b = `${p}/dt=2024-05-02/region=us%3Aeast/part 2.csv`;
    const bad = `${p}/dt=2024-13-45/region=eu/part-0003.csv`;
    await put(s3, bucket, a, 'id,name\n1,one\n2,two\n');
    await put(s3, bucket, b, 'id,name\n3,three\n');
    await put(s3, bucket, bad, 'id,name\n4,four\n5,five\n');
    const { name, ds } = await load({
      bucketUri: `s3://${bucket}/${p}/**/*.csv`,
      format: 'csv',
      columns: [
        { name: 'id', type: 'UInt32' },
        { name: 'src', type: 'String', from: 'key' },
        { name: 'fname', type: 'String', from: 'file' },
        { name: 'etag', type: 'String', from: 'etag' },
        { name: 'size', type: 'UInt64', from: 'size' },
        { name: 'mtime', type: 'DateTime', from: 'lastModified' },
        { name: 'ln', type: 'UInt64', from: 'line' },
        { name: 'day', type: 'Date', from: 'hive', partition: 'dt' },
        { name: 'region', type: 'LowCardinality(String)', from: 'hive' },
        { name: 'name', type: 'String' },
      ],
      engine: { sortingKey: 'day, id' },
    });
    expect(ds.stats.files.success).toBe(3);
    const [ha, hb] = [await head(a), await head(b)];
    const got = await rows(`SELECT id, src, fname, etag, size, toString(mtime) AS mtime, ln, toString(day) AS day, region, name FROM ${name} ORDER BY id`);
    expect(got).toEqual([
      { id: 1, src: a, fname: 'part-0001.csv', etag: ha.etag, size: ha.size, mtime: ha.mtime, ln: 1, day: '2024-05-01', region: 'eu', name: 'one' },
      { id: 2, src: a, fname: 'part-0001.csv', etag: ha.etag, size: ha.size, mtime: ha.mtime, ln: 2, day: '2024-05-01', region: 'eu', name: 'two' },
      { id: 3, src: b, fname: 'part 2.csv', etag: hb.etag, size: hb.size, mtime: hb.mtime, ln: 1, day: '2024-05-02', region: 'us:east', name: 'three' },
    ]);
    const q = await c.request('GET', `/v1/datasources/${name}/quarantine`);
    expect(q.body.items.map((i: any) => ({ key: i.key, line: i.line, column: i.column, error: i.error, raw: JSON.parse(i.raw) }))).toEqual([
      { key: bad, line: 1, column: 'day', error: 'cannot convert to Date: dt=2024-13-45 in the key', raw: { id: '4', name: 'four' } },
      { key: bad, line: 2, column: 'day', error: 'cannot convert to Date: dt=2024-13-45 in the key', raw: { id: '5', name: 'five' } },
    ]);
    expect(ds.stats.rows).toBe(3);
    expect(ds.stats.quarantinedRows).toBe(2);

    // A sync finds nothing new; importing the files again by key is deduplicated: no row and no quarantined row twice.
    await c.request('POST', `/v1/datasources/${name}/sync`);
    await waitForRuns(name, 2);
    const again = await c.request('POST', `/v1/datasources/${name}/retry`, { keys: [a, b, bad] });
    expect(again.status, JSON.stringify(again.body)).toBe(202);
    const after = await waitForRuns(name, 3);
    expect((await runs(name))[0]).toMatchObject({ trigger: 'retry', filesFound: 3, filesImported: 3 });
    expect(await count(name)).toBe(3);
    expect(await count(`${name}_quarantine`)).toBe(2);
    expect(after.stats.files.success).toBe(3);
    expect(await rows(`SELECT id, src, ln FROM ${name} ORDER BY id`)).toEqual([
      { id: 1, src: a, ln: 1 }, { id: 2, src: a, ln: 2 }, { id: 3, src: b, ln: 1 },
    ]);
  });

  it('a hive partition the key lacks: NULL in a Nullable column, quarantined with the reason otherwise', async () => {
    const p = uid('miss');
    await put(s3, bucket, `${p}/dt=2024-05-01/a.csv`, 'id\n1\n');
    await put(s3, bucket, `${p}/b.csv`, 'id\n2\n');
    const { name } = await load({
      bucketUri: `s3://${bucket}/${p}/**.csv`,
      format: 'csv',
      columns: [{ name: 'id', type: 'UInt32' }, { name: 'dt', type: 'Date', from: 'hive' }, { name: 'hour', type: 'Nullable(UInt8)', from: 'hive' }],
    });
    expect(await rows(`SELECT id, toString(dt) AS dt, hour FROM ${name}`)).toEqual([{ id: 1, dt: '2024-05-01', hour: null }]);
    const q = await c.request('GET', `/v1/datasources/${name}/quarantine`);
    expect(q.body.items.map((i: any) => [i.key, i.column, i.error])).toEqual([[`${p}/b.csv`, 'dt', 'the key has no value for partition dt (a folder dt=<value>)']]);
  });

  it('NDJSON: line numbers count every line (an invalid one is quarantined at its line), object columns beside JSONPath columns', async () => {
    const p = uid('nd');
    const key = `${p}/region=eu/events.ndjson`;
    await put(s3, bucket, key, [JSON.stringify({ id: 1, u: { n: 'ada' } }), '{"id": 2', JSON.stringify({ id: 3, u: { n: 'bob' } })].join('\n') + '\n');
    const { name } = await load({
      bucketUri: `s3://${bucket}/${p}/**/*.ndjson`,
      format: 'ndjson',
      columns: [
        { name: 'id', type: 'UInt32', path: '$.id' },
        { name: 'who', type: 'String', path: '$.u.n' },
        { name: 'src', type: 'String', from: 'key' },
        { name: 'ln', type: 'UInt32', from: 'line' },
        { name: 'region', type: 'String', from: 'hive' },
      ],
    });
    expect(await rows(`SELECT id, who, src, ln, region FROM ${name} ORDER BY id`)).toEqual([
      { id: 1, who: 'ada', src: key, ln: 1, region: 'eu' },
      { id: 3, who: 'bob', src: key, ln: 3, region: 'eu' },
    ]);
    const q = await c.request('GET', `/v1/datasources/${name}/quarantine`);
    expect(q.body.items.map((i: any) => [i.key, i.line, i.error, i.raw])).toEqual([[key, 2, 'invalid JSON', '{"id": 2']]);
  });

  it('Parquet: row numbers follow the file across row groups; hive and file columns from the key', async () => {
    const p = uid('pq');
    const one = `${p}/dt=2024-05-01/pyarrow_snappy.parquet`;
    const many = `${p}/dt=2024-05-02/multi.parquet`;
    await put(s3, bucket, one, await readFile(join(PARQUET, 'pyarrow_snappy.parquet')));
    await put(s3, bucket, many, await readFile(join(PARQUET, 'pyarrow_multi_rowgroup.parquet')));
    const { name, ds } = await load({
      bucketUri: `s3://${bucket}/${p}/**/*.parquet`,
      format: 'parquet',
      columns: [
        { name: 'id', type: 'Int64' },
        { name: 'row', type: 'UInt64', from: 'line' },
        { name: 'fname', type: 'String', from: 'file' },
        { name: 'dt', type: 'Date', from: 'hive' },
        { name: 'size', type: 'UInt64', from: 'size' },
      ],
    });
    expect(ds.stats.rows).toBe(10_005);
    const { size } = await head(one);
    expect(await rows(`SELECT id, row, fname, toString(dt) AS dt, size FROM ${name} WHERE fname = 'pyarrow_snappy.parquet' ORDER BY row`)).toEqual(
      [1, 2, 3, 4, 5].map((id) => ({ id, row: id, fname: 'pyarrow_snappy.parquet', dt: '2024-05-01', size })),
    );
    const [summary] = await rows(
      `SELECT count() AS n, countIf(row != id + 1) AS off, min(row) AS lo, max(row) AS hi, any(toString(dt)) AS dt, any(size) AS size FROM ${name} WHERE fname = 'multi.parquet'`,
    );
    expect(summary).toEqual({ n: 10_000, off: 0, lo: 1, hi: 10_000, dt: '2024-05-02', size: (await head(many)).size });
  });

  it('zip: key, ETag and size are the archive\'s, file is the entry\'s name, lines count within each entry', async () => {
    const p = uid('zip');
    const dir = await mkdtemp(join(tmpdir(), 's3ch-lineage-zip-'));
    await writeFile(join(dir, 'one.csv'), 'id\n1\n2\n');
    await mkdir(join(dir, 'sub'));
    await writeFile(join(dir, 'sub', 'two.csv'), 'id\n3\n');
    execFileSync('zip', ['-q', 'bundle.zip', 'one.csv', 'sub/two.csv'], { cwd: dir });
    const key = `${p}/dt=2024-05-03/bundle.zip`;
    await put(s3, bucket, key, await readFile(join(dir, 'bundle.zip')));
    await rm(dir, { recursive: true, force: true });
    const { name } = await load({
      bucketUri: `s3://${bucket}/${p}/**/*.zip`,
      format: 'csv',
      columns: [
        { name: 'id', type: 'UInt32' },
        { name: 'src', type: 'String', from: 'key' },
        { name: 'entry', type: 'String', from: 'file' },
        { name: 'etag', type: 'String', from: 'etag' },
        { name: 'size', type: 'UInt64', from: 'size' },
        { name: 'ln', type: 'UInt64', from: 'line' },
        { name: 'dt', type: 'Date', from: 'hive' },
      ],
    });
    const h = await head(key);
    expect(await rows(`SELECT id, src, entry, etag, size, ln, toString(dt) AS dt FROM ${name} ORDER BY id`)).toEqual([
      { id: 1, src: key, entry: 'one.csv', etag: h.etag, size: h.size, ln: 1, dt: '2024-05-03' },
      { id: 2, src: key, entry: 'one.csv', etag: h.etag, size: h.size, ln: 2, dt: '2024-05-03' },
      { id: 3, src: key, entry: 'sub/two.csv', etag: h.etag, size: h.size, ln: 1, dt: '2024-05-03' },
    ]);
  });

  it('preview and inference suggest the partitions of the keys; a .datasource file declares object columns with -- s3ch: comments', async () => {
    const p = uid('inf');
    const key = `${p}/dt=2024-05-01/region=eu/part-0.csv`;
    await put(s3, bucket, key, 'id,name\n1,one\n');
    const preview = await c.request('POST', '/v1/preview', { connection: 'local', bucketUri: `s3://${bucket}/${p}/**/*.csv` });
    expect(preview.status, JSON.stringify(preview.body)).toBe(200);
    expect(preview.body.columns.filter((col: any) => col.from)).toEqual([
      { name: 'dt', type: 'Date', from: 'hive' },
      { name: 'region', type: 'String', from: 'hive' },
    ]);

    // Inferred columns: the table gets the partitions too.
    const inferred = await load({ bucketUri: `s3://${bucket}/${p}/**/*.csv`, format: 'csv' });
    expect(await rows(`SELECT toString(dt) AS dt, region FROM ${inferred.name}`)).toEqual([{ dt: '2024-05-01', region: 'eu' }]);

    const file = [
      'SCHEMA >',
      '    `id` UInt32,',
      '    `name` String,',
      '    `src` String, -- s3ch:from=key',
      '    `day` Date -- s3ch:from=hive partition=dt',
      '',
      'IMPORT_SERVICE s3',
      'IMPORT_CONNECTION_NAME local',
      `IMPORT_BUCKET_URI s3://${bucket}/${p}/**/*.csv`,
      'IMPORT_SCHEDULE @on-demand',
      '',
    ].join('\n');
    const { name } = await load(file);
    expect(await rows(`SELECT id, name, src, toString(day) AS day FROM ${name}`)).toEqual([{ id: 1, name: 'one', src: key, day: '2024-05-01' }]);
    const spec = (await c.request('GET', `/v1/datasources/${name}`)).body;
    expect(spec.columns.slice(2)).toEqual([{ name: 'src', type: 'String', from: 'key' }, { name: 'day', type: 'Date', from: 'hive', partition: 'dt' }]);
  });
});
