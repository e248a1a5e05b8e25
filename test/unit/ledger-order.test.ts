import { beforeAll, describe, expect, it } from 'vitest';
import { queryRows, type Destination } from '../../clickhouse/destination.js';
import { processDestination } from '../support/harness.js';
import { LEDGER_ORDER, Ledger, latestOf } from '../../activities/ledger.js';

/**
 * The ledger's event order is one number standing for the tuple
 * `(status = 'success', seq)`: a version's latest state must be the same
 * under both, at the ends of DateTime64(9)'s range and for equal times.
 */
describe('the ledger order as one number', () => {
  let d: Destination;

  beforeAll(async () => {
    d = await processDestination();
  });

  it('picks the same latest event as the tuple order, at the ends of the time range too', async () => {
    // Each version's events as (status, seq); the version names say what decides.
    const events: Array<[string, string, string]> = [
      ['success-early-beats-later-failure', 'success', '1900-01-01 00:00:00.000000000'],
      ['success-early-beats-later-failure', 'failure', '2262-04-11 23:47:16.854775807'],
      ['latest-of-two-failures', 'failure', '2024-03-01 10:00:00.000000001'],
      ['latest-of-two-failures', 'pending_retry', '2024-03-01 10:00:00.000000002'],
      ['later-success-of-two', 'success', '1969-12-31 23:59:59.999999999'],
      ['later-success-of-two', 'success', '1970-01-01 00:00:00.000000000'],
      ['before-1970-only', 'queued', '1900-01-01 00:00:00.000000000'],
      ['before-1970-only', 'running', '1950-06-01 00:00:00.000000000'],
      ['success-beats-running-at-the-same-time', 'running', '2030-01-01 00:00:00.123456789'],
      ['success-beats-running-at-the-same-time', 'success', '2030-01-01 00:00:00.123456789'],
    ];
    const rows = await queryRows<{ version: string; bySum: string; byTuple: string; when: string }>(
      d.client,
      `SELECT version, ${latestOf('status')} AS bySum, argMax(status, (status = 'success', seq)) AS byTuple,
              toString(argMax(seq, ${LEDGER_ORDER})) AS when
       FROM (SELECT e.1 AS version, e.2 AS status, toDateTime64(e.3, 9, 'UTC') AS seq
             FROM (SELECT arrayJoin(arrayZip({versions:Array(String)}, {statuses:Array(String)}, {seqs:Array(String)})) AS e))
       GROUP BY version ORDER BY version`,
      { versions: events.map((e) => e[0]), statuses: events.map((e) => e[1]), seqs: events.map((e) => e[2]) },
    );
    expect(rows.map((r) => [r.version, r.bySum])).toEqual(rows.map((r) => [r.version, r.byTuple]));
    expect(Object.fromEntries(rows.map((r) => [r.version, [r.bySum, r.when]]))).toEqual({
      'success-early-beats-later-failure': ['success', '1900-01-01 00:00:00.000000000'],
      'latest-of-two-failures': ['pending_retry', '2024-03-01 10:00:00.000000002'],
      'later-success-of-two': ['success', '1970-01-01 00:00:00.000000000'],
      'before-1970-only': ['running', '1950-06-01 00:00:00.000000000'],
      'success-beats-running-at-the-same-time': ['success', '2030-01-01 00:00:00.123456789'],
    });
  });

  it('reads a data source\'s counters with the number of ledger events they came from', async () => {
    const ledger = new Ledger(d.client, d.database);
    await ledger.ensureTables();
    const event = (key: string, etag: string, status: 'queued' | 'running' | 'success' | 'failure', rows = 0) =>
      ({ datasource: 'counted', key, etag, size: 10, attempt: status === 'queued' ? 0 : 1, status, rows, quarantined_rows: 0, bytes: status === 'success' ? 10 : 0 });
    // One event per call, so ClickHouse's receive time orders them.
    for (const e of [event('a', '1', 'queued'), event('a', '1', 'running'), event('a', '1', 'success', 5), event('b', '1', 'queued'), event('b', '1', 'running'), event('b', '1', 'failure')]) {
      await ledger.record([e]);
    }
    await ledger.record([{ ...event('x', '1', 'success', 7), datasource: 'another' }]);
    const stats = await ledger.stats('counted');
    expect(stats).toMatchObject({ rows: 5, bytes: 10, events: 6 });
    expect(stats.files).toMatchObject({ success: 1, failure: 1, queued: 0, running: 0 });
  });
});
