import { describe, expect, inject, it } from 'vitest';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { gzipSync } from 'node:zlib';
import type { S3Client } from '@aws-sdk/client-s3';
import { toDatasourceFile } from '../../schemas/datasource-file.js';
import { eventually, put, sql, uid, type TestConnector, useTestStack } from '../support/harness.js';
import { reportsRunFinished, waitingOnNothing } from '../support/workflow-wait.js';

const run = promisify(execFile);

/**
 * Control of a running data source through the API on the real stack
 * (Temporal dev server + MinIO + chDB): pause/resume, retry, spec edits,
 * delete, .datasource files, the temporal CLI, file listing and run history.
 */
describe('controlling data sources (Temporal dev server + MinIO + chDB)', () => {
  let c: TestConnector;
  let s3: S3Client;
  let bucket: string;

  useTestStack((stack) => ({ c, s3, bucket } = stack));

  const COLUMNS = [
    { name: 'id', type: 'UInt64' },
    { name: 'ts', type: 'DateTime' },
    { name: 'label', type: 'String' },
  ];

  /** CSV with `n` rows whose ids are `first .. first + n - 1`. */
  function csv(first: number, n: number): string {
    const lines = new Array<string>(n + 1);
    lines[0] = 'id,ts,label';
    for (let i = 0; i < n; i++) {
      const id = first + i;
      lines[i + 1] = `${id},2024-01-01 00:00:${String(id % 60).padStart(2, '0')},row${id}`;
    }
    return lines.join('\n') + '\n';
  }

  async function create(spec: Record<string, unknown>) {
    const res = await c.request('POST', '/v1/datasources', { connection: 'local', format: 'csv', schedule: '@on-demand', columns: COLUMNS, ...spec });
    expect(res.status, JSON.stringify(res.body)).toBe(201);
    return res.body;
  }

  async function get(name: string) {
    const res = await c.request('GET', `/v1/datasources/${name}`);
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    return res.body;
  }

  async function runs(name: string): Promise<any[]> {
    const res = await c.request('GET', `/v1/datasources/${name}/runs`);
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    return res.body.items;
  }

  async function files(name: string, query = ''): Promise<any[]> {
    const res = await c.request('GET', `/v1/datasources/${name}/files${query ? `?${query}` : ''}`);
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    return res.body.items;
  }

  /** Wait until `n` runs are recorded and the workflow reports the newest of them finished. */
  async function waitForRuns(name: string, n: number, timeoutMs = 60_000) {
    return eventually(
      `${name}: ${n} runs finished`,
      async () => {
        // Runs first: a status read before them could predate the run they list.
        const items = await runs(name);
        if (items.length < n) return null;
        const ds = await get(name);
        return reportsRunFinished(ds, items[0].runId) && ds.status.inFlight.length === 0 ? { ds, runs: items } : null;
      },
      timeoutMs,
    );
  }

  async function count(table: string): Promise<number> {
    return Number((await sql<{ n: string }>(c, `SELECT count() AS n FROM ${table}`))[0]!.n);
  }

  async function exists(table: string): Promise<number> {
    return Number((await sql<{ result: number }>(c, `EXISTS TABLE ${table}`))[0]!.result);
  }

  async function ledgerRows(name: string): Promise<number> {
    return Number((await sql<{ n: string }>(c, `SELECT count() AS n FROM s3ch_file_events WHERE datasource = '${name}'`))[0]!.n);
  }

  it('pauses a multi-file sync mid-way and resumes it to the exact row count', async () => {
    const name = uid('pause');
    const p = uid('pz');
    const FILES = 12;
    const ROWS = 200_000;
    await Promise.all(Array.from({ length: FILES }, (_, i) => put(s3, bucket, `${p}/part-${String(i).padStart(2, '0')}.csv`, csv(i * ROWS, ROWS))));
    await create({ name, bucketUri: `s3://${bucket}/${p}/*.csv`, limits: { concurrency: 2 } });

    expect((await c.request('POST', `/v1/datasources/${name}/sync`)).status).toBe(202);
    await eventually(
      'an import to be in flight',
      async () => {
        const ds = await get(name);
        return ds.status.inFlight.length > 0 || ds.stats.files.success > 0;
      },
      30_000,
      50,
    );
    const paused = await c.request('POST', `/v1/datasources/${name}/pause`);
    expect(paused.status, JSON.stringify(paused.body)).toBe(200);
    expect(paused.body.state).toBe('paused');

    // Once settled: nothing in flight, no file left running or queued, and some were stopped.
    // What was last seen, so a pause that never settles says where it stuck.
    let seen = '';
    const settled = await eventually(
      'the pause to settle',
      async () => {
        const ds = await get(name);
        const items = await files(name);
        seen = JSON.stringify({ state: ds.status.state, inFlight: ds.status.inFlight, files: items.map((f) => `${f.key.slice(p.length + 1)}:${f.status}#${f.attempts}`) });
        if (ds.status.inFlight.length > 0) return null;
        return items.length === FILES && items.every((f) => f.status !== 'running' && f.status !== 'queued') ? { ds, items } : null;
      },
      // Cancellation reaches an import with a heartbeat (which the SDK throttles), and an insert
      // embedded ClickHouse already runs finishes first: on a loaded machine that takes a while.
      180_000,
    ).catch((err: Error) => {
      throw new Error(`${err.message}; last seen: ${seen}`);
    });
    expect(settled.ds.status.state).toBe('paused');
    const stopped = settled.items.filter((f) => f.status === 'cancelled' || f.status === 'paused');
    expect(stopped.length).toBeGreaterThan(0);
    expect(settled.items.every((f) => ['success', 'cancelled', 'paused'].includes(f.status))).toBe(true);
    const successBefore = settled.items.filter((f) => f.status === 'success').length;
    expect(successBefore).toBeLessThan(FILES);
    // Rows of files not yet imported are not there (a cancelled insert may have left nothing or deduplicable blocks).
    expect(await count(name)).toBeLessThan(FILES * ROWS);

    // Pausing again is idempotent.
    const again = await c.request('POST', `/v1/datasources/${name}/pause`);
    expect(again.status, JSON.stringify(again.body)).toBe(200);
    expect(again.body.state).toBe('paused');
    expect((await get(name)).status.state).toBe('paused');
    // A sync while paused does not import anything.
    expect((await c.request('POST', `/v1/datasources/${name}/sync`)).status).toBe(202);
    // Once the signal is handled and nothing is scheduled, nothing can import on its own any more.
    await eventually('the paused workflow to handle the sync', () => waitingOnNothing(c.client.workflow.getHandle(`datasource:${name}`)), 30_000, 100);
    expect((await files(name, 'status=success')).length).toBe(successBefore);

    const resumed = await c.request('POST', `/v1/datasources/${name}/resume`);
    expect(resumed.status, JSON.stringify(resumed.body)).toBe(200);
    expect(resumed.body.state).not.toBe('paused');

    const done = await eventually(
      'every file to be imported after resume',
      async () => {
        const ds = await get(name);
        return ds.stats.files.success === FILES && ds.status.state === 'idle' && ds.status.inFlight.length === 0 ? ds : null;
      },
      90_000,
    );
    expect(done.stats.rows).toBe(FILES * ROWS);
    const [totals] = await sql<{ n: string; u: string; lo: string; hi: string }>(c, `SELECT count() AS n, uniqExact(id) AS u, min(id) AS lo, max(id) AS hi FROM ${name}`);
    expect(Number(totals!.n)).toBe(FILES * ROWS);
    expect(Number(totals!.u)).toBe(FILES * ROWS);
    expect(Number(totals!.lo)).toBe(0);
    expect(Number(totals!.hi)).toBe(FILES * ROWS - 1);
    const after = await files(name);
    expect(after).toHaveLength(FILES);
    expect(after.every((f) => f.status === 'success' && f.rows === ROWS)).toBe(true);

    // The history of a stopped file: its stop, then queued again, running and success.
    const victim = stopped[0]!;
    const hist = await c.request('GET', `/v1/datasources/${name}/files/history?key=${encodeURIComponent(victim.key)}`);
    expect(hist.status).toBe(200);
    expect(hist.body.key).toBe(victim.key);
    const statuses = hist.body.items.map((i: any) => i.status);
    const expected = victim.status === 'cancelled'
      ? ['queued', 'running', 'cancelled', 'queued', 'running', 'success']
      : ['queued', 'paused', 'queued', 'running', 'success'];
    expect(statuses).toEqual(expected);
    const items = hist.body.items as any[];
    items.slice(0, -1).forEach((i) => {
      expect(typeof i.durationMs).toBe('number');
      expect(i.durationMs).toBeGreaterThanOrEqual(0);
    });
    expect(items.at(-1).durationMs).toBeNull();
    expect(items.at(-1).rows).toBe(ROWS);
    expect(new Set(items.map((i) => i.etag)).size).toBe(1);
  }, 300_000);

  it('retries a fixed bad file: the fixed version loads once, retries never double rows', async () => {
    const name = uid('retry');
    const p = uid('rt');
    await put(s3, bucket, `${p}/a.csv`, csv(0, 3));
    await put(s3, bucket, `${p}/b.csv`, csv(3, 2));
    await put(s3, bucket, `${p}/x.csv.gz`, 'this is not gzip at all\n');
    await create({ name, bucketUri: `s3://${bucket}/${p}/*.csv{,.gz}` });
    await c.request('POST', `/v1/datasources/${name}/sync`);
    await waitForRuns(name, 1);

    const failed = await files(name, 'status=failure');
    expect(failed.map((f) => f.key)).toEqual([`${p}/x.csv.gz`]);
    expect(failed[0].error).toMatch(/\S/);
    expect(await count(name)).toBe(5);
    const badEtag = failed[0].etag;

    // Fix the object: valid gzip under the same key (a new ETag).
    await put(s3, bucket, `${p}/x.csv.gz`, gzipSync(csv(100, 4)));
    const retried = await c.request('POST', `/v1/datasources/${name}/retry`, {});
    expect(retried.status, JSON.stringify(retried.body)).toBe(202);
    const r2 = await waitForRuns(name, 2);
    expect(r2.runs[0].trigger).toBe('retry');
    expect(await count(name)).toBe(9);
    expect((await sql<{ id: string }>(c, `SELECT id FROM ${name} ORDER BY id`)).map((r) => Number(r.id))).toEqual([0, 1, 2, 3, 4, 100, 101, 102, 103]);
    const fixed = (await files(name, 'status=success')).find((f) => f.key === `${p}/x.csv.gz`);
    expect(fixed).toMatchObject({ status: 'success', rows: 4 });
    expect(fixed.etag).not.toBe(badEtag);

    // Retrying everything failed again adds nothing.
    expect((await c.request('POST', `/v1/datasources/${name}/retry`, {})).status).toBe(202);
    await waitForRuns(name, 3);
    expect(await count(name)).toBe(9);

    // Retrying named keys imports their current version again: deduplicated, nothing doubles.
    const byKey = await c.request('POST', `/v1/datasources/${name}/retry`, { keys: [`${p}/x.csv.gz`, `${p}/a.csv`] });
    expect(byKey.status, JSON.stringify(byKey.body)).toBe(202);
    const r4 = await waitForRuns(name, 4);
    expect(r4.runs[0]).toMatchObject({ trigger: 'retry', filesFound: 2, filesImported: 2, filesFailed: 0 });
    expect(await count(name)).toBe(9);
    const [u] = await sql<{ u: string }>(c, `SELECT uniqExact(id) AS u FROM ${name}`);
    expect(Number(u!.u)).toBe(9);
    const success = await files(name, 'status=success');
    expect(success.map((f) => [f.key, f.rows]).sort()).toEqual([[`${p}/a.csv`, 3], [`${p}/b.csv`, 2], [`${p}/x.csv.gz`, 4]]);
    expect(r4.ds.stats.rows).toBe(9);

    // Retry of an unknown data source, and a malformed body.
    const unknown = await c.request('POST', '/v1/datasources/nope_nope/retry', {});
    expect(unknown.status).toBe(404);
    const badBody = await c.request('POST', `/v1/datasources/${name}/retry`, { keys: 'x' });
    expect(badBody.status).toBe(400);
    expect(badBody.body.errors[0].field).toBe('keys');
  });

  it('retry of every failed file after a fix leaves no failure behind', async () => {
    const name = uid('retryfix');
    const p = uid('rf');
    await put(s3, bucket, `${p}/ok.csv`, csv(0, 2));
    await put(s3, bucket, `${p}/x.csv.gz`, 'definitely not gzip\n');
    await create({ name, bucketUri: `s3://${bucket}/${p}/*.csv{,.gz}` });
    await c.request('POST', `/v1/datasources/${name}/sync`);
    await waitForRuns(name, 1);
    expect((await files(name, 'status=failure')).map((f) => f.key)).toEqual([`${p}/x.csv.gz`]);

    await put(s3, bucket, `${p}/x.csv.gz`, gzipSync(csv(10, 3)));
    expect((await c.request('POST', `/v1/datasources/${name}/retry`, {})).status).toBe(202);
    const r2 = await waitForRuns(name, 2);
    expect(await count(name)).toBe(5);
    expect(r2.runs[0]).toMatchObject({ trigger: 'retry', filesImported: 1, filesFailed: 0 });
    expect(await files(name, 'status=failure')).toEqual([]);
    expect(r2.ds.stats.files.failure).toBe(0);
  });

  it('moving a data source to another table (force) stops feeding the old one; the old table keeps its rows', async () => {
    const name = uid('move');
    const p = uid('mv');
    await put(s3, bucket, `${p}/a.csv`, csv(0, 2));
    await create({ name, bucketUri: `s3://${bucket}/${p}/*.csv` });
    await c.request('POST', `/v1/datasources/${name}/sync`);
    await waitForRuns(name, 1);
    const moved = await c.request('PATCH', `/v1/datasources/${name}`, { table: `${name}_v2`, force: true });
    expect(moved.status, JSON.stringify(moved.body)).toBe(200);
    await put(s3, bucket, `${p}/b.csv`, csv(100, 3));
    await c.request('POST', `/v1/datasources/${name}/sync`);
    await waitForRuns(name, 2);
    expect(await count(name)).toBe(2);
    expect(await count(`${name}_v2`)).toBe(3);
    // The old import path is gone: nothing can write into the old table any more.
    expect(await exists(`${name}_s3ch_landing`)).toBe(0);
    expect(await exists(`${name}_v2_s3ch_landing`)).toBe(1);
  });

  it('edits the schedule, rejects an invalid one, and guards bucketUri changes with force', async () => {
    const name = uid('sched');
    const p = uid('sc');
    await put(s3, bucket, `${p}/a/1.csv`, csv(0, 2));
    await create({ name, bucketUri: `s3://${bucket}/${p}/a/*.csv` });
    expect((await get(name)).status.nextRunAt).toBeNull();

    const patched = await c.request('PATCH', `/v1/datasources/${name}`, { schedule: '@every 2s' });
    expect(patched.status, JSON.stringify(patched.body)).toBe(200);
    expect(patched.body.schedule).toBe('@every 2s');

    // No sync call: the schedule imports what is there and then what arrives.
    await eventually('the scheduled run to import the first file', async () => (await count(name)) === 2, 15_000);
    await put(s3, bucket, `${p}/a/2.csv`, csv(2, 3));
    await eventually('the scheduled run to import a new file', async () => (await count(name)) === 5, 15_000);
    const scheduled = await runs(name);
    expect(scheduled.length).toBeGreaterThan(0);
    expect(scheduled.every((r) => r.trigger === 'schedule')).toBe(true);
    // Between runs the next tick is at most 2 s away (it is null only while a scheduled run is going on).
    const next = await eventually('a next tick to be scheduled', async () => (await get(name)).status.nextRunAt as string | null, 10_000, 100);
    expect(Date.parse(next) - Date.now()).toBeLessThanOrEqual(2_500);

    // An invalid schedule is rejected and changes nothing.
    const bad = await c.request('PATCH', `/v1/datasources/${name}`, { schedule: 'every tuesday-ish' });
    expect(bad.status).toBe(400);
    expect(bad.headers.get('content-type')).toContain('application/problem+json');
    expect(bad.body.errors.map((e: any) => e.field)).toContain('schedule');
    expect((await get(name)).schedule).toBe('@every 2s');

    // Moving a data source that imported files needs force.
    const moved = `s3://${bucket}/${p}/b/*.csv`;
    const conflict = await c.request('PATCH', `/v1/datasources/${name}`, { bucketUri: moved });
    expect(conflict.status, JSON.stringify(conflict.body)).toBe(409);
    expect(conflict.body.detail).toMatch(/force/);
    expect((await get(name)).bucketUri).toBe(`s3://${bucket}/${p}/a/*.csv`);

    await put(s3, bucket, `${p}/b/1.csv`, csv(1000, 4));
    // (schedule repeated on purpose: harmless, and the PATCH test below covers omitted fields)
    const forced = await c.request('PATCH', `/v1/datasources/${name}`, { bucketUri: moved, schedule: '@every 2s', force: true });
    expect(forced.status, JSON.stringify(forced.body)).toBe(200);
    expect(forced.body.bucketUri).toBe(moved);
    expect(forced.body.schedule).toBe('@every 2s');
    await eventually('the new location to be imported on schedule', async () => (await count(name)) === 9, 15_000);
    expect((await get(name)).bucketUri).toBe(moved);

    const del = await c.request('DELETE', `/v1/datasources/${name}?dropTable=true&dropLedger=true`);
    expect(del.status, JSON.stringify(del.body)).toBe(200);
  });

  it('a PATCH changes only the fields it names', async () => {
    const name = uid('patch');
    const p = uid('pt');
    await put(s3, bucket, `${p}/a.csv`, csv(0, 2));
    await create({ name, bucketUri: `s3://${bucket}/${p}/*.csv`, format: 'csv', compression: 'none', mode: 'ordered' });
    await c.request('POST', `/v1/datasources/${name}/sync`);
    await waitForRuns(name, 1);
    expect(await count(name)).toBe(2);

    const res = await c.request('PATCH', `/v1/datasources/${name}`, { schedule: '@every 1h' });
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    expect(res.body).toMatchObject({ schedule: '@every 1h', format: 'csv', compression: 'none', mode: 'ordered' });
    const moved = await c.request('PATCH', `/v1/datasources/${name}`, { bucketUri: `s3://${bucket}/${p}/b/*.csv`, force: true });
    expect(moved.status, JSON.stringify(moved.body)).toBe(200);
    expect(moved.body).toMatchObject({ schedule: '@every 1h', format: 'csv', compression: 'none', mode: 'ordered' });
  });

  it('deletes with and without dropping the table and the ledger; the name can be reused', async () => {
    const name = uid('del');
    const p = uid('dl');
    await put(s3, bucket, `${p}/a.csv`, csv(0, 3));
    await put(s3, bucket, `${p}/q.csv`, 'id,ts,label\n7,not a time,x\n8,2024-01-01 00:00:00,y\n');
    const spec = { name, bucketUri: `s3://${bucket}/${p}/*.csv` };
    await create(spec);
    await c.request('POST', `/v1/datasources/${name}/sync`);
    await waitForRuns(name, 1);
    expect(await count(name)).toBe(4);
    expect(await count(`${name}_quarantine`)).toBe(1);
    const ledgerBefore = await ledgerRows(name);
    expect(ledgerBefore).toBeGreaterThan(0);

    // Keep the table and the ledger.
    const kept = await c.request('DELETE', `/v1/datasources/${name}?dropTable=false`);
    expect(kept.status, JSON.stringify(kept.body)).toBe(200);
    expect((await c.request('GET', `/v1/datasources/${name}`)).status).toBe(404);
    expect((await c.request('POST', `/v1/datasources/${name}/sync`)).status).toBe(404);
    expect(await exists(name)).toBe(1);
    expect(await count(name)).toBe(4);
    expect(await ledgerRows(name)).toBe(ledgerBefore);

    // The same name again: the kept ledger says every file is settled, so nothing is imported twice.
    await create(spec);
    await c.request('POST', `/v1/datasources/${name}/sync`);
    const again = await waitForRuns(name, 2);
    expect(again.runs[0]).toMatchObject({ trigger: 'sync', filesFound: 0, filesImported: 0 });
    expect(await count(name)).toBe(4);

    // Drop the table but keep the ledger: the runs stay; the files' statuses go with the rows they described.
    const dropped = await c.request('DELETE', `/v1/datasources/${name}?dropTable=true&dropLedger=false`);
    expect(dropped.status, JSON.stringify(dropped.body)).toBe(200);
    expect(await exists(name)).toBe(0);
    expect(await exists(`${name}_quarantine`)).toBe(0);
    expect(await exists(`${name}_s3ch_landing`)).toBe(0);
    expect(await ledgerRows(name)).toBe(0);
    expect(Number((await sql<{ n: string }>(c, `SELECT count() AS n FROM s3ch_runs WHERE datasource = '${name}'`))[0]!.n)).toBeGreaterThan(0);

    // Made again under the name, its table empty: every file loads again (it read success with an empty table before).
    await create(spec);
    await c.request('POST', `/v1/datasources/${name}/sync`);
    await waitForRuns(name, 3);
    await eventually(`${name}: loaded again`, async () => (await count(name)) === 4);
    expect(await count(`${name}_quarantine`)).toBe(1);

    // And everything: table and ledger.
    const all = await c.request('DELETE', `/v1/datasources/${name}?dropTable=true&dropLedger=true`);
    expect(all.status, JSON.stringify(all.body)).toBe(200);
    expect(await exists(name)).toBe(0);
    expect(await exists(`${name}_quarantine`)).toBe(0);
    expect(await ledgerRows(name)).toBe(0);
    expect(Number((await sql<{ n: string }>(c, `SELECT count() AS n FROM s3ch_runs WHERE datasource = '${name}'`))[0]!.n)).toBe(0);
    expect((await c.request('DELETE', `/v1/datasources/${name}`)).status).toBe(404);
    const bogus = await c.request('DELETE', `/v1/datasources/${name}?dropTable=yes`);
    expect(bogus.status).toBe(400);
  });

  it('creates from a Tinybird .datasource file, imports NDJSON with JSON paths, and writes it back', async () => {
    const name = uid('tb');
    const p = uid('nd');
    await put(
      s3,
      bucket,
      `${p}/2024-05-01.ndjson`,
      [
        { id: 1, user: { name: 'ada', country: 'UK' }, ts: '2024-05-01 10:00:00' },
        { id: 2, user: { name: 'bob' }, ts: '2024-05-01 11:00:00', extra: true },
      ].map((o) => JSON.stringify(o)).join('\n') + '\n',
    );
    await put(s3, bucket, `${p}/2024-05-02.ndjson`, JSON.stringify({ id: 3, user: { name: 'cy', country: 'FR' }, ts: '2024-05-02 09:30:00' }) + '\n');
    const file = [
      'DESCRIPTION >',
      '    Users from the app',
      '',
      'SCHEMA >',
      '    `id` UInt32 `json:$.id`,',
      '    `user_name` String `json:$.user.name`,',
      '    `country` LowCardinality(String) `json:$.user.country`,',
      '    `ts` DateTime `json:$.ts`',
      '',
      'ENGINE "MergeTree"',
      'ENGINE_PARTITION_KEY "toYYYYMM(ts)"',
      'ENGINE_SORTING_KEY "ts"',
      '',
      'IMPORT_SERVICE s3',
      'IMPORT_CONNECTION_NAME local',
      `IMPORT_BUCKET_URI s3://${bucket}/${p}/*.ndjson`,
      'IMPORT_SCHEDULE @on-demand',
      'IMPORT_STRATEGY APPEND',
      '',
    ].join('\n');
    const created = await c.request('POST', `/v1/datasources?name=${name}`, file, { 'content-type': 'text/plain' });
    expect(created.status, JSON.stringify(created.body)).toBe(201);
    expect(created.body).toMatchObject({
      name,
      description: 'Users from the app',
      format: 'ndjson',
      schedule: '@on-demand',
      bucketUri: `s3://${bucket}/${p}/*.ndjson`,
      engine: { engine: 'MergeTree', partitionKey: 'toYYYYMM(ts)', sortingKey: 'ts' },
    });
    expect(created.body.columns).toEqual([
      { name: 'id', type: 'UInt32', path: '$.id' },
      { name: 'user_name', type: 'String', path: '$.user.name' },
      { name: 'country', type: 'LowCardinality(String)', path: '$.user.country' },
      { name: 'ts', type: 'DateTime', path: '$.ts' },
    ]);
    const ddl = await eventually('table to exist', async () => (await sql<{ statement: string }>(c, `SHOW CREATE TABLE ${name}`))[0]?.statement);
    expect(ddl).toMatch(/PARTITION BY toYYYYMM\(ts\)/);
    expect(ddl).toMatch(/ORDER BY ts\b/);

    await c.request('POST', `/v1/datasources/${name}/sync`);
    await waitForRuns(name, 1);
    const expected = [
      { id: 1, user_name: 'ada', country: 'UK', ts: '2024-05-01 10:00:00' },
      { id: 2, user_name: 'bob', country: '', ts: '2024-05-01 11:00:00' },
      { id: 3, user_name: 'cy', country: 'FR', ts: '2024-05-02 09:30:00' },
    ];
    expect(await sql(c, `SELECT id, user_name, country, toString(ts) AS ts FROM ${name} ORDER BY id`)).toEqual(expected);

    // Written back out as a .datasource file, it creates an equivalent data source.
    const ds = await get(name);
    const text = toDatasourceFile({
      name: ds.name, description: ds.description, connection: ds.connection, bucketUri: ds.bucketUri,
      format: ds.format, schedule: ds.schedule, columns: ds.columns, engine: ds.engine,
    });
    const copy = uid('tbcopy');
    const second = await c.request('POST', `/v1/datasources?name=${copy}`, text, { 'content-type': 'text/plain' });
    expect(second.status, JSON.stringify(second.body) + '\n' + text).toBe(201);
    for (const field of ['description', 'connection', 'bucketUri', 'format', 'schedule', 'columns', 'engine', 'compression', 'mode']) {
      expect(second.body[field], field).toEqual(ds[field]);
    }
    await c.request('POST', `/v1/datasources/${copy}/sync`);
    await waitForRuns(copy, 1);
    expect(await sql(c, `SELECT id, user_name, country, toString(ts) AS ts FROM ${copy} ORDER BY id`)).toEqual(expected);

    // An unsupported key is named by its line.
    const withKafka = file.replace('IMPORT_STRATEGY APPEND', 'IMPORT_STRATEGY APPEND\nKAFKA_TOPIC events');
    const kafkaLine = withKafka.split('\n').indexOf('KAFKA_TOPIC events') + 1;
    const rejected = await c.request('POST', `/v1/datasources?name=${uid('tbbad')}`, withKafka, { 'content-type': 'text/plain' });
    expect(rejected.status).toBe(400);
    expect(rejected.headers.get('content-type')).toContain('application/problem+json');
    expect(rejected.body.errors[0].field).toBe(`line ${kafkaLine}`);
    expect(rejected.body.errors[0].message).toMatch(/KAFKA_TOPIC/);
    // A file without a name.
    const nameless = await c.request('POST', '/v1/datasources', file, { 'content-type': 'text/plain' });
    expect(nameless.status).toBe(400);
    expect(nameless.body.errors[0].field).toBe('name');
  });

  it('a .datasource file with a multi-column ENGINE_SORTING_KEY creates the table', async () => {
    const name = uid('tbkey');
    const file = [
      'SCHEMA >',
      '    `id` UInt32 `json:$.id`,',
      '    `ts` DateTime `json:$.ts`',
      '',
      'ENGINE "MergeTree"',
      'ENGINE_SORTING_KEY "ts, id"',
      '',
      'IMPORT_SERVICE s3',
      'IMPORT_CONNECTION_NAME local',
      `IMPORT_BUCKET_URI s3://${bucket}/${uid('k')}/*.ndjson`,
      'IMPORT_SCHEDULE @on-demand',
      'IMPORT_STRATEGY APPEND',
      '',
    ].join('\n');
    const created = await c.request('POST', `/v1/datasources?name=${name}`, file, { 'content-type': 'text/plain' });
    expect(created.status, JSON.stringify(created.body)).toBe(201);
    const ddl = await eventually('table to exist', async () => (await sql<{ statement: string }>(c, `SHOW CREATE TABLE ${name}`))[0]?.statement);
    expect(ddl).toMatch(/ORDER BY \(ts, id\)/);
  });

  it('the real temporal CLI: a sync signal imports files, and the DataSource search attribute finds the workflow', async () => {
    const name = uid('tcli');
    const p = uid('tc');
    await put(s3, bucket, `${p}/a.csv`, csv(0, 2));
    await put(s3, bucket, `${p}/b.csv`, csv(2, 5));
    await create({ name, bucketUri: `s3://${bucket}/${p}/*.csv` });
    const temporal = inject('temporalBin');
    const address = inject('temporalAddress');

    await run(temporal, ['workflow', 'signal', '--address', address, '--workflow-id', `datasource:${name}`, '--name', 'sync'], { timeout: 30_000 });
    await eventually('rows from the signalled sync', async () => (await count(name)) === 7, 30_000);
    const r = await waitForRuns(name, 1);
    expect(r.runs).toHaveLength(1);
    expect(r.runs[0]).toMatchObject({ trigger: 'sync', filesFound: 2, filesImported: 2, rows: 7 });

    const listed = await eventually(
      'the workflow to be visible by its DataSource search attribute',
      async () => {
        const { stdout } = await run(temporal, ['workflow', 'list', '--address', address, '--query', `DataSource='${name}'`, '--output', 'json'], { timeout: 30_000 });
        return stdout.includes(`datasource:${name}`) ? stdout : null;
      },
      30_000,
      500,
    );
    expect(listed).toContain(`datasource:${name}`);
    const other = await run(temporal, ['workflow', 'list', '--address', address, '--query', `DataSource='${name}_nope'`, '--output', 'json'], { timeout: 30_000 });
    expect(other.stdout).not.toContain(`datasource:${name}`);
  });

  it('lists files: case-insensitive search, cursor pages newest first; runs newest first with consistent totals', async () => {
    const name = uid('files');
    const p = uid('fl');
    const bodies: Record<string, string> = {
      'Alpha-1.csv': csv(0, 1),
      'alpha-2.csv': csv(1, 2),
      'beta-1.csv': csv(3, 3),
      'BETA-2.csv': csv(6, 4),
      'gamma.csv': csv(10, 5),
    };
    for (const [k, body] of Object.entries(bodies)) await put(s3, bucket, `${p}/${k}`, body);
    await create({ name, bucketUri: `s3://${bucket}/${p}/*.csv`, limits: { concurrency: 1 } });
    await c.request('POST', `/v1/datasources/${name}/sync`);
    await waitForRuns(name, 1);

    const keysOf = (items: any[]) => items.map((f) => f.key.slice(p.length + 1)).sort();
    expect(keysOf(await files(name, 'search=ALPHA'))).toEqual(['Alpha-1.csv', 'alpha-2.csv']);
    expect(keysOf(await files(name, 'search=beta-'))).toEqual(['BETA-2.csv', 'beta-1.csv']);
    expect(keysOf(await files(name, 'search=gAmMa'))).toEqual(['gamma.csv']);
    expect(await files(name, 'search=delta')).toEqual([]);

    // Every page of two, walked by cursor: each file exactly once, newest first.
    const all = await files(name);
    expect(all).toHaveLength(5);
    const walked: any[] = [];
    let cursor: string | null = null;
    let pages = 0;
    do {
      const res: { status: number; body: any } = await c.request('GET', `/v1/datasources/${name}/files?limit=2${cursor ? `&cursor=${cursor}` : ''}`);
      expect(res.status, JSON.stringify(res.body)).toBe(200);
      expect(res.body.items.length).toBeLessThanOrEqual(2);
      walked.push(...res.body.items);
      cursor = res.body.nextCursor;
      pages++;
    } while (cursor && pages < 10);
    expect(pages).toBe(3);
    expect(walked.map((f) => f.key)).toEqual(all.map((f) => f.key));
    expect(new Set(walked.map((f) => f.key)).size).toBe(5);
    for (let i = 1; i < walked.length; i++) expect(Date.parse(walked[i].updatedAt)).toBeLessThanOrEqual(Date.parse(walked[i - 1].updatedAt));
    for (const f of walked) expect(f).toMatchObject({ status: 'success', rows: bodies[f.key.slice(p.length + 1)]!.split('\n').length - 2, size: Buffer.byteLength(bodies[f.key.slice(p.length + 1)]!) });
    // A search pages the same way.
    const firstAlpha = await c.request('GET', `/v1/datasources/${name}/files?search=alpha&limit=1`);
    expect(firstAlpha.body.items).toHaveLength(1);
    expect(firstAlpha.body.nextCursor).toBeTruthy();
    const secondAlpha = await c.request('GET', `/v1/datasources/${name}/files?search=alpha&limit=1&cursor=${firstAlpha.body.nextCursor}`);
    expect(secondAlpha.body.items).toHaveLength(1);
    expect(secondAlpha.body.nextCursor).toBeNull();
    expect([firstAlpha.body.items[0].key, secondAlpha.body.items[0].key].sort()).toEqual([`${p}/Alpha-1.csv`, `${p}/alpha-2.csv`]);

    const badCursor = await c.request('GET', `/v1/datasources/${name}/files?cursor=not-a-cursor`);
    expect(badCursor.status).toBe(400);
    expect(badCursor.body.errors.map((e: any) => e.field)).toContain('cursor');
    // A cursor made by hand in the right shape, with a time ClickHouse cannot read: 400 too, not a failed query.
    const forged = Buffer.from(JSON.stringify({ updatedAt: "') OR 1=1 --", key: 'x', etag: 'y' })).toString('base64url');
    const forgedCursor = await c.request('GET', `/v1/datasources/${name}/files?cursor=${forged}`);
    expect(forgedCursor.status).toBe(400);
    expect(forgedCursor.body.errors.map((e: any) => e.field)).toContain('cursor');
    const badStatus = await c.request('GET', `/v1/datasources/${name}/files?status=bogus`);
    expect(badStatus.status).toBe(400);
    expect(badStatus.body.errors.map((e: any) => e.field)).toContain('status');
    const badLimit = await c.request('GET', `/v1/datasources/${name}/files?limit=0`);
    expect(badLimit.status).toBe(400);
    expect(badLimit.body.errors.map((e: any) => e.field)).toContain('limit');

    // A second run with two new files: runs newest first, numbers match what was imported.
    const more = { 'delta.csv': csv(100, 6), 'epsilon.csv': csv(200, 7) };
    for (const [k, body] of Object.entries(more)) await put(s3, bucket, `${p}/${k}`, body);
    await c.request('POST', `/v1/datasources/${name}/sync`);
    const { runs: items, ds } = await waitForRuns(name, 2);
    expect(items).toHaveLength(2);
    const size = (o: Record<string, string>) => Object.values(o).reduce((s, b) => s + Buffer.byteLength(b), 0);
    expect(items[0]).toMatchObject({ trigger: 'sync', filesFound: 2, filesImported: 2, filesFailed: 0, rows: 13, bytes: size(more) });
    expect(items[1]).toMatchObject({ trigger: 'sync', filesFound: 5, filesImported: 5, filesFailed: 0, rows: 15, bytes: size(bodies) });
    expect(Date.parse(items[0].startedAt)).toBeGreaterThanOrEqual(Date.parse(items[1].finishedAt));
    for (const r of items) {
      expect(r.runId).toMatch(new RegExp(`^datasource:${name}/\\d+$`));
      expect(r.durationMs).toBe(Date.parse(r.finishedAt) - Date.parse(r.startedAt));
      expect(r.durationMs).toBeGreaterThanOrEqual(0);
    }
    expect(items[0].runId).not.toBe(items[1].runId);
    expect(await count(name)).toBe(28);
    expect(ds.stats.rows).toBe(28);
    expect(ds.stats.bytes).toBe(size(bodies) + size(more));
    expect(ds.stats.files.success).toBe(7);
    expect(ds.lastRun).toMatchObject({ filesFound: 2, filesImported: 2, rows: 13, bytes: size(more) });
    const limited = await c.request('GET', `/v1/datasources/${name}/runs?limit=1`);
    expect(limited.body.items.map((r: any) => r.runId)).toEqual([items[0].runId]);
  });
});
