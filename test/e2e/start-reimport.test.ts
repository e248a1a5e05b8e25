import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { S3Client } from '@aws-sdk/client-s3';
import type { FileRef } from '../../activities/index.js';
import { createBucket, eventually, put, sql, startTestConnector, testS3, uid, type TestConnector } from '../support/harness.js';
import { reportsRunFinished } from '../support/workflow-wait.js';

/**
 * Where a data source starts (`since`, `startAfter`) and deliberate
 * re-imports, on the real stack (Temporal dev server + MinIO + chDB): the
 * objects' last-modified times are MinIO's own, so the old files are written
 * first, then a point in time is taken, then the new files.
 */
describe('since, startAfter and re-import (Temporal dev server + MinIO + chDB)', () => {
  let c: TestConnector;
  let s3: S3Client;
  let bucket: string;
  /** The key whose next first attempt fails right after its rows are inserted (then the retry runs). */
  const failAfterInsert = { key: '', failures: 0 };

  beforeAll(async () => {
    s3 = testS3();
    bucket = await createBucket(s3);
    c = await startTestConnector({}, {}, {
      hooks: {
        afterInsert(file: FileRef, attempt: number) {
          if (file.key === failAfterInsert.key && attempt === 1) {
            failAfterInsert.key = '';
            failAfterInsert.failures++;
            // A transport failure after the insert committed: the activity is retried with the same input.
            throw Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:8123'), { code: 'ECONNREFUSED' });
          }
        },
      },
    });
  }, 120_000);

  afterAll(async () => {
    await c?.stop();
    s3?.destroy();
  });

  const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
  const COLUMNS = [{ name: 'id', type: 'UInt64' }];
  const csv = (...ids: number[]) => `id\n${ids.join('\n')}\n`;

  async function ids(table: string): Promise<number[]> {
    return (await sql<{ id: string }>(c, `SELECT id FROM ${table} ORDER BY id`)).map((r) => Number(r.id));
  }

  async function runCount(name: string): Promise<number> {
    const res = await c.request('GET', `/v1/datasources/${name}/runs`);
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    return res.body.items.length;
  }

  /** Sync and wait until the workflow reports that run finished. */
  async function syncAndWait(name: string) {
    const before = await runCount(name);
    const res = await c.request('POST', `/v1/datasources/${name}/sync`);
    expect(res.status).toBe(202);
    return finishedRuns(name, before + 1);
  }

  async function finishedRuns(name: string, n: number) {
    return eventually(`${name}: run ${n} finished`, async () => {
      const runs = (await c.request('GET', `/v1/datasources/${name}/runs`)).body.items;
      if (runs.length < n) return null;
      const ds = (await c.request('GET', `/v1/datasources/${name}`)).body;
      return reportsRunFinished(ds, runs[0].runId) && ds.status.inFlight.length === 0 ? ds : null;
    }, 60_000);
  }

  /** Old files, then `since` (a time between), then new files: last-modified times are MinIO's. */
  async function oldThenNew(prefix: string, old: Record<string, string>, fresh: Record<string, string>): Promise<string> {
    for (const [k, body] of Object.entries(old)) await put(s3, bucket, prefix + k, body);
    await sleep(1500);
    const since = new Date().toISOString();
    await sleep(1500);
    for (const [k, body] of Object.entries(fresh)) await put(s3, bucket, prefix + k, body);
    return since;
  }

  async function patch(name: string, body: Record<string, unknown>) {
    const res = await c.request('PATCH', `/v1/datasources/${name}`, body);
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    return res.body;
  }

  it('the OpenAPI document has the re-import route and the since/startAfter fields', async () => {
    const doc = (await c.request('GET', '/openapi.json')).body;
    const route = doc.paths['/v1/datasources/{name}/reimport'].post;
    expect(Object.keys(route.responses).sort()).toEqual(['202', '400', '404', '409']);
    expect(Object.keys(doc.components.schemas.ReimportRequest.properties).sort()).toEqual(['keys', 'since', 'until']);
    for (const schema of ['DataSourceSpec', 'DataSource']) {
      expect(Object.keys(doc.components.schemas[schema].properties)).toEqual(expect.arrayContaining(['since', 'startAfter']));
    }
  });

  it('tracked: since and startAfter at create; PATCH clearing them makes older files and earlier keys eligible at the next sweep', async () => {
    const name = uid('since_tr');
    const prefix = `${name}/`;
    const since = await oldThenNew(prefix, { 'a-old.csv': csv(1), 'c-old.csv': csv(2) }, { 'a-new.csv': csv(3), 'c-new.csv': csv(4) });
    const startAfter = `${prefix}b`;
    const res = await c.request('POST', '/v1/datasources', {
      name, connection: 'local', bucketUri: `s3://${bucket}/${prefix}*.csv`, format: 'csv', schedule: '@on-demand', columns: COLUMNS, since, startAfter,
    });
    expect(res.status, JSON.stringify(res.body)).toBe(201);
    expect(res.body).toMatchObject({ since, startAfter });
    await syncAndWait(name);
    // Only the new file after startAfter.
    expect(await ids(name)).toEqual([4]);

    // Bad values are refused naming the field, and change nothing.
    const bad = await c.request('PATCH', `/v1/datasources/${name}`, { since: 'last tuesday' });
    expect(bad.status).toBe(400);
    expect(bad.body.errors.map((e: { field: string }) => e.field)).toContain('since');
    expect((await c.request('GET', `/v1/datasources/${name}`)).body).toMatchObject({ since, startAfter });

    // since removed: the older file after startAfter is found by the next sweep.
    const patched = await patch(name, { since: null });
    expect(patched.since).toBeUndefined();
    expect(patched.startAfter).toBe(startAfter);
    await syncAndWait(name);
    expect(await ids(name)).toEqual([2, 4]);

    // startAfter removed: the earlier keys, old and new, come too; nothing twice.
    await patch(name, { startAfter: null });
    await syncAndWait(name);
    expect(await ids(name)).toEqual([1, 2, 3, 4]);

    // since set later than every file: a file not yet imported is no longer imported, those imported stay.
    await patch(name, { since: new Date(Date.now() + 3_600_000).toISOString() });
    await put(s3, bucket, `${prefix}z-now.csv`, csv(5));
    await syncAndWait(name);
    expect(await ids(name)).toEqual([1, 2, 3, 4]);
  }, 180_000);

  it('ordered: startAfter is the initial marker, since filters; a later startAfter moves the marker forward, an earlier one does not move it back', async () => {
    const name = uid('since_or');
    const prefix = `${name}/`;
    const since = await oldThenNew(prefix, { 'a-old.csv': csv(1), 'd-old.csv': csv(2) }, { 'a-new.csv': csv(3), 'c-new.csv': csv(4) });
    const res = await c.request('POST', '/v1/datasources', {
      name, connection: 'local', bucketUri: `s3://${bucket}/${prefix}*.csv`, format: 'csv', schedule: '@on-demand', mode: 'ordered', columns: COLUMNS, since, startAfter: `${prefix}b`,
    });
    expect(res.status, JSON.stringify(res.body)).toBe(201);
    await syncAndWait(name);
    // a-* are before the marker; d-old is older than since.
    expect(await ids(name)).toEqual([4]);

    // since removed: d-old (after the marker, c-new) is imported; a-old stays behind the marker.
    await patch(name, { since: null });
    await syncAndWait(name);
    expect(await ids(name)).toEqual([2, 4]);

    // An earlier startAfter does not move the marker back.
    await patch(name, { startAfter: `${prefix}0` });
    await syncAndWait(name);
    expect(await ids(name)).toEqual([2, 4]);

    // A later one moves it forward: e-new is skipped, g-new imported.
    await patch(name, { startAfter: `${prefix}f` });
    await put(s3, bucket, `${prefix}e-new.csv`, csv(5));
    await put(s3, bucket, `${prefix}g-new.csv`, csv(6));
    await syncAndWait(name);
    expect(await ids(name)).toEqual([2, 4, 6]);
  }, 180_000);

  it('a deliberate re-import adds the rows exactly once more as a recorded generation, and its retried attempt adds nothing twice', async () => {
    const name = uid('reimp');
    const prefix = `${name}/`;
    await put(s3, bucket, `${prefix}a.csv`, csv(1, 2, 3));
    await put(s3, bucket, `${prefix}b.csv`, csv(10, 11));
    const res = await c.request('POST', '/v1/datasources', {
      name, connection: 'local', bucketUri: `s3://${bucket}/${prefix}*.csv`, format: 'csv', schedule: '@on-demand', columns: COLUMNS,
    });
    expect(res.status, JSON.stringify(res.body)).toBe(201);
    await syncAndWait(name);
    expect(await ids(name)).toEqual([1, 2, 3, 10, 11]);
    // A plain retry or sync of an imported file adds nothing.
    await syncAndWait(name);
    expect(await ids(name)).toEqual([1, 2, 3, 10, 11]);

    // Bad requests: 400 naming the field, nothing queued.
    for (const [body, field] of [
      [{ keys: [`${name}-other/x.csv`] }, 'keys.0'],
      [{ keys: [`${prefix}a.csv`], since: '2024-01-01T00:00:00Z' }, 'keys'],
      [{}, 'keys'],
      [{ since: '2024-02-01T00:00:00Z', until: '2024-01-01T00:00:00Z' }, 'until'],
      [{ keys: Array.from({ length: 1001 }, (_, i) => `${prefix}k${i}.csv`) }, 'keys'],
    ] as const) {
      const r = await c.request('POST', `/v1/datasources/${name}/reimport`, body);
      expect(r.status, JSON.stringify(r.body)).toBe(400);
      expect(r.body.errors.map((e: { field: string }) => e.field)).toContain(field);
    }

    // Re-import a.csv; its first attempt fails after the insert, so the retry reuses the generation's token.
    const runsBefore = await runCount(name);
    failAfterInsert.key = `${prefix}a.csv`;
    const r1 = await c.request('POST', `/v1/datasources/${name}/reimport`, { keys: [`${prefix}a.csv`] });
    expect(r1.status, JSON.stringify(r1.body)).toBe(202);
    expect(r1.body).toEqual({ accepted: true, generation: 1 });
    const ds = await finishedRuns(name, runsBefore + 1);
    expect(failAfterInsert.failures).toBe(1);
    expect(await ids(name)).toEqual([1, 1, 2, 2, 3, 3, 10, 11]);
    expect(ds.lastRun).toMatchObject({ trigger: 'reimport', filesFound: 1, filesImported: 1, rows: 3 });

    // The file list and the history show it imported again.
    const files = (await c.request('GET', `/v1/datasources/${name}/files`)).body.items;
    const a = files.find((f: { key: string }) => f.key === `${prefix}a.csv`);
    expect(a).toMatchObject({ status: 'success', generation: 1, rows: 3 });
    expect(files.find((f: { key: string }) => f.key === `${prefix}b.csv`)).toMatchObject({ status: 'success', generation: 0 });
    const history = (await c.request('GET', `/v1/datasources/${name}/files/history?key=${encodeURIComponent(`${prefix}a.csv`)}`)).body.items;
    const successes = history.filter((e: { status: string }) => e.status === 'success').map((e: { generation: number; rows: number }) => [e.generation, e.rows]);
    expect(successes).toEqual([[0, 3], [1, 3]]);
    expect(history.filter((e: { status: string; generation: number }) => e.generation === 1 && e.status === 'running')).toHaveLength(2);

    // A window re-import (every object modified since the start of the test): a new generation, each file once more.
    const r2 = await c.request('POST', `/v1/datasources/${name}/reimport`, { since: new Date(Date.now() - 3_600_000).toISOString() });
    expect(r2.status, JSON.stringify(r2.body)).toBe(202);
    expect(r2.body.generation).toBe(2);
    await finishedRuns(name, runsBefore + 2);
    expect(await ids(name)).toEqual([1, 1, 1, 2, 2, 2, 3, 3, 3, 10, 10, 11, 11]);
    const after = (await c.request('GET', `/v1/datasources/${name}/files`)).body.items;
    expect(after.map((f: { key: string; generation: number; rows: number }) => [f.key, f.generation, f.rows]).sort()).toEqual([
      [`${prefix}a.csv`, 2, 3],
      [`${prefix}b.csv`, 2, 2],
    ]);

    // A window that holds nothing loads nothing.
    const r3 = await c.request('POST', `/v1/datasources/${name}/reimport`, { until: '2001-01-01T00:00:00Z' });
    expect(r3.status).toBe(202);
    await finishedRuns(name, runsBefore + 3);
    expect((await ids(name)).length).toBe(13);
  }, 180_000);
});
