/**
 * Data-source schedules: parsing, next-run computation and display.
 *
 * This module is bundled into the Temporal workflow sandbox, so it must be
 * deterministic: it never reads the clock (no `Date.now()`, no argument-less
 * `new Date()`) or random numbers, and has no imports. All calendar maths is
 * UTC via `Date.UTC` and `new Date(ms).getUTC*()`, which depend only on their inputs.
 *
 * Accepted forms:
 *   @auto                 every minute
 *   @on-demand            only when triggered explicitly
 *   @every <duration>     e.g. 30s, 5m, 2h, 1d, 1h30m; between 1s and 31d
 *   @hourly @daily @weekly @monthly @yearly (and @midnight, @annually)
 *   <5-field cron>        minute hour day-of-month month day-of-week, in UTC
 *
 * Cron dates that can never occur (e.g. `0 0 31 2 *`) are rejected by
 * parseSchedule, so nextRunAt always finds a time for a parsed cron schedule.
 */

const SECOND_MS = 1_000;
const MINUTE_MS = 60 * SECOND_MS;
const HOUR_MS = 60 * MINUTE_MS;
const DAY_MS = 24 * HOUR_MS;
const MIN_EVERY_MS = SECOND_MS;
const MAX_EVERY_MS = 31 * DAY_MS;
/**
 * The Gregorian calendar repeats every 400 years, so a date pattern that has
 * not matched within that span never will. Parse-time checks make this
 * unreachable for parsed expressions; it only bounds the loop.
 */
const SEARCH_HORIZON_YEARS = 400;

const ALLOWED_FORMS =
  '@auto, @on-demand, @every <duration> (e.g. @every 5m), @hourly, @daily, @weekly, @monthly, @yearly, or a 5-field cron expression';

export class ScheduleError extends Error {
  readonly field = 'schedule';
  constructor(readonly reason: string) {
    super(`schedule: ${reason}`);
    this.name = 'ScheduleError';
  }
}

export type Schedule =
  | { kind: 'auto' }
  | { kind: 'on-demand' }
  | { kind: 'every'; ms: number }
  | { kind: 'cron'; expression: string };

const CRON_MACROS: Readonly<Record<string, string>> = {
  '@hourly': '0 * * * *',
  '@daily': '0 0 * * *',
  '@midnight': '0 0 * * *',
  '@weekly': '0 0 * * 0',
  '@monthly': '0 0 1 * *',
  '@yearly': '0 0 1 1 *',
  '@annually': '0 0 1 1 *',
};

export function parseSchedule(text: string): Schedule {
  const trimmed = text.trim();
  if (trimmed === '') throw new ScheduleError(`is empty; use ${ALLOWED_FORMS}`);

  if (trimmed.startsWith('@')) {
    const [keyword = '', ...rest] = trimmed.split(/\s+/);
    const lowerKeyword = keyword.toLowerCase();
    const argument = rest.join('');
    if (lowerKeyword === '@every') return { kind: 'every', ms: parseEveryDuration(argument) };
    if (argument !== '') {
      throw new ScheduleError(`"${keyword}" takes no argument, but got "${rest.join(' ')}"`);
    }
    if (lowerKeyword === '@auto') return { kind: 'auto' };
    if (lowerKeyword === '@on-demand') return { kind: 'on-demand' };
    const macroExpression = CRON_MACROS[lowerKeyword];
    if (macroExpression !== undefined) return { kind: 'cron', expression: macroExpression };
    throw new ScheduleError(`unknown keyword "${keyword}"; use ${ALLOWED_FORMS}`);
  }

  const fields = trimmed.split(/\s+/);
  parseCron(fields);
  // Store the fields single-spaced so equal schedules compare and display equally.
  return { kind: 'cron', expression: fields.join(' ') };
}

export function nextRunAt(schedule: Schedule, afterMs: number): number | null {
  switch (schedule.kind) {
    case 'on-demand':
      return null;
    case 'auto':
      return afterMs + MINUTE_MS;
    case 'every':
      // Schedules can be built without parseSchedule; a zero or negative
      // interval would break the "strictly after" promise and spin the caller.
      checkEveryBounds(schedule.ms, formatDuration(schedule.ms));
      return afterMs + schedule.ms;
    case 'cron':
      return nextCronMinute(parseCron(schedule.expression.trim().split(/\s+/)), afterMs);
  }
}

export function describeSchedule(s: Schedule): string {
  switch (s.kind) {
    case 'auto':
      return 'every minute';
    case 'on-demand':
      return 'on demand';
    case 'every':
      return `every ${formatDuration(s.ms)}`;
    case 'cron':
      return `cron ${s.expression} (UTC)`;
  }
}

// ---------------------------------------------------------------------------
// @every durations

const DURATION_UNITS_MS: Readonly<Record<string, number>> = { d: DAY_MS, h: HOUR_MS, m: MINUTE_MS, s: SECOND_MS };

function parseEveryDuration(argument: string): number {
  if (argument === '') {
    throw new ScheduleError('"@every" needs a duration, e.g. @every 30s, @every 5m, @every 1h30m');
  }
  // Units must appear largest first and at most once, so "1h30m" is accepted but
  // the ambiguous-looking "30m1h" or "5m5m" are not.
  const match = /^(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$/.exec(argument);
  if (!match) {
    throw new ScheduleError(
      `duration "${argument}" is not valid; use whole numbers with units d, h, m, s in that order, e.g. 30s, 5m, 2h, 1h30m`,
    );
  }
  const [, days, hours, minutes, seconds] = match;
  const ms =
    Number(days ?? 0) * DAY_MS +
    Number(hours ?? 0) * HOUR_MS +
    Number(minutes ?? 0) * MINUTE_MS +
    Number(seconds ?? 0) * SECOND_MS;
  checkEveryBounds(ms, argument);
  return ms;
}

function checkEveryBounds(ms: number, shownAs: string): void {
  if (!Number.isFinite(ms) || ms < MIN_EVERY_MS) {
    throw new ScheduleError(`"@every ${shownAs}" is too short; the minimum interval is 1s`);
  }
  if (ms > MAX_EVERY_MS) {
    throw new ScheduleError(`"@every ${shownAs}" is too long; the maximum interval is 31d (31 days)`);
  }
}

function formatDuration(ms: number): string {
  if (!Number.isFinite(ms) || ms <= 0) return `${ms}ms`;
  let remaining = ms;
  let text = '';
  for (const [unit, unitMs] of Object.entries(DURATION_UNITS_MS)) {
    const count = Math.floor(remaining / unitMs);
    if (count > 0) text += `${count}${unit}`;
    remaining -= count * unitMs;
  }
  // Only hand-built schedules can have sub-second parts; show them rather than hide them.
  if (remaining > 0) text += `${remaining}ms`;
  return text;
}

// ---------------------------------------------------------------------------
// Cron

interface CronFieldSpec {
  name: string;
  min: number;
  max: number;
  /** Names in value order starting at `min`. */
  names?: readonly string[];
}

const MINUTE_FIELD: CronFieldSpec = { name: 'minute', min: 0, max: 59 };
const HOUR_FIELD: CronFieldSpec = { name: 'hour', min: 0, max: 23 };
const DAY_OF_MONTH_FIELD: CronFieldSpec = { name: 'day-of-month', min: 1, max: 31 };
const MONTH_FIELD: CronFieldSpec = {
  name: 'month',
  min: 1,
  max: 12,
  names: ['JAN', 'FEB', 'MAR', 'APR', 'MAY', 'JUN', 'JUL', 'AUG', 'SEP', 'OCT', 'NOV', 'DEC'],
};
// 0 and 7 are both Sunday, as in Vixie cron.
const DAY_OF_WEEK_FIELD: CronFieldSpec = {
  name: 'day-of-week',
  min: 0,
  max: 7,
  names: ['SUN', 'MON', 'TUE', 'WED', 'THU', 'FRI', 'SAT'],
};
const CRON_FIELDS = [MINUTE_FIELD, HOUR_FIELD, DAY_OF_MONTH_FIELD, MONTH_FIELD, DAY_OF_WEEK_FIELD] as const;

/** Longest each month can be; February counts 29 because leap years make the 29th reachable. */
const MAX_DAYS_IN_MONTH = [0, 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];

interface CronTable {
  /** Each array is indexed by field value; true means the value is selected. */
  minutes: boolean[];
  hours: boolean[];
  daysOfMonth: boolean[];
  months: boolean[];
  daysOfWeek: boolean[];
  /** Vixie rule: if both day fields are restricted, a day matching either one is enough. */
  eitherDayFieldSuffices: boolean;
}

interface ParsedField {
  allowed: boolean[];
  // Vixie cron counts a day field as unrestricted when it is written starting
  // with `*`, so `*/2` is "unrestricted" for the either-day rule even though it selects days.
  startsWithStar: boolean;
}

function parseCron(fields: string[]): CronTable {
  if (fields.length !== CRON_FIELDS.length) {
    const hint = fields.length === 6 ? ' (a seconds field is not supported)' : '';
    throw new ScheduleError(
      `cron expression "${fields.join(' ')}" has ${fields.length} field${fields.length === 1 ? '' : 's'}${hint}; ` +
        `expected 5: minute hour day-of-month month day-of-week, or one of ${ALLOWED_FORMS}`,
    );
  }
  const [minutes, hours, daysOfMonth, months, daysOfWeek] = CRON_FIELDS.map((spec, i) =>
    parseCronField(fields[i]!, spec),
  ) as [ParsedField, ParsedField, ParsedField, ParsedField, ParsedField];

  // Sunday may be written 0 or 7; matching only ever looks at 0 (getUTCDay()).
  if (daysOfWeek.allowed[7]) daysOfWeek.allowed[0] = true;

  const eitherDayFieldSuffices = !daysOfMonth.startsWithStar && !daysOfWeek.startsWithStar;
  if (!eitherDayFieldSuffices) {
    // Both day fields must hold, so the day-of-month has to exist in some selected
    // month. (In the "either" case day-of-week alone can match, so no check is needed.)
    const someDateExists = MAX_DAYS_IN_MONTH.some(
      (maxDays, month) => months.allowed[month] && daysOfMonth.allowed.some((ok, day) => ok && day <= maxDays),
    );
    if (!someDateExists) {
      throw new ScheduleError(
        `day-of-month "${fields[2]}" never occurs in month "${fields[3]}", so the schedule would never run`,
      );
    }
  }

  return {
    minutes: minutes.allowed,
    hours: hours.allowed,
    daysOfMonth: daysOfMonth.allowed,
    months: months.allowed,
    daysOfWeek: daysOfWeek.allowed,
    eitherDayFieldSuffices,
  };
}

function parseCronField(text: string, spec: CronFieldSpec): ParsedField {
  const allowed = new Array<boolean>(spec.max + 1).fill(false);
  for (const item of text.split(',')) {
    if (item === '') {
      throw new ScheduleError(`${spec.name} field "${text}" has an empty list item; separate values with single commas`);
    }
    addCronItem(item, spec, allowed);
  }
  return { allowed, startsWithStar: text.startsWith('*') };
}

/** One list item: `*`, `v`, `a-b`, each optionally followed by `/step`. */
function addCronItem(item: string, spec: CronFieldSpec, allowed: boolean[]): void {
  const parts = item.split('/');
  if (parts.length > 2) {
    throw new ScheduleError(`${spec.name} item "${item}" has more than one "/"; write a single step like */15`);
  }
  const [rangeText = '', stepText] = parts;
  const maxStep = spec.max - spec.min;

  let step = 1;
  if (stepText !== undefined) {
    if (!/^\d+$/.test(stepText)) {
      throw new ScheduleError(`${spec.name} step "${stepText}" in "${item}" is not a number; use 1-${maxStep}`);
    }
    step = Number(stepText);
    if (step < 1 || step > maxStep) {
      throw new ScheduleError(`${spec.name} step ${step} in "${item}" is not allowed; use 1-${maxStep}`);
    }
  }

  let low: number;
  let high: number;
  if (rangeText === '*') {
    low = spec.min;
    high = spec.max;
  } else {
    const bounds = rangeText.split('-');
    if (bounds.length > 2) {
      throw new ScheduleError(`${spec.name} range "${rangeText}" has more than one "-"; write a range like 1-5`);
    }
    low = parseCronValue(bounds[0]!, spec, item);
    // "a/step" (no upper bound) runs to the end of the field, as in Vixie cron.
    high = bounds.length === 2 ? parseCronValue(bounds[1]!, spec, item) : stepText !== undefined ? spec.max : low;
    if (low > high) {
      throw new ScheduleError(
        `${spec.name} range ${bounds[0]}-${bounds[1]} is reversed; ranges do not wrap around, so write the lower value first`,
      );
    }
  }
  for (let value = low; value <= high; value += step) allowed[value] = true;
}

function parseCronValue(text: string, spec: CronFieldSpec, item: string): number {
  if (/^\d+$/.test(text)) {
    const value = Number(text);
    if (value < spec.min || value > spec.max) {
      throw new ScheduleError(`${spec.name} value ${value} is out of range ${spec.min}-${spec.max}`);
    }
    return value;
  }
  const namesHint = spec.names ? ` or names ${spec.names[0]}-${spec.names[spec.names.length - 1]}` : '';
  if (text === '') {
    throw new ScheduleError(`${spec.name} item "${item}" is missing a value; use ${spec.min}-${spec.max}${namesHint}`);
  }
  if (spec.names && /^[A-Za-z]+$/.test(text)) {
    const index = spec.names.indexOf(text.toUpperCase());
    if (index === -1) {
      throw new ScheduleError(`${spec.name} name "${text}" is not recognised; use ${spec.min}-${spec.max}${namesHint}`);
    }
    return spec.min + index;
  }
  throw new ScheduleError(
    `${spec.name} value "${text}" is not valid; use ${spec.min}-${spec.max}${namesHint}, *, lists (1,2), ranges (1-5) or steps (*/15)`,
  );
}

function dayMatches(table: CronTable, dayOfMonth: number, dayOfWeek: number): boolean {
  const byMonthDay = table.daysOfMonth[dayOfMonth] === true;
  const byWeekDay = table.daysOfWeek[dayOfWeek] === true;
  return table.eitherDayFieldSuffices ? byMonthDay || byWeekDay : byMonthDay && byWeekDay;
}

/**
 * Walks forward coarse-to-fine: a wrong month jumps to the next month, a wrong
 * day to the next day, a wrong hour to the next hour, and the minute is picked
 * directly. Each step moves forward at least an hour, so even the rarest
 * accepted date (29 February on a given weekday) takes a few thousand steps.
 */
function nextCronMinute(table: CronTable, afterMs: number): number | null {
  // The first whole minute strictly after afterMs (afterMs itself never counts).
  let candidate = Math.floor(afterMs / MINUTE_MS) * MINUTE_MS + MINUTE_MS;
  const lastYear = new Date(candidate).getUTCFullYear() + SEARCH_HORIZON_YEARS;

  for (;;) {
    const date = new Date(candidate);
    // NaN once we run past the largest representable date.
    if (Number.isNaN(date.getTime())) return null;
    const year = date.getUTCFullYear();
    if (year > lastYear) return null;
    const monthIndex = date.getUTCMonth();
    const day = date.getUTCDate();
    const hour = date.getUTCHours();

    if (!table.months[monthIndex + 1]) {
      candidate = Date.UTC(year, monthIndex + 1, 1); // Date.UTC rolls December over into January
      continue;
    }
    if (!dayMatches(table, day, date.getUTCDay())) {
      candidate = Date.UTC(year, monthIndex, day + 1);
      continue;
    }
    if (table.hours[hour]) {
      const minute = table.minutes.indexOf(true, date.getUTCMinutes());
      if (minute !== -1) return Date.UTC(year, monthIndex, day, hour, minute);
    }
    candidate = Date.UTC(year, monthIndex, day, hour + 1);
  }
}
