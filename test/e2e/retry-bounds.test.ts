import { describe, expect, it } from 'vitest';
import { gzipSync } from 'node:zlib';
import type { S3Client } from '@aws-sdk/client-s3';
import { MAX_RETRY_KEYS_PER_REQUEST, retryUpdate, workflowIdFor } from '../../workflows/messages.js';
import { eventually, put, sql, uid, type TestConnector, useTestStack } from '../support/harness.js';

/**
 * The workflow's own state stays small however many keys it is asked to
 * retry: 100,000 keys sent as 100 retry updates (each at the 1,000-key limit
 * of one request), straight through the Temporal client, on the real stack
 * (Temporal dev server + MinIO + chDB).
 */
describe('retrying 100,000 keys (Temporal dev server + MinIO + chDB)', () => {
  let c: TestConnector;
  let s3: S3Client;
  let bucket: string;

  useTestStack((stack) => ({ c, s3, bucket } = stack));

  const csv = (first: number, n: number) => ['id', ...Array.from({ length: n }, (_, i) => String(first + i))].join('\n') + '\n';

  async function get(name: string) {
    const res = await c.request('GET', `/v1/datasources/${name}`);
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    return res.body;
  }

  it('falls back to "every failed file", keeps each activity input and the history small, and still imports the fixed files', async () => {
    const name = uid('bounds');
    const p = uid('rb');
    await put(s3, bucket, `${p}/ok.csv`, csv(0, 2));
    await put(s3, bucket, `${p}/bad-1.csv.gz`, 'not gzip\n');
    await put(s3, bucket, `${p}/bad-2.csv.gz`, 'not gzip either\n');
    await put(s3, bucket, `${p}/bad-3.csv.gz`, 'still not gzip\n');
    const created = await c.request('POST', '/v1/datasources', {
      name, connection: 'local', bucketUri: `s3://${bucket}/${p}/*.csv{,.gz}`, format: 'csv', schedule: '@on-demand', columns: [{ name: 'id', type: 'UInt64' }],
    });
    expect(created.status, JSON.stringify(created.body)).toBe(201);
    expect((await c.request('POST', `/v1/datasources/${name}/sync`)).status).toBe(202);
    await eventually('the first run', async () => {
      const ds = await get(name);
      return ds.stats.files.success === 1 && ds.stats.files.failure === 3 && ds.status.state === 'idle' ? ds : null;
    }, 60_000);

    // Two of the three are fixed in place (new ETags); the third stays broken.
    await put(s3, bucket, `${p}/bad-1.csv.gz`, gzipSync(csv(100, 3)));
    await put(s3, bucket, `${p}/bad-2.csv.gz`, gzipSync(csv(200, 4)));

    // Paused, so every request lands in the workflow's state before any run takes it.
    expect((await c.request('POST', `/v1/datasources/${name}/pause`)).status).toBe(200);
    const handle = c.client.workflow.getHandle(workflowIdFor(name));
    const REQUESTS = 100;
    let argBytes = 0;
    for (let r = 0; r < REQUESTS; r++) {
      const keys = Array.from({ length: MAX_RETRY_KEYS_PER_REQUEST }, (_, i) => `${p}/k${r * MAX_RETRY_KEYS_PER_REQUEST + i}.csv`);
      if (r === 0) keys.splice(0, 3, `${p}/bad-1.csv.gz`, `${p}/bad-2.csv.gz`, `${p}/bad-3.csv.gz`);
      argBytes += JSON.stringify(keys).length;
      expect(await handle.executeUpdate(retryUpdate, { args: [{ keys }] })).toEqual({ accepted: true });
    }
    // One request over the limit is refused, and writes nothing.
    await expect(handle.executeUpdate(retryUpdate, { args: [{ keys: Array.from({ length: MAX_RETRY_KEYS_PER_REQUEST + 1 }, (_, i) => `x${i}`) }] })).rejects.toMatchObject({ cause: { message: expect.stringMatching(/at most 1000 keys/) } });
    // The API refuses it with a 400 naming the field.
    const tooMany = await c.request('POST', `/v1/datasources/${name}/retry`, { keys: Array.from({ length: MAX_RETRY_KEYS_PER_REQUEST + 1 }, (_, i) => `x${i}`) });
    expect(tooMany.status).toBe(400);
    expect(tooMany.body.errors[0].field).toMatch(/^keys/);

    expect((await c.request('POST', `/v1/datasources/${name}/resume`)).status).toBe(200);
    const done = await eventually('the retry to finish', async () => {
      const ds = await get(name);
      return ds.stats.files.success === 3 && ds.status.state === 'idle' && ds.status.inFlight.length === 0 && ds.lastRun?.trigger === 'retry' ? ds : null;
    }, 90_000);
    expect(done.status.error).toBeNull();
    expect(done.stats.files).toMatchObject({ success: 3, failure: 1 });
    expect(done.stats.rows).toBe(9);
    const ids = (await sql<{ id: string }>(c, `SELECT id FROM ${name} ORDER BY id`)).map((r) => Number(r.id));
    expect(ids).toEqual([0, 1, 100, 101, 102, 200, 201, 202, 203]);
    // The broken file was retried as well (a second attempt), the fixed ones are new versions.
    const files = (await c.request('GET', `/v1/datasources/${name}/files?limit=100`)).body.items as any[];
    const bad3 = files.filter((f) => f.key === `${p}/bad-3.csv.gz`);
    expect(bad3).toEqual([expect.objectContaining({ status: 'failure', attempts: 2 })]);

    // The history: every activity input small, no workflow task failed, and the
    // whole history no bigger than the update requests themselves plus a small margin.
    const history = await handle.fetchHistory();
    const events = history.events ?? [];
    const size = (payloads: { data?: Uint8Array | null }[] | null | undefined) => (payloads ?? []).reduce((n, p) => n + (p.data?.length ?? 0), 0);
    const inputs = events.filter((e) => e.activityTaskScheduledEventAttributes).map((e) => ({
      type: e.activityTaskScheduledEventAttributes!.activityType?.name,
      bytes: size(e.activityTaskScheduledEventAttributes!.input?.payloads),
    }));
    expect(inputs.length).toBeGreaterThan(0);
    const largest = inputs.reduce((a, b) => (b.bytes > a.bytes ? b : a));
    expect(largest.bytes, `largest activity input: ${largest.type}`).toBeLessThan(64 * 1024);
    expect(events.filter((e) => e.workflowTaskFailedEventAttributes)).toEqual([]);
    const d = await handle.describe();
    expect(d.status.name).toBe('RUNNING');
    expect(d.historySize).toBeGreaterThan(0);
    expect(d.historySize!).toBeLessThan(argBytes + 1024 * 1024);
    expect(d.historyLength).toBeLessThan(2_000);
  }, 240_000);
});
