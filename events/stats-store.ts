/**
 * Event counters shared between processes. Workers consume the SQS queues;
 * in a split deployment (worker and API containers) the API has no counters
 * of its own to show, so each worker process writes its `EventStats` to a
 * small table in the connector's database, and the API adds up those of the
 * processes that reported recently. A process writes when something changed
 * (at most every 5 s) and at least every minute while it lives; a process
 * that stopped reporting drops out of the sum after 3 minutes.
 */
import type { ClickHouseClient } from '@clickhouse/client';
import { queryRows } from '../clickhouse/destination.js';
import { quoteIdent } from '../schemas/identifiers.js';
import type { EventStats, NotificationHealth, QueueStats } from './stats.js';

export const EVENT_STATS_TABLE = 'event_stats';
/** A process that has not reported for this long is left out (it reports at least every REPORT_EVERY_MS). */
export const LIVE_WITHIN_MS = 3 * 60_000;
/** A live process reports at least this often, so one that died drops out of the sum within LIVE_WITHIN_MS. */
const REPORT_EVERY_MS = 60_000;
const FLUSH_EVERY_MS = 5000;

export interface ProcessReport {
  process: string;
  queues: QueueStats[];
  dataSources: Array<NotificationHealth & { dataSource: string }>;
}

export class EventStatsStore {
  private ready: Promise<void> | null = null;
  constructor(private readonly client: ClickHouseClient, private readonly database: string) {}

  private get table() {
    return `${quoteIdent(this.database)}.${EVENT_STATS_TABLE}`;
  }

  ensure(): Promise<void> {
    this.ready ??= this.client
      .command({
        query: `CREATE TABLE IF NOT EXISTS ${this.table} (process String, body String, at DateTime64(3, 'UTC'))
                ENGINE = ReplacingMergeTree(at) ORDER BY process TTL toDateTime(at) + INTERVAL 1 DAY`,
      })
      .then(
        () => undefined,
        (err: unknown) => {
          this.ready = null;
          throw err;
        },
      );
    return this.ready;
  }

  async write(stats: EventStats): Promise<void> {
    await this.ensure();
    const report: ProcessReport = { process: stats.process, queues: stats.queues(), dataSources: stats.allNotifications() };
    await this.client.insert({ table: this.table, values: [{ process: stats.process, body: JSON.stringify(report), at: new Date().toISOString().replace('T', ' ').replace('Z', '') }], format: 'JSONEachRow' });
  }

  /** The latest report of every process that reported within LIVE_WITHIN_MS, but `exceptProcess` (the caller's own, counted live). */
  async live(exceptProcess: string): Promise<ProcessReport[]> {
    await this.ensure();
    const rows = await queryRows<{ body: string }>(
      this.client,
      `SELECT argMax(body, at) AS body FROM ${this.table}
       WHERE at > now64(3) - toIntervalMillisecond({live:UInt32}) AND process != {self:String}
       GROUP BY process`,
      { live: LIVE_WITHIN_MS, self: exceptProcess },
    );
    return rows.flatMap((r) => {
      try {
        return [JSON.parse(r.body) as ProcessReport];
      } catch {
        return [];
      }
    });
  }
}

/**
 * Write this process's counters while it runs: soon after they change, and
 * every REPORT_EVERY_MS regardless (so readers know it is alive). A failed
 * write is tried at the next turn; counters are never lost in memory.
 */
export function reportEventStats(store: EventStatsStore, stats: EventStats, log?: (line: string) => void): { stop(): Promise<void> } {
  let written = '';
  let writtenAt = 0;
  let failing = false;
  const flush = async (force = false) => {
    const version = stats.signature();
    if (!force && version === written && Date.now() - writtenAt < REPORT_EVERY_MS) return;
    try {
      await store.write(stats);
      written = version;
      writtenAt = Date.now();
      failing = false;
    } catch (err) {
      if (!failing) log?.(`[events] could not write the event counters: ${(err as Error).message.slice(0, 200)}`);
      failing = true;
    }
  };
  let running = flush();
  const timer = setInterval(() => {
    running = running.then(() => flush());
  }, FLUSH_EVERY_MS);
  timer.unref();
  return {
    async stop() {
      clearInterval(timer);
      await running;
      await flush(true);
    },
  };
}

/** Counters of several processes as one: sums, the largest lag, the latest times; polling if any process polls. */
export function mergeQueues(lists: QueueStats[][]): QueueStats[] {
  const out = new Map<string, QueueStats>();
  const latest = (a: string | null, b: string | null) => (a && b ? (a > b ? a : b) : (a ?? b));
  for (const q of lists.flat()) {
    const key = `${q.connection}\u0000${q.queueUrl}`;
    const m = out.get(key);
    if (!m) {
      out.set(key, { ...q });
      continue;
    }
    for (const k of ['received', 'matched', 'unmatched', 'testEvents', 'deleted', 'redelivered', 'unparseable', 'signalErrors', 'errors', 'requests', 'receives'] as const) m[k] += q[k];
    m.polling ||= q.polling;
    m.lagSeconds = Math.max(m.lagSeconds, q.lagSeconds);
    if ((q.lastMessageAt ?? '') > (m.lastMessageAt ?? '')) m.lastUnparseable = q.lastUnparseable ?? m.lastUnparseable;
    m.lastMessageAt = latest(m.lastMessageAt, q.lastMessageAt);
    m.lastPollAt = latest(m.lastPollAt, q.lastPollAt);
    if ((q.attributesAt ?? '') > (m.attributesAt ?? '')) {
      Object.assign(m, { approximateMessages: q.approximateMessages, approximateMessagesInFlight: q.approximateMessagesInFlight, visibilityTimeoutSeconds: q.visibilityTimeoutSeconds, deadLetterQueue: q.deadLetterQueue, attributesAt: q.attributesAt });
    }
    m.lastError = m.lastError ?? q.lastError;
  }
  return [...out.values()].sort((a, b) => a.connection.localeCompare(b.connection));
}

export function mergeNotifications(lists: Array<Array<NotificationHealth & { dataSource: string }>>): Array<NotificationHealth & { dataSource: string }> {
  const out = new Map<string, NotificationHealth & { dataSource: string }>();
  for (const n of lists.flat()) {
    const m = out.get(n.dataSource);
    if (!m) {
      out.set(n.dataSource, { ...n, byChannel: { ...n.byChannel } });
      continue;
    }
    m.events += n.events;
    m.byChannel.webhook += n.byChannel.webhook;
    m.byChannel.sqs += n.byChannel.sqs;
    if ((n.lastEventAt ?? '') > (m.lastEventAt ?? '')) m.lastEventAt = n.lastEventAt;
    if (n.since < m.since) m.since = n.since;
  }
  return [...out.values()];
}
