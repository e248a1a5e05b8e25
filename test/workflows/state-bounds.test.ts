/**
 * How much the `dataSource` workflow holds and hands to each activity when it
 * is asked to retry or import very many keys: the real Temporal dev server
 * (from test/support/global-setup.ts) with mocked activities.
 */
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import { Client, Connection } from '@temporalio/client';
import { DefaultLogger, NativeConnection, Runtime, Worker } from '@temporalio/worker';
import type { Activities, FileRef, ImportInput, PrepareInput, RecordStatusInput } from '../../activities/index.js';
import type { ColumnSpec } from '../../schemas/datasource.js';
import { dataSourceSpecSchema, normalizeSpec } from '../../schemas/datasource.js';
import { BATCH_SIZE, type dataSource } from '../../workflows/datasource.js';
import { MAX_RETRY_KEYS_PER_REQUEST, WORKFLOW_TYPE, pauseUpdate, resumeUpdate, retryUpdate, statusQuery, workflowIdFor } from '../../workflows/messages.js';
import { closeConnection, openConnection } from '../../temporal/client.js';

type RetryInput = Parameters<Activities['filesToRetry']>[0];

const hex = () => randomBytes(5).toString('hex');
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

async function until<T>(what: string, check: () => T | Promise<T>, timeoutMs = 60_000): Promise<NonNullable<T>> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await check();
    if (v) return v as NonNullable<T>;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(100);
  }
}

const ref = (key: string): FileRef => ({ key, etag: `e-${key}`, size: 10, lastModified: '2024-01-01T00:00:00.000Z' });

/** Activities that serve a fixed set of failed files and of existing objects, and record what they are asked. */
function makeFakes(failedKeys: string[], existing: string[]) {
  const failed = new Set(failedKeys);
  const exists = new Set([...existing, ...failedKeys]);
  const calls = { retry: [] as RetryInput[], imported: [] as string[], status: [] as RecordStatusInput[] };
  const activities = {
    async prepareDataSource(input: PrepareInput) {
      return { columns: input.spec.columns ?? null, inferredFrom: null };
    },
    async discoverFiles() {
      return { files: [], more: false, cursor: null, listed: 0 };
    },
    async listNewFiles() {
      return { files: [], more: false, cursor: null, listed: 0 };
    },
    async importFile(input: ImportInput) {
      calls.imported.push(input.file.key);
      failed.delete(input.file.key);
      return { rows: 1, quarantinedRows: 0, bytes: 10 };
    },
    async recordFileStatus(input: RecordStatusInput) {
      calls.status.push(input);
    },
    async recordRun() {},
    async filesToRetry(input: RetryInput) {
      calls.retry.push(input);
      // Like the real activity: named keys at their current version; without keys, a page of failures in key order.
      if (input.keys?.length) return input.keys.filter((k) => exists.has(k) && (!input.onlyUnsettled || !calls.imported.includes(k))).map(ref);
      return [...failed].sort().filter((k) => input.after === undefined || k > input.after).slice(0, input.limit ?? 10_000).map(ref);
    },
    // Batches are declined: every file goes the single-file way these fakes model.
    async importBatch(input: Parameters<Activities['importBatch']>[0]) {
      return { files: [], split: input.files };
    },
    async dropDataSource() {},
    async filesToReimport() {
      return { files: [], next: null };
    },
    async evolveSchema(input: { columns: ColumnSpec[] }) {
      return input.columns;
    },
  } satisfies Activities;
  return { calls, activities };
}

describe('bounded workflow state (real Temporal dev server, mocked activities)', () => {
  let connection: Connection;
  let client: Client;

  beforeAll(async () => {
    try {
      Runtime.install({ logger: new DefaultLogger('WARN') });
    } catch {
      // already installed in this process
    }
    connection = await openConnection({ address: inject('temporalAddress') });
    client = new Client({ connection });
  });
  afterAll(async () => {
    await (connection && closeConnection(connection));
  });

  async function withWorker<R>(activities: Activities, fn: (taskQueue: string) => Promise<R>): Promise<R> {
    const native = await NativeConnection.connect({ address: inject('temporalAddress') });
    try {
      const taskQueue = `bounds-${hex()}`;
      const worker = await Worker.create({ connection: native, taskQueue, workflowBundle: { codePath: inject('workflowBundlePath') }, activities });
      return await worker.runUntil(() => fn(taskQueue));
    } finally {
      await native.close();
    }
  }

  function start(taskQueue: string) {
    const spec = normalizeSpec(dataSourceSpecSchema.parse({
      name: `sb_${hex()}`, connection: 'local', bucketUri: 's3://bkt/p/*.csv', format: 'csv', schedule: '@on-demand', columns: [{ name: 'a', type: 'String' }],
    }));
    return client.workflow.start<typeof dataSource>(WORKFLOW_TYPE, { taskQueue, workflowId: workflowIdFor(spec.name), args: [{ spec, runsPerExecution: 1 }] });
  }

  /** Every execution of a workflow id, following continue-as-new. */
  async function histories(workflowId: string) {
    const out = [];
    for await (const e of client.workflow.list({ query: `WorkflowId = '${workflowId}'` })) out.push(await client.workflow.getHandle(workflowId, e.runId).fetchHistory());
    return out;
  }
  const payloadBytes = (p: { payloads?: Array<{ data?: Uint8Array | null }> | null } | null | undefined) => (p?.payloads ?? []).reduce((n, x) => n + (x.data?.length ?? 0), 0);

  it('100,000 retry keys become "every failed file", paged by key; no activity input holds more than a page', async () => {
    const failed = Array.from({ length: 450 }, (_, i) => `p/f${String(i).padStart(4, '0')}.csv`);
    const f = makeFakes(failed, []);
    await withWorker(f.activities, async (taskQueue) => {
      const handle = await start(taskQueue);
      await handle.executeUpdate(pauseUpdate);
      for (let r = 0; r < 100; r++) {
        const keys = Array.from({ length: MAX_RETRY_KEYS_PER_REQUEST }, (_, i) => `p/k${r * MAX_RETRY_KEYS_PER_REQUEST + i}.csv`);
        await handle.executeUpdate(retryUpdate, { args: [{ keys }] });
      }
      await handle.executeUpdate(resumeUpdate);
      await until('every failed file to be imported', () => f.calls.imported.length >= failed.length);
      await until('the run to finish', async () => (await handle.query(statusQuery)).state === 'idle');

      expect([...f.calls.imported].sort()).toEqual(failed);
      // Pages of the failures, each continuing after the last key of the one before.
      const pages = f.calls.retry.filter((c) => !c.keys?.length);
      expect(pages.map((c) => [c.after, c.limit])).toEqual([[undefined, BATCH_SIZE], [failed[199], BATCH_SIZE], [failed[399], BATCH_SIZE]]);
      for (const c of f.calls.retry) expect(c.keys?.length ?? 0).toBeLessThanOrEqual(BATCH_SIZE);

      // It continued as new after the run (visibility lists the new execution a moment later).
      const all = await until('the continued execution', async () => {
        const h = await histories(handle.workflowId);
        return h.length > 1 ? h : null;
      });
      for (const h of all) {
        for (const e of h.events ?? []) {
          if (e.activityTaskScheduledEventAttributes) expect(payloadBytes(e.activityTaskScheduledEventAttributes.input)).toBeLessThan(64 * 1024);
          // The state handed to the next run holds no key list.
          if (e.workflowExecutionContinuedAsNewEventAttributes) expect(payloadBytes(e.workflowExecutionContinuedAsNewEventAttributes.input)).toBeLessThan(16 * 1024);
          expect(e.workflowTaskFailedEventAttributes).toBeFalsy();
        }
      }
      await handle.terminate('test finished');
    });
  });

  it('a named retry of 600 keys is looked up 200 at a time; notified keys likewise, and too many fall back to a listing', async () => {
    const named = Array.from({ length: 600 }, (_, i) => `p/n${String(i).padStart(4, '0')}.csv`);
    const notified = Array.from({ length: 450 }, (_, i) => `p/new${String(i).padStart(4, '0')}.csv`);
    const f = makeFakes([], [...named, ...notified]);
    await withWorker(f.activities, async (taskQueue) => {
      const handle = await start(taskQueue);
      await handle.executeUpdate(retryUpdate, { args: [{ keys: named }] });
      await until('the named files', () => f.calls.imported.length >= named.length);
      expect(f.calls.retry.map((c) => c.keys?.length)).toEqual([200, 200, 200]);
      expect([...f.calls.imported].sort()).toEqual(named);

      // 450 notified keys: imported in lookups of at most 200.
      f.calls.retry.length = 0;
      await handle.signal('sync', { reason: 'notify', keys: notified });
      await until('the notified files', () => f.calls.imported.length >= named.length + notified.length);
      expect(f.calls.retry.map((c) => [c.keys?.length, c.onlyUnsettled])).toEqual([[200, true], [200, true], [50, true]]);

      // Over the bound (here by total length): no key list is kept, a listing runs instead.
      const long = Array.from({ length: 200 }, (_, i) => `p/${'x'.repeat(1000)}${i}.csv`);
      const before = f.calls.retry.length;
      await handle.signal('sync', { reason: 'notify', keys: long });
      await until('a sync run', async () => (await handle.query(statusQuery)).lastRun?.trigger === 'sync');
      expect(f.calls.retry.length).toBe(before);
      await handle.terminate('test finished');
    });
  });
});
