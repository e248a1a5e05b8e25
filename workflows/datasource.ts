import {
  ActivityCancellationType,
  ActivityFailure,
  ApplicationFailure,
  CancellationScope,
  condition,
  continueAsNew,
  isCancellation,
  log,
  proxyActivities,
  setHandler,
  upsertMemo,
  upsertSearchAttributes,
  workflowInfo,
  allHandlersFinished,
} from '@temporalio/workflow';
import type { Activities, FileRef } from '../activities/index.js';
// A string constant, not code: the workflow bundle must not pull in activity modules.
const SCHEMA_CHANGED = 'schema_changed';
import type { ColumnSpec, DataSourceSpec } from '../schemas/datasource.js';
import { nextRunAt, parseSchedule } from './schedule.js';
import {
  deleteUpdate,
  pauseUpdate,
  resumeUpdate,
  retryUpdate,
  statusQuery,
  syncSignal,
  updateSpecUpdate,
  type Counters,
  type DataSourceState,
  type DeleteRequest,
  type RetryRequest,
  type RunSummary,
  type StatusView,
  type SyncRequest,
  type SchemaChange,
  MAX_NOTIFIED_KEYS,
} from './messages.js';

/** Files per discovery batch: keeps each batch's history and payloads small. */
export const BATCH_SIZE = 200;

// One proxy per timeout profile.
const { importFile } = proxyActivities<Activities>({
  startToCloseTimeout: '6 hours',
  // Imports heartbeat every few seconds; a worker that dies is noticed this
  // fast and the file is retried elsewhere (its insert deduplicates).
  heartbeatTimeout: '20 seconds',
  cancellationType: ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
  retry: { initialInterval: '2 seconds', backoffCoefficient: 2, maximumInterval: '2 minutes', maximumAttempts: 5 },
});
const { discoverFiles, prepareDataSource, filesToRetry } = proxyActivities<Activities>({
  startToCloseTimeout: '30 minutes',
  heartbeatTimeout: '2 minutes',
  retry: { initialInterval: '1 second', backoffCoefficient: 2, maximumInterval: '30 seconds', maximumAttempts: 3 },
});
const { recordFileStatus, recordRun, dropDataSource, evolveSchema } = proxyActivities<Activities>({
  startToCloseTimeout: '5 minutes',
  retry: { initialInterval: '1 second', maximumInterval: '30 seconds', maximumAttempts: 10 },
});

/** The small state a run hands to the next one through continue-as-new. */
export interface CarriedState {
  columns: ColumnSpec[] | null;
  inferredFrom: string | null;
  prepared: boolean;
  paused: boolean;
  marker: string | null;
  /** Tracked mode: where the current sweep of the bucket has got to (null = start a new sweep). */
  cursor: string | null;
  counters: Counters;
  lastRun: RunSummary | null;
  lastRunAt: string | null;
  error: string | null;
  syncRequested: boolean;
  backlog: boolean;
  retry: RetryRequest | null;
  /** Keys from event notifications waiting to be imported (bounded by MAX_NOTIFIED_KEYS). */
  notified: string[];
  /** The last schema changes (bounded). */
  schemaChanges: SchemaChange[];
  nextRunAtMs: number | null;
  seq: number;
}

export interface DataSourceInput {
  spec: DataSourceSpec;
  /** Upsert the DataSource/DataSourceState search attributes (they must be registered on the namespace). */
  searchAttributes?: boolean;
  /**
   * Continue as new after this many sync runs even if Temporal does not suggest
   * it yet (0 = only when suggested). Bounds history per run; tests use it.
   */
  runsPerExecution?: number;
  state?: CarriedState;
}

const emptyCounters = (): Counters => ({ runs: 0, filesImported: 0, filesFailed: 0, rows: 0, quarantinedRows: 0, bytes: 0 });

function failureMessage(err: unknown): string {
  if (err instanceof ActivityFailure && err.cause) return err.cause.message;
  return err instanceof Error ? err.message : String(err);
}

function isNonRetryableFailure(err: unknown): boolean {
  return err instanceof ActivityFailure && err.cause instanceof ApplicationFailure && err.cause.nonRetryable === true;
}

/** The entity workflow of one data source: `datasource:<name>`. */
export async function dataSource(input: DataSourceInput): Promise<StatusView> {
  let spec = input.spec;
  const s: CarriedState = input.state ?? {
    columns: spec.columns ?? null,
    inferredFrom: null,
    prepared: false,
    paused: false,
    marker: null,
    cursor: null,
    counters: emptyCounters(),
    lastRun: null,
    lastRunAt: null,
    error: null,
    syncRequested: false,
    backlog: false,
    retry: null,
    notified: [],
    schemaChanges: [],
    nextRunAtMs: null,
    seq: 0,
  };
  s.notified ??= [];
  s.schemaChanges ??= [];
  s.cursor ??= null;
  let state: DataSourceState = s.paused ? 'paused' : 'idle';
  // Assigned by handlers; typed loosely so control-flow narrowing does not assume it stays null.
  let deleteRequest = null as DeleteRequest | null;
  let deleted = false;
  let pendingSpec = null as DataSourceSpec | null;
  let importScope: CancellationScope | null = null;
  const inFlight = new Map<string, string>();

  const setState = (next: DataSourceState) => {
    if (next === state) return;
    state = next;
    if (input.searchAttributes) upsertSearchAttributes({ DataSourceState: [next] });
  };
  const view = (): StatusView => ({
    state,
    lastRunAt: s.lastRunAt,
    nextRunAt: s.paused || s.nextRunAtMs === null ? null : new Date(s.nextRunAtMs).toISOString(),
    error: s.error,
    backlog: s.backlog,
    inFlight: [...inFlight].map(([key, startedAt]) => ({ key, startedAt })),
    counters: s.counters,
    lastRun: s.lastRun,
    columns: s.columns,
    inferredFrom: s.inferredFrom,
    schemaChanges: s.schemaChanges,
    spec: pendingSpec ?? spec,
  });

  // Handlers first, so no message that arrives with the first task is lost.
  setHandler(statusQuery, view);
  setHandler(syncSignal, (req?: SyncRequest) => {
    if (req?.keys?.length && !s.syncRequested) {
      const merged = [...new Set([...s.notified, ...req.keys])];
      if (merged.length <= MAX_NOTIFIED_KEYS) {
        s.notified = merged;
        return;
      }
    }
    // A plain sync (or too many keys to hold): list the bucket.
    s.notified = [];
    s.syncRequested = true;
  });
  setHandler(
    pauseUpdate,
    () => {
      s.paused = true;
      importScope?.cancel();
      setState('paused');
      return view();
    },
    { validator: () => { if (deleteRequest) throw new Error('data source is being deleted'); } },
  );
  setHandler(
    resumeUpdate,
    () => {
      if (s.paused) {
        s.paused = false;
        // A fresh sweep: files left queued behind the listing position are found again now.
        s.cursor = null;
        // Pick up where it stopped: files cancelled or left queued are imported now.
        s.syncRequested = true;
        setState('idle');
      }
      return view();
    },
    { validator: () => { if (deleteRequest) throw new Error('data source is being deleted'); } },
  );
  setHandler(
    updateSpecUpdate,
    ({ spec: next }) => {
      pendingSpec = next;
      return view();
    },
    {
      validator: ({ spec: next, force }) => {
        if (deleteRequest) throw new Error('data source is being deleted');
        if (next.name !== spec.name) throw new Error('name cannot change');
        const moved = next.bucketUri !== spec.bucketUri || next.format !== spec.format;
        if (moved && s.counters.filesImported > 0 && !force) {
          throw new Error('changing bucketUri or format of a data source that has imported files needs force: true');
        }
        if (next.table !== spec.table && s.counters.filesImported > 0 && !force) {
          throw new Error('changing table of a data source that has imported files needs force: true');
        }
      },
    },
  );
  setHandler(
    retryUpdate,
    (req) => {
      const all = (r: RetryRequest | null) => r !== null && !r.keys?.length;
      // "Every failed file" absorbs any list of keys, before or after it.
      if (all(req) || all(s.retry)) s.retry = {};
      else s.retry = { keys: [...new Set([...(s.retry?.keys ?? []), ...(req.keys ?? [])])] };
      return { accepted: true } as const;
    },
    {
      validator: (req) => {
        if (deleteRequest) throw new Error('data source is being deleted');
        if (req.keys && req.keys.length > 1000) throw new Error('retry at most 1000 keys at once (omit keys to retry every failed file)');
      },
    },
  );
  setHandler(
    deleteUpdate,
    async (req: DeleteRequest): Promise<StatusView> => {
      deleteRequest = req;
      importScope?.cancel();
      setState('deleting');
      await condition(() => deleted);
      return view();
    },
    { validator: (_req: DeleteRequest) => { if (deleteRequest) throw new Error('delete is already in progress'); } },
  );

  const wake = () => s.syncRequested || s.notified.length > 0 || s.retry !== null || deleteRequest !== null || pendingSpec !== null;

  async function prepare(): Promise<boolean> {
    try {
      const res = await prepareDataSource({ dataSource: spec.name, spec: { ...spec, columns: s.columns ?? spec.columns } });
      if (!res.columns) {
        s.error = 'waiting for a first file to infer the schema from (or declare columns)';
        return false;
      }
      s.columns = res.columns;
      s.inferredFrom = res.inferredFrom ?? s.inferredFrom;
      s.prepared = true;
      s.error = null;
      if (state === 'error') setState('idle');
      return true;
    } catch (err) {
      s.error = `preparing the table failed: ${failureMessage(err)}`;
      setState('error');
      return false;
    }
  }

  async function importAll(files: FileRef[], run: RunSummary, mayEvolve = true): Promise<void> {
    const queue = [...files];
    const columns = s.columns!;
    const evolve = mayEvolve && !spec.columns;
    const changed: Array<{ file: FileRef; add: ColumnSpec[] }> = [];
    const one = async () => {
      while (queue.length && !s.paused && !deleteRequest) {
        const file = queue.shift()!;
        inFlight.set(file.key, new Date().toISOString());
        try {
          const r = await importFile({ dataSource: spec.name, spec, columns, file, runId: run.runId, evolve });
          run.filesImported++;
          run.rows += r.rows;
          run.bytes += r.bytes;
          s.counters.filesImported++;
          s.counters.rows += r.rows;
          s.counters.quarantinedRows += r.quarantinedRows;
          s.counters.bytes += r.bytes;
        } catch (err) {
          if (isCancellation(err)) continue; // the activity recorded 'cancelled'
          if (err instanceof ActivityFailure && err.cause instanceof ApplicationFailure && err.cause.type === SCHEMA_CHANGED) {
            changed.push({ file, add: (err.cause.details?.[0] as ColumnSpec[]) ?? [] });
            continue;
          }
          run.filesFailed++;
          s.counters.filesFailed++;
          if (!isNonRetryableFailure(err)) {
            // Retries ran out: the activity's last word was pending_retry.
            await CancellationScope.nonCancellable(() =>
              recordFileStatus({ dataSource: spec.name, files: [file], status: 'failure', error: failureMessage(err), runId: run.runId }),
            );
          }
          log.warn('file failed', { key: file.key, error: failureMessage(err) });
        } finally {
          inFlight.delete(file.key);
        }
      }
    };
    importScope = new CancellationScope();
    try {
      await importScope.run(() => Promise.all(Array.from({ length: Math.min(spec.limits.concurrency, files.length) }, one)));
    } catch (err) {
      if (!isCancellation(err)) throw err;
    } finally {
      importScope = null;
    }
    if (queue.length && s.paused) {
      await recordFileStatus({ dataSource: spec.name, files: queue, status: 'paused', runId: run.runId });
    }
    if (changed.length && !s.paused && !deleteRequest) {
      // Newer files brought columns: extend the table (between imports, never
      // under one), rebuild the import path, then import those files. Once:
      // a file that still does not fit is imported with the columns there are.
      const add = changed.flatMap((c) => c.add).filter((c, i, all) => all.findIndex((x) => x.name === c.name) === i);
      s.columns = await evolveSchema({ dataSource: spec.name, spec, columns: s.columns!, add });
      s.schemaChanges = [...s.schemaChanges, { at: new Date().toISOString(), file: changed[0]!.file.key, added: add.map((c) => c.name) }].slice(-20);
      s.prepared = false;
      if (await prepare()) await importAll(changed.map((c) => c.file), run, false);
    }
  }

  async function syncRun(trigger: RunSummary['trigger']): Promise<void> {
    s.seq++;
    const run: RunSummary = {
      runId: `${workflowInfo().workflowId}/${s.seq}`,
      trigger,
      startedAt: new Date().toISOString(),
      finishedAt: null,
      filesFound: 0,
      filesImported: 0,
      filesFailed: 0,
      rows: 0,
      bytes: 0,
    };
    s.lastRun = run;
    setState('syncing');
    try {
      if (s.retry) {
        const req = s.retry;
        s.retry = null;
        const files = await filesToRetry({ dataSource: spec.name, spec, keys: req.keys });
        run.filesFound += files.length;
        await importAll(files, run);
      }
      if (trigger === 'notify') {
        const keys = s.notified;
        s.notified = [];
        const files = await filesToRetry({ dataSource: spec.name, spec, keys, onlyUnsettled: true });
        run.filesFound += files.length;
        await importAll(files, run);
        return;
      }
      const cap = spec.limits.maxFilesPerRun > 0 && trigger !== 'sync' ? spec.limits.maxFilesPerRun : Infinity;
      let more = true;
      while (more && !s.paused && !deleteRequest && run.filesFound < cap) {
        const limit = Math.min(BATCH_SIZE, cap - run.filesFound);
        const startAfter = (spec.mode === 'ordered' ? s.marker : s.cursor) ?? undefined;
        const batch = await discoverFiles({ dataSource: spec.name, spec, runId: run.runId, limit, startAfter });
        run.filesFound += batch.files.length;
        // Tracked: continue this sweep after the batch; a finished sweep starts over next time,
        // which is how files named earlier than everything imported are still found.
        if (spec.mode === 'tracked') s.cursor = batch.more ? batch.cursor : null;
        await importAll(batch.files, run);
        if (spec.mode === 'ordered' && batch.files.length) {
          const last = batch.files.map((f) => f.key).sort().pop()!;
          if (!s.marker || last > s.marker) s.marker = last;
        }
        more = batch.more;
        s.backlog = more;
        // Keep history small: hand the rest of the backlog to the next run.
        if (workflowInfo().continueAsNewSuggested) break;
      }
      s.error = null;
    } catch (err) {
      // A failed run must not chain into another one at once: the next attempt waits for the schedule.
      s.backlog = false;
      if (!isCancellation(err)) {
        s.error = failureMessage(err);
        log.warn('sync failed', { error: s.error });
      }
    } finally {
      run.finishedAt = new Date().toISOString();
      s.lastRunAt = run.finishedAt;
      s.counters.runs++;
      await CancellationScope.nonCancellable(() =>
        recordRun({
          datasource: spec.name,
          run_id: run.runId,
          trigger: run.trigger,
          started_at: run.startedAt.replace('T', ' ').replace('Z', ''),
          finished_at: run.finishedAt!.replace('T', ' ').replace('Z', ''),
          files_found: run.filesFound,
          files_imported: run.filesImported,
          files_failed: run.filesFailed,
          rows: run.rows,
          bytes: run.bytes,
        }),
      ).catch(() => undefined);
      setState(deleteRequest ? 'deleting' : s.paused ? 'paused' : s.error ? 'error' : 'idle');
    }
  }

  if (input.searchAttributes) upsertSearchAttributes({ DataSource: [spec.name], DataSourceState: [state] });
  let runsThisExecution = 0;
  let eagerPrepare = true;

  for (;;) {
    if (pendingSpec) {
      if (pendingSpec.bucketUri !== spec.bucketUri || pendingSpec.mode !== spec.mode) {
        // A new place or mode: listing positions of the old one mean nothing there.
        s.marker = null;
        s.cursor = null;
      }
      if (pendingSpec.table !== spec.table && s.prepared) {
        // The old table stays (with its rows); its landing table and views go, so nothing feeds it any more.
        await dropDataSource({ dataSource: spec.name, spec, dropTable: false, dropLedger: false });
      }
      spec = pendingSpec;
      pendingSpec = null;
      s.columns = spec.columns ?? s.columns;
      s.prepared = false;
      s.nextRunAtMs = null;
      upsertMemo({ spec });
    }
    if (deleteRequest) break;
    // Prepare eagerly, so the table exists as soon as the data source does;
    // not again right after a run-time attempt just failed.
    if (!s.prepared && !s.paused && eagerPrepare) await prepare();
    eagerPrepare = true;

    const schedule = parseSchedule(spec.schedule);
    if (s.nextRunAtMs === null) s.nextRunAtMs = nextRunAt(schedule, Date.now());
    let trigger: RunSummary['trigger'] = 'schedule';
    if (s.backlog && !s.paused && s.prepared) {
      trigger = 'backlog';
    } else {
      const waitMs = s.paused || s.nextRunAtMs === null ? undefined : Math.max(0, s.nextRunAtMs - Date.now());
      const ready = () => (wake() && !s.paused) || deleteRequest !== null || pendingSpec !== null;
      const woke = waitMs === undefined ? (await condition(ready), true) : await condition(ready, waitMs);
      if (deleteRequest || pendingSpec) continue;
      if (woke) trigger = s.retry ? 'retry' : s.syncRequested ? 'sync' : 'notify';
      else s.nextRunAtMs = null; // the tick fired; schedule the next one after this run
    }
    s.syncRequested = false;
    if (!s.prepared && !(await prepare())) {
      eagerPrepare = false;
      // Nothing can be imported until the table is ready: drop pending triggers
      // (the listing safety net finds notified files later) so the loop waits.
      s.notified = [];
      s.retry = null;
      s.backlog = false;
      s.nextRunAtMs = null;
      continue;
    }
    await syncRun(trigger);
    runsThisExecution++;
    if (s.nextRunAtMs !== null && s.nextRunAtMs <= Date.now()) s.nextRunAtMs = null;

    const runsCap = input.runsPerExecution ?? 0;
    if (workflowInfo().continueAsNewSuggested || (runsCap > 0 && runsThisExecution >= runsCap)) {
      await condition(allHandlersFinished);
      if (!deleteRequest && !pendingSpec) {
        return continueAsNew<typeof dataSource>({ ...input, spec, state: s });
      }
    }
  }

  // Delete: nothing is in flight any more (the scope was cancelled).
  setState('deleting');
  const req = deleteRequest!;
  await dropDataSource({ dataSource: spec.name, spec, dropTable: req.dropTable, dropLedger: req.dropLedger });
  deleted = true;
  await condition(allHandlersFinished);
  return view();
}
