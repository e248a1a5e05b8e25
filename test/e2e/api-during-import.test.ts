import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { S3Client } from '@aws-sdk/client-s3';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createBucket, eventually, put, sql, startTestConnector, testS3, uid, type TestConnector } from '../support/harness.js';
import { adminClient } from '../support/harness.js';

/**
 * The API answers while ClickHouse works. An import hook holds the worker's
 * ClickHouse connection open with a parameterized statement that reads a URL
 * this test serves and answers only when the test says so; four more files
 * queue their statements behind it. Status, file list, runs, metrics and
 * /v1/sql must all answer before the test releases the statement. Ordering,
 * not milliseconds: each answer records whether the release had happened.
 */

type HistoryItem = { status: string; attempt: number };

describe('the API while an insert holds the engine', () => {
  let c: TestConnector;
  let s3: S3Client;
  let bucket: string;
  let server: Server;
  let holdUrl: string;
  let released = false;
  let release!: () => void;
  const releasing = new Promise<void>((resolve) => (release = () => { released = true; resolve(); }));
  let holdRequested!: () => void;
  const requested = new Promise<void>((resolve) => (holdRequested = resolve));
  let heldSettled: Promise<unknown> | null = null;

  beforeAll(async () => {
    // ClickHouse reads this URL; the first line comes at once, the rest when released.
    server = createServer((req, res) => {
      holdRequested();
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.write('first\n');
      void releasing.then(() => res.end('last\n'));
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    holdUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}/hold`;
    c = await startTestConnector({}, {}, {
      hooks: {
        async beforeInsert(file, attempt) {
          if (!file.key.endsWith('/held.csv') || attempt !== 1) return;
          // A parameterized statement that ClickHouse runs until released; the administrator
          // runs it, since the connector's own user may not read a URL.
          heldSettled = (await adminClient())
            .query({
              query: `SELECT count() AS n FROM url('${holdUrl}', 'LineAsString', 'line String') WHERE line != {skip:String} SETTINGS http_receive_timeout = 300, max_execution_time = 300`,
              query_params: { skip: '' },
              format: 'TabSeparated',
            })
            .then((r) => r.text());
          await heldSettled;
        },
      },
    });
    s3 = testS3();
    bucket = await createBucket(s3);
  });
  afterAll(async () => {
    release();
    await heldSettled?.catch(() => undefined);
    await c?.stop();
    s3?.destroy();
    server?.closeAllConnections();
    await new Promise((resolve) => server?.close(resolve));
  });

  it('status, files, runs, metrics and /v1/sql answer before the held statement is released', async () => {
    const name = uid('held');
    const keys = ['held', 'b', 'c', 'd', 'e'];
    for (const [i, k] of keys.entries()) await put(s3, bucket, `${name}/${k}.csv`, `id\n${i + 1}\n`);
    const res = await c.request('POST', '/v1/datasources', { name, connection: 'local', schedule: '@on-demand', bucketUri: `s3://${bucket}/${name}/*.csv`, format: 'csv', columns: [{ name: 'id', type: 'UInt32' }], limits: { concurrency: 5 } });
    expect(res.status, JSON.stringify(res.body)).toBe(201);
    await eventually(`${name} to be prepared`, async () => (await c.request('GET', `/v1/datasources/${name}`)).body.columns);
    expect((await c.request('POST', `/v1/datasources/${name}/sync`)).status).toBe(202);
    // Asked at once after the sync, while the workflow takes it in: the answer is the workflow's own
    // status (a query that goes unanswered is asked again), not the fallback for a query nobody answered.
    const first = c.request('GET', `/v1/datasources/${name}`).then((r) => ({ ...r, beforeRelease: !released }));
    await requested;

    // Should the API wait for the engine after all, release it eventually so the test ends (and fails below).
    const fallback = setTimeout(release, 90_000);
    const ask = async (method: string, path: string, body?: unknown) => {
      const r = await c.request(method, path, body);
      return { path, status: r.status, body: r.body, beforeRelease: !released };
    };
    const answers = await Promise.all([
      ask('GET', `/v1/datasources/${name}`),
      ask('GET', `/v1/datasources/${name}/files?limit=10`),
      ask('GET', `/v1/datasources/${name}/runs`),
      ask('GET', '/metrics'),
      ask('POST', '/v1/sql', { query: `SELECT count() AS n FROM ${name}` }),
    ]);
    const firstStatus = await first;
    release();
    clearTimeout(fallback);
    expect(firstStatus.status).toBe(200);
    expect(firstStatus.beforeRelease).toBe(true);
    // The workflow's own view, not the fallback for a query nobody answered.
    expect(firstStatus.body.status.error, JSON.stringify(firstStatus.body.status)).toBeNull();
    expect(['idle', 'syncing']).toContain(firstStatus.body.status.state);
    for (const a of answers) {
      expect(a.status, `${a.path}: ${JSON.stringify(a.body)}`).toBe(200);
      expect(a.beforeRelease, `${a.path} answered only after the held statement was released`).toBe(true);
    }
    expect(answers[0]!.body.status.state).toBe('syncing');

    // Released, the held file and the four behind it import once each.
    await eventually('5 files imported', async () => (await c.request('GET', `/v1/datasources/${name}`)).body.stats?.files?.success === 5, 120_000, 250);
    expect(await heldSettled).toBe('2\n');
    const [n] = await sql<{ n: string }>(c, `SELECT count() AS n FROM ${name}`);
    expect(Number(n!.n)).toBe(5);
    const h = await c.request('GET', `/v1/datasources/${name}/files/history?key=${encodeURIComponent(`${name}/held.csv`)}`);
    expect((h.body.items as HistoryItem[]).map((e) => `${e.status}#${e.attempt}`)).toEqual(['queued#0', 'running#1', 'success#1']);
  }, 180_000);
});
