import { WorkflowExecutionAlreadyStartedError, WorkflowNotFoundError, type Client, WorkflowUpdateFailedError } from '@temporalio/client';
import type { UpdateDefinition } from '@temporalio/common';
import { randomBytes } from 'node:crypto';
import { z } from 'zod';
import { buildImportPlan, DEDUP_WINDOW, tableNames } from '../activities/ddl.js';
import { withCheckedExpressions } from '../clickhouse/spec-expressions.js';
import { SqlGuardError } from '../clickhouse/sql-guard.js';
import type { Destination } from '../clickhouse/destination.js';
import { queryRows } from '../clickhouse/destination.js';
import { ATTEMPTS, FILE_STATUSES, LATEST_STATUS, LEDGER_TABLE, Ledger, RUNS_TABLE, latestOf, type LedgerStats } from '../activities/ledger.js';
import { ReusedReads } from './reused-reads.js';
import { EventStats, type NotificationHealth } from '../events/stats.js';
import { mergeNotifications, mergeQueues, type EventStatsStore, type ProcessReport } from '../events/stats-store.js';
import type { S3Connections } from '../s3/connections.js';
import { createSchemaTools, suggestTimeColumn } from '../activities/schema.js';
import { dataSourcePatchSchema, dataSourceSpecSchema, normalizeSpec, type ColumnSpec, type DataSourceSpec } from '../schemas/datasource.js';
import { quoteIdent } from '../schemas/identifiers.js';
import { compileGlob, describeBucketUri, noMatchWarning, parseBucketUri } from '../schemas/glob.js';
import { extractObjectRefs, type ObjectRef } from '../schemas/s3-event.js';
import { keyOutsideGlob, matchingKeys } from '../schemas/event-routing.js';
import { DatasourceFileError, readDatasourceFile } from '../schemas/datasource-file.js';
import type { DataSourceInput } from '../workflows/datasource.js';
import {
  WORKFLOW_TYPE,
  deleteUpdate,
  pauseUpdate,
  resumeUpdate,
  retryUpdate,
  reimportUpdate,
  type ReimportAccepted,
  type ReimportRequest,
  statusQuery,
  syncSignal,
  updateSpecUpdate,
  workflowIdFor,
  type DataSourceState,
  type StatusView,
  MAX_NOTIFIED_KEYS,
} from '../workflows/messages.js';
import { ApiError, badRequest, conflict, fieldErrors, notFound } from './errors.js';
import { TableClaims } from './table-claims.js';
import { decodeCursor, encodeCursor, expectedNextRun, listVisibilityPage, pageStats, visibilityQuery, withoutLastRun, type ListedDataSource, type PageStats } from './datasource-list.js';

export interface ServiceDeps {
  temporal: Client;
  taskQueue: string;
  /** Whether the DataSource/DataSourceState search attributes are registered on the namespace. */
  searchAttributes: boolean;
  destination: Destination;
  s3: S3Connections;
  metaDatabase?: string;
  /** This process's event counters (webhooks here, SQS in the worker of the same process). */
  events?: EventStats;
  /** Where worker processes report theirs (a split deployment's API shows them). */
  eventStore?: EventStatsStore;
}

export interface DataSourceResource extends DataSourceSpec {
  status: { state: DataSourceState; lastRunAt: string | null; nextRunAt: string | null; error: string | null; backlog: boolean; inFlight: StatusView['inFlight']; polling?: StatusView['polling'] | null };
  stats: { files: Record<(typeof FILE_STATUSES)[number], number>; rows: number; bytes: number; quarantinedRows: number };
  inferredFrom: string | null;
  schemaChanges: StatusView['schemaChanges'];
  lastRun: StatusView['lastRun'];
  /** Event notifications this API process handed to the data source (webhooks, and SQS when the worker runs in the same process). */
  notifications: NotificationHealth;
}

const QUERY_TIMEOUT_MS = 5000;
/** Largest file a preview infers columns from. */
export const PREVIEW_INFER_MAX_BYTES = 64 * 1024 * 1024;
/** Keys a create lists at most while looking for one its glob matches. */
const CREATE_GLOB_SCAN_LIMIT = 10_000;
const LIST_QUERY_TIMEOUT_MS = 2000;
/** Accepted table definitions remembered (see `acceptedDdl`). */
const ACCEPTED_DDL_CACHE = 1000;

/**
 * How long a data source's ledger counters are reused: never below a
 * million ledger events (every read is fresh; one costs about 40 ms per
 * 300,000 events on two cores), then 2 s per million events, at most 30 s.
 * A console polling a data source of ten million files then costs
 * ClickHouse a few percent of a core, not a full read per poll; what the
 * API itself changes (a sync, retry, pause, delete) is read afresh.
 */
export function statsReuseMs(events: number): number {
  return events < 1_000_000 ? 0 : Math.min(30_000, Math.round((events / 1_000_000) * 2000));
}

/** Run `fn` over `items` with at most `limit` at once, keeping order. */
async function mapLimit<T, R>(items: T[], limit: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array(items.length);
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(limit, items.length) }, async () => {
      while (next < items.length) {
        const i = next++;
        out[i] = await fn(items[i]!);
      }
    }),
  );
  return out;
}

/**
 * When a status query that has not answered is asked again. Temporal can
 * hold a query that arrives while the workflow is in the middle of a task
 * until the workflow next goes idle, which during an import is the end of the
 * run: the first status read after a sync waited 1.5-2 s (the whole run) in
 * the benchmark, while the same query asked again 250 ms later answered at
 * once. The first answer wins.
 */
export const QUERY_ASK_AGAIN_AFTER_MS = [250, 1000];

/**
 * Ask, and ask again at each of `againAfterMs` while no answer has come;
 * the first answer wins, the first failure fails (a failure is not the wait
 * this is for).
 */
export function askAgainWhileUnanswered<T>(ask: () => Promise<T>, againAfterMs: readonly number[]): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const timers: ReturnType<typeof setTimeout>[] = [];
    let settled = false;
    const settle = (fn: () => void) => {
      if (settled) return;
      settled = true;
      for (const t of timers) clearTimeout(t);
      fn();
    };
    const start = () => {
      ask().then(
        (v) => settle(() => resolve(v)),
        (err: unknown) => settle(() => reject(err)),
      );
    };
    start();
    for (const ms of againAfterMs) {
      const t = setTimeout(() => !settled && start(), ms);
      t.unref?.();
      timers.push(t);
    }
  });
}

function withTimeout<T>(p: Promise<T>, ms: number): Promise<T> {
  return Promise.race([p, new Promise<T>((_, reject) => setTimeout(() => reject(new Error(`no answer within ${ms} ms (is a worker running?)`)), ms).unref())]);
}

function updateRejection(err: unknown): never {
  if (err instanceof WorkflowUpdateFailedError) throw conflict(err.cause?.message ?? err.message);
  if (err instanceof WorkflowNotFoundError) throw notFound('no such data source');
  throw err;
}

/** Everything the API (and the CLI) does to data sources, over Temporal and ClickHouse. */
interface ExistingTable {
  engine: string;
  create: string;
  /** The server's default non_replicated_deduplication_window, for a table that does not set it. */
  defaultWindow: number;
}

/**
 * An existing table is ingested into as it is, so it must deduplicate
 * inserts: exactly-once rests on the insert deduplication token. A table that
 * does not is refused, with what to change, rather than loaded at-least-once
 * behind a warning nobody reads.
 */
function checkExistingTarget(table: string, t: ExistingTable) {
  const refuse = (reason: string) => badRequest('the target table cannot guarantee exactly-once loading', [{ field: 'table', message: reason }]);
  if (!/MergeTree$/.test(t.engine)) throw refuse(`table ${table} has engine ${t.engine}; only MergeTree-family tables deduplicate inserts`);
  if (/^(Replicated|Shared)/.test(t.engine)) {
    if (/\breplicated_deduplication_window\s*=\s*0\b/.test(t.create)) throw refuse(`table ${table} sets replicated_deduplication_window = 0, which turns insert deduplication off`);
    return;
  }
  const set = /\bnon_replicated_deduplication_window\s*=\s*(\d+)/.exec(t.create);
  if ((set ? Number(set[1]) : t.defaultWindow) === 0) {
    throw refuse(
      `table ${table} has non_replicated_deduplication_window = 0, so a retried insert would add rows twice; run ALTER TABLE ${table} MODIFY SETTING non_replicated_deduplication_window = ${DEDUP_WINDOW}, or let the connector create a new table`,
    );
  }
}

export class DataSourceService {
  readonly ledger: Ledger;
  readonly schema: ReturnType<typeof createSchemaTools>;
  private readonly metaDb: string;
  private readonly claims: TableClaims;
  private metaReady: Promise<void> | null = null;
  /**
   * Target-table definitions ClickHouse accepted in a dry run, by their CREATE
   * text: a script creating hundreds of data sources from one template pays
   * for the scratch database once, not per create.
   */
  private readonly acceptedDdl = new Set<string>();
  readonly events: EventStats;

  constructor(private readonly deps: ServiceDeps) {
    this.events = deps.events ?? new EventStats();
    this.metaDb = deps.metaDatabase ?? deps.destination.database;
    this.ledger = new Ledger(deps.destination.client, this.metaDb);
    this.schema = createSchemaTools({ destination: deps.destination, s3: deps.s3 });
    this.claims = new TableClaims(deps.destination.client, this.metaDb, () => this.runningTables());
  }

  private handle(name: string) {
    return this.deps.temporal.workflow.getHandle(workflowIdFor(name));
  }

  /**
   * Validate a spec fully: shape, connection, every SQL expression against the
   * allow-list, the target table (an existing one must deduplicate), and the
   * table DDL (dry-run in a scratch database).
   */
  async validate(input: unknown): Promise<{ spec: DataSourceSpec; columns: ColumnSpec[] | null }> {
    const parsed = dataSourceSpecSchema.safeParse(input);
    if (!parsed.success) throw badRequest('the data source spec is invalid', fieldErrors(parsed.error.issues));
    const spec = normalizeSpec(parsed.data);
    if (!this.deps.s3.has(spec.connection)) {
      throw badRequest('the data source spec is invalid', [
        { field: 'connection', message: `unknown connection '${spec.connection}'; configured: ${this.deps.s3.names().join(', ') || '(none)'}` },
      ]);
    }
    let checked: DataSourceSpec;
    try {
      checked = await withCheckedExpressions(this.deps.destination.client, spec);
    } catch (err) {
      if (err instanceof SqlGuardError) throw badRequest('the data source spec is invalid', [{ field: err.field, message: err.reason }]);
      throw err;
    }
    const columns = spec.columns ?? null;
    const existing = await this.existingTarget(spec.table);
    if (existing) checkExistingTarget(spec.table, existing);
    else if (columns) await this.dryRunDdl(checked, columns);
    return { spec, columns };
  }

  /** The target table as ClickHouse has it (with the server's default deduplication window), or null. */
  private async existingTarget(table: string): Promise<ExistingTable | null> {
    const [row] = await queryRows<{ engine: string; create_table_query: string; window: string }>(
      this.deps.destination.client,
      `SELECT engine, create_table_query,
              (SELECT value FROM system.merge_tree_settings WHERE name = 'non_replicated_deduplication_window') AS window
       FROM system.tables WHERE database = {db:String} AND name = {t:String}`,
      { db: this.deps.destination.database, t: table },
    );
    return row ? { engine: row.engine, create: row.create_table_query, defaultWindow: Number(row.window ?? 0) } : null;
  }

  /** One data source per table: two would share the import path and count each other's rows. */
  private async checkTableFree(spec: DataSourceSpec) {
    // One lookup in the claims table, then one describe per claimant (a table has one live claimant at most).
    for (const name of await this.claims.claimants(spec.table, spec.name)) {
      const other = await this.handle(name).describe().catch((err) => {
        if (err instanceof WorkflowNotFoundError) return null;
        throw err;
      });
      const otherSpec = other?.memo?.spec as DataSourceSpec | undefined;
      if (other?.status.name === 'RUNNING' && otherSpec?.table === spec.table) {
        throw conflict(`table '${spec.table}' is already fed by data source '${name}'; choose another table (one data source per table)`);
      }
    }
  }

  /** The ledger and claims tables, created once per process (not on every create). */
  private ensureMetaTables(): Promise<void> {
    this.metaReady ??= Promise.all([this.ledger.ensureTables(), this.claims.ensure()]).then(
      () => undefined,
      (err) => {
        this.metaReady = null;
        throw err;
      },
    );
    return this.metaReady;
  }

  /** Every running data source's table, read from visibility (once, to fill a new claims table). */
  private async *runningTables(): AsyncIterable<{ name: string; table: string }> {
    for await (const wf of this.deps.temporal.workflow.list({ query: this.listQuery() })) {
      const spec = wf.memo?.spec as DataSourceSpec | undefined;
      if (spec) yield { name: spec.name, table: spec.table };
    }
  }

  /**
   * ClickHouse itself judges ENGINE, keys and TTL: the table is created in a
   * scratch database that is dropped right after, clause by clause so a
   * rejection names the field that caused it. The expressions are the checked,
   * canonical ones, so nothing here can read outside the table.
   */
  private async dryRunDdl(spec: DataSourceSpec, columns: ColumnSpec[]) {
    const e = spec.engine;
    const steps: Array<[string, DataSourceSpec['engine']]> = [
      ['columns', { engine: e.engine }],
      ['engine.sortingKey', { engine: e.engine, sortingKey: e.sortingKey }],
      ['engine.primaryKey', { engine: e.engine, sortingKey: e.sortingKey, primaryKey: e.primaryKey }],
      ['engine.partitionKey', { engine: e.engine, sortingKey: e.sortingKey, primaryKey: e.primaryKey, partitionKey: e.partitionKey }],
      ['engine.ttl', { ...e, settings: undefined }],
      ['engine.settings', e],
    ];
    // Names fixed, so data sources made from one template (columns, engine) share the key.
    const key = buildImportPlan('s3ch_scratch', { ...spec, table: 't' }, columns, 'csv', 'dry_run').create[0]!;
    if (this.acceptedDdl.has(key)) return;
    const scratchDb = `s3ch_scratch_${randomBytes(6).toString('hex')}`;
    const client = this.deps.destination.client;
    await client.command({ query: `CREATE DATABASE IF NOT EXISTS ${quoteIdent(scratchDb)}` });
    try {
      // The whole definition first: a good spec (the usual case) costs one CREATE, not one per clause.
      if ((await this.tryCreate(scratchDb, spec, columns)) === null) {
        if (this.acceptedDdl.size >= ACCEPTED_DDL_CACHE) this.acceptedDdl.clear();
        this.acceptedDdl.add(key);
        return;
      }
      for (const [field, engine] of steps) {
        const error = await this.tryCreate(scratchDb, { ...spec, engine }, columns);
        if (!error) continue;
        if (field === 'columns') {
          for (const [i, col] of columns.entries()) {
            const colError = await this.tryCreate(scratchDb, { ...spec, engine: { engine: 'MergeTree' } }, [col]);
            if (colError) throw badRequest('ClickHouse rejected the table definition', [{ field: `columns.${i}.type`, message: colError }]);
          }
        }
        throw badRequest('ClickHouse rejected the table definition', [{ field, message: error }]);
      }
    } finally {
      await client.command({ query: `DROP DATABASE IF EXISTS ${quoteIdent(scratchDb)}` }).catch(() => undefined);
    }
  }

  /** CREATE the target table in the scratch database; ClickHouse's reason (one line, scratch names removed), or null when it accepts. */
  private async tryCreate(scratchDb: string, spec: DataSourceSpec, columns: ColumnSpec[]): Promise<string | null> {
    const plan = buildImportPlan(scratchDb, spec, columns, 'csv', spec.name);
    try {
      await this.deps.destination.client.command({ query: plan.create[0]! });
      return null;
    } catch (err) {
      return (err as Error).message
        .split('\n')[0]!
        .replace(/^Code: \d+\. DB::Exception: /, '')
        .split(`${scratchDb}.`).join('')
        .split(scratchDb).join(this.deps.destination.database)
        .replace(/:? In scope .*$/, '')
        .replace(/\s*\(version [^)]*\)\s*$/, '')
        .slice(0, 300);
    } finally {
      await this.deps.destination.client.command({ query: `DROP TABLE IF EXISTS ${tableNames(scratchDb, spec.table).target}` }).catch(() => undefined);
    }
  }

  async create(input: unknown): Promise<DataSourceResource & { warnings: string[] }> {
    const { spec } = await this.validate(input);
    await this.ensureMetaTables();
    await this.checkTableFree(spec);
    const workflowInput: DataSourceInput = { spec, searchAttributes: this.deps.searchAttributes };
    // Inside an async function: a client that throws before returning a promise still reaches the catch below.
    const started = (async () =>
      this.deps.temporal.workflow.start(WORKFLOW_TYPE, {
        workflowId: workflowIdFor(spec.name),
        taskQueue: this.deps.taskQueue,
        args: [workflowInput],
        memo: { spec },
        workflowIdConflictPolicy: 'FAIL',
        workflowIdReusePolicy: 'ALLOW_DUPLICATE',
        ...(this.deps.searchAttributes ? { searchAttributes: { DataSource: [spec.name], DataSourceState: ['idle'] } } : {}),
      }))()
      .catch((err) => {
        if (err instanceof WorkflowExecutionAlreadyStartedError) throw conflict(`data source '${spec.name}' already exists`);
        throw err;
      });
    // The claim, the glob check and the counters do not depend on the start, so they overlap with it
    // (a claim left by a start that failed is harmless: claimants are confirmed with their workflow).
    // The answer is built from what was just started, not by querying the workflow: a worker busy
    // with a thousand data sources would make every create wait for its first workflow task.
    const [, , warnings, stats] = await Promise.all([
      started,
      this.claims.claim(spec.table, spec.name),
      this.globWarnings(spec),
      pageStats(this.deps.destination.client, this.metaDb, [spec.name]),
    ]);
    return { ...this.listedResource({ name: spec.name, spec, state: 'idle', memoStatus: undefined }, stats.byName.get(spec.name)!), warnings };
  }

  /**
   * A glob that matches nothing yet is legitimate (files may come later) but
   * must not pass silently: say so, with the prefix that was listed.
   */
  private async globWarnings(spec: DataSourceSpec): Promise<string[]> {
    const glob = describeBucketUri(spec.bucketUri);
    const warnings = [...glob.warnings];
    let scanned = 0;
    try {
      for await (const page of this.schema.matchingPages(spec)) {
        if (page.files.length > 0) return warnings;
        scanned += page.listed;
        if (scanned >= CREATE_GLOB_SCAN_LIMIT) break;
      }
      warnings.push(noMatchWarning(glob, { complete: scanned < CREATE_GLOB_SCAN_LIMIT, scanned }));
    } catch (err) {
      warnings.push(`could not list the bucket to check what the glob matches: ${(err as Error).name}: ${(err as Error).message}`);
    }
    return warnings;
  }

  private async describe(name: string) {
    try {
      const d = await this.handle(name).describe();
      if (d.status.name !== 'RUNNING') throw notFound(`no data source named '${name}'`);
      return d;
    } catch (err) {
      if (err instanceof WorkflowNotFoundError) throw notFound(`no data source named '${name}'`);
      if (err instanceof ApiError) throw err;
      throw new ApiError(503, 'Service Unavailable', `Temporal did not answer (${(err as Error).message}); retry once it is reachable`, [], { cause: err });
    }
  }

  async status(name: string, timeoutMs = QUERY_TIMEOUT_MS): Promise<StatusView | null> {
    try {
      const handle = this.handle(name);
      return await withTimeout(askAgainWhileUnanswered(() => handle.query(statusQuery), QUERY_ASK_AGAIN_AFTER_MS), timeoutMs);
    } catch {
      return null;
    }
  }

  async get(name: string): Promise<DataSourceResource> {
    // Temporal's description, the workflow's status and the ledger's counters are asked at once:
    // one round trip instead of two while imports compete for the CPU. An unknown name fails in
    // describe and the other two answers are dropped.
    const viewing = this.status(name);
    const counting = this.ledgerStats(name);
    counting.catch(() => undefined);
    const noting = this.notificationsByName();
    const d = await this.describe(name);
    const [view, stats, notes] = await Promise.all([viewing, counting, noting]);
    const spec = (view?.spec ?? (d.memo?.spec as DataSourceSpec));
    return this.resource(spec, view, stats, d.searchAttributes?.DataSourceState?.[0] as DataSourceState | undefined, notes);
  }

  /** Ledger counters by data source: callers asking at the same moment share one read, and a costly read is reused a while (statsReuseMs). */
  private readonly statsReads = new ReusedReads<LedgerStats>((s) => statsReuseMs(s.events));

  /** List pages' counters, by the page's names, reused by the ledger events they cost. */
  private readonly pageReads = new ReusedReads<Awaited<ReturnType<typeof pageStats>>>((p) => statsReuseMs(p.events));

  /** File pages of data sources known to be large, by data source and query, reused for as long as the read says. */
  private readonly fileReads = new ReusedReads<{ page: Awaited<ReturnType<DataSourceService['filesPage']>>; reuseMs: number }>((v) => v.reuseMs);

  private readonly allStatsReads = new ReusedReads<Awaited<ReturnType<Ledger['allStats']>>>((rows) => statsReuseMs(rows.reduce((n, r) => n + r.events, 0)));

  /** Every data source's counters (for /metrics), reused as one data source's are, by the events read. */
  allLedgerStats(): ReturnType<Ledger['allStats']> {
    return this.allStatsReads.get('all', () => this.ledger.allStats());
  }

  /** Ledger events per data source, as its last counters read found them: what a read of its files costs. */
  private readonly ledgerEvents = new Map<string, number>();

  private async ledgerStats(name: string): Promise<DataSourceResource['stats']> {
    const { events, ...stats } = await this.statsReads.get(name, () => this.ledger.stats(name));
    this.ledgerEvents.set(name, events);
    return stats;
  }

  /** The API changed something of this data source (a sync, retry, pause, delete): its next reads are fresh. */
  private readAfresh(name: string): void {
    this.ledgerEvents.delete(name);
    this.statsReads.forget(name);
    this.fileReads.forgetPrefix(`${name}\u0000`);
    // List pages are kept by their names: any that may hold this data source.
    this.pageReads.forgetPrefix('');
  }

  private others: { reports: ProcessReport[]; at: number; reading: Promise<void> | null } = { reports: [], at: 0, reading: null };

  /**
   * Other processes' event counters (the workers of a split deployment),
   * read at most every 2 s; the last ones read while a read is under way, and
   * none when unreadable. A data source's status never waits for this read.
   */
  private otherProcesses(wait: boolean): Promise<ProcessReport[]> {
    const store = this.deps.eventStore;
    if (!store) return Promise.resolve([]);
    const o = this.others;
    if (!o.reading && Date.now() - o.at > 2000) {
      o.reading = store
        .live(this.events.process)
        .then((reports) => void (o.reports = reports), () => undefined)
        .finally(() => {
          o.at = Date.now();
          o.reading = null;
        });
    }
    return wait && o.reading ? o.reading.then(() => o.reports) : Promise.resolve(o.reports);
  }

  /** Event notification health: this process's counters and those other live processes reported (`wait`: read them afresh first). */
  async eventsView(wait = true): Promise<{ since: string; queues: ReturnType<EventStats['queues']>; dataSources: ReturnType<EventStats['allNotifications']> }> {
    const others = await this.otherProcesses(wait);
    return {
      since: this.events.since,
      queues: mergeQueues([this.events.queues(), ...others.map((o) => o.queues)]),
      dataSources: mergeNotifications([this.events.allNotifications(), ...others.map((o) => o.dataSources)]),
    };
  }

  private async notificationsByName(): Promise<Map<string, NotificationHealth>> {
    return new Map((await this.eventsView(false)).dataSources.map(({ dataSource, ...h }) => [dataSource, h]));
  }

  private resource(spec: DataSourceSpec, view: StatusView | null, stats: DataSourceResource['stats'], fallbackState?: DataSourceState, notes?: Map<string, NotificationHealth>): DataSourceResource {
    return {
      ...spec,
      columns: view?.columns ?? spec.columns,
      status: {
        state: view?.state ?? fallbackState ?? 'idle',
        lastRunAt: view?.lastRunAt ?? null,
        nextRunAt: view?.nextRunAt ?? null,
        error: view ? view.error : 'status unavailable: no worker answered (is the worker running?)',
        backlog: view?.backlog ?? false,
        inFlight: view?.inFlight ?? [],
        // The tick interval in use (adaptive or not), idle ticks and the tracked-mode sweep cadence.
        polling: view?.polling ?? null,
      },
      stats,
      inferredFrom: view?.inferredFrom ?? null,
      schemaChanges: view?.schemaChanges ?? [],
      lastRun: view?.lastRun ?? null,
      notifications: notes?.get(spec.name) ?? this.events.notifications(spec.name),
    };
  }

  /** Visibility query for this deployment's data sources (one namespace may serve several task queues). */
  private listQuery(): string {
    const queue = this.deps.taskQueue.replace(/\\/g, '\\\\').replace(/'/g, "\\'");
    return `WorkflowType = '${WORKFLOW_TYPE}' AND ExecutionStatus = 'Running' AND TaskQueue = '${queue}'`;
  }

  /**
   * One page of data sources, in Temporal visibility's order (most recently
   * started run first). Served from visibility (spec from the memo, state from
   * the DataSourceState search attribute) and one aggregated ledger query for
   * the page: no workflow is queried, so the cost does not grow with the
   * number of data sources. Live details (in-flight files, inferred columns,
   * the last run's summary) are on `get`.
   */
  async list(q: { limit: number; cursor?: string; state?: DataSourceState; prefix?: string }): Promise<{ items: DataSourceResource[]; nextCursor: string | null }> {
    if (q.state && !this.deps.searchAttributes) {
      throw badRequest('filtering by state needs the DataSourceState search attribute', [
        { field: 'state', message: 'the Temporal namespace has no DataSource/DataSourceState search attributes registered; register them (see README) to filter by state' },
      ]);
    }
    const query = visibilityQuery(this.deps.taskQueue, q);
    const token = q.cursor === undefined ? undefined : decodeCursor(q.cursor, query);
    const page = await listVisibilityPage(this.deps.temporal, query, q.limit, token);
    const names = page.items.map((f) => f.name);
    // A page's counters are reused as one data source's are, by the ledger events they cost.
    const { byName: stats } = await this.pageReads.get(JSON.stringify(names), () => pageStats(this.deps.destination.client, this.metaDb, names));
    // Without the search attribute the state is known only to the workflow: ask each (bounded, in parallel).
    const [views, notes] = await Promise.all([
      this.deps.searchAttributes ? null : mapLimit(page.items, 16, (f) => this.status(f.name, LIST_QUERY_TIMEOUT_MS)),
      this.notificationsByName(),
    ]);
    return {
      items: page.items.map((f, i) => (views ? this.resource(views[i]?.spec ?? f.spec, views[i] ?? null, withoutLastRun(stats.get(f.name)!), undefined, notes) : this.listedResource(f, stats.get(f.name)!, notes))),
      nextCursor: page.nextToken ? encodeCursor(page.nextToken, query) : null,
    };
  }

  /** A list item from visibility and the ledger alone. */
  private listedResource(f: ListedDataSource, stats: PageStats, notes?: Map<string, NotificationHealth>): DataSourceResource {
    const state = f.state ?? 'idle';
    const m = f.memoStatus ?? {};
    const lastRunAt = m.lastRunAt ?? stats.lastRunAt;
    return {
      ...f.spec,
      columns: f.spec.columns,
      status: {
        state,
        lastRunAt,
        nextRunAt: m.nextRunAt !== undefined ? m.nextRunAt : state === 'paused' || state === 'deleting' ? null : expectedNextRun(f.spec.schedule, lastRunAt),
        error: m.error !== undefined ? m.error : state === 'error' ? `the last sync failed; GET /v1/datasources/${f.name} has the reason` : null,
        backlog: m.backlog ?? false,
        inFlight: [],
      },
      stats: withoutLastRun(stats),
      inferredFrom: null,
      schemaChanges: [],
      lastRun: null,
      notifications: notes?.get(f.name) ?? this.events.notifications(f.name),
    };
  }

  async patch(name: string, body: unknown): Promise<DataSourceResource> {
    const parsed = dataSourcePatchSchema.safeParse(body);
    if (!parsed.success) throw badRequest('the patch is invalid', fieldErrors(parsed.error.issues));
    const current = await this.currentSpec(name);
    // Only the fields the body names: the patch schema fills defaults, which must not overwrite the spec.
    const named = new Set(Object.keys(body as object));
    const { force, ...all } = parsed.data;
    const changes = Object.fromEntries(Object.entries(all).filter(([k]) => named.has(k)));
    const merged: Record<string, unknown> = { ...current, ...changes, name };
    // null removes where the data source starts (the spec has no nulls).
    for (const field of ['since', 'startAfter'] as const) if (merged[field] === null) delete merged[field];
    const { spec } = await this.validate(merged);
    if (spec.table !== current.table) await this.checkTableFree(spec);
    await this.update(name, updateSpecUpdate, { spec, force });
    if (spec.table !== current.table) await this.claims.claim(spec.table, name);
    return this.get(name);
  }

  async remove(name: string, dropTable: boolean, dropLedger: boolean): Promise<StatusView> {
    return this.update(name, deleteUpdate, { dropTable, dropLedger });
  }

  /** Send an update to a data source's workflow; a rejection (validator) becomes 409, an unknown name 404. */
  private async update<Ret, Args extends unknown[]>(name: string, def: UpdateDefinition<Ret, Args>, ...args: Args): Promise<Ret> {
    await this.describe(name);
    // What it changes (a retry, a pause, a delete) shows in the next reads.
    this.readAfresh(name);
    try {
      const handle = this.handle(name);
      // executeUpdate's overloads split zero-argument and argument updates; one generic call serves both.
      const execute = handle.executeUpdate as (d: UpdateDefinition<Ret, Args>, o: { args: Args }) => Promise<Ret>;
      return await execute.call(handle, def, { args });
    } catch (err) {
      updateRejection(err);
    }
  }

  /** The spec in force: from the workflow when it answers, else from the memo it was started with. */
  private async currentSpec(name: string): Promise<DataSourceSpec> {
    const d = await this.describe(name);
    return (await this.status(name))?.spec ?? (d.memo?.spec as DataSourceSpec);
  }

  async sync(name: string, reason = 'api'): Promise<void> {
    await this.describe(name);
    this.readAfresh(name);
    await this.handle(name).signal(syncSignal, { reason });
  }

  async pause(name: string): Promise<StatusView> {
    return this.update(name, pauseUpdate);
  }

  async resume(name: string): Promise<StatusView> {
    return this.update(name, resumeUpdate);
  }

  async retry(name: string, keys?: string[]): Promise<void> {
    // Listed keys are imported by name: each must be one the data source's glob would import.
    if (keys?.length) {
      const { pattern } = parseBucketUri((await this.currentSpec(name)).bucketUri);
      const match = compileGlob(pattern);
      const errors = keys.flatMap((key, i) => {
        const reason = keyOutsideGlob(key, match, pattern);
        return reason ? [{ field: `keys.${i}`, message: reason }] : [];
      });
      if (errors.length) throw badRequest('only keys the data source imports can be retried', errors);
    }
    await this.update(name, retryUpdate, { keys });
  }

  /**
   * A deliberate re-import: the named keys (each inside the glob) or the
   * objects last modified in [since, until) load once more, as a new
   * generation recorded in the ledger.
   */
  async reimport(name: string, req: ReimportRequest): Promise<ReimportAccepted> {
    if (req.keys?.length) {
      const { pattern } = parseBucketUri((await this.currentSpec(name)).bucketUri);
      const match = compileGlob(pattern);
      const errors = req.keys.flatMap((key, i) => {
        const reason = keyOutsideGlob(key, match, pattern);
        return reason ? [{ field: `keys.${i}`, message: reason }] : [];
      });
      if (errors.length) throw badRequest('only keys the data source imports can be re-imported', errors);
    }
    return this.update(name, reimportUpdate, req);
  }

  /** Route S3 event notifications to this data source: matching keys are imported at once. */
  async notify(name: string, body: unknown): Promise<{ accepted: number; ignored: number }> {
    const spec = await this.currentSpec(name);
    const keys = this.matchingKeys(spec, extractObjectRefs(body));
    if (keys.length) {
      await this.handle(name).signal(syncSignal, { reason: 'notify', keys });
      this.events.recordEvent(name, keys.length, 'webhook');
    }
    const total = extractObjectRefs(body).length;
    return { accepted: keys.length, ignored: total - keys.length };
  }

  /** One webhook for every data source (what a bucket notification target points at). */
  async notifyAll(body: unknown): Promise<{ accepted: number; dataSources: string[] }> {
    const refs = extractObjectRefs(body);
    if (refs.length === 0) return { accepted: 0, dataSources: [] };
    const hit: string[] = [];
    let accepted = 0;
    for await (const wf of this.deps.temporal.workflow.list({ query: this.listQuery() })) {
      const spec = wf.memo?.spec as DataSourceSpec | undefined;
      if (!spec) continue;
      const keys = this.matchingKeys(spec, refs);
      if (!keys.length) continue;
      await this.deps.temporal.workflow.getHandle(wf.workflowId).signal(syncSignal, { reason: 'notify', keys });
      this.events.recordEvent(spec.name, keys.length, 'webhook');
      hit.push(spec.name);
      accepted += keys.length;
    }
    return { accepted, dataSources: hit };
  }

  private matchingKeys(spec: DataSourceSpec, refs: ObjectRef[]): string[] {
    return matchingKeys(spec.bucketUri, refs).slice(0, MAX_NOTIFIED_KEYS);
  }

  /** Create from a Tinybird `.datasource` file; the name comes from the request (the file name). */
  async createFromFile(text: string, name: string | undefined): Promise<DataSourceResource & { warnings: string[] }> {
    if (!name) throw badRequest('a .datasource file needs a name', [{ field: 'name', message: 'pass ?name=<data source name> (the file name without .datasource)' }]);
    let read: ReturnType<typeof readDatasourceFile>;
    try {
      read = readDatasourceFile(text, { name });
    } catch (err) {
      if (err instanceof DatasourceFileError) throw badRequest('the .datasource file is invalid', [{ field: `line ${err.line}`, message: err.reason }]);
      throw err;
    }
    // Lines of the file that were ignored (Tinybird tokens, tags, ...) come first, then the glob's warnings.
    const created = await this.create(read.spec);
    return { ...created, warnings: [...read.warnings, ...created.warnings] };
  }

  async files(name: string, q: { status?: string; search?: string; limit: number; cursor?: string }) {
    await this.describe(name);
    let after: { updatedAt: string; key: string; etag: string } | null = null;
    if (q.cursor) {
      try {
        // updatedAt is ClickHouse's text of a DateTime64(9) (toString(max(seq))): anything else is not ours.
        const updatedAt = z.string().regex(/^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}(\.\d{1,9})?$/);
        after = z.object({ updatedAt, key: z.string(), etag: z.string() }).parse(JSON.parse(Buffer.from(q.cursor, 'base64url').toString('utf8')));
      } catch {
        throw badRequest('invalid cursor', [{ field: 'cursor', message: 'not a cursor returned by this API' }]);
      }
    }
    // A page of a data source known to have millions of ledger events is reused as its counters are.
    const reuseMs = statsReuseMs(this.ledgerEvents.get(name) ?? 0);
    if (reuseMs === 0) return this.filesPage(name, q, after);
    const { page } = await this.fileReads.get(`${name}\u0000${JSON.stringify([q.status, q.search, q.limit, q.cursor])}`, async () => ({ page: await this.filesPage(name, q, after), reuseMs }));
    return page;
  }

  private async filesPage(name: string, q: { status?: string; search?: string; limit: number }, after: { updatedAt: string; key: string; etag: string } | null) {
    const rows = await queryRows<{ key: string; etag: string; size: string; latest: string; attempts: number; rows: string; quarantinedRows: string; error: string; updatedAt: string; generation: string }>(
      this.deps.destination.client,
      `SELECT key, etag, ${latestOf('size')} AS size, ${LATEST_STATUS} AS latest, ${ATTEMPTS} AS attempts, max(generation) AS generation,
              ${latestOf('rows')} AS rows, ${latestOf('quarantined_rows')} AS quarantinedRows, ${latestOf('error')} AS error,
              toString(max(seq)) AS updatedAt
       FROM ${quoteIdent(this.metaDb)}.${LEDGER_TABLE}
       WHERE datasource = {ds:String} ${q.search ? 'AND positionCaseInsensitiveUTF8(key, {search:String}) > 0' : ''}
       GROUP BY key, etag
       HAVING 1 ${q.status ? 'AND latest = {status:String}' : ''}
         ${after ? 'AND (max(seq) < toDateTime64({aAt:String}, 9, \'UTC\') OR (max(seq) = toDateTime64({aAt:String}, 9, \'UTC\') AND (key, etag) > ({aKey:String}, {aEtag:String})))' : ''}
       ORDER BY max(seq) DESC, key, etag
       LIMIT {limit:UInt32}`,
      { ds: name, search: q.search ?? '', status: q.status ?? '', limit: q.limit + 1, aAt: after?.updatedAt ?? '', aKey: after?.key ?? '', aEtag: after?.etag ?? '' },
    );
    const page = rows.slice(0, q.limit);
    const last = page[page.length - 1];
    return {
      items: page.map((r) => ({
        key: r.key, etag: r.etag, size: Number(r.size), status: r.latest, attempts: Number(r.attempts),
        rows: Number(r.rows), quarantinedRows: Number(r.quarantinedRows), error: r.error || null,
        updatedAt: new Date(r.updatedAt.slice(0, 23).replace(' ', 'T') + 'Z').toISOString(),
        generation: Number(r.generation),
      })),
      nextCursor: rows.length > q.limit && last ? Buffer.from(JSON.stringify({ updatedAt: last.updatedAt, key: last.key, etag: last.etag })).toString('base64url') : null,
    };
  }

  async fileHistory(name: string, key: string) {
    await this.describe(name);
    const rows = await queryRows<{ etag: string; status: string; attempt: number; rows: string; quarantined_rows: string; error: string; run_id: string; at: string; next_at: string | null; generation: string }>(
      this.deps.destination.client,
      `SELECT etag, generation, status, attempt, rows, quarantined_rows, error, run_id, toString(toDateTime64(seq, 3, 'UTC')) AS at,
              toString(toDateTime64(leadInFrame(seq) OVER (PARTITION BY etag ORDER BY seq ROWS BETWEEN CURRENT ROW AND 1 FOLLOWING), 3, 'UTC')) AS next_at,
              row_number() OVER (PARTITION BY etag ORDER BY seq ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS n,
              count() OVER (PARTITION BY etag) AS total
       FROM ${quoteIdent(this.metaDb)}.${LEDGER_TABLE}
       WHERE datasource = {ds:String} AND key = {key:String} ORDER BY seq`,
      { ds: name, key },
    );
    const iso = (s: string) => new Date(s.replace(' ', 'T') + 'Z').toISOString();
    return {
      key,
      items: rows.map((r) => {
        const n = (r as unknown as { n: string; total: string });
        const isLast = Number(n.n) === Number(n.total);
        return {
          etag: r.etag, generation: Number(r.generation), status: r.status, attempt: Number(r.attempt), rows: Number(r.rows), quarantinedRows: Number(r.quarantined_rows),
          error: r.error || null, runId: r.run_id || null, at: iso(r.at),
          /** Time spent in this status; null for the current one. */
          durationMs: isLast || !r.next_at ? null : Date.parse(iso(r.next_at)) - Date.parse(iso(r.at)),
        };
      }),
    };
  }

  async runs(name: string, limit: number) {
    await this.describe(name);
    const rows = await queryRows<Record<string, string>>(
      this.deps.destination.client,
      `SELECT run_id, trigger, toString(started_at) AS started_at, toString(finished_at) AS finished_at, files_found, files_imported, files_failed, rows, bytes
       FROM ${quoteIdent(this.metaDb)}.${RUNS_TABLE} WHERE datasource = {ds:String} ORDER BY started_at DESC LIMIT {limit:UInt32}`,
      { ds: name, limit },
    );
    const iso = (s: string) => new Date(s.replace(' ', 'T') + 'Z').toISOString();
    return {
      items: rows.map((r) => ({
        runId: r.run_id!, trigger: r.trigger!, startedAt: iso(r.started_at!), finishedAt: iso(r.finished_at!),
        durationMs: Date.parse(iso(r.finished_at!)) - Date.parse(iso(r.started_at!)),
        filesFound: Number(r.files_found), filesImported: Number(r.files_imported), filesFailed: Number(r.files_failed),
        rows: Number(r.rows), bytes: Number(r.bytes),
      })),
      nextCursor: null,
    };
  }

  async quarantine(name: string, limit: number) {
    const ds = await this.get(name);
    const names = tableNames(this.deps.destination.database, ds.table);
    const rows = await queryRows<{ _file: string; _etag: string; _line: string; column: string; raw: string; error: string }>(
      this.deps.destination.client,
      `SELECT _file, _etag, _line, column, raw, error FROM ${names.quarantine} ORDER BY _file, _line LIMIT {limit:UInt32}`,
      { limit },
    ).catch(() => []);
    return { items: rows.map((r) => ({ key: r._file, etag: r._etag, line: Number(r._line), column: r.column || null, raw: r.raw, error: r.error })), nextCursor: null };
  }

  async preview(body: { connection: string; bucketUri: string; format?: string; csv?: unknown; compression?: string; limit?: number }) {
    const spec = await this.validate({ name: 'preview', connection: body.connection, bucketUri: body.bucketUri, format: body.format, csv: body.csv, compression: body.compression }).then((v) => v.spec);
    const matched = await this.schema.matchingObjects(spec, body.limit ?? 20);
    // The literal prefix listed, the matcher built, range expansions, and why nothing may match.
    const glob = describeBucketUri(spec.bucketUri);
    const warnings = [...glob.warnings, ...(matched.total === 0 ? [noMatchWarning(glob, matched)] : [])];
    const ref = matched.files.find((f) => f.size > 0);
    if (!ref) return { files: matched.files, total: matched.total, complete: matched.complete, columns: null, inferredFrom: null, suggestedTimeColumn: null, glob, warnings };
    // Preview is interactive: never infer from a file bigger than this (the size comes from the listing).
    if (ref.size > PREVIEW_INFER_MAX_BYTES) {
      throw badRequest('the file to infer columns from is too large to preview', [{
        field: 'bucketUri',
        message: `the first matching file '${ref.key.slice(0, 256)}' is ${ref.size} bytes; preview infers columns only from files up to ${PREVIEW_INFER_MAX_BYTES} bytes (64 MiB): narrow bucketUri to a smaller file, or declare columns`,
      }]);
    }
    const columns = await this.schema.inferColumns(spec, ref);
    return { files: matched.files, total: matched.total, complete: matched.complete, columns, inferredFrom: ref.key, suggestedTimeColumn: suggestTimeColumn(columns), glob, warnings };
  }
}

export { FILE_STATUSES };
