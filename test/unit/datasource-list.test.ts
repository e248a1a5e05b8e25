import { describe, expect, it } from 'vitest';
import { ApiError } from '../../api/errors.js';
import { decodeCursor, encodeCursor, expectedNextRun, visibilityQuery } from '../../api/datasource-list.js';

/** The list's pure parts: the cursor codec, the visibility query and the expected next tick. */
describe('data source list: cursor, query and next tick', () => {
  const token = Uint8Array.from([1, 2, 3, 250, 0, 7]);
  const query = visibilityQuery('s3ch', { prefix: 'web' });

  it('a cursor round-trips to its page token under the same query', () => {
    const cursor = encodeCursor(token, query);
    expect(cursor).toMatch(/^[A-Za-z0-9_-]+$/);
    expect([...decodeCursor(cursor, query)]).toEqual([...token]);
  });

  const cursorError = (fn: () => unknown) => {
    try {
      fn();
    } catch (err) {
      expect(err).toBeInstanceOf(ApiError);
      expect((err as ApiError).status).toBe(400);
      return (err as ApiError).errors.map((e) => e.field);
    }
    throw new Error('no error thrown');
  };

  it('garbage, a truncated or altered cursor, or one from other filters is 400 naming cursor', () => {
    const cursor = encodeCursor(token, query);
    expect(cursorError(() => decodeCursor('', query))).toEqual(['cursor']);
    expect(cursorError(() => decodeCursor('not a cursor', query))).toEqual(['cursor']);
    expect(cursorError(() => decodeCursor('AAAA', query))).toEqual(['cursor']);
    expect(cursorError(() => decodeCursor(cursor.slice(0, -2), query))).toEqual(['cursor']);
    const flipped = Buffer.from(cursor, 'base64url');
    flipped[0] = flipped[0]! ^ 1;
    expect(cursorError(() => decodeCursor(flipped.toString('base64url'), query))).toEqual(['cursor']);
    expect(cursorError(() => decodeCursor(cursor, visibilityQuery('s3ch', { prefix: 'api' })))).toEqual(['cursor']);
    expect(cursorError(() => decodeCursor(cursor, visibilityQuery('other-queue', { prefix: 'web' })))).toEqual(['cursor']);
    expect(cursorError(() => decodeCursor('A'.repeat(5000), query))).toEqual(['cursor']);
  });

  it('the visibility query names the task queue (quoted) and the filters', () => {
    expect(visibilityQuery("q'x", {})).toBe("WorkflowType = 'dataSource' AND ExecutionStatus = 'Running' AND TaskQueue = 'q\\'x'");
    expect(visibilityQuery('q', { state: 'paused', prefix: 'web_' })).toBe(
      "WorkflowType = 'dataSource' AND ExecutionStatus = 'Running' AND TaskQueue = 'q' AND DataSourceState = 'paused' AND WorkflowId STARTS_WITH 'datasource:web_'",
    );
  });

  it('the expected next tick follows the schedule from the last run, never in the past', () => {
    const now = Date.parse('2026-01-01T12:00:30Z');
    expect(expectedNextRun('@every 5m', '2026-01-01T12:00:00Z', now)).toBe('2026-01-01T12:05:00.000Z');
    // The last run is long past: the next tick is counted from now.
    expect(expectedNextRun('@every 5m', '2026-01-01T10:00:00Z', now)).toBe('2026-01-01T12:05:30.000Z');
    expect(expectedNextRun('@auto', null, now)).toBe('2026-01-01T12:01:30.000Z');
    expect(expectedNextRun('0 * * * *', '2026-01-01T12:00:00Z', now)).toBe('2026-01-01T13:00:00.000Z');
    expect(expectedNextRun('@on-demand', null, now)).toBeNull();
    expect(expectedNextRun('not a schedule', null, now)).toBeNull();
  });
});
