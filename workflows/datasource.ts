import {
  ActivityCancellationType,
  ActivityFailure,
  ApplicationFailure,
  CancellationScope,
  condition,
  continueAsNew,
  isCancellation,
  log,
  patched,
  proxyActivities,
  proxyLocalActivities,
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
import { nextRunAt, parseSchedule } from '../schemas/schedule.js';
import { planBatches } from '../schemas/import-batches.js';
import { compareKeys } from '../schemas/key-order.js';
import { AUTO_INTERVAL_MS, adaptiveIntervalMs, maxIdleIntervalMs, sweepIntervalMs } from '../schemas/polling.js';
import {
  deleteUpdate,
  pauseUpdate,
  resumeUpdate,
  retryUpdate,
  reimportUpdate,
  statusQuery,
  syncSignal,
  updateSpecUpdate,
  type Counters,
  type DataSourceState,
  type DeleteRequest,
  type RetryRequest,
  type PendingReimport,
  type RunSummary,
  type PollingView,
  type StatusView,
  type SyncRequest,
  type SchemaChange,
  MAX_NOTIFIED_KEYS,
  MAX_PENDING_RETRY_KEYS,
  MAX_RETRY_KEYS_PER_REQUEST,
  MAX_REIMPORT_KEYS_PER_REQUEST,
  withinKeyBounds,
} from './messages.js';

/** Files per discovery batch: keeps each batch's history and payloads small. */
export const BATCH_SIZE = 200;

// One proxy per timeout profile.
const { importFile, importBatch } = proxyActivities<Activities>({
  startToCloseTimeout: '6 hours',
  // Imports heartbeat every few seconds; a worker that dies is noticed this
  // fast and the file is retried elsewhere (its insert deduplicates).
  heartbeatTimeout: '20 seconds',
  cancellationType: ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
  retry: { initialInterval: '2 seconds', backoffCoefficient: 2, maximumInterval: '2 minutes', maximumAttempts: 5 },
});
const { discoverFiles, prepareDataSource, filesToRetry, filesToReimport } = proxyActivities<Activities>({
  startToCloseTimeout: '30 minutes',
  heartbeatTimeout: '2 minutes',
  retry: { initialInterval: '1 second', backoffCoefficient: 2, maximumInterval: '30 seconds', maximumAttempts: 3 },
});
const { recordFileStatus, recordRun, dropDataSource, evolveSchema } = proxyActivities<Activities>({
  startToCloseTimeout: '5 minutes',
  retry: { initialInterval: '1 second', maximumInterval: '30 seconds', maximumAttempts: 10 },
});
// The first listing of a scheduled tick between sweeps: expected to be one LIST call that finds
// nothing, so it runs in the workflow task (one marker event instead of an activity's three).
const { listNewFiles } = proxyLocalActivities<Activities>({
  startToCloseTimeout: '1 minute',
  retry: { initialInterval: '1 second', backoffCoefficient: 2, maximumInterval: '30 seconds', maximumAttempts: 3 },
});

/**
 * Executions started before this change list with an activity on every tick,
 * record every run and report `syncing` while they list; the patch keeps their
 * histories replaying. From it on, a scheduled tick that finds nothing lists
 * with a local activity, writes nothing and leaves the state alone.
 */
export const LEAN_TICKS_PATCH = 'lean-idle-ticks';

/** From this change on, small files are imported many to an activity (executions started before keep one per file). */
export const IMPORT_BATCHES_PATCH = 'import-batches';
/** Imports cancelled before they started are recorded 'cancelled' by the workflow (they never ran to do it). */
export const RECORD_CANCELLED_PATCH = 'record-cancelled-imports';
/**
 * An execution whose import path an earlier version built prepares once
 * more (prepare rebuilds only a path that differs from this version's): such
 * a path could read columns named `c1`, `c2`... into the wrong column and
 * left column DEFAULTs unapplied.
 */
export const RECHECK_IMPORT_PATH_PATCH = 'recheck-import-path';
/** The ordered marker compares keys as S3 does (UTF-8 bytes); executions before it compared UTF-16 units. */
export const UTF8_KEY_ORDER_PATCH = 'utf8-key-order';

/** Set by prepare when no file exists yet to infer columns from. */
const WAITING_FOR_FIRST_FILE = 'waiting for a first file to infer the schema from (or declare columns)';

/** The small state a run hands to the next one through continue-as-new. */
export interface CarriedState {
  columns: ColumnSpec[] | null;
  inferredFrom: string | null;
  prepared: boolean;
  paused: boolean;
  marker: string | null;
  /** Tracked mode: where the current listing pass has got to (null = start a new pass). */
  cursor: string | null;
  /** Tracked mode: the last key a listing has seen; ticks between sweeps list after it. */
  tailKey?: string | null;
  /** Tracked mode: the sweep (a listing of the whole prefix) in progress, if the current pass is one. */
  sweep?: { startedAtMs: number; tail: string | null; late: number } | null;
  /** Tracked mode: the next pass must be a sweep (resume, failed run, late files seen). */
  sweepDue?: boolean;
  lastSweepAtMs?: number | null;
  /** Scheduled ticks in a row that found nothing (drives the adaptive @auto interval). */
  idleTicks?: number;
  lastTickAt?: string | null;
  counters: Counters;
  lastRun: RunSummary | null;
  lastRunAt: string | null;
  error: string | null;
  syncRequested: boolean;
  backlog: boolean;
  /** Named files waiting to be imported again (bounded: MAX_PENDING_RETRY_KEYS, MAX_PENDING_KEY_CHARS). */
  retryKeys: string[];
  /** "Retry every failed file" is pending; it works through the ledger's failures in key order. */
  retryAll: boolean;
  /** With retryAll: the last key already handled (null = from the first). */
  retryAfter: string | null;
  /** Carried by runs of an older version of this workflow; read once and cleared. */
  retry?: RetryRequest | null;
  /** The deliberate re-import in progress (one at a time; its keys bounded like retry keys). */
  reimport?: PendingReimport | null;
  /** The last re-import generation handed out. */
  generation?: number;
  /** Keys from event notifications waiting to be imported (bounded by MAX_NOTIFIED_KEYS). */
  notified: string[];
  /** The last schema changes (bounded). */
  schemaChanges: SchemaChange[];
  nextRunAtMs: number | null;
  seq: number;
  /** The import path was prepared by this version (or checked against it): see RECHECK_IMPORT_PATH_PATCH. */
  importPathChecked?: boolean;
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
  // Every patch this code knows is asked here, before the first command: a new
  // execution records all of their markers first thing in its first task, so
  // no marker ever sits between other commands, where a replay must reproduce
  // exactly the same interleaving (a local activity resolving, a timer, an
  // update) to find it. The answers are remembered; the checks where the code
  // branches return them. An execution started by an older version has no
  // marker here: a replay answers false without remembering it, and the
  // check at the branch finds its marker where that version recorded it.
  for (const id of [LEAN_TICKS_PATCH, IMPORT_BATCHES_PATCH, RECORD_CANCELLED_PATCH, RECHECK_IMPORT_PATH_PATCH, UTF8_KEY_ORDER_PATCH]) patched(id);
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
    retryKeys: [],
    retryAll: false,
    retryAfter: null,
    notified: [],
    schemaChanges: [],
    nextRunAtMs: null,
    seq: 0,
  };
  s.notified ??= [];
  s.schemaChanges ??= [];
  s.cursor ??= null;
  s.tailKey ??= null;
  s.sweep ??= null;
  s.sweepDue ??= false;
  s.lastSweepAtMs ??= null;
  s.idleTicks ??= 0;
  s.lastTickAt ??= null;
  s.retryKeys ??= s.retry?.keys ?? [];
  s.retryAll ??= s.retry != null && !s.retry.keys?.length;
  s.retryAfter ??= null;
  s.reimport ??= null;
  s.generation ??= 0;
  delete s.retry;
  let state: DataSourceState = s.paused ? 'paused' : 'idle';
  // Assigned by handlers; typed loosely so control-flow narrowing does not assume it stays null.
  let deleteRequest = null as DeleteRequest | null;
  let deleted = false;
  let pendingSpec = null as DataSourceSpec | null;
  let importScope: CancellationScope | null = null;
  const inFlight = new Map<string, string>();
  // Bumped by every "retry every failed file" request: a page being looked up when one arrives must not move its position.
  let retryAllEpoch = 0;

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
    polling: pollingView(),
  });
  const pollingView = (): PollingView => {
    const current = pendingSpec ?? spec;
    const maxIdle = maxIdleIntervalMs(current);
    const schedule = parseSchedule(current.schedule);
    const intervalMs = maxIdle !== null ? adaptiveIntervalMs(s.idleTicks!, maxIdle) : schedule.kind === 'auto' ? AUTO_INTERVAL_MS : schedule.kind === 'every' ? schedule.ms : null;
    const tracked = current.mode === 'tracked';
    const sweepMs = tracked ? sweepIntervalMs(current) : null;
    return {
      intervalMs,
      adaptive: maxIdle !== null,
      maxIntervalMs: maxIdle,
      idleTicks: s.idleTicks!,
      lastTickAt: s.lastTickAt!,
      sweepIntervalMs: sweepMs,
      lastSweepAt: tracked && s.lastSweepAtMs !== null ? new Date(s.lastSweepAtMs!).toISOString() : null,
      sweepDue: tracked && (s.sweepDue! || s.lastSweepAtMs === null),
      // The first tick from this time on sweeps (sooner when sweepDue).
      nextSweepAt: tracked && s.lastSweepAtMs !== null ? new Date(s.lastSweepAtMs! + sweepMs!).toISOString() : null,
      listsAfter: tracked ? s.tailKey! : null,
    };
  };

  // Handlers first, so no message that arrives with the first task is lost.
  setHandler(statusQuery, view);
  setHandler(syncSignal, (req?: SyncRequest) => {
    if (req?.keys?.length && !s.syncRequested) {
      const merged = [...new Set([...s.notified, ...req.keys])];
      if (withinKeyBounds(merged, MAX_NOTIFIED_KEYS)) {
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
        s.sweep = null;
        s.sweepDue = true;
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
      // "Every failed file" absorbs any list of keys, before or after it, and
      // starts from the first failure again (files that failed since are included).
      const startAll = () => {
        s.retryKeys = [];
        s.retryAll = true;
        s.retryAfter = null;
        retryAllEpoch++;
      };
      if (!req.keys?.length) {
        startAll();
      } else if (!s.retryAll) {
        const merged = [...new Set([...s.retryKeys, ...req.keys])];
        // Too many to carry in the workflow's state: every failed file instead. A
        // named file that has not failed is then left to the listing (tracked mode
        // finds anything unsettled; a settled one holds its rows already).
        if (withinKeyBounds(merged, MAX_PENDING_RETRY_KEYS)) s.retryKeys = merged;
        else startAll();
      }
      return { accepted: true } as const;
    },
    {
      validator: (req) => {
        if (deleteRequest) throw new Error('data source is being deleted');
        if (req.keys && req.keys.length > MAX_RETRY_KEYS_PER_REQUEST) {
          throw new Error(`retry at most ${MAX_RETRY_KEYS_PER_REQUEST} keys at once (omit keys to retry every failed file)`);
        }
      },
    },
  );
  setHandler(
    reimportUpdate,
    (req) => {
      s.generation! += 1;
      const generation = s.generation!;
      // The first run id of the chain makes the token unique even if a data source of the same
      // name is created again (its generations restart) while the table keeps its deduplication log.
      s.reimport = {
        generation,
        id: `${workflowInfo().firstExecutionRunId}/${generation}`,
        keys: [...new Set(req.keys ?? [])],
        window: req.keys?.length ? null : { since: req.since, until: req.until, after: null },
      };
      return { accepted: true, generation } as const;
    },
    {
      validator: (req) => {
        if (deleteRequest) throw new Error('data source is being deleted');
        if (s.reimport) throw new Error(`re-import generation ${s.reimport.generation} is still in progress; send this one when it has finished`);
        const keys = req.keys ?? [];
        if (keys.length > MAX_REIMPORT_KEYS_PER_REQUEST) throw new Error(`re-import at most ${MAX_REIMPORT_KEYS_PER_REQUEST} keys at once (or a since/until window)`);
        if (!withinKeyBounds(keys, MAX_PENDING_RETRY_KEYS)) throw new Error('the keys are too long to hold; send fewer at once');
        if (keys.length && (req.since !== undefined || req.until !== undefined)) throw new Error('re-import either keys or a since/until window, not both');
        if (!keys.length && req.since === undefined && req.until === undefined) throw new Error('re-import needs keys or a since/until window');
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

  const retryPending = () => s.retryKeys.length > 0 || s.retryAll;
  const wake = () => s.syncRequested || s.notified.length > 0 || retryPending() || s.reimport !== null || deleteRequest !== null || pendingSpec !== null;

  async function prepare(): Promise<boolean> {
    try {
      const res = await prepareDataSource({ dataSource: spec.name, spec: { ...spec, columns: s.columns ?? spec.columns } });
      if (!res.columns) {
        s.error = WAITING_FOR_FIRST_FILE;
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

  /**
   * Import files with bounded concurrency; returns the keys that ended settled
   * (imported, or failed for good). Files stopped by a pause or a delete are not.
   */
  async function importAll(files: FileRef[], run: RunSummary, mayEvolve = true, reimport?: Pick<PendingReimport, 'generation' | 'id'>): Promise<Set<string>> {
    const settled = new Set<string>();
    /** Imports stopped by the scope's cancellation (pause, delete). */
    const cancelled: FileRef[] = [];
    const queue = [...files];
    const columns = s.columns!;
    const evolve = mayEvolve && !spec.columns;
    const changed: Array<{ file: FileRef; add: ColumnSpec[] }> = [];
    // Small files go many to an activity and an insert (schemas/import-batches.ts); a schema that
    // may grow (checked file by file) and a re-import (a token per file and generation) keep one per file.
    const batches: FileRef[][] = [];
    if (!evolve && !reimport && patched(IMPORT_BATCHES_PATCH)) {
      const plan = planBatches(spec, files, spec.limits.concurrency);
      batches.push(...plan.batches);
      queue.splice(0, queue.length, ...plan.singles);
    }
    /** One file imported: the run's and the data source's counters. */
    const countImported = (r: { rows: number; bytes: number; quarantinedRows: number }) => {
      run.filesImported++;
      run.rows += r.rows;
      run.bytes += r.bytes;
      s.counters.filesImported++;
      s.counters.rows += r.rows;
      s.counters.quarantinedRows += r.quarantinedRows;
      s.counters.bytes += r.bytes;
    };
    const runBatch = async (batch: FileRef[]) => {
      const started = new Date().toISOString();
      for (const f of batch) inFlight.set(f.key, started);
      try {
        const r = await importBatch({ dataSource: spec.name, spec, columns, files: batch, runId: run.runId });
        for (const f of r.files) {
          settled.add(f.key);
          countImported(f);
        }
        // A file problem failed the batch before it committed anything: its files go one by one,
        // each with its own retries and status, so the bad one holds no other back.
        if (r.split.length) {
          queue.unshift(...r.split);
          log.info('batch split into single-file imports', { files: r.split.length, reason: r.splitReason });
        }
      } catch (err) {
        if (isCancellation(err)) {
          cancelled.push(...batch);
          return;
        }
        // Retries ran out: each file as a batch of one, which checks whether its rows are in before it splits.
        if (batch.length > 1) batches.unshift(...batch.map((f) => [f]));
        else queue.unshift(...batch);
      } finally {
        for (const f of batch) inFlight.delete(f.key);
      }
    };
    const one = async () => {
      while ((batches.length || queue.length) && !s.paused && !deleteRequest) {
        const batch = batches.shift();
        if (batch) {
          await runBatch(batch);
          continue;
        }
        const file = queue.shift()!;
        inFlight.set(file.key, new Date().toISOString());
        try {
          const r = await importFile({ dataSource: spec.name, spec, columns, file, runId: run.runId, evolve, ...(reimport ? { reimport: { generation: reimport.generation, id: reimport.id } } : {}) });
          settled.add(file.key);
          countImported(r);
        } catch (err) {
          if (isCancellation(err)) {
            cancelled.push(file);
            continue;
          }
          if (err instanceof ActivityFailure && err.cause instanceof ApplicationFailure && err.cause.type === SCHEMA_CHANGED) {
            changed.push({ file, add: (err.cause.details?.[0] as ColumnSpec[]) ?? [] });
            continue;
          }
          settled.add(file.key);
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
    // An import cancelled before a worker started it never ran, so it never recorded its own
    // 'cancelled' and its file would show 'queued' for good: say it here. For one that did run,
    // this is the same status once more.
    if (cancelled.length && patched(RECORD_CANCELLED_PATCH)) {
      await CancellationScope.nonCancellable(() =>
        recordFileStatus({ dataSource: spec.name, files: cancelled, status: 'cancelled', error: 'cancelled', runId: run.runId }),
      );
    }
    if ((queue.length || batches.length) && s.paused) {
      await recordFileStatus({ dataSource: spec.name, files: [...batches.flat(), ...queue], status: 'paused', runId: run.runId });
    }
    if (changed.length && !s.paused && !deleteRequest) {
      // Newer files brought columns: extend the table (between imports, never
      // under one), rebuild the import path, then import those files. Once:
      // a file that still does not fit is imported with the columns there are.
      const add = changed.flatMap((c) => c.add).filter((c, i, all) => all.findIndex((x) => x.name === c.name) === i);
      s.columns = await evolveSchema({ dataSource: spec.name, spec, columns: s.columns!, add });
      s.schemaChanges = [...s.schemaChanges, { at: new Date().toISOString(), file: changed[0]!.file.key, added: add.map((c) => c.name) }].slice(-20);
      s.prepared = false;
      if (await prepare()) for (const key of await importAll(changed.map((c) => c.file), run, false, reimport)) settled.add(key);
    }
    return settled;
  }

  /**
   * Import named files in chunks of BATCH_SIZE and then every failed file a
   * page at a time, so no activity input or result holds thousands of keys.
   * Stops early on a pause, a delete or a history that should continue as
   * new; what is left stays pending for the next run.
   */
  async function retryFiles(run: RunSummary): Promise<void> {
    while (retryPending() && !s.paused && !deleteRequest) {
      let files: FileRef[];
      if (s.retryKeys.length) {
        const keys = s.retryKeys.slice(0, BATCH_SIZE);
        s.retryKeys = s.retryKeys.slice(BATCH_SIZE);
        files = await filesToRetry({ dataSource: spec.name, spec, keys });
      } else {
        const epoch = retryAllEpoch;
        const after = s.retryAfter ?? undefined;
        files = await filesToRetry({ dataSource: spec.name, spec, after, limit: BATCH_SIZE });
        if (epoch === retryAllEpoch) {
          // A short page is the last one (the activity fills pages past objects found gone); a
          // position that does not move forward ends the pass rather than repeat a page.
          const last = files[files.length - 1]?.key;
          s.retryAfter = files.length === BATCH_SIZE && last !== undefined && (after === undefined || last > after) ? last : null;
          s.retryAll = s.retryAfter !== null;
        }
      }
      run.filesFound += files.length;
      const done = await importAll(files, run);
      const left = files.filter((f) => !done.has(f.key)).map((f) => f.key);
      // Stopped part-way: files of this page that were not imported are named again
      // (a failed file recorded as paused is no failure any more, so a later page would miss it).
      if (left.length && s.paused) s.retryKeys = [...new Set([...left, ...s.retryKeys])];
      if (workflowInfo().continueAsNewSuggested) break;
    }
  }

  /** Import notified keys in chunks of BATCH_SIZE (already imported ones are skipped by the activity). */
  async function notifiedFiles(run: RunSummary): Promise<void> {
    while (s.notified.length && !s.paused && !deleteRequest) {
      const keys = s.notified.slice(0, BATCH_SIZE);
      s.notified = s.notified.slice(BATCH_SIZE);
      const files = await filesToRetry({ dataSource: spec.name, spec, keys, onlyUnsettled: true });
      run.filesFound += files.length;
      await importAll(files, run);
      if (workflowInfo().continueAsNewSuggested) break;
    }
  }

  /**
   * The re-import in progress: its named keys BATCH_SIZE at a time, then its
   * window a listing page at a time, each file imported as the request's
   * generation. Stops early like retryFiles; files a pause stopped are named
   * again, so the request finishes after the resume.
   */
  async function reimportFiles(run: RunSummary): Promise<void> {
    while (s.reimport && !s.paused && !deleteRequest) {
      const r = s.reimport;
      let files: FileRef[];
      if (r.keys.length) {
        const keys = r.keys.slice(0, BATCH_SIZE);
        r.keys = r.keys.slice(BATCH_SIZE);
        files = await filesToRetry({ dataSource: spec.name, spec, keys });
      } else if (r.window) {
        const page = await filesToReimport({ dataSource: spec.name, spec, since: r.window.since, until: r.window.until, after: r.window.after ?? undefined, limit: BATCH_SIZE });
        files = page.files;
        r.window = page.next === null ? null : { ...r.window, after: page.next };
      } else {
        files = [];
      }
      run.filesFound += files.length;
      const done = await importAll(files, run, true, r);
      const left = files.filter((f) => !done.has(f.key)).map((f) => f.key);
      if (left.length && s.paused) r.keys = [...new Set([...left, ...r.keys])];
      if (!r.keys.length && !r.window) s.reimport = null;
      if (workflowInfo().continueAsNewSuggested) break;
    }
  }

  async function syncRun(trigger: RunSummary['trigger']): Promise<void> {
    const lean = patched(LEAN_TICKS_PATCH);
    const previousRun = s.lastRun;
    let failed = false;
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
    // A scheduled tick says `syncing` only once it has found something: an idle one changes nothing.
    if (!lean || trigger !== 'schedule') setState('syncing');
    let phase: 'retry' | 'reimport' | 'notify' | 'list' = 'list';
    try {
      if (retryPending()) {
        setState('syncing');
        phase = 'retry';
        await retryFiles(run);
        // Stopped early: the rest of the retry (and the listing) comes in the next run.
        if (retryPending()) return;
      }
      if (s.reimport) {
        setState('syncing');
        phase = 'reimport';
        await reimportFiles(run);
        if (s.reimport) return;
      }
      if (trigger === 'notify') {
        phase = 'notify';
        await notifiedFiles(run);
        return;
      }
      phase = 'list';
      const cap = spec.limits.maxFilesPerRun > 0 && trigger !== 'sync' ? spec.limits.maxFilesPerRun : Infinity;
      if (lean && spec.mode === 'tracked' && s.cursor === null) {
        // A new pass: a sweep of the whole prefix when one is due, else only the keys after the last one seen.
        const now = Date.now();
        // (An empty prefix has no last key: its ticks list it whole, which is the same one LIST call.)
        const due = trigger === 'sync' || s.sweepDue || s.lastSweepAtMs === null || now - s.lastSweepAtMs! >= sweepIntervalMs(spec);
        s.sweep = due ? { startedAtMs: now, tail: s.tailKey!, late: 0 } : null;
      }
      let more = true;
      let first = true;
      while (more && !s.paused && !deleteRequest && run.filesFound < cap) {
        const limit = Math.min(BATCH_SIZE, cap - run.filesFound);
        const startAfter = (spec.mode === 'ordered' ? s.marker : lean ? s.cursor ?? (s.sweep ? null : s.tailKey) : s.cursor) ?? undefined;
        const input = { dataSource: spec.name, spec, runId: run.runId, limit, startAfter };
        const local = lean && first && trigger === 'schedule' && !s.sweep;
        const batch = local ? await listNewFiles(input) : await discoverFiles(input);
        first = false;
        run.filesFound += batch.files.length;
        if (batch.files.length) setState('syncing');
        if (spec.mode === 'tracked') {
          // Continue this pass after the batch; a finished sweep starts over when the next one is due,
          // which is how files named earlier than everything imported are still found.
          s.cursor = batch.more ? batch.cursor : null;
          const sweep = s.sweep;
          if (sweep && sweep.tail !== null) sweep.late += batch.files.filter((f) => f.key <= sweep.tail!).length;
          if (!batch.more) {
            if (batch.lastKey && (s.tailKey === null || batch.lastKey > s.tailKey!)) s.tailKey = batch.lastKey;
            if (sweep) {
              s.lastSweepAtMs = sweep.startedAtMs;
              // Late files came: names arrive out of order here, so sweep again until a sweep finds none.
              s.sweepDue = sweep.late > 0;
              s.sweep = null;
            }
          }
        }
        const settled = await importAll(batch.files, run);
        more = batch.more;
        if (spec.mode === 'ordered' && batch.files.length) {
          // The marker passes only files that are settled: a file stopped by a
          // pause (or left for later) is listed again after it, so nothing the
          // marker skipped is lost. It moves to the end of the longest settled
          // run of keys from the start of the batch.
          // In S3's order (UTF-8 bytes): the marker becomes the listing's StartAfter.
          const bytes = patched(UTF8_KEY_ORDER_PATCH);
          const keys = bytes ? batch.files.map((f) => f.key).sort(compareKeys) : batch.files.map((f) => f.key).sort();
          let i = 0;
          while (i < keys.length && settled.has(keys[i]!)) i++;
          if (i > 0 && (!s.marker || (bytes ? compareKeys(keys[i - 1]!, s.marker) > 0 : keys[i - 1]! > s.marker))) s.marker = keys[i - 1]!;
          // Files of this batch are still pending: the next run lists them again; never loop on them here.
          if (i < keys.length) more = false;
        }
        s.backlog = more;
        // Keep history small: hand the rest of the backlog to the next run.
        if (workflowInfo().continueAsNewSuggested) break;
      }
      s.error = null;
    } catch (err) {
      // A failed run must not chain into another one at once: the next attempt waits for the schedule.
      s.backlog = false;
      failed = true;
      if (lean && spec.mode === 'tracked') {
        // Files of this pass may be left unimported behind the last key seen: the next pass sweeps.
        s.cursor = null;
        s.sweep = null;
        s.sweepDue = true;
      }
      if (!isCancellation(err)) {
        // What the failed phase was working through is dropped, as a failed request is:
        // a retry is asked for again, and notified files are found by the listing.
        if (phase === 'retry') {
          s.retryKeys = [];
          s.retryAll = false;
          s.retryAfter = null;
        }
        if (phase === 'notify') s.notified = [];
        // A re-import that failed (a named key gone, say) is dropped too: its generation stays used.
        if (phase === 'reimport') s.reimport = null;
        s.error = failureMessage(err);
        log.warn('sync failed', { error: s.error });
      }
    } finally {
      run.finishedAt = new Date().toISOString();
      if (trigger === 'schedule') s.lastTickAt = run.finishedAt;
      const idle = lean && trigger === 'schedule' && phase === 'list' && !failed && run.filesFound === 0;
      if (idle) {
        // Nothing found, nothing written: the run is not recorded, the last recorded one stays the last run.
        s.lastRun = previousRun;
        s.idleTicks! += 1;
      } else {
        s.idleTicks = 0;
        s.lastRunAt = run.finishedAt;
        s.counters.runs++;
      }
      if (!idle) await CancellationScope.nonCancellable(() =>
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
        s.tailKey = null;
        s.sweep = null;
        s.lastSweepAtMs = null;
      } else if (pendingSpec.since !== spec.since || pendingSpec.startAfter !== spec.startAfter) {
        // Where the data source starts moved: files it now makes eligible may sit behind the last
        // key seen, so the next tracked pass sweeps the whole prefix. (Ordered mode keeps its
        // marker: startAfter only moves it forward.)
        s.cursor = null;
        s.sweep = null;
        s.sweepDue = true;
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
    // (Not in the initial state: an execution an earlier version started replays with this
    // version's initial state, and must still be checked once it runs live.)
    if (!s.importPathChecked && patched(RECHECK_IMPORT_PATH_PATCH)) {
      // An import path an earlier version prepared is prepared again; every prepare from here on is this version's.
      s.prepared = false;
      s.importPathChecked = true;
    }
    // Prepare eagerly, so the table exists as soon as the data source does;
    // not again right after a run-time attempt just failed.
    if (!s.prepared && !s.paused && eagerPrepare) await prepare();
    eagerPrepare = true;

    const schedule = parseSchedule(spec.schedule);
    // @auto with maxIdleInterval: the interval doubles with every idle tick in a row, up to the cap.
    const maxIdle = maxIdleIntervalMs(spec);
    if (s.nextRunAtMs === null) s.nextRunAtMs = maxIdle !== null ? Date.now() + adaptiveIntervalMs(s.idleTicks!, maxIdle) : nextRunAt(schedule, Date.now());
    let trigger: RunSummary['trigger'] = 'schedule';
    if (s.backlog && !s.paused && s.prepared) {
      trigger = 'backlog';
    } else {
      const waitMs = s.paused || s.nextRunAtMs === null ? undefined : Math.max(0, s.nextRunAtMs - Date.now());
      const ready = () => (wake() && !s.paused) || deleteRequest !== null || pendingSpec !== null;
      const woke = waitMs === undefined ? (await condition(ready), true) : await condition(ready, waitMs);
      if (deleteRequest || pendingSpec) continue;
      if (woke) trigger = retryPending() ? 'retry' : s.reimport ? 'reimport' : s.syncRequested ? 'sync' : 'notify';
      else s.nextRunAtMs = null; // the tick fired; schedule the next one after this run
    }
    s.syncRequested = false;
    if (!s.prepared && trigger === 'schedule' && s.error === WAITING_FOR_FIRST_FILE && patched(LEAN_TICKS_PATCH)) {
      // Still no file to infer the columns from: a look at the prefix (no ledger, no table work) says
      // whether preparing is worth trying; a tick that finds nothing stays an idle tick.
      const peek = await listNewFiles({ dataSource: spec.name, spec, runId: '', limit: 1, peek: true });
      if (!peek.files.length) {
        s.idleTicks! += 1;
        s.lastTickAt = new Date().toISOString();
        eagerPrepare = false;
        continue;
      }
    }
    if (!s.prepared && !(await prepare())) {
      eagerPrepare = false;
      // Nothing can be imported until the table is ready: drop pending triggers
      // (the listing safety net finds notified files later) so the loop waits.
      s.notified = [];
      s.retryKeys = [];
      s.retryAll = false;
      s.retryAfter = null;
      s.reimport = null;
      s.backlog = false;
      s.nextRunAtMs = null;
      continue;
    }
    await syncRun(trigger);
    runsThisExecution++;
    if (s.nextRunAtMs !== null && s.nextRunAtMs <= Date.now()) s.nextRunAtMs = null;
    // Files, a sync or a notification: a backed-off @auto interval is back to one minute from now.
    if (maxIdle !== null && s.idleTicks === 0) s.nextRunAtMs = null;

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
