import { defineQuery, defineSignal, defineUpdate } from '@temporalio/workflow';
import type { ColumnSpec, DataSourceSpec } from '../schemas/datasource.js';

/** Names shared by the workflow, the API, the CLI and `temporal workflow signal`. */
export const WORKFLOW_TYPE = 'dataSource';
export const workflowIdFor = (name: string) => `datasource:${name}`;

export type DataSourceState = 'idle' | 'syncing' | 'paused' | 'error' | 'deleting';

export interface RunSummary {
  runId: string;
  trigger: 'schedule' | 'sync' | 'retry' | 'backlog' | 'notify' | 'reimport';
  startedAt: string;
  finishedAt: string | null;
  filesFound: number;
  filesImported: number;
  filesFailed: number;
  rows: number;
  bytes: number;
}

export interface Counters {
  runs: number;
  filesImported: number;
  filesFailed: number;
  rows: number;
  quarantinedRows: number;
  bytes: number;
}

export interface StatusView {
  state: DataSourceState;
  lastRunAt: string | null;
  nextRunAt: string | null;
  error: string | null;
  /** More files matched than the last batch took; the next batch starts at once. */
  backlog: boolean;
  inFlight: Array<{ key: string; startedAt: string }>;
  counters: Counters;
  lastRun: RunSummary | null;
  columns: ColumnSpec[] | null;
  inferredFrom: string | null;
  /** Columns added because newer files brought them (most recent last). */
  schemaChanges: SchemaChange[];
  spec: DataSourceSpec;
  /** How the bucket is polled (absent from workflows of older versions). */
  polling?: PollingView;
}

/**
 * Polling as it stands: the tick interval in use and, in tracked mode, the
 * sweep cadence. Ticks that find nothing are counted here, not as runs: they
 * write nothing to ClickHouse.
 */
export interface PollingView {
  /** The interval between scheduled ticks now (ms); null for cron and on-demand schedules. */
  intervalMs: number | null;
  /** @auto with maxIdleInterval: the interval doubles while ticks find nothing. */
  adaptive: boolean;
  /** With adaptive: the longest interval (ms). */
  maxIntervalMs: number | null;
  /** Scheduled ticks in a row that found nothing. */
  idleTicks: number;
  /** When the last scheduled tick ended (idle or not). */
  lastTickAt: string | null;
  /** Tracked mode: how often a tick lists the whole prefix (ms). */
  sweepIntervalMs: number | null;
  /** Tracked mode: when the last complete sweep started. */
  lastSweepAt: string | null;
  /** Tracked mode: the next run sweeps whatever the time (first run, resume, failed run, late files seen). */
  sweepDue: boolean;
  /** Tracked mode: from this time on, the next tick sweeps. */
  nextSweepAt: string | null;
  /** Tracked mode: ticks between sweeps list the keys after this one. */
  listsAfter: string | null;
}

export interface SchemaChange {
  at: string;
  file: string;
  added: string[];
}

export interface SyncRequest {
  /** Why: shows in the run history (e.g. "notify", "cli"). */
  reason?: string;
  /**
   * Keys an event notification named: imported at once without listing the
   * bucket. Polling stays the safety net for anything a notification misses.
   */
  keys?: string[];
}

/** Most notified keys a workflow holds; beyond that a notification falls back to a full listing. */
export const MAX_NOTIFIED_KEYS = 1000;

/** Most keys one retry request may name (the API refuses more with a 400, the workflow's validator too). */
export const MAX_RETRY_KEYS_PER_REQUEST = 1000;

/**
 * Most named retry keys a workflow holds across requests; beyond that it
 * retries every failed file instead (read from the ledger a page at a time).
 */
export const MAX_PENDING_RETRY_KEYS = 1000;

/**
 * Most characters of keys a workflow holds in one pending list (notified or
 * retry): with the counts above it bounds the state carried across
 * continue-as-new, whatever the key lengths.
 */
export const MAX_PENDING_KEY_CHARS = 128 * 1024;

/** Whether a pending key list stays within its bounds. */
export function withinKeyBounds(keys: string[], maxKeys: number): boolean {
  if (keys.length > maxKeys) return false;
  let chars = 0;
  for (const k of keys) chars += k.length;
  return chars <= MAX_PENDING_KEY_CHARS;
}

export interface SpecUpdate {
  spec: DataSourceSpec;
  /** Needed to change bucketUri or format after files were imported. */
  force?: boolean;
}

export interface RetryRequest {
  /** Keys to import again; none = every file whose latest status is failure. */
  keys?: string[];
}

/**
 * Load files once more on purpose (after fixing the table, say): the named
 * keys, or every object whose last-modified time is in [since, until). Each
 * request is a new generation: its imports carry a deduplication token of
 * their own (so the rows are added again), fixed for the request (so a retry
 * of one of its imports adds nothing twice).
 */
export interface ReimportRequest {
  keys?: string[];
  /** ISO 8601: objects last modified at or after this time. */
  since?: string;
  /** ISO 8601: objects last modified before this time. */
  until?: string;
}

export interface ReimportAccepted {
  accepted: true;
  /** The generation the files are imported as (shown in the file list and history). */
  generation: number;
}

/** A re-import in progress: the keys still to load, then the rest of the window (listed a page at a time). */
export interface PendingReimport {
  generation: number;
  /** Unique to this request, whatever the generation number (part of the deduplication token). */
  id: string;
  keys: string[];
  window: { since?: string; until?: string; after: string | null } | null;
}

/** Most keys one re-import request may name (the API refuses more with a 400, the workflow's validator too). */
export const MAX_REIMPORT_KEYS_PER_REQUEST = 1000;

export interface DeleteRequest {
  dropTable: boolean;
  dropLedger: boolean;
}

export const syncSignal = defineSignal<[SyncRequest?]>('sync');
export const pauseUpdate = defineUpdate<StatusView>('pause');
export const resumeUpdate = defineUpdate<StatusView>('resume');
export const updateSpecUpdate = defineUpdate<StatusView, [SpecUpdate]>('updateSpec');
export const retryUpdate = defineUpdate<{ accepted: true }, [RetryRequest]>('retry');
export const reimportUpdate = defineUpdate<ReimportAccepted, [ReimportRequest]>('reimport');
export const deleteUpdate = defineUpdate<StatusView, [DeleteRequest]>('delete');
export const statusQuery = defineQuery<StatusView>('status');
