import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { S3Client } from '@aws-sdk/client-s3';
import { PutObjectCommand } from '@aws-sdk/client-s3';
import { MockActivityEnvironment } from '@temporalio/testing';
import { DefaultLogger } from '@temporalio/worker';
import { createBucket, eventually, minioConnection, processDestination, put, sql, startTestConnector, testS3, uid, type TestConnector } from '../support/harness.js';
import { idCsv } from '../support/data.js';
import { createActivities, type FileRef } from '../../activities/index.js';
import { S3Connections } from '../../s3/connections.js';
import { queryRows, type Destination } from '../../clickhouse/destination.js';
import { dataSourceSpecSchema, normalizeSpec } from '../../schemas/datasource.js';
import { objectUrl } from '../../s3/object-url.js';
import { s3Source } from '../../clickhouse/s3-source.js';
import { dedupSettings, S3_READ_SETTINGS } from '../../clickhouse/import-settings.js';
import { renderSettings } from '../../clickhouse/destination.js';

/**
 * The import path as ClickHouse runs it: the object read by `s3()` itself,
 * keys that look like globs, SQL-hostile names, a file replaced after it was
 * listed, a retried insert with parallel parsing, and heartbeats while
 * statements queue behind another file's long insert.
 */

type FileItem = { key: string; status: string; attempts: number; rows: number; quarantinedRows: number; error: string | null };
type HistoryItem = { status: string; attempt: number; error: string | null };

const stripQuotes = (etag: string | undefined) => (etag ?? '').replace(/^"|"$/g, '');

describe('the import path: ClickHouse reads the objects itself', () => {
  let c: TestConnector;
  let s3: S3Client;
  let bucket: string;

  beforeAll(async () => {
    c = await startTestConnector();
    s3 = testS3();
    bucket = await createBucket(s3);
  });
  afterAll(async () => {
    await c?.stop();
    s3?.destroy();
  });

  async function load(name: string, spec: Record<string, unknown>, files: number, timeoutMs = 60_000) {
    const res = await c.request('POST', '/v1/datasources', { name, connection: 'local', schedule: '@on-demand', ...spec });
    expect(res.status, JSON.stringify(res.body)).toBe(201);
    await eventually(`${name} to be prepared`, async () => (await c.request('GET', `/v1/datasources/${name}`)).body.columns);
    expect((await c.request('POST', `/v1/datasources/${name}/sync`)).status).toBe(202);
    return eventually(`${name}: ${files} files settled`, async () => {
      const r = await c.request('GET', `/v1/datasources/${name}`);
      const f = r.body.stats?.files;
      return f && f.success + f.failure === files && r.body.status.state !== 'syncing' && r.body.lastRun?.finishedAt ? r.body : null;
    }, timeoutMs, 200);
  }
  async function files(name: string): Promise<Record<string, FileItem>> {
    const res = await c.request('GET', `/v1/datasources/${name}/files?limit=1000`);
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    return Object.fromEntries((res.body.items as FileItem[]).map((f) => [f.key.slice(name.length + 1), f]));
  }

  it('keys with spaces, %, +, =, unicode and glob characters (* ? { }) load exactly their own rows, never a neighbour matched by the glob', async () => {
    const name = uid('keys');
    // Each special key has decoys that ClickHouse would read too if the key were taken as a glob.
    const keys = [
      'sp ace.csv', 'per%25cent.csv', 'plus+eq=.csv', 'ünï cödé €.csv',
      'star*.csv', 'starX.csv', 'q?.csv', 'qq.csv', '{a,b}.csv', 'a.csv', 'b.csv', 'br{ace.csv', 'x}y.csv',
    ];
    for (const [i, k] of keys.entries()) await put(s3, bucket, `${name}/${k}`, `id,v\n${i + 1},"${k}"\n`);
    await load(name, { bucketUri: `s3://${bucket}/${name}/**`, format: 'csv', columns: [{ name: 'id', type: 'UInt32' }, { name: 'v', type: 'String' }] }, keys.length);

    const f = await files(name);
    for (const k of keys) expect(f[k], k).toMatchObject({ status: 'success', rows: 1, quarantinedRows: 0 });
    const rows = await sql<{ id: number; v: string }>(c, `SELECT id, v FROM ${name} ORDER BY id`);
    expect(rows).toEqual(keys.map((k, i) => ({ id: i + 1, v: k })));
  });

  it('column names with backticks, quotes, $&, $\', ;, unicode and spaces, and a $ delimiter, load exact rows', async () => {
    const name = uid('dollar');
    const names = ['ts', 'Total $', 'note $&', "it's $'", 'a`b', 'semi;colon', 'ünï cödé', 'dq"x', '$$'];
    const data = [
      ['2024-01-01 00:00:00', '1.5', 'a$&b', "x$'y", 'q`r', 's;t', 'ü', 'd"q', '$'],
      ['2024-01-02 00:00:00', '2', '$&', "$'", '`', ';', 'é', '""', '$` $1'],
    ];
    const field = (v: string) => (/[$"\n]/.test(v) ? `"${v.replace(/"/g, '""')}"` : v);
    const body = [names, ...data].map((r) => r.map(field).join('$')).join('\n') + '\n';
    await put(s3, bucket, `${name}/x.csv`, body);
    const columns = names.map((n, i) => ({ name: n, type: i === 0 ? 'DateTime' : i === 1 ? 'Float64' : 'String' }));
    await load(name, { bucketUri: `s3://${bucket}/${name}/*.csv`, format: 'csv', csv: { delimiter: '$', header: true }, columns }, 1);

    const f = await files(name);
    expect(f['x.csv'], JSON.stringify(f['x.csv'])).toMatchObject({ status: 'success', rows: 2, quarantinedRows: 0 });
    const rows = await queryRows<Record<string, unknown>>(c.destination.client, `SELECT * FROM ${name} ORDER BY ts`);
    expect(rows).toEqual(data.map((r) => Object.fromEntries(names.map((n, i) => [n, i === 1 ? Number(r[i]) : r[i]]))));
  });

  it('an object replaced after it was listed fails as changed, with no row of either version', async () => {
    const name = uid('changed');
    const destination = await processDestination();
    const conns = new S3Connections(new Map([['local', minioConnection()]]));
    const activities = createActivities({ destination, s3: conns });
    const spec = normalizeSpec(dataSourceSpecSchema.parse({ name, connection: 'local', bucketUri: `s3://${bucket}/${name}/*.csv`, format: 'csv', columns: [{ name: 'id', type: 'UInt64' }] }));
    const { columns } = await activities.prepareDataSource({ dataSource: name, spec });
    const key = `${name}/f.csv`;
    const v1 = await s3.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: idCsv(0, 1000) }));
    const listed: FileRef = { key, etag: stripQuotes(v1.ETag), size: 0, lastModified: '' };
    await put(s3, bucket, key, idCsv(1, 500));
    const env = new MockActivityEnvironment(undefined, { logger: new DefaultLogger('ERROR') });
    await expect(env.run(activities.importFile, { dataSource: name, spec, columns: columns!, file: listed, runId: 'r1' })).rejects.toMatchObject({ type: 'object_changed', nonRetryable: true });
    const [n] = await queryRows<{ n: string }>(destination.client, `SELECT count() AS n FROM ${name}`);
    expect(Number(n!.n)).toBe(0);
    conns.close();
  });

  it('a retried insert with parallel parsing adds every row exactly once (identical blocks on every attempt)', async () => {
    const destination: Destination = await processDestination();
    const ch = destination.client;
    const ROWS = 6_000_000;
    const key = `${uid('det')}/big.csv`;
    await put(s3, bucket, key, idCsv(0, ROWS));
    const source = s3Source({ url: objectUrl(minioConnection(), bucket, key).url, credentials: await new S3Connections(new Map([['local', minioConnection()]])).credentials('local'), format: 'CSVWithNames', structure: 'id UInt64', compression: 'none' });
    const insert = (table: string, extra: Record<string, string | number>, where = '') =>
      ch.command({ query: `INSERT INTO ${table} ${renderSettings({ ...S3_READ_SETTINGS, ...dedupSettings(`tok-${table}`), max_threads: 4, min_insert_block_size_rows: 500_000, max_insert_block_size: 500_000, ...extra })} SELECT id FROM ${source.sql}${where}` });
    const count = async (table: string) => {
      const [r] = await queryRows<{ n: string; u: string }>(ch, `SELECT count() AS n, uniqExact(id) AS u FROM ${table}`);
      return { n: Number(r!.n), u: Number(r!.u) };
    };
    // Attempt 1 fails at a fixed row, half-way (a failure in the data, not a clock: the same cut on any
    // machine), after committing the blocks before it; attempts 2 and 3 run to the end. The token numbers
    // blocks, so only blocks cut identically on every attempt add each row exactly once.
    const table = uid('det_t');
    await ch.command({ query: `CREATE TABLE ${table} (id UInt64) ENGINE = MergeTree ORDER BY tuple() SETTINGS non_replicated_deduplication_window = 1000` });
    await expect(insert(table, {}, ` WHERE throwIf(id = ${ROWS / 2 + 123}, 'attempt cut off') = 0`)).rejects.toThrow(/attempt cut off/);
    const partial = (await count(table)).n;
    if (partial > 0 && partial < ROWS) {
      await insert(table, {});
      await insert(table, {});
      expect(await count(table)).toEqual({ n: ROWS, u: ROWS });
    }
    await ch.command({ query: `DROP TABLE ${table}` });
    console.log(`[import-path] first attempt committed ${partial} of ${ROWS} rows before it was cut off`);
    expect(partial).toBeGreaterThan(0);
    expect(partial).toBeLessThan(ROWS);
  }, 240_000);
});

describe('heartbeats while statements queue behind a long insert', () => {
  let c: TestConnector;
  let s3: S3Client;
  let bucket: string;
  const SLOW_SECONDS = 27;

  // Files b..e start their imports only once file a holds embedded ClickHouse (one
  // statement at a time) for longer than the 20 s heartbeat timeout, so their first
  // statements (ledger writes) wait behind it.
  let slowStarted!: () => void;
  const slowing = new Promise<void>((resolve) => (slowStarted = resolve));

  beforeAll(async () => {
    c = await startTestConnector({}, {}, {
      hooks: {
        async onStart(file, attempt) {
          if (!file.key.endsWith('/a.csv') && attempt === 1) {
            await slowing;
            await new Promise((r) => setTimeout(r, 500));
          }
        },
        async beforeInsert(file, attempt) {
          if (file.key.endsWith('/a.csv') && attempt === 1) {
            slowStarted();
            await c.destination.client.query({ query: `SELECT sleep(3) FROM numbers(${SLOW_SECONDS / 3}) SETTINGS max_block_size = 1`, format: 'TabSeparated' }).then((r) => r.text());
          }
        },
      },
    });
    s3 = testS3();
    bucket = await createBucket(s3);
  });
  afterAll(async () => {
    await c?.stop();
    s3?.destroy();
  });

  it('four files that wait longer than the heartbeat timeout are not timed out: every file imports on its first attempt', async () => {
    const name = uid('beat');
    for (const [i, f] of ['a', 'b', 'c', 'd', 'e'].entries()) await put(s3, bucket, `${name}/${f}.csv`, `id\n${i + 1}\n`);
    const res = await c.request('POST', '/v1/datasources', { name, connection: 'local', schedule: '@on-demand', bucketUri: `s3://${bucket}/${name}/*.csv`, format: 'csv', columns: [{ name: 'id', type: 'UInt32' }], limits: { concurrency: 5 } });
    expect(res.status, JSON.stringify(res.body)).toBe(201);
    await eventually(`${name} to be prepared`, async () => (await c.request('GET', `/v1/datasources/${name}`)).body.columns);
    const t0 = Date.now();
    expect((await c.request('POST', `/v1/datasources/${name}/sync`)).status).toBe(202);
    await eventually('5 files imported', async () => (await c.request('GET', `/v1/datasources/${name}`)).body.stats?.files?.success === 5, 120_000, 500);
    const took = (Date.now() - t0) / 1000;
    console.log(`[import-path] 5 files behind a ${SLOW_SECONDS} s statement took ${took.toFixed(1)} s`);
    expect(took).toBeGreaterThan(20);
    for (const f of ['a', 'b', 'c', 'd', 'e']) {
      const h = await c.request('GET', `/v1/datasources/${name}/files/history?key=${encodeURIComponent(`${name}/${f}.csv`)}`);
      expect((h.body.items as HistoryItem[]).map((e) => `${e.status}#${e.attempt}`), f).toEqual(['queued#0', 'running#1', 'success#1']);
    }
    const [n] = await sql<{ n: string }>(c, `SELECT count() AS n FROM ${name}`);
    expect(Number(n!.n)).toBe(5);
  }, 180_000);
});
