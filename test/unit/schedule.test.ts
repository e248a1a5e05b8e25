import { describe, it, expect } from 'vitest';
import { ScheduleError, describeSchedule, nextRunAt, parseSchedule, type Schedule } from '../../schemas/schedule.js';

const at = (iso: string) => Date.parse(iso);
const iso = (ms: number | null) => (ms === null ? null : new Date(ms).toISOString());

function scheduleErrorFrom(text: string): ScheduleError {
  try {
    parseSchedule(text);
  } catch (e) {
    if (e instanceof ScheduleError) return e;
    throw e;
  }
  throw new Error(`expected parseSchedule(${JSON.stringify(text)}) to throw`);
}

describe('parseSchedule', () => {
  it.each<[string, Schedule]>([
    ['@auto', { kind: 'auto' }],
    ['  @AUTO  ', { kind: 'auto' }],
    ['@on-demand', { kind: 'on-demand' }],
    ['@every 1s', { kind: 'every', ms: 1_000 }],
    ['@every 30s', { kind: 'every', ms: 30_000 }],
    ['@every 90s', { kind: 'every', ms: 90_000 }],
    ['@every 5m', { kind: 'every', ms: 300_000 }],
    ['@every 2h', { kind: 'every', ms: 7_200_000 }],
    ['@every 1h30m', { kind: 'every', ms: 5_400_000 }],
    ['@every 1h 30m', { kind: 'every', ms: 5_400_000 }],
    ['@every 1d2h3m4s', { kind: 'every', ms: 93_784_000 }],
    ['@every 31d', { kind: 'every', ms: 31 * 86_400_000 }],
    ['@EVERY 10m', { kind: 'every', ms: 600_000 }],
    ['@hourly', { kind: 'cron', expression: '0 * * * *' }],
    ['@daily', { kind: 'cron', expression: '0 0 * * *' }],
    ['@midnight', { kind: 'cron', expression: '0 0 * * *' }],
    ['@weekly', { kind: 'cron', expression: '0 0 * * 0' }],
    ['@monthly', { kind: 'cron', expression: '0 0 1 * *' }],
    ['@yearly', { kind: 'cron', expression: '0 0 1 1 *' }],
    ['@annually', { kind: 'cron', expression: '0 0 1 1 *' }],
    ['* * * * *', { kind: 'cron', expression: '* * * * *' }],
    ['  */15   *\t* * *  ', { kind: 'cron', expression: '*/15 * * * *' }],
    ['0 9 * * MON-FRI', { kind: 'cron', expression: '0 9 * * MON-FRI' }],
    ['0 0 1 jan,Jul *', { kind: 'cron', expression: '0 0 1 jan,Jul *' }],
    ['10-50/5 0-23/6 1-31/10 */3 0-7', { kind: 'cron', expression: '10-50/5 0-23/6 1-31/10 */3 0-7' }],
    ['0 0 29 2 *', { kind: 'cron', expression: '0 0 29 2 *' }],
    ['0 0 30,31 2,4 *', { kind: 'cron', expression: '0 0 30,31 2,4 *' }],
    // Day-of-week alone can match (either-day rule), so February 31 is not a problem here.
    ['0 0 31 2 MON', { kind: 'cron', expression: '0 0 31 2 MON' }],
    ['5/20 * * * *', { kind: 'cron', expression: '5/20 * * * *' }],
  ])('%j', (text, expected) => {
    expect(parseSchedule(text)).toEqual(expected);
  });

  it.each([
    // [text, fragments the reason must contain]
    ['', ['is empty', '@auto', 'cron']],
    ['   ', ['is empty']],
    ['@sometimes', ['"@sometimes"', '@on-demand']],
    ['@auto now', ['"@auto" takes no argument', 'now']],
    ['@hourly 5', ['"@hourly" takes no argument']],
    ['@every', ['needs a duration']],
    ['@every 0s', ['"@every 0s" is too short', '1s']],
    ['@every 0h0m', ['too short']],
    ['@every 32d', ['"@every 32d" is too long', '31d']],
    ['@every 744h1s', ['too long']],
    ['@every 99999999999999999999s', ['too long']],
    ['@every 500ms', ['"500ms" is not valid', 'd, h, m, s']],
    ['@every 5x', ['"5x"']],
    ['@every 30m1h', ['"30m1h"', 'in that order']],
    ['@every 1.5h', ['"1.5h"']],
    ['@every -5m', ['"-5m"']],
    ['@every 5', ['"5"']],
    ['* * * *', ['has 4 fields', 'expected 5', 'minute hour day-of-month month day-of-week']],
    ['0 * * * * *', ['has 6 fields', 'seconds field is not supported']],
    ['hourly', ['has 1 field;']],
    ['60 * * * *', ['minute value 60 is out of range 0-59']],
    ['* 24 * * *', ['hour value 24 is out of range 0-23']],
    ['* * 0 * *', ['day-of-month value 0 is out of range 1-31']],
    ['* * 32 * *', ['day-of-month value 32 is out of range 1-31']],
    ['* * * 0 *', ['month value 0 is out of range 1-12']],
    ['* * * 13 *', ['month value 13 is out of range 1-12']],
    ['* * * * 8', ['day-of-week value 8 is out of range 0-7']],
    ['0-60 * * * *', ['minute value 60 is out of range 0-59']],
    ['*/0 * * * *', ['minute step 0', 'use 1-59']],
    ['* 1-5/0 * * *', ['hour step 0']],
    ['*/60 * * * *', ['minute step 60', 'use 1-59']],
    ['*/x * * * *', ['minute step "x"', 'not a number']],
    ['*/5/2 * * * *', ['minute item "*/5/2"', 'more than one "/"']],
    ['* 5-1 * * *', ['hour range 5-1 is reversed']],
    ['* * * * FRI-MON', ['day-of-week range FRI-MON is reversed']],
    ['* * * DEC-JAN *', ['month range DEC-JAN is reversed']],
    ['1-2-3 * * * *', ['minute range "1-2-3"']],
    ['* * * FOO *', ['month name "FOO" is not recognised', 'JAN-DEC']],
    ['* * * * MONDAY', ['day-of-week name "MONDAY" is not recognised', 'SUN-SAT']],
    ['MON * * * *', ['minute value "MON" is not valid', '0-59']],
    ['1,,2 * * * *', ['minute field "1,,2" has an empty list item']],
    ['1, * * * *', ['minute field "1," has an empty list item']],
    ['-5 * * * *', ['minute item "-5" is missing a value']],
    ['* * ? * *', ['day-of-month value "?" is not valid']],
    ['* * L * *', ['day-of-month value "L" is not valid']],
    ['* * * * 5#3', ['day-of-week value "5#3" is not valid']],
    ['0 0 31 2 *', ['day-of-month "31" never occurs in month "2"']],
    ['0 0 30 FEB *', ['day-of-month "30" never occurs in month "FEB"']],
    ['0 0 31 4,6,9,11 *', ['day-of-month "31" never occurs']],
    ['0 0 31 2 */2', ['never occurs']],
  ])('rejects %j', (text, fragments) => {
    const err = scheduleErrorFrom(text);
    expect(err.field).toBe('schedule');
    expect(err.message).toBe(`schedule: ${err.reason}`);
    for (const fragment of fragments) expect(err.reason).toContain(fragment);
  });
});

describe('nextRunAt', () => {
  it('returns null for on-demand', () => {
    expect(nextRunAt({ kind: 'on-demand' }, at('2024-01-01T00:00:00Z'))).toBeNull();
  });

  it('runs @auto one minute later', () => {
    expect(nextRunAt(parseSchedule('@auto'), 1_000)).toBe(61_000);
  });

  it('adds the @every interval', () => {
    expect(nextRunAt(parseSchedule('@every 30s'), 1_000)).toBe(31_000);
    expect(iso(nextRunAt(parseSchedule('@every 1h30m'), at('2024-02-28T23:59:30Z')))).toBe('2024-02-29T01:29:30.000Z');
  });

  it('refuses hand-built @every intervals outside 1s-31d', () => {
    expect(() => nextRunAt({ kind: 'every', ms: 0 }, 0)).toThrow(ScheduleError);
    expect(() => nextRunAt({ kind: 'every', ms: -5 }, 0)).toThrow(ScheduleError);
    expect(() => nextRunAt({ kind: 'every', ms: 32 * 86_400_000 }, 0)).toThrow(ScheduleError);
  });

  it('throws ScheduleError for a hand-built invalid cron expression', () => {
    expect(() => nextRunAt({ kind: 'cron', expression: '* * *' }, 0)).toThrow(ScheduleError);
  });

  it.each([
    // [expression, after, expected next run]
    ['* * * * *', '2024-02-28T23:59:30Z', '2024-02-29T00:00:00.000Z'],
    ['* * * * *', '2024-02-29T00:00:00Z', '2024-02-29T00:01:00.000Z'],
    ['0 0 * * *', '2024-02-28T23:59:30Z', '2024-02-29T00:00:00.000Z'],
    ['0 0 1 * *', '2024-02-28T23:59:30Z', '2024-03-01T00:00:00.000Z'],
    ['0 0 1 * *', '2023-02-28T23:59:30Z', '2023-03-01T00:00:00.000Z'],
    // leap days
    ['0 0 29 2 *', '2024-02-28T23:59:30Z', '2024-02-29T00:00:00.000Z'],
    ['0 0 29 2 *', '2024-02-29T00:00:00Z', '2028-02-29T00:00:00.000Z'],
    ['0 0 29 2 *', '2096-03-01T00:00:00Z', '2104-02-29T00:00:00.000Z'],
    // month ends: months without the day are skipped
    ['30 12 31 * *', '2024-04-01T00:00:00Z', '2024-05-31T12:30:00.000Z'],
    ['0 0 31 * *', '2024-01-31T00:00:00Z', '2024-03-31T00:00:00.000Z'],
    ['0 0 30 * *', '2024-01-30T00:00:00Z', '2024-03-30T00:00:00.000Z'],
    ['59 23 31 DEC *', '2024-12-31T23:59:00Z', '2025-12-31T23:59:00.000Z'],
    ['0 0 * FEB *', '2023-03-01T00:00:00Z', '2024-02-01T00:00:00.000Z'],
    // steps and ranges; "strictly after" at exact boundaries
    ['*/15 * * * *', '2024-01-01T10:07:00Z', '2024-01-01T10:15:00.000Z'],
    ['*/15 * * * *', '2024-01-01T10:15:00Z', '2024-01-01T10:30:00.000Z'],
    ['*/15 * * * *', '2024-01-01T10:14:59.999Z', '2024-01-01T10:15:00.000Z'],
    ['*/15 * * * *', '2024-12-31T23:59:00Z', '2025-01-01T00:00:00.000Z'],
    ['10-50/20 * * * *', '2024-01-01T10:50:01Z', '2024-01-01T11:10:00.000Z'],
    ['10-50/20 * * * *', '2024-01-01T10:10:00Z', '2024-01-01T10:30:00.000Z'],
    ['5/20 * * * *', '2024-01-01T10:46:00Z', '2024-01-01T11:05:00.000Z'],
    ['0 22-23 * * *', '2024-02-28T23:30:00Z', '2024-02-29T22:00:00.000Z'],
    ['0 */6 * * *', '2024-02-28T19:00:00Z', '2024-02-29T00:00:00.000Z'],
    ['15,45 9,17 * * *', '2024-01-01T09:45:00Z', '2024-01-01T17:15:00.000Z'],
    // names, case-insensitive
    ['0 9 * * MON-FRI', '2024-06-01T12:00:00Z', '2024-06-03T09:00:00.000Z'],
    ['0 9 * * mon-fri', '2024-06-03T09:00:00Z', '2024-06-04T09:00:00.000Z'],
    ['0 12 * * sat,SUN', '2024-09-06T13:00:00Z', '2024-09-07T12:00:00.000Z'],
    ['0 0 1 jan *', '2024-06-01T00:00:00Z', '2025-01-01T00:00:00.000Z'],
    // day-of-week 7 and 0 are both Sunday (2024-09-02 is a Monday)
    ['0 0 * * 7', '2024-09-02T00:00:00Z', '2024-09-08T00:00:00.000Z'],
    ['0 0 * * 0', '2024-09-02T00:00:00Z', '2024-09-08T00:00:00.000Z'],
    ['0 0 * * 5-7', '2024-09-02T00:00:00Z', '2024-09-06T00:00:00.000Z'],
    // both day fields restricted: either may match (2024-09-13 is a Friday, 2024-09-15 a Sunday)
    ['0 0 15 * FRI', '2024-09-07T00:00:00Z', '2024-09-13T00:00:00.000Z'],
    ['0 0 15 * FRI', '2024-09-13T00:00:00Z', '2024-09-15T00:00:00.000Z'],
    // only February is selected: after Tuesday 2024-02-27 the next February Monday is 2025-02-03
    ['0 0 31 2 MON', '2024-02-27T00:00:00Z', '2025-02-03T00:00:00.000Z'],
    ['0 0 31 2 MON', '2024-01-31T00:00:00Z', '2024-02-05T00:00:00.000Z'],
    // a day field starting with * counts as unrestricted, so both must match:
    // odd days of the month that are Mondays (2024-09-02 is even, 2024-09-09 odd)
    ['0 0 */2 * MON', '2024-09-01T00:00:00Z', '2024-09-09T00:00:00.000Z'],
    // 29 February on a Sunday: 2032 is the next after 2004
    ['0 0 29 2 */7', '2004-03-01T00:00:00Z', '2032-02-29T00:00:00.000Z'],
    // macros
    ['@hourly', '2024-01-01T10:00:00Z', '2024-01-01T11:00:00.000Z'],
    ['@daily', '2024-02-28T23:59:30Z', '2024-02-29T00:00:00.000Z'],
    ['@weekly', '2024-09-02T00:00:00Z', '2024-09-08T00:00:00.000Z'],
    ['@monthly', '2024-02-28T23:59:30Z', '2024-03-01T00:00:00.000Z'],
    ['@yearly', '2024-12-31T23:59:30Z', '2025-01-01T00:00:00.000Z'],
  ])('%s after %s -> %s', (text, after, expected) => {
    expect(iso(nextRunAt(parseSchedule(text), at(after)))).toBe(expected);
  });

  it('always lands on a minute boundary strictly after the given time', () => {
    const schedule = parseSchedule('*/7 */5 * * *');
    let t = at('2024-02-28T23:59:30.123Z');
    for (let i = 0; i < 500; i++) {
      const next = nextRunAt(schedule, t)!;
      expect(next).toBeGreaterThan(t);
      expect(next % 60_000).toBe(0);
      const d = new Date(next);
      expect(d.getUTCMinutes() % 7).toBe(0);
      expect(d.getUTCHours() % 5).toBe(0);
      t = next;
    }
  });

  it('is fast for rare dates', () => {
    const schedule = parseSchedule('0 0 29 2 */7');
    let t = at('1900-01-01T00:00:00Z');
    for (let i = 0; i < 20; i++) t = nextRunAt(schedule, t)!;
    // Twenty Sunday leap days on from 1900 (and 2000 is a leap year, 2100 is not).
    expect(new Date(t).getUTCDay()).toBe(0);
    expect(new Date(t).getUTCMonth()).toBe(1);
    expect(new Date(t).getUTCDate()).toBe(29);
  });
});

describe('describeSchedule', () => {
  it.each<[Schedule, string]>([
    [{ kind: 'auto' }, 'every minute'],
    [{ kind: 'on-demand' }, 'on demand'],
    [{ kind: 'every', ms: 30_000 }, 'every 30s'],
    [{ kind: 'every', ms: 300_000 }, 'every 5m'],
    [{ kind: 'every', ms: 7_200_000 }, 'every 2h'],
    [{ kind: 'every', ms: 5_400_000 }, 'every 1h30m'],
    [{ kind: 'every', ms: 86_400_000 }, 'every 1d'],
    [{ kind: 'every', ms: 1_500 }, 'every 1s500ms'],
    [{ kind: 'cron', expression: '0 * * * *' }, 'cron 0 * * * * (UTC)'],
  ])('%j -> %s', (schedule, expected) => {
    expect(describeSchedule(schedule)).toBe(expected);
  });

  it('describes parsed schedules', () => {
    expect(describeSchedule(parseSchedule('@every 90s'))).toBe('every 1m30s');
    expect(describeSchedule(parseSchedule('@hourly'))).toBe('cron 0 * * * * (UTC)');
    expect(describeSchedule(parseSchedule('0  9 * *  MON-FRI'))).toBe('cron 0 9 * * MON-FRI (UTC)');
  });
});
