import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { S3Client } from '@aws-sdk/client-s3';
import { Context } from '@temporalio/activity';
import type { FileRef } from '../../activities/index.js';
import { createBucket, eventually, put, sql, startTestConnector, testS3, uid, type TestConnector } from '../support/harness.js';

/**
 * Ordered mode (a StartAfter marker) paused in the middle of a run, on the real
 * stack (Temporal dev server + MinIO + chDB). The marker may only pass files
 * that are settled: files stopped by the pause are imported after resume.
 */
describe('ordered mode: pause mid-run, resume (Temporal dev server + MinIO + chDB)', () => {
  let c: TestConnector;
  let s3: S3Client;
  let bucket: string;
  const p = uid('op');
  const FILES = 6;
  const ROWS = 5;
  const key = (i: number) => `${p}/part-${i}.csv`;
  /** While set, every file but the first waits in its insert until the activity is cancelled. */
  const hold = { on: true, entered: new Set<string>() };

  beforeAll(async () => {
    c = await startTestConnector({}, {}, {
      hooks: {
        async beforeInsert(file: FileRef) {
          if (!hold.on || file.key === key(0)) return;
          hold.entered.add(file.key);
          const signal = Context.current().cancellationSignal;
          // Cancellation reaches the activity with its next heartbeat (every 2 s).
          await new Promise<void>((resolve) => {
            if (signal.aborted) return resolve();
            signal.addEventListener('abort', () => resolve(), { once: true });
            setTimeout(resolve, 60_000).unref();
          });
          throw new Error('insert interrupted by the pause');
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

  const csv = (file: number) => ['id', ...Array.from({ length: ROWS }, (_, j) => String(file * 100 + j))].join('\n') + '\n';

  async function files(name: string): Promise<Array<{ key: string; status: string }>> {
    const res = await c.request('GET', `/v1/datasources/${name}/files?limit=100`);
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    return res.body.items;
  }

  it('files stopped by the pause are imported after resume; the marker never passes them', async () => {
    const name = uid('ordpause');
    for (let i = 0; i < FILES; i++) await put(s3, bucket, key(i), csv(i));
    const created = await c.request('POST', '/v1/datasources', {
      name, connection: 'local', bucketUri: `s3://${bucket}/${p}/*.csv`, format: 'csv', schedule: '@on-demand', mode: 'ordered',
      // One import per file (no small-file batches), so the pause lands between files: file 1 done, file 2 in its insert.
      columns: [{ name: 'id', type: 'UInt64' }], limits: { concurrency: 1, maxBatchFiles: 1 },
    });
    expect(created.status, JSON.stringify(created.body)).toBe(201);
    expect((await c.request('POST', `/v1/datasources/${name}/sync`)).status).toBe(202);

    // The first file is imported; the second is in its insert when the pause comes.
    await eventually('the second file to be in its insert', async () => hold.entered.has(key(1)), 60_000, 50);
    const paused = await c.request('POST', `/v1/datasources/${name}/pause`);
    expect(paused.status, JSON.stringify(paused.body)).toBe(200);
    const stopped = await eventually(
      'the pause to settle',
      async () => {
        const items = await files(name);
        const ds = (await c.request('GET', `/v1/datasources/${name}`)).body;
        const done = items.length === FILES && items.every((f) => f.status !== 'running' && f.status !== 'queued');
        return done && ds.status.inFlight.length === 0 && ds.status.state === 'paused' ? items : null;
      },
      60_000,
    );
    const statusOf = Object.fromEntries(stopped.map((f) => [f.key, f.status]));
    expect(statusOf[key(0)]).toBe('success');
    expect(statusOf[key(1)]).toBe('cancelled');
    for (let i = 2; i < FILES; i++) expect(statusOf[key(i)], key(i)).toBe('paused');

    hold.on = false;
    const resumed = await c.request('POST', `/v1/datasources/${name}/resume`);
    expect(resumed.status, JSON.stringify(resumed.body)).toBe(200);
    const done = await eventually(
      'every file to be imported after resume',
      async () => {
        const ds = (await c.request('GET', `/v1/datasources/${name}`)).body;
        return ds.stats.files.success === FILES && ds.status.state === 'idle' && ds.status.inFlight.length === 0 ? ds : null;
      },
      60_000,
    );
    expect(done.stats.rows).toBe(FILES * ROWS);
    const [t] = await sql<{ n: string; u: string }>(c, `SELECT count() AS n, uniqExact(id) AS u FROM ${name}`);
    expect(Number(t!.n)).toBe(FILES * ROWS);
    expect(Number(t!.u)).toBe(FILES * ROWS);
    // The run after resume found exactly the files the pause had stopped.
    const runs = (await c.request('GET', `/v1/datasources/${name}/runs`)).body.items as Array<{ filesFound: number; filesImported: number }>;
    expect(runs[0]).toMatchObject({ filesFound: FILES - 1, filesImported: FILES - 1 });

    // The marker now stands after the last file: a new file named later is imported, nothing twice.
    await put(s3, bucket, `${p}/part-9.csv`, csv(9));
    expect((await c.request('POST', `/v1/datasources/${name}/sync`)).status).toBe(202);
    await eventually('the later file', async () => ((await c.request('GET', `/v1/datasources/${name}`)).body.stats.files.success === FILES + 1), 60_000);
    const [t2] = await sql<{ n: string }>(c, `SELECT count() AS n FROM ${name}`);
    expect(Number(t2!.n)).toBe((FILES + 1) * ROWS);
  });
});
