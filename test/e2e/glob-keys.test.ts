import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import type { S3Client } from '@aws-sdk/client-s3';
import type { Connection } from '../../schemas/connection.js';
import { startS3Proxy, type S3Proxy } from '../support/s3-proxy.js';
import { createBucket, eventually, minioConnection, put, sql, startTestConnector, testS3, uid, type TestConnector } from '../support/harness.js';

/**
 * Object keys holding ClickHouse's glob characters (`*`, `?`, `{`, `}`):
 * ClickHouse decodes percent-escapes before it expands globs, so such a key
 * cannot be addressed without a listing. What the connector guarantees, seen
 * by a counting proxy in front of MinIO: each such object is read once and no
 * other object is read for it, and ClickHouse's listing for it starts at the
 * key's own text up to its first glob character, never at a shorter prefix.
 */
describe('keys with glob characters', () => {
  let c: TestConnector;
  let s3: S3Client;
  let bucket: string;
  let proxy: S3Proxy;

  beforeAll(async () => {
    proxy = await startS3Proxy(inject('minioEndpoint'));
    c = await startTestConnector({}, { counted: { ...minioConnection(), endpoint: proxy.url } as Connection });
    s3 = testS3();
    bucket = await createBucket(s3);
  });
  afterAll(async () => {
    await c?.stop();
    await proxy?.close();
    s3?.destroy();
  });

  it('each is read alone: one GET, nothing else read, a listing bounded by its own text', async () => {
    const name = uid('gk');
    const keys = { 'a*b.csv': 1, 'c?d.csv': 2, 'e{1}f.csv': 3, 'g}h.csv': 4 } as const;
    for (const [k, id] of Object.entries(keys)) await put(s3, bucket, `${name}/${k}`, `id,v\n${id},${k}\n`);
    // Lookalikes a glob would also match, and neighbours under the same folder: never read.
    for (const k of ['aXb.csv', 'a-b.csv', 'cXd.csv', 'e1f.csv']) await put(s3, bucket, `${name}/${k}.txt`, 'id,v\n99,no\n');
    const res = await c.request('POST', '/v1/datasources', {
      name, connection: 'counted', bucketUri: `s3://${bucket}/${name}/*.csv`, format: 'csv', schedule: '@on-demand',
      columns: [{ name: 'id', type: 'UInt64' }, { name: 'v', type: 'String' }],
    });
    expect(res.status, JSON.stringify(res.body)).toBe(201);
    const listsBefore = proxy.lists.length;
    expect((await c.request('POST', `/v1/datasources/${name}/sync`)).status).toBe(202);
    await eventually(`${name}: 4 files loaded`, async () => {
      const r = await c.request('GET', `/v1/datasources/${name}`);
      return r.body.stats?.files?.success === 4 && r.body.status.state !== 'syncing' ? r.body : null;
    }, 90_000, 200);

    const rows = await sql<{ id: unknown; v: string }>(c, `SELECT id, v FROM ${name} ORDER BY id`);
    expect(rows.map((r) => [Number(r.id), r.v])).toEqual(Object.entries(keys).map(([k, id]) => [id, k]));
    for (const k of Object.keys(keys)) expect(proxy.gets.get(`${name}/${k}`), k).toBe(1);
    for (const [key] of proxy.gets) expect(key.endsWith('.txt'), key).toBe(false);
    // Listings: discovery's (the data source's prefix) and, per glob key, ClickHouse's from the key's text up to its glob character.
    const prefixes = new Set(proxy.lists.slice(listsBefore).filter((l) => l.bucket === bucket).map((l) => l.prefix));
    expect([...prefixes].sort()).toEqual([`${name}/`, `${name}/a`, `${name}/c`, `${name}/e`, `${name}/g`].sort());
  });
});
