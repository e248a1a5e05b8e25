import { describe, expect, it } from 'vitest';
import { dataSourcePatchSchema, dataSourceSpecSchema } from '../../schemas/datasource.js';
import { AUTO_INTERVAL_MS, DEFAULT_SWEEP_MS, DurationError, adaptiveIntervalMs, formatDuration, maxIdleIntervalMs, parseDuration, sweepIntervalMs } from '../../schemas/polling.js';

const base = { name: 'events', connection: 'local', bucketUri: 's3://demo/events/*.csv', format: 'csv' };

function issues(input: unknown) {
  const r = dataSourceSpecSchema.safeParse(input);
  if (r.success) throw new Error(`expected ${JSON.stringify(input)} to be rejected`);
  return r.error.issues.map((i) => ({ field: i.path.map(String).join('.'), message: i.message }));
}

describe('polling maths', () => {
  it('parses durations within bounds and names the field and the reason otherwise', () => {
    expect(parseDuration('sweepInterval', '1h30m', 1000, 86_400_000)).toBe(5_400_000);
    expect(parseDuration('sweepInterval', '45s', 1000, 86_400_000)).toBe(45_000);
    expect(() => parseDuration('sweepInterval', '0s', 1000, 86_400_000)).toThrow(/sweepInterval: "0s" is too short; the minimum is 1s/);
    expect(() => parseDuration('sweepInterval', '2d', 1000, 86_400_000)).toThrow(/"2d" is too long; the maximum is 1d/);
    for (const bad of ['', '1x', '30m1h', '1.5h', '-1s', 'hourly']) {
      expect(() => parseDuration('f', bad, 1000, 86_400_000), bad).toThrow(DurationError);
    }
    expect(formatDuration(5_400_000)).toBe('1h30m');
  });

  it('sweeps every hour unless the spec says otherwise', () => {
    expect(sweepIntervalMs({})).toBe(DEFAULT_SWEEP_MS);
    expect(DEFAULT_SWEEP_MS).toBe(3_600_000);
    expect(sweepIntervalMs({ sweepInterval: '10m' })).toBe(600_000);
  });

  it('the adaptive @auto interval doubles per idle tick from one minute up to the cap', () => {
    const cap = 15 * 60_000;
    expect([0, 1, 2, 3, 4, 5, 50, 5000].map((n) => adaptiveIntervalMs(n, cap) / 60_000)).toEqual([1, 2, 4, 8, 15, 15, 15, 15]);
    expect(adaptiveIntervalMs(0, cap)).toBe(AUTO_INTERVAL_MS);
    // Only @auto adapts; a cap of one minute is no adaptation at all.
    expect(maxIdleIntervalMs({ schedule: '@auto', maxIdleInterval: '15m' })).toBe(cap);
    expect(maxIdleIntervalMs({ maxIdleInterval: '15m' })).toBe(cap);
    expect(maxIdleIntervalMs({ schedule: '@every 30s', maxIdleInterval: '15m' })).toBeNull();
    expect(maxIdleIntervalMs({ schedule: '@auto', maxIdleInterval: '1m' })).toBeNull();
    expect(maxIdleIntervalMs({ schedule: '@auto' })).toBeNull();
  });
});

describe('spec fields sweepInterval and maxIdleInterval', () => {
  it('accepts them where they apply', () => {
    const spec = dataSourceSpecSchema.parse({ ...base, schedule: '@auto', sweepInterval: '30m', maxIdleInterval: '15m' });
    expect(spec).toMatchObject({ sweepInterval: '30m', maxIdleInterval: '15m', mode: 'tracked' });
    // Absent means the defaults (hourly sweeps, a fixed minute), and nothing is written into the spec.
    const plain = dataSourceSpecSchema.parse(base);
    expect('sweepInterval' in plain || 'maxIdleInterval' in plain).toBe(false);
    expect(dataSourcePatchSchema.parse({ sweepInterval: '2h' })).toMatchObject({ sweepInterval: '2h' });
  });

  it.each([
    ['a malformed sweepInterval', { sweepInterval: 'hourly' }, 'sweepInterval', /"hourly" is not a duration; use whole numbers with units d, h, m, s/],
    ['a sweepInterval under a second', { sweepInterval: '0s' }, 'sweepInterval', /too short; the minimum is 1s/],
    ['a sweepInterval over 31 days', { sweepInterval: '32d' }, 'sweepInterval', /too long; the maximum is 31d/],
    ['a sweepInterval in ordered mode', { mode: 'ordered', sweepInterval: '1h' }, 'sweepInterval', /sweepInterval is for tracked mode/],
    ['a maxIdleInterval with an explicit interval', { schedule: '@every 30s', maxIdleInterval: '15m' }, 'maxIdleInterval', /maxIdleInterval is for the @auto schedule, not @every 30s/],
    ['a maxIdleInterval under a minute', { maxIdleInterval: '30s' }, 'maxIdleInterval', /too short; the minimum is 1m/],
    ['a maxIdleInterval over a day', { maxIdleInterval: '2d' }, 'maxIdleInterval', /too long; the maximum is 1d/],
  ])('rejects %s, naming the field', (_what, over, field, message) => {
    const found = issues({ ...base, ...over }).find((i) => i.field === field);
    expect(found?.message).toMatch(message);
  });
});
