import { createRoute, type OpenAPIHono } from '@hono/zod-openapi';
import { z } from 'zod';
import type { AppEnv } from '../context.js';

/** Escape a Prometheus label value. */
const label = (v: string) => v.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');

/** Ledgers whose tables exist: a scrape every few seconds need not repeat the DDL (one attempt at a time; a failure is tried again). */
const ensured = new WeakMap<object, Promise<void>>();
function ensureLedgerTables(ledger: { ensureTables(): Promise<void> }): Promise<void> {
  let ready = ensured.get(ledger);
  if (!ready) {
    ready = ledger.ensureTables().catch((err) => {
      ensured.delete(ledger);
      throw err;
    });
    ensured.set(ledger, ready);
  }
  return ready;
}

/**
 * Prometheus text exposition: file counts by status and row/byte totals per
 * data source, from the ledger (so they survive restarts), plus process gauges.
 */
export function registerMetricsRoute(app: OpenAPIHono<AppEnv>) {
  const route = createRoute({
    method: 'get', path: '/metrics', tags: ['system'], summary: 'Prometheus metrics: files by status, rows, bytes, runs per data source',
    responses: { 200: { content: { 'text/plain': { schema: z.string() } }, description: 'Prometheus text exposition format 0.0.4' } },
  });
  app.openapi(route, async (c) => {
    const ledger = c.var.service.ledger;
    await ensureLedgerTables(ledger);
    const [stats, runs] = await Promise.all([c.var.service.allLedgerStats(), ledger.runCounts()]);
    const out: string[] = [];
    const family = (name: string, type: 'gauge' | 'counter', help: string, samples: Array<[Record<string, string>, number]>) => {
      out.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`);
      for (const [labels, value] of samples) {
        const l = Object.entries(labels).map(([k, v]) => `${k}="${label(v)}"`).join(',');
        out.push(`${name}${l ? `{${l}}` : ''} ${value}`);
      }
    };
    family('s3ch_files', 'gauge', 'Files (object versions) by their latest status.', stats.map((s) => [{ datasource: s.datasource, status: s.status }, s.files]));
    const succeeded = stats.filter((s) => s.status === 'success');
    family('s3ch_rows_loaded_total', 'counter', 'Rows loaded into the destination table.', succeeded.map((s) => [{ datasource: s.datasource }, s.rows]));
    family('s3ch_rows_quarantined_total', 'counter', 'Rows kept in <table>_quarantine because they did not fit.', succeeded.map((s) => [{ datasource: s.datasource }, s.quarantined]));
    family('s3ch_bytes_loaded_total', 'counter', 'Bytes of objects imported.', succeeded.map((s) => [{ datasource: s.datasource }, s.bytes]));
    family('s3ch_runs_total', 'counter', 'Sync runs finished.', runs.map((r) => [{ datasource: r.datasource }, r.runs]));
    family('s3ch_last_run_finished_seconds', 'gauge', 'Unix time the last sync run finished.', runs.map((r) => [{ datasource: r.datasource }, r.lastFinished]));
    // Event notifications seen by this process (SQS queues of its worker, webhooks of its API).
    const events = await c.var.service.eventsView();
    const queues = events.queues;
    const perQueue = (pick: (q: (typeof queues)[number]) => number) => queues.map((q): [Record<string, string>, number] => [{ connection: q.connection, queue: q.queueUrl }, pick(q)]);
    family('s3ch_sqs_messages_received_total', 'counter', 'SQS messages received, redeliveries included.', perQueue((q) => q.received));
    family('s3ch_sqs_messages_matched_total', 'counter', 'SQS messages naming an object some data source imports.', perQueue((q) => q.matched));
    family('s3ch_sqs_messages_unmatched_total', 'counter', 'SQS messages understood but concerning no data source (acknowledged).', perQueue((q) => q.unmatched));
    family('s3ch_sqs_test_events_total', 'counter', 'S3 s3:TestEvent messages (acknowledged).', perQueue((q) => q.testEvents));
    family('s3ch_sqs_messages_deleted_total', 'counter', 'SQS messages deleted after every data source they concern had their keys.', perQueue((q) => q.deleted));
    family('s3ch_sqs_messages_redelivered_total', 'counter', 'SQS receipts with ApproximateReceiveCount > 1.', perQueue((q) => q.redelivered));
    family('s3ch_sqs_messages_unparseable_total', 'counter', 'SQS receipts of messages that are no S3 event (left for the redrive policy).', perQueue((q) => q.unparseable));
    family('s3ch_sqs_errors_total', 'counter', 'Failed SQS receives and deletes, and failed signals.', perQueue((q) => q.errors + q.signalErrors));
    family('s3ch_sqs_requests_total', 'counter', 'SQS API requests made.', perQueue((q) => q.requests));
    family('s3ch_sqs_lag_seconds', 'gauge', 'Age of the oldest message of the last batch on arrival (0 once the queue is empty).', perQueue((q) => q.lagSeconds));
    family('s3ch_sqs_polling', 'gauge', '1 while the long poll runs.', perQueue((q) => (q.polling ? 1 : 0)));
    const notified = events.dataSources;
    family('s3ch_notified_keys_total', 'counter', 'Keys event notifications handed to a data source, by channel.', notified.flatMap((n) => (['webhook', 'sqs'] as const).map((ch): [Record<string, string>, number] => [{ datasource: n.dataSource, channel: ch }, n.byChannel[ch]])));
    family('s3ch_last_notification_seconds', 'gauge', 'Unix time an event last named a key of the data source.', notified.filter((n) => n.lastEventAt).map((n) => [{ datasource: n.dataSource }, Math.round(Date.parse(n.lastEventAt!) / 1000)]));
    const mem = process.memoryUsage();
    family('process_resident_memory_bytes', 'gauge', 'Resident memory of the connector process.', [[{}, mem.rss]]);
    family('nodejs_heap_used_bytes', 'gauge', 'V8 heap in use.', [[{}, mem.heapUsed]]);
    family('process_uptime_seconds', 'gauge', 'Seconds since the process started.', [[{}, Math.round(process.uptime())]]);
    return c.body(out.join('\n') + '\n', 200, { 'content-type': 'text/plain; version=0.0.4; charset=utf-8' }) as never;
  });
}
