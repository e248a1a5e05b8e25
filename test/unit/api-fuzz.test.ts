import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { WorkflowExecutionAlreadyStartedError } from '@temporalio/client';
import { createApp } from '../../api/app.js';
import { S3Connections } from '../../s3/connections.js';
import type { Destination } from '../../clickhouse/destination.js';
import { processDestination } from '../support/harness.js';

/**
 * Hostile request bodies against the API's write and query endpoints, over
 * fake dependencies that record every call: validation must answer 4xx
 * problem+json naming the field, and nothing may reach Temporal, S3 or a
 * ClickHouse statement that changes anything. Table-driven cases plus a seeded
 * generator (S3CH_FUZZ_SEED overrides the seed; a failing case's title holds
 * its index, so it can be replayed).
 */

// ---------------------------------------------------------------------------
// A tiny seeded PRNG (mulberry32) and helpers.

const SEED = Number(process.env.S3CH_FUZZ_SEED ?? 0x5eedc0de) >>> 0;

class Rng {
  private state: number;
  constructor(seed: number) {
    this.state = seed >>> 0;
  }
  float(): number {
    this.state = (this.state + 0x6d2b79f5) >>> 0;
    let t = this.state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
  /** Inclusive on both ends. */
  int(lo: number, hi: number): number {
    return lo + Math.floor(this.float() * (hi - lo + 1));
  }
  chance(p: number): boolean {
    return this.float() < p;
  }
  pick<T>(xs: readonly T[]): T {
    return xs[this.int(0, xs.length - 1)]!;
  }
}

/** A JSON token written as is (1e309, -1e309: numbers JSON.parse turns into ±Infinity). */
class Raw {
  constructor(readonly text: string) {}
}
const RAW_TAG = `@@raw${Math.random().toString(36).slice(2)}@@`;

function toJson(value: unknown): string {
  const raws: string[] = [];
  const text = JSON.stringify(value, (_k, v) => {
    if (v instanceof Raw) {
      raws.push(v.text);
      return `${RAW_TAG}${raws.length - 1}`;
    }
    return v;
  });
  return text.replace(new RegExp(`"${RAW_TAG}(\\d+)"`, 'g'), (_m, i: string) => raws[Number(i)]!);
}

/** Own enumerable property even for `__proto__`, so it is serialised as a key. */
function withField<T extends object>(obj: T, key: string, value: unknown): T {
  Object.defineProperty(obj, key, { value, enumerable: true, writable: true, configurable: true });
  return obj;
}
const clone = <T>(v: T): T => structuredClone(v);

// ---------------------------------------------------------------------------
// Hostile values.

const FRAGMENTS = [
  '\u0000', '\u202e', '\u200b', '\ufeff', '\u0007', '\u001b[31m', '\r\n', '\t', '\u0085', '💥', '𝕏', '👩‍👩‍👧', 'ÉTÉ', 'Ω≈ç√', '\ud800', '\udfff',
  'x; DROP TABLE y', 'a`b', "'", '"', '\\', '`', "' OR 1=1 --", '/* */', '--', ';', '../../etc/passwd', '..\\..\\windows\\win.ini',
  '%2e%2e%2f', '%00', '${jndi:ldap://x/a}', '{{7*7}}', '<script>alert(1)</script>', 'SELECT * FROM system.tables',
  "Robert'); DROP TABLE students;--", 'null', 'undefined', 'NaN', 'Infinity', '-1', '1e309', '__proto__', 'constructor', ' ', '',
];

function randomChar(r: Rng): string {
  const range = r.pick([[0x00, 0x1f], [0x20, 0x7e], [0x7f, 0x9f], [0xa0, 0x2fff], [0xd800, 0xdfff], [0xe000, 0xfffd], [0x10000, 0x10ffff]] as const);
  const cp = r.int(range[0], range[1]);
  return cp >= 0xd800 && cp <= 0xdfff ? String.fromCharCode(cp) : String.fromCodePoint(cp);
}

/** Up to ~150k UTF-16 units: a body with one such string stays under the 1 MiB limit. */
function hostileString(r: Rng): string {
  if (r.chance(0.05)) {
    const unit = r.pick(FRAGMENTS) || 'A';
    return unit.repeat(Math.max(1, Math.floor(r.int(2_100, 150_000) / unit.length)));
  }
  let s = '';
  for (let i = r.int(1, 4); i > 0; i--) s += r.chance(0.7) ? r.pick(FRAGMENTS) : Array.from({ length: r.int(1, 8) }, () => randomChar(r)).join('');
  return s;
}

/** Arrays and objects nested thousands deep, written as JSON text (no recursion here to overflow). */
function deep(r: Rng): Raw {
  let open = '';
  let close = '';
  for (let i = r.int(50, 10_000); i > 0; i--) {
    const array = r.chance(0.5);
    open += array ? '[' : '{"a":';
    close = (array ? ']' : '}') + close;
  }
  return new Raw(`${open}${JSON.stringify(hostileString(r).slice(0, 100))}${close}`);
}

const notString = (r: Rng): unknown =>
  r.pick<() => unknown>([
    () => r.int(-5, 5), () => 1.5, () => -0.5, () => new Raw('1e309'), () => new Raw('-1e309'), () => true, () => false, () => null,
    () => [], () => [hostileString(r)], () => ({}), () => ({ k: hostileString(r) }), () => deep(r),
  ])();
const notObject = (r: Rng): unknown =>
  r.pick<() => unknown>([() => hostileString(r), () => r.int(-5, 5), () => new Raw('1e309'), () => true, () => null, () => [], () => [{}], () => [hostileString(r)]])();
const notArray = (r: Rng): unknown =>
  r.pick<() => unknown>([() => hostileString(r), () => r.int(-5, 5), () => true, () => null, () => ({}), () => ({ 0: { name: 'a', type: 'String' } })])();
const notBool = (r: Rng): unknown => r.pick<unknown>(['true', 'false', 1, 0, null, [], {}, '']);
const hostileValue = (r: Rng): unknown => (r.chance(0.4) ? hostileString(r) : notString(r));

/** A string that the enum does not contain (also case and whitespace variants). */
const badEnum = (allowed: readonly string[]) => (r: Rng): unknown =>
  r.pick<() => unknown>([
    () => notString(r),
    () => r.pick(allowed).toUpperCase() + (r.chance(0.5) ? ' ' : 'X'),
    () => ` ${r.pick(allowed)}`,
    () => {
      const s = hostileString(r);
      return allowed.includes(s) ? `${s}!` : s;
    },
  ])();

/** A string that does not match `re` (hostile text, made to fail if it happens to match). */
const notMatching = (re: RegExp) => (r: Rng): string => {
  const s = hostileString(r);
  return re.test(s) ? `${s}!` : s;
};

const NAME_RE = /^[a-z][a-z0-9_]{0,62}$/;
const TABLE_RE = /^[A-Za-z_][A-Za-z0-9_]{0,190}$/;
const SETTING_RE = /^[a-z_][a-z0-9_]*$/;

const badInt = (min: number, max: number) => (r: Rng): unknown =>
  r.pick<unknown>([min - 1, max + 1, 1.5, -0.5, String(min), '', 'NaN', 'Infinity', '0x10', null, true, [], {}, new Raw('1e309'), new Raw('-1e309'), 2 ** 53 + 2]);

const badColumnName = (r: Rng): unknown =>
  r.pick<() => unknown>([
    () => notString(r), () => '', () => 'x'.repeat(257), () => `${hostileString(r)}\u0000`, () => 'tab\there', () => 'bell\u0007', () => 'del\u007f', () => 'new\nline',
  ])();
const badType = (r: Rng): unknown =>
  r.pick<() => unknown>([
    () => notString(r), () => '', () => 'Strin', () => 'Nullable(Array(Int8))', () => 'Array(', () => 'String DEFAULT 1', () => 'String, `y` String',
    () => 'String; DROP TABLE y', () => 'x'.repeat(2001), () => `${hostileString(r)};`, () => `LowCardinality(${hostileString(r)}`,
  ])();
const badPath = (r: Rng): unknown =>
  r.pick<() => unknown>([() => notString(r), () => '', () => 'a.b', () => '$..a', () => '$[x]', () => '$.', () => "$['']", () => `!${hostileString(r)}`])();

const VALID_COLUMNS = [
  { name: 'ts', type: 'DateTime' },
  { name: 'id', type: 'UInt64' },
];
const COLUMN_KEYS = ['name', 'type', 'path', 'source'];

function unknownKey(r: Rng, known: readonly string[]): string {
  const k = r.pick<() => string>([
    () => r.pick(['tabel', 'Name', 'NAME', 'columns ', ' name', 'prototype', 'constructor', '__proto__', 'hasOwnProperty', 'toString', 'a.b', 'x; DROP TABLE y', '💥', '\u202e']),
    () => hostileString(r).slice(0, 200),
  ])();
  // The empty key is a known bug (see 'unknown empty key'); a known key is not unknown.
  return k === '' || known.includes(k) ? `${k}_x` : k;
}

function badColumn(r: Rng): unknown {
  return r.pick<() => unknown>([
    () => notObject(r),
    () => ({ name: badColumnName(r), type: 'String' }),
    () => ({ name: 'ok', type: badType(r) }),
    () => ({ name: 'ok', type: 'String', path: badPath(r) }),
    () => ({ name: 'ok', type: 'String', source: badColumnName(r) }),
    () => withField({ name: 'ok', type: 'String' }, unknownKey(r, COLUMN_KEYS), hostileValue(r)),
    () => ({ name: 'ok' }),
    () => ({ type: 'String' }),
  ])();
}

const badExpr = (r: Rng): unknown =>
  r.pick<() => unknown>([
    () => notString(r), () => '', () => '   ', () => 'x'.repeat(2001),
    () => {
      const s = hostileString(r).slice(0, 1500);
      const at = r.int(0, s.length);
      return s.slice(0, at) + r.pick([';', '--', '/*', '\u0000']) + s.slice(at);
    },
  ])();
const badSettings = (r: Rng): unknown =>
  r.pick<() => unknown>([
    () => r.pick<unknown>([hostileString(r), 1, true, null, [], [1]]),
    () => withField({}, r.pick(['Bad', '1x', 'a-b', 'a b', 'x;y', notMatching(SETTING_RE)(r)]), 1),
    () => ({ index_granularity: r.pick<unknown>([`${hostileString(r)}'`, 'a\\b', 'x; DROP TABLE y', 'x'.repeat(201), null, [], {}]) }),
  ])();

type Mode = 'create' | 'patch' | 'preview';
type Gen = (r: Rng) => unknown;

/** For each spec field, values that are invalid for it alone (in the given endpoint's context). */
function specFieldGens(mode: Mode): Record<string, Gen> {
  const gens: Record<string, Gen> = {
    connection: (r) =>
      r.pick<() => unknown>([
        () => notString(r), () => '', () => `${'c'.repeat(129)}${hostileString(r)}`,
        // Well-formed but not configured: rejected before anything happens (the patch schema cannot know; see below).
        ...(mode === 'patch' ? [] : [() => { const s = hostileString(r); return s === 'local' ? 'locale' : s; }]),
      ])(),
    bucketUri: (r) =>
      r.pick<() => unknown>([
        () => notString(r), () => '',
        () => { const s = hostileString(r); return s.startsWith('s3://') ? `x${s}` : s; },
        () => r.pick(['http://bucket/x', 'file:///etc/passwd', 's3:/bucket/x', 'S3://bucket/x', 's3://', 's3:///x', 's3://../../etc/passwd', `s3://b${'x'.repeat(1100)}`]),
        () => `s3://${r.pick(['AB', 'a', 'x'.repeat(64), 'under_score', '..', '-abc', 'abc-', 'büket', '💥💥💥', 'a b c', 'a..b', '.abc', 'abc.', '..%2f..'])}/${hostileString(r).slice(0, 500)}`,
        () => r.pick(['s3://bucket/{a,b', 's3://bucket/a}b', 's3://bucket/x\u0000y', 's3://bucket/x\u0085y', 's3://bucket/\u001b[31m']),
      ])(),
    format: badEnum(['csv', 'ndjson', 'parquet', 'auto']),
    compression: badEnum(['auto', 'none', 'gzip', 'zip', 'zstd']),
    csv: (r) =>
      r.pick<() => unknown>([
        () => notObject(r),
        () => ({ delimiter: r.pick<unknown>(['', 'ab', ',,', `${hostileString(r)}xx`, null, 1, true]) }),
        () => ({ header: notBool(r) }),
        () => ({ skipLines: badInt(0, 1000)(r) }),
        () => ({ quote: badEnum(['"', "'"])(r) }),
        () => withField({}, unknownKey(r, ['delimiter', 'header', 'skipLines', 'quote']), hostileValue(r)),
      ])(),
  };
  if (mode === 'preview') {
    return {
      ...gens,
      limit: badInt(1, 1000),
    };
  }
  return {
    ...gens,
    description: (r) => r.pick<() => unknown>([() => notString(r), () => 'd'.repeat(r.int(2001, 50_000)), () => `${hostileString(r)}${'d'.repeat(2001)}`])(),
    schedule: (r) =>
      r.pick<() => unknown>([
        () => notString(r), () => '', () => '   ', () => `@x${hostileString(r)}`, () => '@hourly extra',
        () => `@every ${r.pick(['', '0s', '-1s', '1e309s', '1x', 'abc', '32d', '1s1m', hostileString(r)])}`,
        () => r.pick(['61 * * * *', '* 24 * * *', '* * 0 * *', '* * * 13 *', '* * * * 8', '*/0 * * * *', '* * *', '* * * * * *', '1,,2 * * * *']),
        () => `x${hostileString(r)} * * * *`,
      ])(),
    mode: badEnum(['tracked', 'ordered']),
    table: (r) =>
      r.pick<() => unknown>([
        () => notString(r), () => '', () => '1abc', () => 'a'.repeat(192), () => notMatching(TABLE_RE)(r),
        // Reserved names are a cross-field rule the patch schema does not apply before reading the current spec.
        ...(mode === 'create' ? [() => 's3ch_mine', () => 'x_quarantine', () => 'x_s3ch_landing'] : []),
      ])(),
    columns: (r) =>
      r.pick<() => unknown>([
        () => notArray(r),
        () => [],
        () => Array.from({ length: 1001 }, (_, i) => ({ name: `c${i}`, type: 'String' })),
        () => {
          const cols: unknown[] = clone(VALID_COLUMNS);
          cols.splice(r.int(0, cols.length), 0, badColumn(r));
          return cols;
        },
        ...(mode === 'create'
          ? [() => [...clone(VALID_COLUMNS), { name: 'ts', type: 'String' }], () => [...clone(VALID_COLUMNS), { name: 'p', type: 'String', path: '$.a' }]]
          : []),
      ])(),
    engine: (r) =>
      r.pick<() => unknown>([
        () => notObject(r),
        () => ({ engine: badEnum(['MergeTree', 'ReplacingMergeTree', 'SummingMergeTree', 'AggregatingMergeTree'])(r) }),
        () => ({ sortingKey: badExpr(r) }),
        () => ({ partitionKey: badExpr(r) }),
        () => ({ primaryKey: badExpr(r) }),
        () => ({ sortingKey: 'ts', ttl: badExpr(r) }),
        () => ({ settings: badSettings(r) }),
        () => withField({}, unknownKey(r, ['engine', 'partitionKey', 'sortingKey', 'primaryKey', 'ttl', 'settings']), hostileValue(r)),
      ])(),
    limits: (r) =>
      r.pick<() => unknown>([
        () => notObject(r),
        () => ({ maxFilesPerRun: badInt(0, Number.MAX_SAFE_INTEGER)(r) }),
        () => ({ concurrency: badInt(1, 64)(r) }),
        () => ({ maxFileBytes: badInt(0, Number.MAX_SAFE_INTEGER)(r) }),
        () => ({ maxRowBytes: badInt(1024, 1024 ** 3)(r) }),
        () => withField({}, unknownKey(r, ['maxFilesPerRun', 'concurrency', 'maxFileBytes', 'maxRowBytes']), hostileValue(r)),
      ])(),
    ...(mode === 'create'
      ? { name: (r: Rng) => r.pick<() => unknown>([() => notString(r), () => notMatching(NAME_RE)(r), () => 's3ch_abc', () => 'abc_quarantine', () => 'x_s3ch_landing', () => 'a'.repeat(64), () => 'Abc', () => '1abc', () => '_abc', () => ''])() }
      : {
          // Any name in a patch is an unknown field.
          name: (r: Rng) => r.pick<unknown>(['other', hostileString(r), null]),
          force: notBool,
        }),
  };
}

// ---------------------------------------------------------------------------
// Cases.

interface Case {
  title: string;
  method: string;
  path: string;
  body: string;
  contentType: string;
  /** The field a 400 must name (exactly, or as the prefix of a nested field); undefined = any. */
  field?: string;
}

const bases = {
  create: {
    name: 'fuzz_ds', connection: 'local', bucketUri: 's3://fuzz-bucket/in/*.csv', format: 'csv', schedule: '@on-demand', columns: VALID_COLUMNS,
    engine: { sortingKey: 'ts' }, csv: { delimiter: ',' }, limits: { concurrency: 2 }, description: 'fuzz',
  },
  patch: { description: 'fuzz', schedule: '@hourly', limits: { concurrency: 2 } },
  preview: { connection: 'local', bucketUri: 's3://fuzz-bucket/in/*.csv', format: 'csv', limit: 5 },
  retry: { keys: ['in/a.csv'] },
  sql: { query: 'SELECT 1' },
} as const;

const routes = {
  create: { method: 'POST', path: '/v1/datasources' },
  patch: { method: 'PATCH', path: '/v1/datasources/x' },
  preview: { method: 'POST', path: '/v1/preview' },
  retry: { method: 'POST', path: '/v1/datasources/x/retry' },
  sql: { method: 'POST', path: '/v1/sql' },
} as const;
type Endpoint = keyof typeof routes;

const describeValue = (v: unknown) => {
  const s = v instanceof Raw ? v.text : toJson(v) ?? String(v);
  return s.length > 60 ? `${s.slice(0, 57)}…(${s.length})` : s;
};

function fieldGens(endpoint: Endpoint): Record<string, Gen> {
  switch (endpoint) {
    case 'create':
    case 'patch':
    case 'preview':
      return specFieldGens(endpoint);
    case 'retry':
      return {
        keys: (r) =>
          r.pick<() => unknown>([
            () => notArray(r), () => [''], () => ['k'.repeat(1025)], () => [notString(r)], () => Array.from({ length: 1001 }, (_, i) => `k${i}`),
            () => ['../../etc/passwd', '\u202e', '💥', 'x; DROP TABLE y', r.pick<unknown>(['', 'k'.repeat(1025), 1, null, {}, []])],
          ])(),
      };
    case 'sql':
      return { query: (r) => r.pick<() => unknown>([() => notString(r), () => '', () => 'x'.repeat(100_001), () => `SELECT '${'💥'.repeat(50_001)}'`])() };
  }
}

function generate(endpoint: Endpoint, count: number, seed: number): Case[] {
  const r = new Rng(seed);
  const gens = fieldGens(endpoint);
  const fields = Object.keys(gens);
  const known = [...Object.keys(bases[endpoint]), ...fields];
  const cases: Case[] = [];
  for (let i = 0; i < count; i++) {
    const body: Record<string, unknown> = clone(bases[endpoint]) as Record<string, unknown>;
    const parts: string[] = [];
    const mutations = r.chance(0.7) ? 1 : r.int(2, 3);
    const touched: string[] = [];
    for (let m = 0; m < mutations; m++) {
      if (r.chance(0.15)) {
        const key = unknownKey(r, known);
        const value = hostileValue(r);
        withField(body, key, value);
        touched.push(key);
        parts.push(`+${JSON.stringify(key).slice(0, 30)}=${describeValue(value)}`);
      } else {
        const field = r.pick(fields);
        const value = gens[field]!(r);
        withField(body, field, value);
        touched.push(field);
        parts.push(`${field}=${describeValue(value)}`);
      }
    }
    cases.push({
      title: `${endpoint} #${i}: ${parts.join('; ')}`,
      ...routes[endpoint],
      body: toJson(body),
      contentType: 'application/json',
      field: touched.length === 1 ? touched[0] : undefined,
    });
  }
  return cases;
}

/** Bodies that are not a JSON object at all, for every endpoint. */
function bodyLevelCases(): Case[] {
  const deepObject = `${'{"a":'.repeat(20_000)}1${'}'.repeat(20_000)}`;
  const bodies: Array<[string, string, string | undefined]> = [
    ['truncated object', '{', '(body)'],
    ['truncated value', '{"a":', '(body)'],
    ['trailing comma', '{"a":1,}', '(body)'],
    ['single quotes', "{'a':1}", '(body)'],
    ['NaN literal', '{"a":NaN}', '(body)'],
    ['Infinity literal', '{"a":Infinity}', '(body)'],
    ['hex number', '{"a":0x10}', '(body)'],
    ['leading zero', '{"a":01}', '(body)'],
    ['invalid escape', '{"a":"\\x41"}', '(body)'],
    ['raw control character in a string', '{"a":"\u0001"}', '(body)'],
    ['two documents', '{"a":1}{"b":2}', '(body)'],
    ['NUL byte', '\u0000', '(body)'],
    ['empty body', '', '(body)'],
    ['null', 'null', '(body)'],
    ['array', '[]', '(body)'],
    ['array of an object', '[{}]', '(body)'],
    ['number', '1', '(body)'],
    ['1e309', '1e309', '(body)'],
    ['string', '"x; DROP TABLE y"', '(body)'],
    ['true', 'true', '(body)'],
    ['deeply nested arrays', `${'['.repeat(10_000)}${']'.repeat(10_000)}`, '(body)'],
    ['deeply nested objects', deepObject, 'a'],
  ];
  return (Object.keys(routes) as Endpoint[]).flatMap((endpoint) =>
    bodies.map(([what, body, field]) => ({ title: `${endpoint}: ${what}`, ...routes[endpoint], body, contentType: 'application/json', field })),
  );
}

/** Hand-picked hostile values, one per case. */
function tableCases(): Case[] {
  const c = (endpoint: Endpoint, what: string, body: Record<string, unknown>, field: string): Case => ({
    title: `${endpoint}: ${what}`, ...routes[endpoint], body: toJson({ ...clone(bases[endpoint]), ...body }), contentType: 'application/json', field,
  });
  return [
    c('create', 'SQL in the name', { name: 'x; DROP TABLE y' }, 'name'),
    c('create', 'backtick in the name', { name: 'a`b' }, 'name'),
    c('create', 'quote as the name', { name: "'" }, 'name'),
    c('create', 'RLO in the name', { name: 'abc\u202etxt' }, 'name'),
    c('create', 'emoji name', { name: '💥' }, 'name'),
    c('create', 'NUL in the name', { name: 'a\u0000b' }, 'name'),
    c('create', 'SQL in the table', { table: 'y; DROP TABLE z' }, 'table'),
    c('create', 'path traversal as the bucket', { bucketUri: 's3://../../etc/passwd' }, 'bucketUri'),
    c('create', 'file:// URI', { bucketUri: 'file:///etc/passwd' }, 'bucketUri'),
    c('create', 'traversal with encoded slashes in the bucket', { bucketUri: 's3://..%2f..%2fetc/passwd' }, 'bucketUri'),
    c('create', 'NUL in the key pattern', { bucketUri: 's3://fuzz-bucket/a\u0000.csv' }, 'bucketUri'),
    c('create', 'unclosed brace', { bucketUri: 's3://fuzz-bucket/{a,b' }, 'bucketUri'),
    c('create', 'SQL in a column type', { columns: [{ name: 'x', type: 'String) ENGINE = Memory AS SELECT 1' }] }, 'columns'),
    c('create', 'comment in the sorting key', { engine: { sortingKey: 'ts -- DROP TABLE y' } }, 'engine'),
    c('create', 'statement after the TTL', { engine: { sortingKey: 'ts', ttl: 'ts + INTERVAL 1 DAY; DROP TABLE y' } }, 'engine'),
    c('create', 'quote in a setting value', { engine: { settings: { index_granularity: "1' , storage_policy = 'x" } } }, 'engine'),
    c('create', 'setting name with a dash', { engine: { settings: { 'index-granularity': 1 } } }, 'engine'),
    c('create', 'array for the engine', { engine: [] }, 'engine'),
    c('create', 'object for the columns', { columns: { 0: { name: 'a', type: 'String' } } }, 'columns'),
    c('create', 'concurrency "4"', { limits: { concurrency: '4' } }, 'limits'),
    c('create', 'concurrency 0', { limits: { concurrency: 0 } }, 'limits'),
    c('create', 'maxFilesPerRun -1', { limits: { maxFilesPerRun: -1 } }, 'limits'),
    c('create', 'maxRowBytes "NaN"', { limits: { maxRowBytes: 'NaN' } }, 'limits'),
    c('create', 'skipLines 1.5', { csv: { skipLines: 1.5 } }, 'csv'),
    c('create', 'two-character delimiter', { csv: { delimiter: ';;' } }, 'csv'),
    c('create', 'schedule with SQL', { schedule: '@every 1s; DROP TABLE y' }, 'schedule'),
    c('create', 'unknown connection that looks like a path', { connection: '../../etc/passwd' }, 'connection'),
    c('create', 'prototype pollution attempt', { constructor: { prototype: { isAdmin: true } } }, 'constructor'),
    c('patch', 'renaming through a patch', { name: 'other' }, 'name'),
    c('patch', 'force as a string', { force: 'true' }, 'force'),
    c('patch', 'SQL in a column name', { columns: [{ name: 'a\u0000; DROP TABLE y', type: 'String' }] }, 'columns'),
    c('preview', 'spec fields preview does not take', { name: 'x', columns: VALID_COLUMNS }, 'name'),
    c('preview', 'limit 0', { limit: 0 }, 'limit'),
    c('preview', 'limit "5"', { limit: '5' }, 'limit'),
    c('preview', 'traversal in the bucket', { bucketUri: 's3://../../etc/passwd' }, 'bucketUri'),
    c('preview', 'unknown connection', { connection: 'x; DROP TABLE y' }, 'connection'),
    c('retry', 'keys as a string', { keys: '../../etc/passwd' }, 'keys'),
    c('retry', 'an empty key among traversal keys', { keys: ['../../etc/passwd', ''] }, 'keys'),
    c('sql', 'settings next to the query', { settings: { readonly: 0 } }, 'settings'),
    c('sql', 'the query as an array of statements', { query: ['SELECT 1', 'DROP TABLE y'] }, 'query'),
  ];
}

const GENERATED: Case[] = [
  ...generate('create', 140, SEED),
  ...generate('patch', 80, SEED + 1),
  ...generate('preview', 50, SEED + 2),
  ...generate('retry', 30, SEED + 3),
  ...generate('sql', 30, SEED + 4),
];

// ---------------------------------------------------------------------------
// The fake world.

interface Call {
  target: 'temporal' | 'clickhouse' | 's3';
  op: string;
  text: string;
}

/** A Temporal client where every method call is recorded and throws (or answers via `on`). */
function fakeTemporal(calls: Call[], on: Record<string, (...args: unknown[]) => unknown> = {}): unknown {
  const at = (path: string[]): unknown =>
    new Proxy(function () {}, {
      get: (_t, p) => (p === 'then' || typeof p === 'symbol' ? undefined : at([...path, p])),
      apply: (_t, _this, args: unknown[]) => {
        const op = path.join('.');
        calls.push({ target: 'temporal', op, text: toJson(args)?.slice(0, 2000) ?? '' });
        if (on[op]) return on[op]!(...args);
        throw new Error(`fake Temporal: ${op}() must not be reached`);
      },
    });
  return at(['temporal']);
}

/** The ClickHouse client surface the API uses; every call is recorded, then refused or passed to `real`. */
function recordingClient(calls: Call[], real?: Destination['client']) {
  const rec = (op: string, text: string) => calls.push({ target: 'clickhouse', op, text });
  return {
    query: async (p: { query: string }) => {
      rec('query', p.query);
      if (!real) throw new Error('fake ClickHouse: query refused');
      return real.query(p as never);
    },
    command: async (p: { query: string }) => {
      rec('command', p.query);
      if (!real) throw new Error('fake ClickHouse: command refused');
      return real.command(p as never);
    },
    insert: async (p: { table: string }) => {
      rec('insert', `INSERT INTO ${p.table}`);
      if (!real) throw new Error('fake ClickHouse: insert refused');
      return real.insert(p as never);
    },
    exec: async (p: { query: string }) => {
      rec('exec', p.query);
      throw new Error('fake ClickHouse: exec refused');
    },
    ping: async () => ({ success: true as const }),
    close: async () => undefined,
  };
}

function fakeWorld(opts: { real?: Destination; temporalOn?: Record<string, (...args: unknown[]) => unknown> } = {}) {
  const calls: Call[] = [];
  const client = recordingClient(calls, opts.real?.client);
  const destination = {
    kind: 'server', client, imports: client, reader: client, database: opts.real?.database ?? 'default',
    insertStream: async () => {
      calls.push({ target: 'clickhouse', op: 'insertStream', text: '' });
      throw new Error('fake ClickHouse: insertStream refused');
    },
    close: async () => undefined,
  } as unknown as Destination;
  const s3 = new S3Connections(new Map([['local', { kind: 'anonymous', region: 'us-east-1', forcePathStyle: true }]]));
  vi.spyOn(s3, 'client').mockImplementation((name: string) => {
    calls.push({ target: 's3', op: 'client', text: name });
    return {
      send: async (cmd: { constructor: { name: string }; input: unknown }) => {
        calls.push({ target: 's3', op: cmd.constructor.name, text: JSON.stringify(cmd.input) });
        return { Contents: [], IsTruncated: false, KeyCount: 0 };
      },
    } as never;
  });
  const app = createApp({
    temporal: fakeTemporal(calls, opts.temporalOn) as never, taskQueue: 'fuzz', searchAttributes: false, destination, s3, tokens: { admin: [], readOnly: [] },
  });
  return { app, calls };
}

// ---------------------------------------------------------------------------
// Assertions.

interface Answer {
  status: number;
  contentType: string;
  text: string;
  body: any;
}

async function send(app: ReturnType<typeof fakeWorld>['app'], c: Pick<Case, 'method' | 'path' | 'body' | 'contentType'>): Promise<Answer> {
  const res = await app.request(c.path, { method: c.method, body: c.method === 'GET' || c.method === 'HEAD' ? undefined : c.body, headers: { 'content-type': c.contentType } });
  const text = await res.text();
  let body: unknown = text;
  try {
    body = JSON.parse(text);
  } catch {
    // not JSON
  }
  return { status: res.status, contentType: res.headers.get('content-type') ?? '', text, body };
}

// The guard's own parse and catalogue reads are the only queries /v1/sql may cause for a refused query.
const READ_ONLY_CHECK = /^\s*(SELECT formatQuerySingleLine\(|EXPLAIN AST |SELECT name, alias_to, is_aggregate)/;
const CHANGES = /\b(CREATE|INSERT|DROP|ALTER|TRUNCATE|RENAME|OPTIMIZE|ATTACH|DETACH)\b/i;

function expectRejected(res: Answer, calls: Call[], c: Case, unexpected: unknown[][]) {
  const ctx = `${c.title}\n  body (${c.body.length} chars): ${JSON.stringify(c.body.slice(0, 300))}\n  answer: ${res.status} ${res.contentType} ${res.text.slice(0, 600)}\n  calls: ${JSON.stringify(calls).slice(0, 600)}`;
  expect(res.status, ctx).toBeGreaterThanOrEqual(400);
  expect(res.status, ctx).toBeLessThan(500);
  expect(res.contentType, ctx).toMatch(/^application\/problem\+json/);
  expect(res.body, ctx).toMatchObject({ type: expect.any(String), title: expect.any(String), status: res.status, detail: expect.any(String) });
  if (res.status === 400) {
    const errors = res.body.errors as Array<{ field: unknown; message: unknown }>;
    expect(Array.isArray(errors) && errors.length > 0, ctx).toBe(true);
    for (const e of errors) {
      expect(typeof e.field === 'string' && e.field.length > 0, `empty field in ${ctx}`).toBe(true);
      expect(typeof e.message === 'string' && e.message.length > 0, `empty message in ${ctx}`).toBe(true);
    }
    if (c.field) {
      const f = c.field;
      expect(errors.some((e) => e.field === f || String(e.field).startsWith(`${f}.`)), `an error at '${f}': ${ctx}`).toBe(true);
    }
  }
  // No side effect: nothing reached Temporal or S3; ClickHouse saw at most the read-only checks of /v1/sql.
  const allowed = c.path === '/v1/sql' ? calls.filter((x) => x.target === 'clickhouse' && x.op === 'query' && READ_ONLY_CHECK.test(x.text)) : [];
  expect(calls.filter((x) => !allowed.includes(x)), ctx).toEqual([]);
  expect(calls.filter((x) => CHANGES.test(x.text) && x.op !== 'query'), ctx).toEqual([]);
  expect(unexpected, ctx).toEqual([]);
}

// ---------------------------------------------------------------------------

describe(`hostile bodies are rejected with problem+json and change nothing (seed ${SEED})`, () => {
  let world: ReturnType<typeof fakeWorld>;
  let errors: { mock: { calls: unknown[][] }; mockRestore(): void };
  beforeAll(() => {
    world = fakeWorld();
  });
  beforeEach(() => {
    world.calls.length = 0;
    // The error mapper logs every 5xx here.
    errors = vi.spyOn(console, 'error').mockImplementation(() => undefined);
  });
  afterEach(() => {
    errors.mockRestore();
  });
  const unexpectedErrors = () => errors.mock.calls.filter((args) => String(args[0]).includes('[api] unexpected error'));

  // The oracle is not vacuous: what validation accepts does reach the fakes.
  it.each(Object.keys(routes).map((e) => [e as Endpoint]))('a valid %s body gets past validation and the fakes see it', async (endpoint) => {
    await send(world.app, { ...routes[endpoint], body: toJson(bases[endpoint]), contentType: 'application/json' });
    expect(world.calls.length, endpoint).toBeGreaterThan(0);
  });

  it('generates enough cases', () => {
    expect(GENERATED.length + bodyLevelCases().length + tableCases().length).toBeGreaterThanOrEqual(300);
  });

  it.each(tableCases().map((c) => [c.title, c] as const))('%s', async (_t, c) => {
    expectRejected(await send(world.app, c), world.calls, c, unexpectedErrors());
  });

  it.each(bodyLevelCases().map((c) => [c.title, c] as const))('%s', async (_t, c) => {
    expectRejected(await send(world.app, c), world.calls, c, unexpectedErrors());
  });

  it.each(GENERATED.map((c) => [c.title.replace(/[\u0000-\u001f\u007f-\u009f\u2028\u2029]/g, (ch) => `\\u${ch.charCodeAt(0).toString(16).padStart(4, '0')}`), c] as const))(
    '%s',
    async (_t, c) => {
      expectRejected(await send(world.app, c), world.calls, c, unexpectedErrors());
    },
  );

  it.each([
    ['x; DROP TABLE y'], ['INSERT INTO s3ch_runs SELECT * FROM s3ch_runs'], ["SELECT * FROM file('/etc/passwd')"], ['   '], ['\u0000'], ['SELECT 1 SETTINGS readonly = 0'],
  ])('/v1/sql %j: only the read-only checks run, no statement', async (query) => {
    const c: Case = { title: `sql ${query}`, ...routes.sql, body: JSON.stringify({ query }), contentType: 'application/json', field: 'query' };
    const res = await send(world.app, c);
    expectRejected(res, world.calls, c, unexpectedErrors());
    expect(world.calls.every((x) => x.op === 'query' && READ_ONLY_CHECK.test(x.text))).toBe(true);
  });

  it('non-JSON content types → 415, nothing reached', async () => {
    for (const [endpoint, contentType] of [
      ['patch', 'text/plain'], ['patch', 'application/xml'], ['preview', 'text/plain'], ['retry', 'text/plain'], ['retry', 'application/x-www-form-urlencoded'],
      ['sql', 'text/plain'], ['sql', 'multipart/form-data; boundary=x'], ['create', 'application/xml'],
    ] as const) {
      const c: Case = { title: `${endpoint} as ${contentType}`, ...routes[endpoint], body: toJson(bases[endpoint]), contentType };
      const res = await send(world.app, c);
      expect(res.status, c.title).toBe(415);
      expectRejected(res, world.calls, c, unexpectedErrors());
    }
  });

  it('a .datasource upload (text/plain) that is not a valid file → 400 naming the line or the name', async () => {
    for (const [query, text, field] of [
      ['', 'SCHEMA >\n    `a` String\n', /^name$/],
      ['?name=Bad-Name', 'SCHEMA >\n    `a` String\n', /^(name|line \d+)$/],
      ['?name=x', "schema > 'x'", /^line \d+$/],
      ['?name=x', '', /^line \d+$/],
      ['?name=x', '\u0000\u202e💥', /^line \d+$/],
      ['?name=x', `SCHEMA >\n    \`a\` String\nENGINE "MergeTree"\nIMPORT_CONNECTION_NAME ../../etc/passwd\nIMPORT_BUCKET_URI s3://fuzz-bucket/x.csv\n`, /^(connection|line \d+)$/],
      ['?name=x', `SCHEMA >\n    \`a\` String\nENGINE "MergeTree"\nIMPORT_CONNECTION_NAME local\nIMPORT_BUCKET_URI s3://../../etc/passwd\n`, /^(bucketUri|line \d+)$/],
    ] as const) {
      const c: Case = { title: `datasource file ${query} ${JSON.stringify(text).slice(0, 40)}`, method: 'POST', path: `/v1/datasources${query}`, body: text, contentType: 'text/plain' };
      const res = await send(world.app, c);
      expectRejected(res, world.calls, c, unexpectedErrors());
      expect(res.status, c.title).toBe(400);
      expect(res.body.errors.map((e: { field: string }) => e.field).join(','), `${c.title}: ${res.text}`).toMatch(field);
    }
  });

  it('a 2 MiB body → 413 on every endpoint, before anything is read', async () => {
    const big = `{"description":"${'x'.repeat(2 * 1024 * 1024)}"}`;
    for (const [method, path, contentType] of [
      ['POST', '/v1/datasources', 'application/json'], ['POST', '/v1/datasources?name=x', 'text/plain'], ['PATCH', '/v1/datasources/x', 'application/json'],
      ['POST', '/v1/datasources/x/retry', 'application/json'], ['POST', '/v1/sql', 'application/json'], ['POST', '/v1/preview', 'application/json'],
      ['POST', '/v1/datasources/x/notify', 'application/json'], ['POST', '/v1/notify', 'application/json'], ['POST', '/v1/connections/local/check', 'application/json'],
    ] as const) {
      const c: Case = { title: `2 MiB ${method} ${path}`, method, path, body: big, contentType };
      const res = await send(world.app, c);
      expect(res.status, c.title).toBe(413);
      expectRejected(res, world.calls, c, unexpectedErrors());
      expect(res.body.detail).toMatch(/1048576 bytes/);
    }
  });

  describe('names in the URL path', () => {
    const names = [
      // (A bare '..' is not a name: URL normalisation removes it before routing.)
      'Upper', 'ABC', 'été', '%C3%A9t%C3%A9', '💥', '%F0%9F%92%A5', 'a%00b', 'a%20b', '..%2F..%2Fetc%2Fpasswd', '1abc', '_x', 'a'.repeat(64),
      'x%3B%20DROP%20TABLE%20y', 'a%60b', '%27', '%E2%80%AE', 'a-b', 'a.b',
    ];
    const calls: Array<[string, string, string | undefined]> = [
      ['GET', '', undefined], ['PATCH', '', '{}'], ['DELETE', '', undefined], ['POST', '/sync', undefined], ['POST', '/pause', undefined],
      ['POST', '/resume', undefined], ['POST', '/retry', '{}'], ['POST', '/notify', '{}'], ['GET', '/files', undefined], ['GET', '/files/history?key=a', undefined],
      ['GET', '/runs', undefined], ['GET', '/quarantine', undefined],
    ];
    it.each(names.map((n) => [n]))('%s → 400 naming name on every data source route', async (name) => {
      for (const [method, suffix, body] of calls) {
        const [sub, query] = suffix.split('?');
        const c: Case = {
          title: `${method} /v1/datasources/${name}${suffix}`, method, path: `/v1/datasources/${name}${sub}${query ? `?${query}` : ''}`,
          body: body ?? '', contentType: 'application/json', field: 'name',
        };
        const res = await send(world.app, c);
        expectRejected(res, world.calls, c, unexpectedErrors());
        expect(res.status, c.title).toBe(400);
      }
    });
  });

  it('unknown empty key → 400 with a non-empty field', async () => {
    for (const endpoint of ['create', 'patch', 'preview', 'retry', 'sql'] as const) {
      const c: Case = { title: `${endpoint} with key ""`, ...routes[endpoint], body: toJson(withField(clone(bases[endpoint]) as object, '', 1)), contentType: 'application/json' };
      expectRejected(await send(world.app, c), world.calls, c, unexpectedErrors());
    }
  });

  it.each([['é'], ['§'], ['💥']])('a non-ASCII delimiter %s → 400 at csv.delimiter', async (delimiter) => {
    const c: Case = { title: `delimiter ${delimiter}`, ...routes.create, body: toJson({ ...bases.create, csv: { delimiter } }), contentType: 'application/json', field: 'csv' };
    expectRejected(await send(world.app, c), world.calls, c, unexpectedErrors());
  });
});

describe('hostile names the schema accepts reach ClickHouse only quoted', () => {
  // Column names may be any printable text (they are always quoted). Through
  // the real dry run in chDB: the statements touch only scratch and connector
  // tables, the victim table survives, and the scratch CREATE, run under
  // another name, yields exactly the columns asked for.
  let real: Destination;
  let world: ReturnType<typeof fakeWorld>;
  const victim = `fuzz_victim_${Math.random().toString(36).slice(2, 8)}`;

  beforeAll(async () => {
    real = await processDestination();
    await real.client.command({ query: `CREATE TABLE ${victim} (id UInt8) ENGINE = MergeTree ORDER BY id` });
    await real.client.command({ query: `INSERT INTO ${victim} VALUES (1), (2), (3)` });
    world = fakeWorld({
      real,
      // Validation passed if the service gets as far as starting the workflow: answer as if it existed (→ 409).
      temporalOn: {
        // No other data source feeds the table.
        'temporal.workflow.list': () => (async function* () {})(),
        'temporal.workflow.start': () => { throw new WorkflowExecutionAlreadyStartedError('already started', 'datasource:fuzz_ds', 'dataSource'); },
      },
    });
  });
  afterAll(async () => {
    await real?.client.command({ query: `DROP TABLE IF EXISTS ${victim}` });
  });

  it.each([
    [`x; DROP TABLE ${'VICTIM'}`], ['a`b'], ["'"], ['"'], ['\\'], ['`'], ['\\`'], ['``'], [`a\`); DROP TABLE VICTIM; --`], [`a'); DROP TABLE VICTIM; --`],
    ['\u202eevil'], ['💥'], ['SELECT'], ['%00'], ['../../etc/passwd'], [' leading space'], ['trailing '], ['x'.repeat(256)], ['{q:String}'], ['$1'],
  ])('column %j', async (template) => {
    const name = template.replaceAll('VICTIM', victim);
    world.calls.length = 0;
    const spec = { ...bases.create, columns: [{ name, type: 'String' }, { name: 'ts', type: 'DateTime' }] };
    const res = await send(world.app, { method: 'POST', path: '/v1/datasources', body: toJson(spec), contentType: 'application/json' });
    expect(res.status, res.text).toBe(409);

    const statements = world.calls.filter((x) => x.target === 'clickhouse' && x.op !== 'query');
    const scratch = /`s3ch_scratch_[0-9a-f]+`\.`fuzz_ds`/;
    for (const s of statements) {
      // Rows go only into the connector's own tables (the table claim), and never through SQL text.
      if (s.op === 'insert') {
        expect(s.text).toBe(`INSERT INTO \`${real.database}\`.\`${s.text.split('.`')[1]}`);
        expect(s.text).toMatch(/\.`s3ch_[a-z_]+`$/);
        continue;
      }
      expect(s.op).toBe('command');
      // The dry run's scratch database and table, and the connector's own (ledger) tables.
      // (The connector's own database is created when missing, by name.)
      if (s.text === `CREATE DATABASE IF NOT EXISTS \`${real.database}\``) continue;
      expect(s.text, s.text).toMatch(/^\s*((CREATE|DROP) DATABASE IF (NOT )?EXISTS `s3ch_scratch_[0-9a-f]+`$|CREATE TABLE IF NOT EXISTS `s3ch_scratch_[0-9a-f]+`\.`fuzz_ds`|DROP TABLE IF EXISTS `s3ch_scratch_[0-9a-f]+`\.`fuzz_ds`$|(CREATE|ALTER) TABLE (IF NOT EXISTS )?`s3ch_t_db_[0-9a-f]+`\.`s3ch_[a-z_]+` )/);
      if (/^\s*(CREATE|ALTER) TABLE (IF NOT EXISTS )?`s3ch_t_/.test(s.text)) expect(s.text).toContain(`\`${real.database}\`.`);
    }
    // Validation passed: the workflow start was attempted (other Temporal calls, e.g. confirming a table's claimant, may come first).
    expect(world.calls.filter((x) => x.target !== 'clickhouse').map((x) => x.op)).toContain('temporal.workflow.start');

    // The victim survived; no scratch table is left.
    const rows = await (await real.client.query({ query: `SELECT count() AS n FROM ${victim}`, format: 'JSONEachRow' })).json<{ n: string }>();
    expect(Number(rows[0]?.n)).toBe(3);
    // (Only this test's own: other test files share the engine and dry-run their own specs meanwhile.)
    const mine = [...new Set(statements.flatMap((s) => /`(s3ch_scratch_[0-9a-f]+)`/.exec(s.text)?.[1] ?? []))];
    expect(mine.length).toBeGreaterThan(0);
    const left = await (await real.client.query({ query: 'SELECT name FROM system.databases WHERE name IN {names:Array(String)}', query_params: { names: mine }, format: 'JSONEachRow' })).json();
    expect(left).toEqual([]);

    // The scratch CREATE, run under another name, has exactly the columns asked for.
    const create = statements.find((s) => s.text.startsWith('CREATE') && scratch.test(s.text));
    expect(create, JSON.stringify(statements)).toBeDefined();
    const check = `fuzz_check_${Math.random().toString(36).slice(2, 8)}`;
    await real.client.command({ query: create!.text.replace(scratch, `\`${check}\``) });
    try {
      const cols = await (await real.client.query({ query: `SELECT name FROM system.columns WHERE database = {db:String} AND table = {t:String} ORDER BY position`, query_params: { t: check, db: real.database }, format: 'JSONEachRow' })).json<{ name: string }>();
      expect(cols.map((c) => c.name)).toEqual([name, 'ts']);
    } finally {
      await real.client.command({ query: `DROP TABLE IF EXISTS \`${check}\`` });
    }
  });
});
