import { afterEach, describe, expect, it, vi } from 'vitest';
import { gzipSync } from 'node:zlib';
import type { S3Client } from '@aws-sdk/client-s3';
import { LEDGER_TABLE, Ledger, type FileEvent } from '../../activities/ledger.js';
import { queryRows } from '../../clickhouse/destination.js';
import { eventually, processDestination, put, sql, uid, type TestConnector, useTestStack } from '../support/harness.js';
import { statsReuseMs } from '../../api/service.js';
import { adminClient, testDatabase } from '../support/harness.js';
import { reportsRunFinished } from '../support/workflow-wait.js';

/**
 * The per-file ledger on the real stack (Temporal dev server + MinIO + chDB):
 * a version's latest status follows the order ClickHouse received its events
 * in, never a writer's clock, and `success` is final; `attempts` counts every
 * attempt of a version across runs; a ledger from before the ordering column
 * is upgraded in place.
 */
describe('the per-file ledger (Temporal dev server + MinIO + chDB)', () => {
  let c: TestConnector;
  let s3: S3Client;
  let bucket: string;

  useTestStack((stack) => ({ c, s3, bucket } = stack));

  afterEach(() => {
    vi.useRealTimers();
  });

  const csv = (first: number, n: number) => ['id', ...Array.from({ length: n }, (_, i) => String(first + i))].join('\n') + '\n';

  async function create(spec: Record<string, unknown>) {
    const res = await c.request('POST', '/v1/datasources', { connection: 'local', format: 'csv', schedule: '@on-demand', columns: [{ name: 'id', type: 'UInt64' }], ...spec });
    expect(res.status, JSON.stringify(res.body)).toBe(201);
  }

  async function get(name: string) {
    const res = await c.request('GET', `/v1/datasources/${name}`);
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    return res.body;
  }

  async function files(name: string): Promise<Array<{ key: string; etag: string; size: number; status: string; attempts: number; rows: number }>> {
    const res = await c.request('GET', `/v1/datasources/${name}/files?limit=100`);
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    return res.body.items;
  }

  /** Ask for a run (a sync or a retry) and wait until the workflow reports run number `n` finished. */
  async function runAndWait(name: string, n: number, ask: () => Promise<{ status: number }>) {
    expect((await ask()).status).toBe(202);
    return eventually(`${name}: run ${n} finished`, async () => {
      const runs = (await c.request('GET', `/v1/datasources/${name}/runs`)).body.items as any[];
      if (runs.length < n) return null;
      const ds = await get(name);
      return reportsRunFinished(ds, runs[0].runId) && ds.status.inFlight.length === 0 ? { run: runs[0], ds } : null;
    }, 60_000);
  }
  const sync = (name: string, n: number) => runAndWait(name, n, () => c.request('POST', `/v1/datasources/${name}/sync`));
  const retryAll = (name: string, n: number) => runAndWait(name, n, () => c.request('POST', `/v1/datasources/${name}/retry`, {}));

  /** Write events as a worker whose clock is `skewMs` off would (only Date is faked, and only for this write). */
  async function recordWithClock(ledger: Ledger, skewMs: number, events: FileEvent[]) {
    vi.useFakeTimers({ toFake: ['Date'] });
    vi.setSystemTime(Date.now() + skewMs);
    const written = ledger.record(events);
    vi.useRealTimers();
    await written;
  }

  const HOUR = 3_600_000;

  it('late events with skewed clocks neither unsettle a success nor reorder a failure', async () => {
    const name = uid('order');
    const p = uid('lo');
    await put(s3, bucket, `${p}/a.csv`, csv(0, 3));
    await put(s3, bucket, `${p}/b.csv.gz`, 'not gzip at all\n');
    await create({ name, bucketUri: `s3://${bucket}/${p}/*.csv{,.gz}` });
    await sync(name, 1);
    const before = Object.fromEntries((await files(name)).map((f) => [f.key.slice(p.length + 1), f]));
    expect(before['a.csv']).toMatchObject({ status: 'success', rows: 3 });
    expect(before['b.csv.gz']).toMatchObject({ status: 'failure' });

    const ledger = new Ledger((await processDestination()).client, (await processDestination()).database);
    const a = before['a.csv']!;
    const b = before['b.csv.gz']!;
    const base = (f: typeof a) => ({ datasource: name, key: f.key, etag: f.etag, size: f.size, run_id: 'late-writer' });
    // After the success: a cancelled from a worker whose clock runs an hour ahead, one whose clock is an hour
    // behind, and a stale worker's running and pending_retry. None of them un-imports the file.
    await recordWithClock(ledger, HOUR, [{ ...base(a), attempt: 2, status: 'cancelled', error: 'cancelled' }]);
    await recordWithClock(ledger, -HOUR, [{ ...base(a), attempt: 1, status: 'cancelled', error: 'cancelled' }]);
    await recordWithClock(ledger, HOUR, [{ ...base(a), attempt: 3, status: 'running' }]);
    await recordWithClock(ledger, HOUR, [{ ...base(a), attempt: 3, status: 'pending_retry', error: 'late' }]);
    // The failed file: a pending_retry stamped an hour ahead, then the final failure stamped an hour behind.
    // The failure was written last, so it is the latest status whatever the clocks say.
    await recordWithClock(ledger, HOUR, [{ ...base(b), attempt: 1, status: 'pending_retry', error: 'transient' }]);
    await recordWithClock(ledger, -HOUR, [{ ...base(b), attempt: 1, status: 'failure', error: 'retries ran out' }]);

    const after = Object.fromEntries((await files(name)).map((f) => [f.key.slice(p.length + 1), f]));
    expect(after['a.csv']).toMatchObject({ status: 'success', rows: 3 });
    expect(after['b.csv.gz']).toMatchObject({ status: 'failure' });
    const ds = await get(name);
    expect(ds.stats.files).toMatchObject({ success: 1, failure: 1, cancelled: 0, running: 0, pending_retry: 0 });
    expect(ds.stats.rows).toBe(3);
    const metrics = await c.request('GET', '/metrics');
    expect(metrics.status).toBe(200);
    const text = typeof metrics.body === 'string' ? metrics.body : String(metrics.body);
    expect(text).toContain(`s3ch_files{datasource="${name}",status="success"} 1`);
    expect(text).not.toContain(`s3ch_files{datasource="${name}",status="cancelled"}`);
    // Both stay settled: a sync lists them and imports nothing.
    const { run } = await sync(name, 2);
    expect(run).toMatchObject({ filesFound: 0, filesImported: 0 });
    expect(Number((await sql<{ n: string }>(c, `SELECT count() AS n FROM ${name}`))[0]!.n)).toBe(3);
    expect(await ledger.settled(name, [a.key, b.key])).toEqual(new Set([`${a.key}\u0000${a.etag}`, `${b.key}\u0000${b.etag}`]));

    // The file's history lists every event in the order ClickHouse received them, with durations that never run backwards.
    const hist = await c.request('GET', `/v1/datasources/${name}/files/history?key=${encodeURIComponent(a.key)}`);
    expect(hist.body.items.map((i: any) => i.status)).toEqual(['queued', 'running', 'success', 'cancelled', 'cancelled', 'running', 'pending_retry']);
    for (const i of hist.body.items.slice(0, -1)) expect(i.durationMs).toBeGreaterThanOrEqual(0);
  });

  it('attempts counts every attempt of a file version, across retries', async () => {
    const name = uid('attempts');
    const p = uid('at');
    await put(s3, bucket, `${p}/ok.csv`, csv(0, 2));
    // Bigger than the data source's maxFileBytes: a non-retryable failure that a spec change fixes without touching the object.
    await put(s3, bucket, `${p}/big.csv`, csv(100, 50));
    await create({ name, bucketUri: `s3://${bucket}/${p}/*.csv`, limits: { maxFileBytes: 64 } });
    await sync(name, 1);
    const byKey = async () => Object.fromEntries((await files(name)).map((f) => [f.key.slice(p.length + 1), f]));
    let f = await byKey();
    expect(f['ok.csv']).toMatchObject({ status: 'success', attempts: 1 });
    expect(f['big.csv']).toMatchObject({ status: 'failure', attempts: 1 });
    const etag = f['big.csv']!.etag;

    // Retried as it is: it fails again, and that is its second attempt.
    await retryAll(name, 2);
    f = await byKey();
    expect(f['big.csv']).toMatchObject({ status: 'failure', attempts: 2, etag });

    // The limit is lifted and the file retried once more: imported, on its third attempt.
    const patched = await c.request('PATCH', `/v1/datasources/${name}`, { limits: { maxFileBytes: 0 } });
    expect(patched.status, JSON.stringify(patched.body)).toBe(200);
    await retryAll(name, 3);
    f = await byKey();
    expect(f['big.csv']).toMatchObject({ status: 'success', attempts: 3, etag, rows: 50 });
    expect(f['ok.csv']).toMatchObject({ status: 'success', attempts: 1 });

    // A fixed object is a new version, whose attempts start again.
    await put(s3, bucket, `${p}/bad.csv.gz`, 'not gzip\n');
    const name2 = uid('attempts2');
    await create({ name: name2, bucketUri: `s3://${bucket}/${p}/*.csv.gz` });
    await sync(name2, 1);
    expect((await files(name2))[0]).toMatchObject({ status: 'failure', attempts: 1 });
    await retryAll(name2, 2);
    const failedTwice = (await files(name2))[0]!;
    expect(failedTwice).toMatchObject({ status: 'failure', attempts: 2 });
    await put(s3, bucket, `${p}/bad.csv.gz`, gzipSync(csv(7, 1)));
    await retryAll(name2, 3);
    const items = await files(name2);
    const fixed = items.find((i) => i.etag !== failedTwice.etag)!;
    expect(fixed).toMatchObject({ status: 'success', attempts: 1, rows: 1 });
  });

  it('a ledger written before the ordering column is upgraded in place and keeps its order', async () => {
    const client = (await processDestination()).client;
    const db = testDatabase();
    await client.command({ query: `CREATE DATABASE ${db}` });
    // The table as earlier versions created it: no seq column.
    await client.command({
      query: `CREATE TABLE ${db}.${LEDGER_TABLE} (
        datasource LowCardinality(String), key String, etag String, size UInt64, attempt UInt32,
        status LowCardinality(String), rows UInt64, quarantined_rows UInt64, bytes UInt64,
        error String, run_id String, at DateTime64(3, 'UTC'))
        ENGINE = MergeTree ORDER BY (datasource, key, etag, at)`,
    });
    const old = (key: string, status: string, at: string) => ({ datasource: 'old', key, etag: 'e1', size: 10, attempt: 1, status, rows: status === 'success' ? 5 : 0, quarantined_rows: 0, bytes: 10, error: '', run_id: 'r', at });
    await client.insert({
      table: `${db}.${LEDGER_TABLE}`,
      format: 'JSONEachRow',
      values: [
        old('done.csv', 'queued', '2024-01-01 00:00:00.000'),
        old('done.csv', 'running', '2024-01-01 00:00:01.000'),
        old('done.csv', 'success', '2024-01-01 00:00:02.000'),
        old('stuck.csv', 'queued', '2024-01-01 00:00:00.000'),
        old('stuck.csv', 'running', '2024-01-01 00:00:01.000'),
        old('gone.csv', 'running', '2024-01-01 00:00:01.000'),
        old('gone.csv', 'failure', '2024-01-01 00:00:02.000'),
      ],
    });
    const ledger = new Ledger(client, db);
    await ledger.ensureTables();
    await ledger.ensureTables(); // idempotent
    const cols = await queryRows<{ name: string; default_expression: string }>(client, `SELECT name, default_expression FROM system.columns WHERE database = {db:String} AND table = {t:String} AND name = 'seq'`, { db, t: LEDGER_TABLE });
    expect(cols).toEqual([{ name: 'seq', default_expression: 'at' }]);

    // Old rows keep their order (seq reads as at).
    expect((await ledger.stats('old')).files).toMatchObject({ success: 1, running: 1, failure: 1 });
    expect(await ledger.settled('old', ['done.csv', 'stuck.csv', 'gone.csv'])).toEqual(new Set(['done.csv\u0000e1', 'gone.csv\u0000e1']));
    // New events, even stamped by a clock years behind, come after the old ones.
    await recordWithClock(ledger, -5 * 365 * 24 * HOUR, [
      { datasource: 'old', key: 'stuck.csv', etag: 'e1', size: 10, attempt: 1, status: 'failure', error: 'x' },
      { datasource: 'old', key: 'done.csv', etag: 'e1', size: 10, attempt: 2, status: 'cancelled', error: 'late' },
    ]);
    expect((await ledger.stats('old')).files).toMatchObject({ success: 1, running: 0, failure: 2, cancelled: 0 });
    expect(await ledger.failedKeys('old', undefined, 10)).toEqual(['gone.csv', 'stuck.csv']);
    expect(await ledger.failedKeys('old', 'gone.csv', 10)).toEqual(['stuck.csv']);
    // A large batch (here about 150 KB of event text) is written whole, in several statements.
    const many: FileEvent[] = Array.from({ length: 300 }, (_, i) => ({ datasource: 'bulk', key: `k${i}`, etag: 'e', size: 1, attempt: 0, status: 'queued', error: 'x'.repeat(500) }));
    await ledger.record(many);
    expect((await ledger.stats('bulk')).files.queued).toBe(300);
    // Merges keep it so: the old parts get seq written as their at.
    await client.command({ query: `OPTIMIZE TABLE ${db}.${LEDGER_TABLE} FINAL` });
    expect((await ledger.stats('old')).files).toMatchObject({ success: 1, running: 0, failure: 2, cancelled: 0 });
    await client.command({ query: `DROP DATABASE ${db}` });
  });

  it('a data source with millions of ledger events has its counters, file pages and list entry reused for seconds; what the API changes is read afresh', async () => {
    const name = uid('bigledger');
    await create({ name, bucketUri: `s3://${bucket}/${uid('empty')}/*.csv` });
    const client = (await processDestination()).client;
    // 1,000,000 files imported an hour ago (queued, running, success: 3 events each) make 3,000,000 events: reads kept 6 s.
    // Written by the administrator: the connector's own user may not read numbers().
    await (await adminClient()).command({
      query: `INSERT INTO ${LEDGER_TABLE} (datasource, key, etag, size, attempt, status, rows, quarantined_rows, bytes, error, run_id, at)
              SELECT {ds:String}, concat('k/', toString(number % 1000000)), 'e', 10, 1, ['queued', 'running', 'success'][intDiv(number, 1000000) + 1], 2, 0, 10, '', 'r',
                     subtractHours(now64(3), 1) + intDiv(number, 1000000)
              FROM numbers(3000000)`,
      query_params: { ds: name },
    });
    const first = await get(name);
    expect(first.stats.files.success).toBe(1_000_000);
    expect(first.stats.rows).toBe(2_000_000);
    expect(first.stats).not.toHaveProperty('events');
    const newest = async () => {
      const res = await c.request('GET', `/v1/datasources/${name}/files?limit=1`);
      expect(res.status, JSON.stringify(res.body)).toBe(200);
      return res.body.items[0].key as string;
    };
    const newestBefore = await newest();
    expect(newestBefore).toMatch(/^k\/\d+$/);
    // The list's page of data sources (here the one) has the same counters.
    const listed = async () => {
      const res = await c.request('GET', `/v1/datasources?prefix=${name}&limit=10`);
      expect(res.status, JSON.stringify(res.body)).toBe(200);
      return (res.body.items as Array<{ name: string; stats: { files: { success: number } } }>).find((i) => i.name === name)?.stats.files.success ?? null;
    };
    expect(await eventually(`${name} listed`, listed, 30_000)).toBe(1_000_000);
    // The reuse window (statsReuseMs: 6 s for 3M events) runs from each read's answer: once the reads
    // above have expired, read all three afresh, so the window starts here and not at the first read,
    // however long the reads above took on a busy machine.
    await new Promise((r) => setTimeout(r, statsReuseMs(3_000_000) + 500));
    expect([(await get(name)).stats.files.success, await newest(), await listed()]).toEqual([1_000_000, newestBefore, 1_000_000]);
    // One more file lands in the ledger behind the API's back: the next reads reuse the counters and the page.
    const more = new Ledger(client, (await processDestination()).database);
    await more.record([{ datasource: name, key: 'k/extra', etag: 'e', size: 10, attempt: 1, status: 'success', rows: 2, bytes: 10 }]);
    expect((await get(name)).stats.files.success).toBe(1_000_000);
    expect(await newest()).toBe(newestBefore);
    expect(await listed()).toBe(1_000_000);
    // A sync asked through the API drops them: the next reads see the new file.
    expect((await c.request('POST', `/v1/datasources/${name}/sync`)).status).toBe(202);
    expect((await get(name)).stats.files.success).toBe(1_000_001);
    expect(await newest()).toBe('k/extra');
    expect(await listed()).toBe(1_000_001);
    await client.command({ query: `DELETE FROM ${LEDGER_TABLE} WHERE datasource = {ds:String}`, query_params: { ds: name } });
  });
});
