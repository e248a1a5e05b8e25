import type { Client } from '@temporalio/client';
import { createHash, timingSafeEqual } from 'node:crypto';
import { executionInfoFromRaw } from '@temporalio/client/lib/helpers.js';
import type { ClickHouseClient } from '@clickhouse/client';
import { queryRows } from '../clickhouse/destination.js';
import { FILE_STATUSES, LATEST_STATUS, LEDGER_TABLE, RUNS_TABLE, latestOf, type FileStatus } from '../activities/ledger.js';
import type { DataSourceSpec } from '../schemas/datasource.js';
import { quoteIdent } from '../schemas/identifiers.js';
import { WORKFLOW_TYPE, type DataSourceState } from '../workflows/messages.js';
import { nextRunAt, parseSchedule } from '../schemas/schedule.js';
import { badRequest } from './errors.js';

/**
 * One page of data sources, from Temporal visibility (memo: the spec;
 * search attribute: the state) plus ONE aggregated ledger query for the
 * page's names. Nothing here asks a workflow anything: a list of 1,000 data
 * sources costs the same as a list of 10, a page at a time.
 */

export const DATA_SOURCE_STATES = ['idle', 'syncing', 'paused', 'error', 'deleting'] as const satisfies readonly DataSourceState[];
const WORKFLOW_ID_PREFIX = 'datasource:';
/** Largest page token we accept back (Temporal's SQL visibility tokens are ~100 bytes; Elasticsearch's a few hundred). */
export const MAX_CURSOR_CHARS = 4096;

export interface ListedDataSource {
  name: string;
  spec: DataSourceSpec;
  /** From the DataSourceState search attribute; undefined when it is not registered. */
  state: DataSourceState | undefined;
  /** What the workflow put in its memo besides the spec (status fields), if anything. */
  memoStatus: Partial<{ error: string | null; nextRunAt: string | null; backlog: boolean; lastRunAt: string | null }> | undefined;
}

export interface PageStats {
  files: Record<FileStatus, number>;
  rows: number;
  bytes: number;
  quarantinedRows: number;
  lastRunAt: string | null;
}

const CHECK_BYTES = 8;
const invalidCursor = () =>
  badRequest('invalid cursor', [{ field: 'cursor', message: 'not a cursor returned by this API for this query (pass the nextCursor of the previous page, with the same state and prefix)' }]);

/** A digest of the token and the query it pages: garbage, or a cursor replayed under other filters, does not match. */
function check(token: Uint8Array, query: string): Buffer {
  return createHash('sha256').update(token).update('\0').update(query).digest().subarray(0, CHECK_BYTES);
}

/**
 * The cursor is the visibility page token plus a short check, base64url:
 * opaque to callers. Temporal reads some malformed tokens as "from the
 * start" rather than refusing them, so the check is ours to make.
 */
export function encodeCursor(token: Uint8Array, query: string): string {
  return Buffer.concat([Buffer.from(token), check(token, query)]).toString('base64url');
}

export function decodeCursor(cursor: string, query: string): Uint8Array {
  if (cursor.length === 0 || cursor.length > MAX_CURSOR_CHARS || !/^[A-Za-z0-9_-]+$/.test(cursor)) throw invalidCursor();
  const raw = Buffer.from(cursor, 'base64url');
  if (raw.length <= CHECK_BYTES) throw invalidCursor();
  const token = raw.subarray(0, raw.length - CHECK_BYTES);
  if (!timingSafeEqual(raw.subarray(raw.length - CHECK_BYTES), check(token, query))) throw invalidCursor();
  return token;
}

/**
 * The visibility query for one deployment's running data sources, with the
 * optional filters. Values are checked by the route's schema (state from a
 * fixed set, prefix from the name alphabet), so nothing here needs quoting
 * beyond the task queue.
 */
export function visibilityQuery(taskQueue: string, filter: { state?: DataSourceState; prefix?: string }): string {
  const queue = taskQueue.replace(/\\/g, '\\\\').replace(/'/g, "\\'");
  let q = `WorkflowType = '${WORKFLOW_TYPE}' AND ExecutionStatus = 'Running' AND TaskQueue = '${queue}'`;
  if (filter.state) q += ` AND DataSourceState = '${filter.state}'`;
  if (filter.prefix) q += ` AND WorkflowId STARTS_WITH '${WORKFLOW_ID_PREFIX}${filter.prefix}'`;
  return q;
}

/** One page of running data source workflows, decoded (memo and search attributes), in visibility order. */
export async function listVisibilityPage(
  temporal: Client,
  query: string,
  pageSize: number,
  token: Uint8Array | undefined,
): Promise<{ items: ListedDataSource[]; nextToken: Uint8Array | null }> {
  let res;
  try {
    res = await temporal.workflowService.listWorkflowExecutions({ namespace: temporal.options.namespace, pageSize, nextPageToken: token, query });
  } catch (err) {
    // A token Temporal cannot read (edited, from another server) is the caller's cursor at fault.
    if (token && /token|invalid argument/i.test((err as Error).message)) throw invalidCursor();
    throw err;
  }
  const items: ListedDataSource[] = [];
  for (const raw of res.executions ?? []) {
    const info = await executionInfoFromRaw(raw, temporal.options.loadedDataConverter, raw, temporal.options.namespace);
    if (!info.workflowId.startsWith(WORKFLOW_ID_PREFIX)) continue;
    const spec = info.memo?.spec as DataSourceSpec | undefined;
    if (!spec) continue;
    items.push({
      name: info.workflowId.slice(WORKFLOW_ID_PREFIX.length),
      spec,
      state: info.searchAttributes?.DataSourceState?.[0] as DataSourceState | undefined,
      memoStatus: info.memo?.status as ListedDataSource['memoStatus'],
    });
  }
  const next = res.nextPageToken && res.nextPageToken.length > 0 ? res.nextPageToken : null;
  return { items, nextToken: next };
}

/**
 * File counts by latest status, row/byte totals of imported files, and the
 * last recorded run, for every name of a page: one statement, grouped by
 * data source, whatever the page size; `events` is how many ledger rows it
 * read, what it cost.
 */
export async function pageStats(client: ClickHouseClient, metaDb: string, names: string[]): Promise<{ byName: Map<string, PageStats>; events: number }> {
  const out = new Map<string, PageStats>();
  for (const name of names) {
    out.set(name, { files: Object.fromEntries(FILE_STATUSES.map((s) => [s, 0])) as Record<FileStatus, number>, rows: 0, bytes: 0, quarantinedRows: 0, lastRunAt: null });
  }
  if (names.length === 0) return { byName: out, events: 0 };
  const db = quoteIdent(metaDb);
  const rows = await queryRows<{ datasource: string; status: string; files: string; rows: string; bytes: string; quarantined: string; events: string; last: string }>(
    client,
    `SELECT datasource, latest AS status, count() AS files, sum(rows) AS rows, sum(bytes) AS bytes, sum(quarantined) AS quarantined, sum(events) AS events, '' AS last FROM (
       SELECT datasource, ${LATEST_STATUS} AS latest, ${latestOf('rows')} AS rows, ${latestOf('bytes')} AS bytes, ${latestOf('quarantined_rows')} AS quarantined, count() AS events
       FROM ${db}.${LEDGER_TABLE} WHERE datasource IN {names:Array(String)} GROUP BY datasource, key, etag)
     GROUP BY datasource, latest
     UNION ALL
     SELECT datasource, '' AS status, 0 AS files, 0 AS rows, 0 AS bytes, 0 AS quarantined, 0 AS events, toString(max(finished_at)) AS last
     FROM ${db}.${RUNS_TABLE} WHERE datasource IN {names:Array(String)} GROUP BY datasource`,
    { names },
  ).catch((err: Error) => {
    // Before the first data source is created the ledger tables do not exist: nothing to count.
    if (/UNKNOWN_TABLE|doesn't exist|does not exist/i.test(err.message)) return [];
    throw err;
  });
  let events = 0;
  for (const r of rows) {
    events += Number(r.events);
    const s = out.get(r.datasource);
    if (!s) continue;
    if (r.last) {
      s.lastRunAt = new Date(r.last.slice(0, 23).replace(' ', 'T') + 'Z').toISOString();
      continue;
    }
    if ((FILE_STATUSES as readonly string[]).includes(r.status)) s.files[r.status as FileStatus] = Number(r.files);
    if (r.status === 'success') {
      s.rows = Number(r.rows);
      s.bytes = Number(r.bytes);
      s.quarantinedRows = Number(r.quarantined);
    }
  }
  return { byName: out, events };
}

/** The counters of a resource (the list's last run goes into its status). */
export function withoutLastRun(s: PageStats): Omit<PageStats, 'lastRunAt'> {
  const { lastRunAt: _, ...rest } = s;
  return rest;
}

/**
 * When the schedule next fires, as the workflow computes it (the same pure
 * parser), from the last recorded run: never in the past. The workflow's own
 * answer (GET one data source) is exact; this is what a list can know without
 * asking 1,000 workflows.
 */
export function expectedNextRun(schedule: string, lastRunAt: string | null, now = Date.now()): string | null {
  let s;
  try {
    s = parseSchedule(schedule);
  } catch {
    return null;
  }
  const from = lastRunAt ? Date.parse(lastRunAt) : now;
  let next = nextRunAt(s, Number.isNaN(from) ? now : from);
  if (next !== null && next < now) next = nextRunAt(s, now);
  return next === null ? null : new Date(next).toISOString();
}
