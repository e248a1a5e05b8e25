/**
 * The `dataSource` entity workflow against the real Temporal dev server (started
 * once by test/support/global-setup.ts), with MOCKED activities: plain async
 * functions that record their calls and serve files from an in-memory "bucket".
 * No S3, no chDB.
 *
 * The fake ledger mirrors the real one where the workflow depends on it:
 * `discoverFiles` returns only files not yet settled (success or failure), at
 * most `limit` of them, with `more` when others remain; a file becomes settled
 * when `importFile` succeeds, when it fails non-retryably (the real activity
 * records 'failure' itself), or when the workflow records 'failure'.
 */
import type { ColumnSpec } from '../../schemas/datasource.js';
import { afterAll, afterEach, beforeAll, describe, expect, inject, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import { Client, Connection, WorkflowUpdateFailedError, type WorkflowHandle, type WorkflowHandleWithFirstExecutionRunId } from '@temporalio/client';
import { CancelledFailure, Context } from '@temporalio/activity';
import { ApplicationFailure, type HistoryAndWorkflowId } from '@temporalio/common';
// The SDK's own protobuf classes (a dependency of @temporalio/client): the fixture is a History in its binary encoding.
import { temporal } from '@temporalio/proto';
import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DefaultLogger, NativeConnection, Runtime, Worker } from '@temporalio/worker';
import type { Activities, DiscoverInput, FileRef, ImportInput, PrepareInput, RecordStatusInput, ReimportPageInput } from '../../activities/index.js';
import { dataSourceSpecSchema, normalizeSpec, type DataSourceSpec, type DataSourceSpecInput } from '../../schemas/datasource.js';
import { BATCH_SIZE, type CarriedState, type DataSourceInput, type dataSource } from '../../workflows/datasource.js';
import {
  WORKFLOW_TYPE,
  deleteUpdate,
  pauseUpdate,
  resumeUpdate,
  retryUpdate,
  reimportUpdate,
  statusQuery,
  updateSpecUpdate,
  workflowIdFor,
  type StatusView,
} from '../../workflows/messages.js';
import { waitingOnNothing } from '../support/workflow-wait.js';
import { closeConnection, openConnection } from '../../temporal/client.js';

type DataSourceWorkflow = typeof dataSource;
type RunRecord = Parameters<Activities['recordRun']>[0];
type RetryInput = Parameters<Activities['filesToRetry']>[0];
type DropInput = Parameters<Activities['dropDataSource']>[0];

const hex = (bytes = 5) => randomBytes(bytes).toString('hex');
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Poll `check` until it returns something truthy; fail with `what` (and the last error) after the timeout. */
async function until<T>(what: string, check: () => T | Promise<T>, timeoutMs = 30_000, intervalMs = 100): Promise<NonNullable<T>> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await check();
      if (v) return v as NonNullable<T>;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last ? `: ${(last as Error).message}` : ''}`);
    await sleep(intervalMs);
  }
}

function makeSpec(overrides: Partial<DataSourceSpecInput> & { name: string }): DataSourceSpec {
  return normalizeSpec(
    dataSourceSpecSchema.parse({
      connection: 'local',
      bucketUri: 's3://bkt/p/*.csv',
      format: 'csv',
      schedule: '@on-demand',
      columns: [{ name: 'a', type: 'String' }],
      ...overrides,
    }),
  );
}

/** How many times each value occurs. */
function tally(values: string[]): Map<string, number> {
  const m = new Map<string, number>();
  for (const v of values) m.set(v, (m.get(v) ?? 0) + 1);
  return m;
}

function expectEachOnce(imported: string[], keys: string[]) {
  expect([...imported].sort()).toEqual([...keys].sort());
  expect([...tally(imported).values()].every((n) => n === 1)).toBe(true);
}

interface ImportCall {
  key: string;
  attempt: number;
  runId: string;
  spec: DataSourceSpec;
}

/** A gate an activity can wait on until the test opens it. */
function gate() {
  let open!: () => void;
  const opened = new Promise<void>((r) => (open = r));
  return { opened, open };
}

function makeFakes() {
  const bucket: FileRef[] = [];
  const settled = new Set<string>();
  const failed = new Set<string>();
  const calls = {
    prepare: [] as PrepareInput[],
    /** Every listing, through the activity or (`local`) the local activity of a tick between sweeps. */
    discover: [] as Array<DiscoverInput & { local?: boolean }>,
    importAttempts: [] as ImportCall[],
    /** Keys whose import succeeded, in order (duplicates would show a double import). */
    imported: [] as string[],
    status: [] as RecordStatusInput[],
    runs: [] as RunRecord[],
    retry: [] as RetryInput[],
    drop: [] as DropInput[],
    reimportPages: [] as ReimportPageInput[],
  };
  const hooks: {
    /** Runs inside importFile before it succeeds; throw to fail the attempt. */
    importFile?: (input: ImportInput, attempt: number) => void | Promise<void>;
    /** Runs inside discoverFiles before it answers. */
    discoverFiles?: (input: DiscoverInput) => void | Promise<void>;
  } = {};

  const add = (...keys: string[]) => {
    for (const key of keys) bucket.push({ key, etag: `etag-${key}`, size: 100, lastModified: '2024-01-01T00:00:00.000Z' });
  };

  /** Like the real listing: key order, after `startAfter`, unsettled only; `lastKey` is the last key listed. */
  const discover = async (input: DiscoverInput, local: boolean) => {
    calls.discover.push({ ...input, local });
    await hooks.discoverFiles?.(input);
    const listed = [...bucket].sort((a, b) => (a.key < b.key ? -1 : 1)).filter((f) => !input.startAfter || f.key > input.startAfter);
    if (input.peek) return { files: listed.slice(0, input.limit), more: listed.length > input.limit, cursor: null, listed: listed.length };
    const pending = listed.filter((f) => !settled.has(f.key));
    const files = pending.slice(0, input.limit);
    const more = pending.length > input.limit;
    return { files, more, cursor: more ? files[files.length - 1]!.key : null, listed: listed.length, lastKey: more ? null : listed.at(-1)?.key ?? null };
  };

  const activities = {
    async prepareDataSource(input: PrepareInput) {
      calls.prepare.push(input);
      // Undeclared columns are inferred from the first file, once there is one.
      const inferred = bucket.length ? [{ name: 'a', type: 'String' }] : null;
      return { columns: input.spec.columns ?? inferred, inferredFrom: input.spec.columns ? null : bucket[0]?.key ?? null };
    },
    async discoverFiles(input: DiscoverInput) {
      return discover(input, false);
    },
    async listNewFiles(input: DiscoverInput) {
      return discover(input, true);
    },
    async importFile(input: ImportInput) {
      const attempt = Context.current().info.attempt;
      calls.importAttempts.push({ key: input.file.key, attempt, runId: input.runId, spec: input.spec });
      try {
        await hooks.importFile?.(input, attempt);
      } catch (err) {
        // The real activity records 'failure' itself for a non-retryable error.
        if (err instanceof ApplicationFailure && err.nonRetryable) {
          settled.add(input.file.key);
          failed.add(input.file.key);
        }
        throw err;
      }
      settled.add(input.file.key);
      failed.delete(input.file.key);
      calls.imported.push(input.file.key);
      return { rows: 10, quarantinedRows: 0, bytes: 100 };
    },
    async recordFileStatus(input: RecordStatusInput) {
      calls.status.push(input);
      for (const f of input.files) {
        if (input.status === 'failure') {
          settled.add(f.key);
          failed.add(f.key);
        }
      }
    },
    async recordRun(run: RunRecord) {
      calls.runs.push(run);
    },
    async filesToRetry(input: RetryInput) {
      calls.retry.push(input);
      const keys = input.keys?.length ? new Set(input.keys) : failed;
      // Notified keys (onlyUnsettled) skip files already imported, like the real ledger check.
      const onlyUnsettled = 'onlyUnsettled' in input && input.onlyUnsettled === true;
      return bucket.filter((f) => keys.has(f.key) && !(onlyUnsettled && settled.has(f.key)));
    },
    // Batches are declined: every file goes the single-file way these fakes model.
    async importBatch(input: Parameters<Activities['importBatch']>[0]) {
      return { files: [], split: input.files };
    },
    async dropDataSource(input: DropInput) {
      calls.drop.push(input);
    },
    /** Like the real window lookup: key order after `after`, by last-modified time in [since, until). */
    async filesToReimport(input: ReimportPageInput) {
      calls.reimportPages.push(input);
      const inWindow = [...bucket]
        .sort((a, b) => (a.key < b.key ? -1 : 1))
        .filter((f) => (!input.after || f.key > input.after) && (!input.since || f.lastModified >= input.since) && (!input.until || f.lastModified < input.until));
      const files = inWindow.slice(0, input.limit);
      return { files, next: inWindow.length > input.limit ? files[files.length - 1]!.key : null };
    },
    async evolveSchema(input: { columns: ColumnSpec[]; add: ColumnSpec[] }) {
      return [...input.columns, ...input.add];
    },
  } satisfies Activities;

  return { bucket, settled, failed, calls, hooks, add, activities };
}
type Fakes = ReturnType<typeof makeFakes>;

describe('dataSource workflow (real Temporal dev server, mocked activities)', () => {
  let clientConnection: Connection;
  let client: Client;
  /** Workflows started by the current test: terminated (if still running) after it. */
  let started: string[] = [];
  let cleanups: Array<() => Promise<void>> = [];
  /** Histories of every execution these tests produced, replayed by the last test. */
  const histories: HistoryAndWorkflowId[] = [];
  /** Executions (workflowId, runId) whose histories to collect after the current test. */
  let extraRuns: Array<{ workflowId: string; runId: string }> = [];

  beforeAll(async () => {
    // Keep the output readable: worker lifecycle INFO lines are noise here. (Each
    // test file runs in its own process, so this is the first use of the Runtime.)
    try {
      Runtime.install({ logger: new DefaultLogger('WARN') });
    } catch {
      // already installed in this process
    }
    clientConnection = await openConnection({ address: inject('temporalAddress') });
    client = new Client({ connection: clientConnection });
  });

  afterEach(async () => {
    for (const workflowId of started) {
      const handle = client.workflow.getHandle(workflowId);
      try {
        const d = await handle.describe();
        if (d.status.name === 'RUNNING') await handle.terminate('test finished');
        histories.push({ workflowId, history: await handle.fetchHistory() });
      } catch {
        // never started or already gone: nothing to clean up or replay
      }
    }
    for (const { workflowId, runId } of extraRuns) {
      histories.push({ workflowId, history: await client.workflow.getHandle(workflowId, runId).fetchHistory() });
    }
    for (const c of cleanups.reverse()) await c();
    started = [];
    cleanups = [];
    extraRuns = [];
  });

  afterAll(async () => {
    await (clientConnection && closeConnection(clientConnection));
  });

  /** A worker on a fresh task queue with the fakes as activities, running while `fn` runs. */
  async function withWorker<R>(fakes: Fakes, fn: (taskQueue: string) => Promise<R>): Promise<R> {
    const connection = await NativeConnection.connect({ address: inject('temporalAddress') });
    cleanups.push(() => connection.close());
    const taskQueue = `dswf-${hex(8)}`;
    const worker = await Worker.create({
      connection,
      taskQueue,
      workflowBundle: { codePath: inject('workflowBundlePath') },
      activities: fakes.activities,
    });
    return worker.runUntil(() => fn(taskQueue));
  }

  async function startDataSource(
    taskQueue: string,
    overrides: Partial<DataSourceSpecInput> = {},
    input: Omit<DataSourceInput, 'spec'> = {},
  ): Promise<{ spec: DataSourceSpec; handle: WorkflowHandleWithFirstExecutionRunId<DataSourceWorkflow> }> {
    const spec = makeSpec({ name: `wf_${hex()}`, ...overrides });
    const workflowId = workflowIdFor(spec.name);
    started.push(workflowId);
    const handle = await client.workflow.start<DataSourceWorkflow>(WORKFLOW_TYPE, { taskQueue, workflowId, args: [{ spec, ...input }] });
    return { spec, handle };
  }

  const status = (handle: WorkflowHandle<DataSourceWorkflow>): Promise<StatusView> => handle.query(statusQuery);

  /**
   * The status once the workflow itself says run `runs` is over: the fake
   * `recordRun` is called before the workflow has processed its completion, so
   * a status read right after that call can still say `syncing`.
   */
  const statusAfterRun = (handle: WorkflowHandle<DataSourceWorkflow>, runs: number, state: StatusView['state'] = 'idle') =>
    until(`the workflow to report run ${runs} finished (${state})`, async () => {
      const v = await status(handle);
      return v.state === state && v.counters.runs === runs ? v : null;
    });

  /** Wait until the workflow can only move on an outside event (see waitingOnNothing). */
  const quiescent = (handle: WorkflowHandle<DataSourceWorkflow>) => until('the workflow to wait with nothing scheduled', () => waitingOnNothing(handle));

  it('runs on its own on an @every 1s schedule, and a later tick imports files queued later', async () => {
    const f = makeFakes();
    f.add('p/1.csv', 'p/2.csv');
    await withWorker(f, async (taskQueue) => {
      const { handle } = await startDataSource(taskQueue, { schedule: '@every 1s' });

      // The first tick imports both files (a recorded run); the ticks after it find nothing and record nothing.
      const s1 = await until('two idle ticks after the first run', async () => {
        const v = await status(handle);
        return v.state === 'idle' && v.polling!.idleTicks >= 2 ? v : null;
      });
      expect(f.calls.runs).toHaveLength(1);
      expect(f.calls.runs[0]).toMatchObject({ trigger: 'schedule', files_imported: 2 });
      expectEachOnce(f.calls.imported, ['p/1.csv', 'p/2.csv']);
      // Between ticks (a tick's own run clears nextRunAt until it ends), the next one is scheduled.
      expect(s1.nextRunAt).not.toBeNull();
      expect(s1.counters.runs).toBe(1);
      expect(s1.lastRun).toMatchObject({ trigger: 'schedule', filesImported: 2 });
      expect(s1.polling).toMatchObject({ intervalMs: 1000, adaptive: false, listsAfter: 'p/2.csv' });

      const runsBefore = f.calls.runs.length;
      f.add('p/3.csv', 'p/4.csv', 'p/5.csv');
      const run = await until('a later tick to import the new files', () => f.calls.runs.slice(runsBefore).find((r) => r.files_imported > 0));
      expect(run.trigger).toBe('schedule');
      await until('all five files imported', () => f.calls.imported.length === 5);
      expectEachOnce(f.calls.imported, ['p/1.csv', 'p/2.csv', 'p/3.csv', 'p/4.csv', 'p/5.csv']);
      // Every run has its own id: seq numbers are not reused across ticks.
      expect(new Set(f.calls.runs.map((r) => r.run_id)).size).toBe(f.calls.runs.length);

      const s2 = await until('the status to count the five files', async () => {
        const s = await status(handle);
        return s.counters.filesImported === 5 ? s : null;
      });
      expect(s2.counters).toMatchObject({ filesFailed: 0, rows: 50, bytes: 500 });
      expect(s2.counters.runs).toBe(2);
    });
  });

  it('@on-demand: does nothing until the "sync" signal, then runs exactly once', async () => {
    const f = makeFakes();
    f.add('p/a.csv', 'p/b.csv', 'p/c.csv');
    await withWorker(f, async (taskQueue) => {
      const { handle } = await startDataSource(taskQueue, { schedule: '@on-demand' });
      await until('the table to be prepared', () => f.calls.prepare.length === 1);
      // Prepared and asleep with no timer: without a signal nothing can happen any more.
      await quiescent(handle);
      expect(f.calls.discover).toHaveLength(0);
      expect(f.calls.runs).toHaveLength(0);
      const idle = await status(handle);
      expect(idle).toMatchObject({ state: 'idle', nextRunAt: null, lastRun: null });
      expect(idle.counters.runs).toBe(0);

      // By name, as `temporal workflow signal --name sync` sends it.
      await handle.signal('sync');
      await until('one run', () => f.calls.runs.length === 1);
      expect(f.calls.runs[0]).toMatchObject({ trigger: 'sync', files_found: 3, files_imported: 3, files_failed: 0 });
      expectEachOnce(f.calls.imported, ['p/a.csv', 'p/b.csv', 'p/c.csv']);

      const after = await statusAfterRun(handle, 1);
      // Asleep again with nothing scheduled: there is no second run to come.
      await quiescent(handle);
      expect(f.calls.runs).toHaveLength(1);
      expect(after.state).toBe('idle');
      expect(after.counters).toMatchObject({ runs: 1, filesImported: 3, rows: 30, bytes: 300 });
      expect(after.lastRun).toMatchObject({ trigger: 'sync', filesImported: 3 });
      expect(after.lastRun?.finishedAt).toBeTruthy();
      expect(f.calls.prepare).toHaveLength(1);
    });
  });

  it('an execution carried on from an earlier version prepares its import path once more; one from this version does not', async () => {
    const f = makeFakes();
    f.add('p/a.csv');
    const carried = (extra: Partial<CarriedState>): Omit<DataSourceInput, 'spec'> => ({
      state: {
        columns: [{ name: 'a', type: 'String' }], inferredFrom: null, prepared: true, paused: false, marker: null, cursor: null,
        counters: { runs: 0, filesImported: 0, filesFailed: 0, rows: 0, quarantinedRows: 0, bytes: 0 },
        lastRun: null, lastRunAt: null, error: null, syncRequested: false, backlog: false, retryKeys: [], retryAll: false, retryAfter: null,
        notified: [], schemaChanges: [], nextRunAtMs: null, seq: 0, ...extra,
      } satisfies CarriedState,
    });
    await withWorker(f, async (taskQueue) => {
      // State an earlier version carried into a new run: prepared, never checked.
      const older = await startDataSource(taskQueue, { schedule: '@on-demand' }, carried({}));
      await until('the import path to be prepared again', () => f.calls.prepare.length === 1);
      await older.handle.signal('sync');
      await statusAfterRun(older.handle, 1);
      expect(f.calls.imported).toEqual(['p/a.csv']);
      // Once: the sync did not prepare again.
      expect(f.calls.prepare).toHaveLength(1);
      expect(f.calls.prepare[0]!.spec.name).toBe((await status(older.handle)).spec.name);

      // This version's own state carried on: nothing to check.
      const current = await startDataSource(taskQueue, { schedule: '@on-demand' }, carried({ importPathChecked: true }));
      await current.handle.signal('sync');
      await statusAfterRun(current.handle, 1);
      expect(f.calls.prepare).toHaveLength(1);
    });
  });

  it(`drains a backlog of 450 files (batches of ${BATCH_SIZE}) in one sync, each file once`, async () => {
    const f = makeFakes();
    const keys = Array.from({ length: 450 }, (_, i) => `p/${String(i).padStart(4, '0')}.csv`);
    f.add(...keys);
    await withWorker(f, async (taskQueue) => {
      const { handle } = await startDataSource(taskQueue, { schedule: '@on-demand' });
      await handle.signal('sync');
      await until('all 450 files imported and the run recorded', () => f.calls.imported.length === 450 && f.calls.runs.length >= 1, 90_000);

      expectEachOnce(f.calls.imported, keys);
      expect(f.calls.discover.length).toBeGreaterThanOrEqual(3);
      expect(f.calls.discover.every((d) => d.limit <= BATCH_SIZE)).toBe(true);
      // One sweep of the bucket: each batch lists on from where the previous one stopped.
      expect(f.calls.discover.slice(0, 3).map((d) => d.startAfter)).toEqual([undefined, keys[BATCH_SIZE - 1], keys[2 * BATCH_SIZE - 1]]);
      // One sync, no tick: all batches belong to the same run.
      expect(new Set(f.calls.discover.map((d) => d.runId)).size).toBe(1);
      expect(new Set(f.calls.importAttempts.map((c) => c.runId))).toEqual(new Set([f.calls.discover[0]!.runId]));
      expect(f.calls.runs).toHaveLength(1);
      expect(f.calls.runs[0]).toMatchObject({ trigger: 'sync', files_found: 450, files_imported: 450, files_failed: 0 });

      const s = await statusAfterRun(handle, 1);
      expect(s.backlog).toBe(false);
      expect(s.counters).toMatchObject({ runs: 1, filesImported: 450, rows: 4500, bytes: 45_000 });
    });
  });

  it('continue-as-new (runsPerExecution: 1) carries counters, run numbering and the paused flag', async () => {
    const f = makeFakes();
    f.add('p/1.csv', 'p/2.csv', 'p/3.csv');
    await withWorker(f, async (taskQueue) => {
      const { spec, handle } = await startDataSource(taskQueue, { schedule: '@on-demand' }, { runsPerExecution: 1 });
      const workflowId = handle.workflowId;
      const latest = client.workflow.getHandle<DataSourceWorkflow>(workflowId);
      const run0 = handle.firstExecutionRunId;
      const newRunAfter = (prev: string) =>
        until(`an execution after ${prev}`, async () => {
          const d = await latest.describe();
          return d.runId !== prev && d.status.name === 'RUNNING' ? d.runId : null;
        });

      await handle.signal('sync');
      const run1 = await newRunAfter(run0);
      expect((await client.workflow.getHandle(workflowId, run0).describe()).status.name).toBe('CONTINUED_AS_NEW');
      expect((await status(latest)).counters).toMatchObject({ runs: 1, filesImported: 3 });

      f.add('p/4.csv', 'p/5.csv');
      await latest.signal('sync');
      const run2 = await newRunAfter(run1);
      const s2 = await status(latest);
      expect(s2.counters).toEqual({ runs: 2, filesImported: 5, filesFailed: 0, rows: 50, bytes: 500, quarantinedRows: 0 });
      expect(s2.state).toBe('idle');
      expect(s2.spec).toEqual(JSON.parse(JSON.stringify(spec)));
      // The run sequence continues across executions.
      expect(f.calls.runs.map((r) => r.run_id)).toEqual([`${workflowId}/1`, `${workflowId}/2`]);
      expectEachOnce(f.calls.imported, ['p/1.csv', 'p/2.csv', 'p/3.csv', 'p/4.csv', 'p/5.csv']);

      // Pause in the middle of run 3 (while discovery is in flight): the run ends
      // without importing, continues as new, and the new execution is still paused.
      f.add('p/6.csv', 'p/7.csv');
      const discovering = gate();
      const release = gate();
      f.hooks.discoverFiles = async () => {
        discovering.open();
        await release.opened;
      };
      try {
        await latest.signal('sync');
        await discovering.opened;
        const paused = await latest.executeUpdate(pauseUpdate);
        expect(paused.state).toBe('paused');
      } finally {
        release.open();
      }
      f.hooks.discoverFiles = undefined;
      const run3 = await newRunAfter(run2);
      const s3 = await status(latest);
      expect(s3.state).toBe('paused');
      expect(s3.nextRunAt).toBeNull();
      expect(s3.counters).toMatchObject({ runs: 3, filesImported: 5 });
      expect(f.calls.imported).toHaveLength(5);
      const pausedRecord = f.calls.status.find((c) => c.status === 'paused');
      expect(pausedRecord?.files.map((x) => x.key).sort()).toEqual(['p/6.csv', 'p/7.csv']);

      // Still paused in the new execution: a sync does nothing.
      await latest.signal('sync');
      // The signal is handled and the workflow is asleep again with nothing scheduled.
      await quiescent(latest);
      expect(f.calls.runs).toHaveLength(3);
      expect(f.calls.discover).toHaveLength(3);

      const resumed = await latest.executeUpdate(resumeUpdate);
      expect(resumed.state).toBe('idle');
      await until('the paused files to be imported', () => f.calls.imported.length === 7);
      const run4 = await newRunAfter(run3);
      const s4 = await status(latest);
      expect(s4.counters).toMatchObject({ runs: 4, filesImported: 7 });
      expectEachOnce(f.calls.imported, ['p/1.csv', 'p/2.csv', 'p/3.csv', 'p/4.csv', 'p/5.csv', 'p/6.csv', 'p/7.csv']);
      expect(new Set([run0, run1, run2, run3, run4]).size).toBe(5);
      extraRuns.push(...[run0, run1, run2, run3].map((runId) => ({ workflowId, runId })));
    });
  });

  it('pause and resume updates: a sync while paused imports nothing; resume imports the pending files', async () => {
    const f = makeFakes();
    f.add('p/x.csv', 'p/y.csv', 'p/z.csv');
    await withWorker(f, async (taskQueue) => {
      const { handle } = await startDataSource(taskQueue, { schedule: '@on-demand' });
      await until('the table to be prepared', () => f.calls.prepare.length === 1);

      const paused = await handle.executeUpdate(pauseUpdate);
      expect(paused.state).toBe('paused');
      expect(paused.nextRunAt).toBeNull();

      await handle.signal('sync');
      // The signal is handled and the workflow is asleep again with nothing scheduled.
      await quiescent(handle);
      expect(f.calls.discover).toHaveLength(0);
      expect(f.calls.importAttempts).toHaveLength(0);
      expect((await status(handle)).state).toBe('paused');

      // Pausing twice is harmless.
      expect((await handle.executeUpdate(pauseUpdate)).state).toBe('paused');

      const resumed = await handle.executeUpdate(resumeUpdate);
      expect(resumed.state).toBe('idle');
      await until('the pending files to be imported', () => f.calls.imported.length === 3 && f.calls.runs.length === 1);
      expectEachOnce(f.calls.imported, ['p/x.csv', 'p/y.csv', 'p/z.csv']);
      expect(f.calls.runs[0]!.trigger).toBe('sync');
      const s = await until('the run to finish', async () => {
        const v = await status(handle);
        return v.state === 'idle' && v.counters.runs === 1 ? v : null;
      });
      expect(s.counters.filesImported).toBe(3);
    });
  });

  it('a pause cancels the imports in flight and the workflow records them cancelled itself (an import no worker had started never could)', async () => {
    const f = makeFakes();
    f.add('p/a.csv', 'p/b.csv', 'p/c.csv');
    // Each import runs until it is cancelled, heartbeating so the cancellation reaches it.
    f.hooks.importFile = () =>
      new Promise<void>((_, reject) => {
        const ctx = Context.current();
        const beat = setInterval(() => ctx.heartbeat(), 100);
        ctx.cancellationSignal.addEventListener('abort', () => {
          clearInterval(beat);
          reject(new CancelledFailure('import cancelled'));
        }, { once: true });
      });
    await withWorker(f, async (taskQueue) => {
      const { handle } = await startDataSource(taskQueue, { schedule: '@on-demand' });
      await handle.signal('sync');
      await until('the three imports to be in flight', () => f.calls.importAttempts.length === 3);
      expect((await handle.executeUpdate(pauseUpdate)).state).toBe('paused');
      const recorded = await until('the cancelled imports to be recorded', () => f.calls.status.find((x) => x.status === 'cancelled'));
      expect(recorded.files.map((x) => x.key).sort()).toEqual(['p/a.csv', 'p/b.csv', 'p/c.csv']);
      await quiescent(handle);
      expect((await status(handle)).inFlight).toEqual([]);
    });
  });

  it('updateSpec: moving bucketUri after imports needs force; rejected updates change nothing', async () => {
    const f = makeFakes();
    f.add('p/1.csv', 'p/2.csv');
    await withWorker(f, async (taskQueue) => {
      const { spec, handle } = await startDataSource(taskQueue, { schedule: '@on-demand' });
      await handle.signal('sync');
      await until('the first run', () => f.calls.runs.length === 1);
      expect((await statusAfterRun(handle, 1)).counters.filesImported).toBe(2);

      const moved = makeSpec({ name: spec.name, schedule: '@on-demand', bucketUri: 's3://bkt/elsewhere/*.csv' });
      const rejected = await handle.executeUpdate(updateSpecUpdate, { args: [{ spec: moved }] }).catch((e: unknown) => e);
      expect(rejected).toBeInstanceOf(WorkflowUpdateFailedError);
      expect((rejected as WorkflowUpdateFailedError).cause?.message).toMatch(/force/);

      const renamed = makeSpec({ name: `${spec.name}_x`, schedule: '@on-demand' });
      await expect(handle.executeUpdate(updateSpecUpdate, { args: [{ spec: renamed, force: true }] })).rejects.toBeInstanceOf(WorkflowUpdateFailedError);

      const unchanged = await status(handle);
      expect(unchanged.spec).toEqual(JSON.parse(JSON.stringify(spec)));
      expect(unchanged.state).toBe('idle');
      const accepted = await handle.executeUpdate(updateSpecUpdate, { args: [{ spec: moved, force: true }] });
      expect(accepted.spec.bucketUri).toBe(moved.bucketUri);
      await until('the table to be prepared for the new spec', () => f.calls.prepare.at(-1)?.spec.bucketUri === moved.bucketUri);
      // No re-prepare after the rejected updates: the only prepare between the first and this one would show here.
      expect(f.calls.prepare.map((p) => p.spec.bucketUri)).toEqual([spec.bucketUri, moved.bucketUri]);

      f.add('elsewhere/3.csv');
      await handle.signal('sync');
      await until('the second run', () => f.calls.runs.length === 2);
      expect(f.calls.discover.at(-1)!.spec.bucketUri).toBe(moved.bucketUri);
      expect(f.calls.importAttempts.at(-1)).toMatchObject({ key: 'elsewhere/3.csv' });
      expect(f.calls.importAttempts.at(-1)!.spec.bucketUri).toBe(moved.bucketUri);
      const s = await statusAfterRun(handle, 2);
      expect(s.spec).toEqual(JSON.parse(JSON.stringify(moved)));
      expect(s.counters).toMatchObject({ runs: 2, filesImported: 3 });
    });
  });

  it('delete: drops with the requested flags and completes the workflow', async () => {
    const f = makeFakes();
    f.add('p/1.csv');
    await withWorker(f, async (taskQueue) => {
      const { spec, handle } = await startDataSource(taskQueue, { schedule: '@every 1s' });
      await until('a run and two idle ticks', async () => f.calls.runs.length >= 1 && (await status(handle)).polling!.idleTicks >= 2);

      const view = await handle.executeUpdate(deleteUpdate, { args: [{ dropTable: true, dropLedger: false }] });
      expect(view.state).toBe('deleting');
      expect(f.calls.drop).toHaveLength(1);
      expect(f.calls.drop[0]).toMatchObject({ dataSource: spec.name, dropTable: true, dropLedger: false });
      expect(f.calls.drop[0]!.spec.name).toBe(spec.name);

      const result = await handle.result();
      expect(result.state).toBe('deleting');
      expect((await handle.describe()).status.name).toBe('COMPLETED');
      // Nothing runs after the delete.
      expect(f.calls.runs.length).toBe(result.counters.runs);
    });
  });

  it('a non-retryable import failure counts the file as failed and leaves recording to the activity; retry imports it', async () => {
    const f = makeFakes();
    f.add('p/good1.csv', 'p/bad.csv', 'p/good2.csv');
    let broken = true;
    f.hooks.importFile = (input) => {
      if (broken && input.file.key === 'p/bad.csv') throw ApplicationFailure.nonRetryable('bad file', 'bad_file');
    };
    await withWorker(f, async (taskQueue) => {
      const { handle } = await startDataSource(taskQueue, { schedule: '@on-demand' });
      await handle.signal('sync');
      await until('the run', () => f.calls.runs.length === 1);

      expect(f.calls.runs[0]).toMatchObject({ trigger: 'sync', files_found: 3, files_imported: 2, files_failed: 1 });
      expectEachOnce(f.calls.imported, ['p/good1.csv', 'p/good2.csv']);
      expect(f.calls.importAttempts.filter((c) => c.key === 'p/bad.csv').map((c) => c.attempt)).toEqual([1]);
      expect(f.calls.status.filter((c) => c.status === 'failure')).toEqual([]);
      const s = await statusAfterRun(handle, 1);
      expect(s.counters).toMatchObject({ runs: 1, filesImported: 2, filesFailed: 1 });
      expect(s.state).toBe('idle');
      expect(s.error).toBeNull();

      // The file is fixed; "retry every failed file" imports it.
      broken = false;
      expect(await handle.executeUpdate(retryUpdate, { args: [{}] })).toEqual({ accepted: true });
      await until('the retry run', () => f.calls.runs.length === 2);
      expect(f.calls.retry).toHaveLength(1);
      expect(f.calls.retry[0]!.keys).toBeUndefined();
      expect(f.calls.runs[1]).toMatchObject({ trigger: 'retry', files_imported: 1, files_failed: 0 });
      expectEachOnce(f.calls.imported, ['p/good1.csv', 'p/good2.csv', 'p/bad.csv']);
      expect((await statusAfterRun(handle, 2)).counters).toMatchObject({ runs: 2, filesImported: 3, filesFailed: 1 });
    });
  });

  it('re-import: named keys or a last-modified window load again as a new generation; every attempt of one keeps its id; one request at a time', async () => {
    const f = makeFakes();
    const keys = ['p/a.csv', 'p/b.csv', 'p/c.csv'];
    f.add(...keys);
    const seen: Array<{ key: string; attempt: number; reimport?: ImportInput['reimport'] }> = [];
    f.hooks.importFile = (input, attempt) => {
      seen.push({ key: input.file.key, attempt, reimport: input.reimport });
      // The first attempt of generation 1 fails: its retry must carry the same generation and id.
      if (input.reimport?.generation === 1 && attempt === 1) throw ApplicationFailure.retryable('flaky', 'transient');
    };
    await withWorker(f, async (taskQueue) => {
      const { handle } = await startDataSource(taskQueue, { schedule: '@on-demand' });
      await handle.signal('sync');
      await until('the first run', () => f.calls.runs.length === 1);
      expect(seen.map((x) => [x.key, x.reimport]).sort()).toEqual(keys.map((k) => [k, undefined]));

      await expect(handle.executeUpdate(reimportUpdate, { args: [{}] })).rejects.toThrow(WorkflowUpdateFailedError);
      expect(await handle.executeUpdate(reimportUpdate, { args: [{ keys: ['p/b.csv'] }] })).toEqual({ accepted: true, generation: 1 });
      await until('the re-import run', () => f.calls.runs.length === 2);
      expect(f.calls.runs[1]).toMatchObject({ trigger: 'reimport', files_found: 1, files_imported: 1, files_failed: 0 });
      const gen1 = seen.filter((x) => x.reimport?.generation === 1);
      expect(gen1.map((x) => [x.key, x.attempt])).toEqual([['p/b.csv', 1], ['p/b.csv', 2]]);
      expect(gen1[0]!.reimport!.id).toBe(gen1[1]!.reimport!.id);

      // A window: the fakes' objects were all last modified on 2024-01-01.
      const window = { since: '2023-12-31T00:00:00Z', until: '2024-01-02T00:00:00Z' };
      expect(await handle.executeUpdate(reimportUpdate, { args: [window] })).toEqual({ accepted: true, generation: 2 });
      await until('the window run', () => f.calls.runs.length === 3);
      const gen2 = seen.filter((x) => x.reimport?.generation === 2);
      expect(gen2.map((x) => x.key).sort()).toEqual(keys);
      expect(new Set(gen2.map((x) => x.reimport!.id))).toEqual(new Set([gen2[0]!.reimport!.id]));
      expect(gen2[0]!.reimport!.id).not.toBe(gen1[0]!.reimport!.id);
      expect(f.calls.reimportPages[0]).toMatchObject(window);

      // Paused, a request waits; a second one is refused until it has run.
      await handle.executeUpdate(pauseUpdate);
      expect(await handle.executeUpdate(reimportUpdate, { args: [{ keys: ['p/c.csv'] }] })).toEqual({ accepted: true, generation: 3 });
      const refused = await handle.executeUpdate(reimportUpdate, { args: [{ keys: ['p/a.csv'] }] }).catch((e: unknown) => e);
      expect(refused).toBeInstanceOf(WorkflowUpdateFailedError);
      expect((refused as WorkflowUpdateFailedError).cause?.message).toMatch(/generation 3 is still in progress/);
      await handle.executeUpdate(resumeUpdate);
      await until('generation 3', () => seen.some((x) => x.reimport?.generation === 3));
      expect(seen.filter((x) => x.reimport?.generation === 3).map((x) => x.key)).toEqual(['p/c.csv']);
      expect(seen.some((x) => x.reimport?.generation === 4)).toBe(false);
    });
  });

  it('a retryable import failure is retried 5 times, then the workflow records it as failure (~30 s of backoff)', async () => {
    const f = makeFakes();
    f.add('p/ok.csv', 'p/flaky.csv');
    f.hooks.importFile = (input) => {
      if (input.file.key === 'p/flaky.csv') throw ApplicationFailure.retryable('connection reset', 'transient');
    };
    await withWorker(f, async (taskQueue) => {
      const { handle } = await startDataSource(taskQueue, { schedule: '@on-demand' });
      await handle.signal('sync');
      await until('the run to finish after the retries run out', () => f.calls.runs.length === 1, 90_000, 250);

      expect(f.calls.importAttempts.filter((c) => c.key === 'p/flaky.csv').map((c) => c.attempt)).toEqual([1, 2, 3, 4, 5]);
      const failures = f.calls.status.filter((c) => c.status === 'failure');
      expect(failures).toHaveLength(1);
      expect(failures[0]!.files.map((x) => x.key)).toEqual(['p/flaky.csv']);
      expect(failures[0]!.error).toMatch(/connection reset/);
      expect(failures[0]!.runId).toBe(f.calls.runs[0]!.run_id);
      expect(f.calls.runs[0]).toMatchObject({ files_imported: 1, files_failed: 1 });
      expectEachOnce(f.calls.imported, ['p/ok.csv']);
      expect((await statusAfterRun(handle, 1)).counters).toMatchObject({ runs: 1, filesImported: 1, filesFailed: 1 });
    });
  });

  /** History events per workflow task that handled a tick (from a TimerFired to the next TimerStarted). */
  async function tickWindows(handle: WorkflowHandle<DataSourceWorkflow>) {
    const { events } = await handle.fetchHistory();
    const windows: Array<{ events: number; activities: string[]; markers: number; upserts: number }> = [];
    let cur: (typeof windows)[number] | null = null;
    for (const e of events ?? []) {
      if (e.timerFiredEventAttributes) {
        cur = { events: 0, activities: [], markers: 0, upserts: 0 };
        windows.push(cur);
      }
      if (!cur) continue;
      cur.events++;
      if (e.activityTaskScheduledEventAttributes) cur.activities.push(e.activityTaskScheduledEventAttributes.activityType!.name!);
      if (e.markerRecordedEventAttributes) cur.markers++;
      if (e.upsertWorkflowSearchAttributesEventAttributes) cur.upserts++;
      if (e.timerStartedEventAttributes) cur = null;
    }
    return windows;
  }

  it('tracked: an idle tick is one local listing after the last key seen and records nothing; a sweep every sweepInterval finds a late file', async () => {
    const f = makeFakes();
    f.add('p/b.csv', 'p/c.csv');
    await withWorker(f, async (taskQueue) => {
      const { handle } = await startDataSource(taskQueue, { schedule: '@every 1s', sweepInterval: '6s' }, { searchAttributes: true });
      const idle = await until('three idle ticks after the first run', async () => {
        const v = await status(handle);
        return v.polling!.idleTicks >= 3 ? v : null;
      });
      expectEachOnce(f.calls.imported, ['p/b.csv', 'p/c.csv']);
      // The first run sweeps (nothing seen yet) through the activity; the idle ticks list after p/c.csv, locally.
      expect([f.calls.discover[0]!.startAfter, f.calls.discover[0]!.local]).toEqual([undefined, false]);
      const ticks = f.calls.discover.slice(1, 4);
      expect(ticks.map((d) => [d.startAfter, d.local])).toEqual(ticks.map(() => ['p/c.csv', true]));
      expect(f.calls.runs).toHaveLength(1);
      expect(idle.counters.runs).toBe(1);
      expect(idle.polling).toMatchObject({ listsAfter: 'p/c.csv', sweepIntervalMs: 6000, sweepDue: false });
      expect(idle.lastRun).toMatchObject({ filesImported: 2 });
      expect(idle.polling!.lastTickAt! >= idle.lastRunAt!).toBe(true);

      // An idle tick's workflow task: no activity, no search attribute change, one marker for the local listing.
      const windows = (await tickWindows(handle)).slice(1, -1).filter((w) => w.activities.length === 0);
      expect(windows.length).toBeGreaterThanOrEqual(2);
      for (const w of windows) expect(w).toMatchObject({ activities: [], upserts: 0, markers: 1 });
      console.log(`[polling] history events per idle tick: ${windows.map((w) => w.events).join(', ')}`);

      // A late file, named before everything seen: ticks between sweeps do not see it; the next sweep does.
      const mark = f.calls.discover.length;
      f.add('p/a.csv');
      await until('the late file to be imported and its run recorded', () => f.calls.imported.includes('p/a.csv') && f.calls.runs.length === 2, 30_000);
      const after = f.calls.discover.slice(mark);
      const found = after.findIndex((d) => d.startAfter === undefined);
      expect(found).toBeGreaterThanOrEqual(0);
      expect(after[found]!.local).toBe(false);
      expect(after.slice(0, found).every((d) => d.startAfter === 'p/c.csv' && d.local)).toBe(true);
      expect(f.calls.runs.at(-1)).toMatchObject({ trigger: 'schedule', files_found: 1, files_imported: 1 });
      // It found a late file: the next tick sweeps again, finds none, and ticks go back to listing after the last key.
      await until('two more listings', () => f.calls.discover.length >= mark + found + 3, 15_000);
      expect(f.calls.discover.slice(mark + found + 1, mark + found + 3).map((d) => [d.startAfter, d.local])).toEqual([[undefined, false], ['p/c.csv', true]]);
      expectEachOnce(f.calls.imported, ['p/a.csv', 'p/b.csv', 'p/c.csv']);
      const s = await status(handle);
      expect(s.polling!.lastSweepAt).not.toBeNull();
      expect(Date.parse(s.polling!.nextSweepAt!) - Date.parse(s.polling!.lastSweepAt!)).toBe(6000);
    });
  });

  it('a changed since or startAfter makes the next scheduled tick sweep the whole prefix instead of listing after the last key', async () => {
    const f = makeFakes();
    f.add('p/1.csv');
    await withWorker(f, async (taskQueue) => {
      const { spec, handle } = await startDataSource(taskQueue, { schedule: '@every 1s', sweepInterval: '1h' });
      await until('two idle ticks', async () => (await status(handle)).polling!.idleTicks >= 2);
      // Between sweeps a tick lists after the last key seen.
      expect(f.calls.discover.slice(1, 3).map((d) => [d.startAfter, d.local])).toEqual([['p/1.csv', true], ['p/1.csv', true]]);
      for (const change of [{ since: '2024-01-01T00:00:00Z' }, { startAfter: 'p/0' }]) {
        const before = f.calls.discover.length;
        await handle.executeUpdate(updateSpecUpdate, { args: [{ spec: { ...spec, ...change } }] });
        expect((await status(handle)).polling!.sweepDue).toBe(true);
        await until('the next tick', () => f.calls.discover.length > before);
        expect([f.calls.discover[before]!.startAfter, f.calls.discover[before]!.local, f.calls.discover[before]!.spec]).toEqual([undefined, false, expect.objectContaining(change)]);
        await until('ticks after the last key again', () => f.calls.discover.slice(before + 1).some((d) => d.startAfter === 'p/1.csv' && d.local));
      }
    });
  });

  it('an explicit sync sweeps; a resume sweeps; ordered mode ticks list after the marker locally', async () => {
    const f = makeFakes();
    f.add('p/1.csv');
    await withWorker(f, async (taskQueue) => {
      const { handle } = await startDataSource(taskQueue, { schedule: '@every 1s', mode: 'ordered' });
      await until('two idle ticks', async () => (await status(handle)).polling!.idleTicks >= 2);
      expect(f.calls.discover.slice(1, 3).map((d) => [d.startAfter, d.local])).toEqual([['p/1.csv', true], ['p/1.csv', true]]);
      expect(f.calls.runs).toHaveLength(1);
    });
    const g = makeFakes();
    g.add('p/1.csv', 'p/2.csv');
    await withWorker(g, async (taskQueue) => {
      const { handle } = await startDataSource(taskQueue, { schedule: '@on-demand' });
      await handle.signal('sync');
      await statusAfterRun(handle, 1);
      await handle.signal('sync');
      await statusAfterRun(handle, 2);
      await handle.executeUpdate(pauseUpdate);
      await handle.executeUpdate(resumeUpdate);
      await statusAfterRun(handle, 3);
      // Every one of them lists the whole prefix through the activity (no local listing off the schedule).
      expect(g.calls.discover.map((d) => [d.startAfter, d.local])).toEqual([[undefined, false], [undefined, false], [undefined, false]]);
      // Syncs are recorded even when they find nothing: the API's run history shows what a user asked for.
      expect(g.calls.runs.map((r) => [r.trigger, r.files_found])).toEqual([['sync', 2], ['sync', 0], ['sync', 0]]);
    });
  });

  it('waiting for a first file to infer columns from: idle ticks only look at the prefix, without preparing', async () => {
    const f = makeFakes();
    await withWorker(f, async (taskQueue) => {
      const { handle } = await startDataSource(taskQueue, { schedule: '@every 1s', columns: undefined });
      await until('three idle ticks', async () => (await status(handle)).polling!.idleTicks >= 3);
      // One prepare at creation; the ticks peek with a local listing (no ledger) instead of preparing again.
      expect(f.calls.prepare).toHaveLength(1);
      expect(f.calls.discover.length).toBeGreaterThanOrEqual(3);
      expect(f.calls.discover.every((d) => d.peek && d.local && d.limit === 1)).toBe(true);
      expect((await status(handle)).error).toMatch(/waiting for a first file/);
      f.add('p/first.csv');
      await until('the first file to be imported', () => f.calls.imported.includes('p/first.csv'));
      expect(f.calls.prepare).toHaveLength(2);
      expect((await statusAfterRun(handle, 1)).columns).toEqual([{ name: 'a', type: 'String' }]);
    });
  });

  it('adaptive @auto: the interval doubles with idle ticks in a row (capped); a sync or a notification brings it back to one minute', async () => {
    const f = makeFakes();
    f.add('p/1.csv');
    const carried = (idleTicks: number): Omit<DataSourceInput, 'spec'> => ({
      state: {
        columns: [{ name: 'a', type: 'String' }], inferredFrom: null, prepared: true, paused: false, marker: null, cursor: null,
        counters: { runs: 0, filesImported: 0, filesFailed: 0, rows: 0, quarantinedRows: 0, bytes: 0 },
        lastRun: null, lastRunAt: null, error: null, syncRequested: false, backlog: false, retryKeys: [], retryAll: false, retryAfter: null,
        notified: [], schemaChanges: [], nextRunAtMs: null, seq: 0, idleTicks, tailKey: null,
      } satisfies CarriedState,
    });
    /** The status once the workflow has scheduled its next tick. */
    const scheduled = (h: WorkflowHandle<DataSourceWorkflow>) => until('the next tick to be scheduled', async () => {
      const v = await status(h);
      return v.nextRunAt ? v : null;
    });
    const near = (iso: string | null, ms: number) => {
      const d = Date.parse(iso!) - Date.now();
      return d > ms - 20_000 && d <= ms;
    };
    await withWorker(f, async (taskQueue) => {
      const over: Partial<DataSourceSpecInput> = { schedule: '@auto', maxIdleInterval: '15m' };
      const { handle } = await startDataSource(taskQueue, over, carried(3));
      const backedOff = await scheduled(handle);
      expect(backedOff.polling).toMatchObject({ adaptive: true, intervalMs: 8 * 60_000, maxIntervalMs: 15 * 60_000, idleTicks: 3 });
      expect(near(backedOff.nextRunAt, 8 * 60_000)).toBe(true);
      await handle.signal('sync');
      const reset = await statusAfterRun(handle, 1);
      expect(reset.polling).toMatchObject({ adaptive: true, intervalMs: 60_000, idleTicks: 0 });
      expect(near(reset.nextRunAt, 60_000)).toBe(true);

      // Far past the cap: 15 minutes; a notification resets it too.
      const second = await startDataSource(taskQueue, over, carried(40));
      const capped = await scheduled(second.handle);
      expect(capped.polling).toMatchObject({ intervalMs: 15 * 60_000 });
      expect(near(capped.nextRunAt, 15 * 60_000)).toBe(true);
      await second.handle.signal('sync', { reason: 'notify', keys: ['p/1.csv'] });
      const notified = await statusAfterRun(second.handle, 1);
      expect(notified.lastRun).toMatchObject({ trigger: 'notify' });
      expect(notified.polling).toMatchObject({ intervalMs: 60_000, idleTicks: 0 });
      expect(near(notified.nextRunAt, 60_000)).toBe(true);

      // Without maxIdleInterval @auto stays at one minute whatever the idle ticks.
      const fixed = await startDataSource(taskQueue, { schedule: '@auto' }, carried(5));
      const v = await scheduled(fixed.handle);
      expect(v.polling).toMatchObject({ adaptive: false, intervalMs: 60_000, maxIntervalMs: null });
      expect(near(v.nextRunAt, 60_000)).toBe(true);
    });
  });

  it('replays an execution started before lean idle ticks and carried on by this version', async () => {
    // Recorded on the dev server: the data source ran @every 1s under the previous workflow code (every
    // tick an activity listing, a recorded run and two search attribute changes: 19 events), then this
    // version's worker took it over mid-flight (idle ticks: 6 events, a local listing's marker) and
    // imported a file that arrived after the upgrade.
    const bytes = await readFile(new URL('../fixtures/histories/datasource-upgrade-idle-ticks.binpb', import.meta.url));
    const history = temporal.api.history.v1.History.decode(bytes);
    const events = history.events ?? [];
    const scheduled = events.flatMap((e) => (e.activityTaskScheduledEventAttributes ? [e.activityTaskScheduledEventAttributes.activityType!.name!] : []));
    // Both halves are there: activity listings before the upgrade, the patch marker and local listings after it.
    expect(scheduled.filter((n) => n === 'discoverFiles').length).toBeGreaterThanOrEqual(3);
    expect(events.filter((e) => e.markerRecordedEventAttributes?.markerName === 'core_patch').length).toBe(1);
    expect(events.filter((e) => e.markerRecordedEventAttributes?.markerName === 'core_local_activity').length).toBeGreaterThanOrEqual(3);
    expect(events.some((e) => e.workflowTaskFailedEventAttributes)).toBe(false);
    await expect(Worker.runReplayHistory({ workflowBundle: { codePath: inject('workflowBundlePath') } }, history, 'datasource:upgraded')).resolves.toBeUndefined();
  });

  it('replays an execution whose patch markers the previous version recorded mid-history, carried on by this version', async () => {
    // Recorded on the dev server: @every 1s with declared columns under the previous workflow code,
    // which asked for its patches where it branched (the import-batches marker after the first
    // listing), then carried on by this version's worker (two new files, idle ticks, pause, resume,
    // a third file, delete). This version asks for every patch before its first command; an
    // execution like this one has no marker there, and must still find each where it was recorded.
    const bytes = await readFile(new URL('../fixtures/histories/datasource-upgrade-patch-markers.binpb', import.meta.url));
    const history = temporal.api.history.v1.History.decode(bytes);
    const events = history.events ?? [];
    const kinds = events.flatMap((e) => (e.activityTaskScheduledEventAttributes ? [e.activityTaskScheduledEventAttributes.activityType!.name!] : e.markerRecordedEventAttributes ? [e.markerRecordedEventAttributes.markerName!] : []));
    // The markers sit after the first prepare and the first listing, not before the first command.
    expect(kinds.slice(0, 4)).toEqual(['prepareDataSource', 'core_patch', 'discoverFiles', 'core_patch']);
    expect(kinds.filter((k) => k === 'importFile')).toHaveLength(5);
    expect(kinds.at(-1)).toBe('dropDataSource');
    await expect(Worker.runReplayHistory({ workflowBundle: { codePath: inject('workflowBundlePath') } }, history, 'datasource:upgraded_batches')).resolves.toBeUndefined();
  });

  // Last: replays every history the tests above produced, plus one that mixes
  // ticks, pause/resume, a spec change, a failure, a retry and a delete.
  it('replays its histories deterministically', async () => {
    const f = makeFakes();
    f.add('p/1.csv', 'p/2.csv', 'p/bad.csv');
    f.hooks.importFile = (input) => {
      if (input.file.key === 'p/bad.csv') throw ApplicationFailure.nonRetryable('bad file', 'bad_file');
    };
    let workflowId = '';
    await withWorker(f, async (taskQueue) => {
      const { spec, handle } = await startDataSource(taskQueue, { schedule: '@every 1s' });
      workflowId = handle.workflowId;
      await until('a run and two idle ticks', async () => f.calls.runs.length >= 1 && (await status(handle)).polling!.idleTicks >= 2);
      await handle.executeUpdate(pauseUpdate);
      await handle.executeUpdate(updateSpecUpdate, { args: [{ spec: { ...spec, schedule: '@every 2s' } }] });
      f.add('p/3.csv');
      await handle.executeUpdate(resumeUpdate);
      await until('the new file', () => f.calls.imported.includes('p/3.csv'));
      await handle.executeUpdate(retryUpdate, { args: [{ keys: ['p/bad.csv'] }] });
      await until('the retry run', () => f.calls.runs.some((r) => r.trigger === 'retry'));
      await handle.executeUpdate(deleteUpdate, { args: [{ dropTable: false, dropLedger: true }] });
      await handle.result();
      expect(f.calls.drop).toEqual([expect.objectContaining({ dropTable: false, dropLedger: true })]);

      const history = await handle.fetchHistory();
      await expect(Worker.runReplayHistory({ workflowBundle: { codePath: inject('workflowBundlePath') } }, history, workflowId)).resolves.toBeUndefined();
    });

    for (const { workflowId: id, history } of histories) {
      try {
        await Worker.runReplayHistory({ workflowBundle: { codePath: inject('workflowBundlePath') } }, history, id);
      } catch (err) {
        // Keep the history that did not replay: it is the only way to see what the workflow did.
        const dir = await mkdtemp(join(tmpdir(), 's3ch-replay-'));
        const file = join(dir, `${id.replace(/[^A-Za-z0-9_-]/g, '_')}.binpb`);
        await writeFile(file, temporal.api.history.v1.History.encode(history as temporal.api.history.v1.IHistory).finish());
        throw new Error(`${id} did not replay (history saved to ${file}): ${(err as Error).message}`, { cause: err });
      }
    }
  });
});
