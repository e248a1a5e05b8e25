/**
 * How often a data source lists its bucket: the tracked-mode sweep cadence and
 * the adaptive `@auto` interval.
 *
 * Bundled into the workflow sandbox: deterministic, no clock, no imports.
 *
 * Tracked mode lists in two ways. A tick lists only the keys after the last
 * key a listing has seen (`StartAfter`): one LIST call when nothing is new,
 * however many keys the prefix holds. A sweep lists the whole prefix, which is
 * how a late file (named before the last key seen) is still found; it runs
 * every `sweepInterval`, at the first run, after a resume, after a failed run,
 * on every explicit sync (and a notification that overflowed into one), and
 * again after a sweep that found late files (names arrive out of order there,
 * so ticks keep sweeping until a sweep finds none).
 */

const SECOND_MS = 1_000;
const MINUTE_MS = 60 * SECOND_MS;
const HOUR_MS = 60 * MINUTE_MS;
const DAY_MS = 24 * HOUR_MS;

/** Sweep cadence when the spec names none. */
export const DEFAULT_SWEEP_MS = HOUR_MS;
export const MIN_SWEEP_MS = SECOND_MS;
export const MAX_SWEEP_MS = 31 * DAY_MS;

/** `@auto`'s interval while files keep coming (and the shortest adaptive one). */
export const AUTO_INTERVAL_MS = MINUTE_MS;
export const MIN_IDLE_INTERVAL_MS = MINUTE_MS;
export const MAX_IDLE_INTERVAL_MS = DAY_MS;

export class DurationError extends Error {
  constructor(readonly field: string, readonly reason: string) {
    super(`${field}: ${reason}`);
    this.name = 'DurationError';
  }
}

const UNITS: ReadonlyArray<[string, number]> = [['d', DAY_MS], ['h', HOUR_MS], ['m', MINUTE_MS], ['s', SECOND_MS]];

export function formatDuration(ms: number): string {
  let rest = ms;
  let text = '';
  for (const [unit, unitMs] of UNITS) {
    const n = Math.floor(rest / unitMs);
    if (n > 0) text += `${n}${unit}`;
    rest -= n * unitMs;
  }
  return text || '0s';
}

/** A duration such as `30s`, `15m`, `1h`, `1h30m` (units d, h, m, s, largest first), within [min, max]. */
export function parseDuration(field: string, text: string, minMs: number, maxMs: number): number {
  const m = /^(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$/.exec(text.trim());
  if (!m || text.trim() === '') {
    throw new DurationError(field, `"${text}" is not a duration; use whole numbers with units d, h, m, s in that order, e.g. 30s, 15m, 1h, 1h30m`);
  }
  const ms = Number(m[1] ?? 0) * DAY_MS + Number(m[2] ?? 0) * HOUR_MS + Number(m[3] ?? 0) * MINUTE_MS + Number(m[4] ?? 0) * SECOND_MS;
  if (ms < minMs) throw new DurationError(field, `"${text}" is too short; the minimum is ${formatDuration(minMs)}`);
  if (ms > maxMs) throw new DurationError(field, `"${text}" is too long; the maximum is ${formatDuration(maxMs)}`);
  return ms;
}

/** The sweep cadence of a spec (tracked mode). */
export function sweepIntervalMs(spec: { sweepInterval?: string }): number {
  return spec.sweepInterval ? parseDuration('sweepInterval', spec.sweepInterval, MIN_SWEEP_MS, MAX_SWEEP_MS) : DEFAULT_SWEEP_MS;
}

/** The longest adaptive interval of an `@auto` spec, or null when its interval stays at one minute. */
export function maxIdleIntervalMs(spec: { schedule?: string; maxIdleInterval?: string }): number | null {
  if (!spec.maxIdleInterval || (spec.schedule ?? '@auto').trim().toLowerCase() !== '@auto') return null;
  const ms = parseDuration('maxIdleInterval', spec.maxIdleInterval, MIN_IDLE_INTERVAL_MS, MAX_IDLE_INTERVAL_MS);
  return ms > AUTO_INTERVAL_MS ? ms : null;
}

/**
 * The adaptive `@auto` interval after `idleTicks` ticks in a row found nothing:
 * one minute, doubled per idle tick, capped at `maxMs`.
 */
export function adaptiveIntervalMs(idleTicks: number, maxMs: number): number {
  // 2^20 minutes is far past any cap: stop doubling before the number grows without bound.
  return Math.min(maxMs, AUTO_INTERVAL_MS * 2 ** Math.min(idleTicks, 20));
}
