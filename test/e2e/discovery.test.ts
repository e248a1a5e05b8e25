import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import type { S3Client } from '@aws-sdk/client-s3';
import type { Connection } from '../../schemas/connection.js';
import { statusQuery, workflowIdFor, type StatusView } from '../../workflows/messages.js';
import { createBucket, eventually, minioConnection, processDestination, put, sql, startTestConnector, testS3, uid, type TestConnector } from '../support/harness.js';
import { startS3Proxy, type S3Proxy } from '../support/s3-proxy.js';

/**
 * Incremental discovery on the real stack (Temporal dev server, MinIO behind a
 * counting proxy, chDB): in tracked mode a tick between sweeps lists only
 * after the last key seen (one LIST call however many keys the prefix holds,
 * nothing written to ClickHouse), and a late file, named before that key, is
 * still imported, by the next sweep.
 */
describe('incremental discovery, end to end', () => {
  let c: TestConnector;
  let s3: S3Client;
  let bucket: string;
  let proxy: S3Proxy;
  /** ClickHouse statements the process sent (worker and API share the client). */
  const statements = { n: 0 };

  beforeAll(async () => {
    proxy = await startS3Proxy(inject('minioEndpoint'));
    const destination = await processDestination();
    const client = destination.client as unknown as Record<'query' | 'command' | 'insert' | 'exec', (...a: unknown[]) => unknown>;
    for (const m of ['query', 'command', 'insert', 'exec'] as const) {
      const orig = client[m]!.bind(client);
      client[m] = (...a: unknown[]) => {
        statements.n++;
        return orig(...a);
      };
    }
    c = await startTestConnector({}, { proxied: { ...minioConnection(), endpoint: proxy.url } as Connection });
    s3 = testS3();
    bucket = await createBucket(s3);
  });

  afterAll(async () => {
    await c?.stop();
    s3?.destroy();
    await proxy?.close();
  });

  const status = (name: string) => c.client.workflow.getHandle(workflowIdFor(name)).query(statusQuery) as Promise<StatusView>;
  const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

  it('tracked: idle ticks over 1,200 keys cost one LIST after the last key and no ClickHouse statement; a late file is imported by the next sweep', async () => {
    const name = uid('incr');
    const prefix = `${name}/`;
    // 1,200 keys the glob does not match (two listing pages), then the data files after them.
    const KEYS = 1200;
    for (let i = 0; i < KEYS; i += 100) {
      await Promise.all(Array.from({ length: 100 }, (_, j) => put(s3, bucket, `${prefix}k-${String(i + j).padStart(5, '0')}.txt`, 'x')));
    }
    await put(s3, bucket, `${prefix}x-1.csv`, 'id\n1\n2\n');
    await put(s3, bucket, `${prefix}x-2.csv`, 'id\n3\n');
    const tail = `${prefix}x-2.csv`;
    const SWEEP_MS = 12_000;
    const res = await c.request('POST', '/v1/datasources', {
      name, connection: 'proxied', bucketUri: `s3://${bucket}/${prefix}*.csv`, format: 'csv',
      schedule: '@every 1s', sweepInterval: '12s', columns: [{ name: 'id', type: 'UInt64' }],
    });
    expect(res.status, JSON.stringify(res.body)).toBe(201);
    const ours = () => proxy.lists.filter((l) => l.bucket === bucket && l.prefix === prefix);

    await eventually('the two files to be imported', async () => Number((await sql<{ n: string }>(c, `SELECT count() AS n FROM ${name}`))[0]?.n) === 3, 60_000);
    // The first sweep has ended once a tick lists after the last key.
    await eventually('a tick to list after the last key', async () => ours().some((l) => l.startAfter === tail), 30_000, 100);

    // The counter sees the worker's statements (the imports above made some).
    expect(statements.n).toBeGreaterThan(0);
    // A window of idle ticks: only the proxy and the workflow are asked, so every statement counted is the worker's.
    const before = { lists: ours().length, statements: statements.n, ticks: (await status(name)).polling!.idleTicks };
    await sleep(4_000);
    const window = ours().slice(before.lists);
    const after = await status(name);
    const ticks = after.polling!.idleTicks - before.ticks;
    const statementsInWindow = statements.n - before.statements;
    console.log(`[discovery] idle window: ${ticks} ticks, ${window.length} LIST calls, ${statementsInWindow} ClickHouse statements`);
    expect(ticks).toBeGreaterThanOrEqual(2);
    if (window.every((l) => l.startAfter === tail)) {
      // No sweep fell into the window: one LIST per tick, each after the last key, no continuation page.
      // LIST calls and the tick counter are read at slightly different instants: a tick on the edge counts on one side only.
      expect(Math.abs(window.length - ticks)).toBeLessThanOrEqual(1);
      expect(window.every((l) => !l.continued)).toBe(true);
      expect(statementsInWindow).toBe(0);
    }
    expect(after.polling).toMatchObject({ listsAfter: tail, sweepIntervalMs: SWEEP_MS });
    // Idle ticks record no run: the run history holds the first run only.
    const runs = await c.request('GET', `/v1/datasources/${name}/runs`);
    expect(runs.body.items).toHaveLength(1);
    expect(after.counters.runs).toBe(1);

    // A late file: named before the last key seen.
    const late = `${prefix}b-late.csv`;
    const putAt = Date.now();
    const fromPut = ours().length;
    await put(s3, bucket, late, 'id\n10\n11\n12\n13\n');
    await eventually('the late file to be imported', async () => Number((await sql<{ n: string }>(c, `SELECT count() AS n FROM ${name}`))[0]?.n) === 7, SWEEP_MS + 30_000, 200);
    const foundAt = Date.now();
    const since = ours().slice(fromPut);
    const sweepStart = since.findIndex((l) => l.startAfter === null && !l.continued);
    expect(sweepStart).toBeGreaterThanOrEqual(0);
    // Until the sweep, the ticks listed only after the last key, and did not find it.
    expect(since.slice(0, sweepStart).every((l) => l.startAfter === tail)).toBe(true);
    // The sweep lists the whole prefix: two pages for 1,203 keys.
    expect(since.slice(sweepStart + 1, sweepStart + 2).every((l) => l.continued)).toBe(true);
    const s = await status(name);
    expect(Date.parse(s.polling!.lastSweepAt!)).toBeGreaterThanOrEqual(putAt - 1000);
    console.log(`[discovery] late file imported ${((foundAt - putAt) / 1000).toFixed(1)} s after it was written (sweepInterval 12s), ${sweepStart} incremental ticks before the sweep`);
    const files = await c.request('GET', `/v1/datasources/${name}/files?limit=10`);
    expect(files.body.items.map((f: { key: string; status: string }) => [f.key, f.status]).sort()).toEqual([[late, 'success'], [`${prefix}x-1.csv`, 'success'], [tail, 'success']]);
    const rows = await sql<{ n: string; u: string }>(c, `SELECT count() AS n, uniqExact(id) AS u FROM ${name}`);
    expect([Number(rows[0]!.n), Number(rows[0]!.u)]).toEqual([7, 7]);
  }, 180_000);
});
