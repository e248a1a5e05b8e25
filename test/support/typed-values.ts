/**
 * Seeded values for the differential test of typed columns: for each column
 * type, JSON texts of values a JSON writer produces (edge cases first:
 * empty, nested empty, quotes, backslashes, unicode with non-BMP, extremes,
 * nulls), then random ones, and values ClickHouse's own JSONEachRow reader
 * refuses (which the connector must quarantine). Same seed, same values.
 */

import { prng } from '../../scripts/bench/data.js';

/** The benchmark's seeded PRNG, so a failure reproduces from its seed. */
export const rng = prng;

type Rand = () => number;
const int = (r: Rand, lo: number, hi: number) => lo + Math.floor(r() * (hi - lo + 1));
const pick = <T>(r: Rand, xs: readonly T[]): T => xs[Math.floor(r() * xs.length)]!;

/** Characters strings are built from: quotes, backslashes, controls, escapes' look-alikes, multi-byte and non-BMP text. */
const CHARS = ['a', 'b', 'Z', '0', ' ', '"', "'", '\\', '/', '\n', '\t', '\r', '\u0001', '\u001f', 'é', 'ü', '✓', '中', '😀', '𝄞', '\u2028', '{', '}', '[', ']', ',', ':', '\\n', '%', '$'];

export const EDGE_STRINGS = ['', ' ', '"', "'", '\\', '\\\\', 'a"b\'c\\d', 'line\nbreak', 'tab\there', 'ü✓中', '😀 non-BMP 𝄞', 'null', 'NULL', '[]', '{}', '\\N', 'x'.repeat(300)];

function randomString(r: Rand): string {
  const n = int(r, 0, 12);
  let s = '';
  for (let i = 0; i < n; i++) s += pick(r, CHARS);
  return s;
}

/** A generator of JSON values (as JS values, or JSON text with `raw`) for one type. */
interface Gen {
  edge: unknown[];
  random: (r: Rand) => unknown;
  /** JSON texts that ClickHouse's JSONEachRow refuses for this type. */
  refused?: string[];
  /**
   * JSON texts ClickHouse reads but the connector's documented checks refuse
   * (an impossible date, which ClickHouse rolls over into another day).
   */
  checked?: string[];
}

/** JSON text that is written as-is rather than with JSON.stringify (numbers beyond double precision, odd forms). */
export class RawJson {
  constructor(readonly text: string) {}
}

const uuid = (r: Rand) => Array.from({ length: 32 }, () => '0123456789abcdef'[int(r, 0, 15)]).join('').replace(/^(.{8})(.{4})(.{4})(.{4})(.{12})$/, '$1-$2-$3-$4-$5');
const pad = (n: number, w = 2) => String(n).padStart(w, '0');

const SCALARS: Record<string, Gen> = {
  String: { edge: EDGE_STRINGS, random: randomString },
  Int64: {
    edge: [0, -1, 1, new RawJson('9223372036854775807'), new RawJson('-9223372036854775808'), '42', '-7'],
    random: (r) => int(r, -1e12, 1e12),
    refused: ['1.5', '"abc"', '[1]', '{"a":1}'],
    checked: ['9223372036854775808'],
  },
  UInt64: { edge: [0, new RawJson('18446744073709551615'), '18446744073709551615'], random: (r) => int(r, 0, 2 ** 52) },
  // ClickHouse wraps a value past the type's range (128 reads as -128); the connector's range check refuses it.
  Int8: { edge: [127, -128, 0], random: (r) => int(r, -128, 127), checked: ['128', '-129', '"300"'] },
  Float64: { edge: [0, -1.5, 0.1, 1e308, -1e-308, 5e-324, 1.7976931348623157e308, 123456789.125], random: (r) => (r() - 0.5) * 10 ** int(r, -5, 15) },
  Bool: { edge: [true, false, 1, 0], random: (r) => r() < 0.5, refused: ['"true"', '"1"', '"yes"'] },
  'Decimal(9, 2)': { edge: ['0', new RawJson('0.01'), new RawJson('-9999999.99'), new RawJson('9999999.99'), '12.5', 3], random: (r) => new RawJson((int(r, -99999999, 99999999) / 100).toFixed(2)) },
  'Decimal(38, 10)': { edge: [new RawJson('1234567890123456789012345678.0123456789'), new RawJson('-0.0000000001'), '0'], random: (r) => new RawJson(`${int(r, -1e9, 1e9)}.${pad(int(r, 0, 9999999999), 10)}`) },
  UUID: { edge: ['00000000-0000-0000-0000-000000000000', 'ffffffff-ffff-ffff-ffff-ffffffffffff'], random: uuid, refused: ['"not-a-uuid"', '"0000"'] },
  IPv4: { edge: ['0.0.0.0', '255.255.255.255', '127.0.0.1'], random: (r) => Array.from({ length: 4 }, () => int(r, 0, 255)).join('.'), refused: ['"256.1.1.1"', '"1.2.3"'] },
  IPv6: { edge: ['::', '::1', 'ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff', '2001:db8::8a2e:370:7334'], random: (r) => Array.from({ length: 8 }, () => int(r, 0, 65535).toString(16)).join(':'), refused: ['"2001:::1"', '"xyz"'] },
  Date32: { edge: ['1900-01-01', '2299-12-31', '1970-01-01', '2024-02-29'], random: (r) => `${int(r, 1900, 2299)}-${pad(int(r, 1, 12))}-${pad(int(r, 1, 28))}`, refused: ['"2024-1x-01"'], checked: ['"2023-02-30"', '"2024-13-01"'] },
  "DateTime64(3, 'UTC')": {
    edge: ['1970-01-01 00:00:00.000', '2024-02-29 23:59:59.999', '1900-01-01 00:00:00.000', '2299-12-31 23:59:59.999'],
    random: (r) => `${int(r, 1901, 2298)}-${pad(int(r, 1, 12))}-${pad(int(r, 1, 28))} ${pad(int(r, 0, 23))}:${pad(int(r, 0, 59))}:${pad(int(r, 0, 59))}.${pad(int(r, 0, 999), 3)}`,
    refused: ['"2024-02-30 00:00:00"', '"not a time"'],
  },
  "DateTime64(6, 'Asia/Kolkata')": {
    edge: ['2024-01-01 05:30:00.000001', '1970-01-01 05:30:00.000000'],
    random: (r) => `${int(r, 1901, 2298)}-${pad(int(r, 1, 12))}-${pad(int(r, 1, 28))} ${pad(int(r, 0, 23))}:${pad(int(r, 0, 59))}:${pad(int(r, 0, 59))}.${pad(int(r, 0, 999999), 6)}`,
  },
  // A zone with daylight saving: the hour that does not exist in spring, the one that happens twice in autumn.
  "DateTime64(3, 'Europe/Berlin')": {
    edge: ['2024-03-31 02:30:00.000', '2024-10-27 02:30:00.000', '2024-10-27T00:30:00Z', '2024-10-27T01:30:00Z', '2024-10-27 02:30:00+01:00', '1900-01-01 00:00:00', '1711846800'],
    random: (r) => `${int(r, 1901, 2298)}-${pad(int(r, 1, 12))}-${pad(int(r, 1, 28))}T${pad(int(r, 0, 23))}:${pad(int(r, 0, 59))}:${pad(int(r, 0, 59))}${pick(r, ['', 'Z', '+05:30', '-08:00'])}`,
  },
  "DateTime('UTC')": { edge: ['1970-01-01 00:00:00', '2106-02-07 06:28:15'], random: (r) => `${int(r, 1970, 2105)}-${pad(int(r, 1, 12))}-${pad(int(r, 1, 28))} ${pad(int(r, 0, 23))}:${pad(int(r, 0, 59))}:${pad(int(r, 0, 59))}` },
  'FixedString(4)': { edge: ['abcd', '', 'a', 'ü✓'.slice(0, 1)], random: (r) => Array.from({ length: int(r, 0, 4) }, () => pick(r, ['a', 'b', '"', '\\', 'x'])).join(''), refused: ['"abcde"', '"ü✓"'] },
  "Enum8('a' = 1, 'b' = 2, 'it\\'s' = -128)": { edge: ['a', 'b', "it's", 1, -128], random: (r) => pick(r, ['a', 'b', "it's"]), refused: ['"c"', '3', '"A"'] },
  "Enum16('x' = -1000, 'y' = 1000)": { edge: ['x', 'y', 1000], random: (r) => pick(r, ['x', 'y']), refused: ['"z"', '0'] },
};

/** Values of `type` (canonical ClickHouse text): JS values (JSON.stringify'd) or RawJson. */
function generator(type: string): Gen {
  const scalar = SCALARS[type];
  if (scalar) return scalar;
  let m: RegExpExecArray | null;
  if ((m = /^Nullable\((.*)\)$/.exec(type))) {
    const g = generator(m[1]!);
    return { edge: [null, ...g.edge], random: (r) => (r() < 0.2 ? null : g.random(r)), refused: g.refused, checked: g.checked };
  }
  if ((m = /^LowCardinality\((.*)\)$/.exec(type))) return generator(m[1]!);
  if ((m = /^Array\((.*)\)$/.exec(type))) {
    const g = generator(m[1]!);
    return {
      edge: [[], [g.edge[0]], g.edge, null],
      random: (r) => Array.from({ length: int(r, 0, 5) }, () => (r() < 0.5 ? pick(r, g.edge) : g.random(r))),
      refused: ['"[]"', '{}', '1', ...(g.refused ?? []).map((x) => `[${x}]`)],
      checked: g.checked?.map((x) => `[${x}]`),
    };
  }
  if ((m = /^Map\((String|LowCardinality\(String\)|Int64), (.*)\)$/.exec(type))) {
    const g = generator(m[2]!);
    const intKeys = m[1] === 'Int64';
    const EDGE_KEYS = intKeys ? ['0', '-1', '9223372036854775807', '42'] : EDGE_STRINGS;
    const randomKey = intKeys ? (r: Rand) => String(int(r, -1e9, 1e9)) : randomString;
    const obj = (entries: Array<[string, unknown]>) => new RawJson(`{${entries.map(([k, v]) => `${JSON.stringify(k)}:${jsonText(v)}`).join(',')}}`);
    return {
      edge: [obj([]), obj([[EDGE_KEYS[0]!, g.edge[0]]]), obj(EDGE_KEYS.map((k, i) => [k, g.edge[i % g.edge.length]])), null],
      random: (r) => obj(Array.from({ length: int(r, 0, 4) }, () => [randomKey(r), r() < 0.5 ? pick(r, g.edge) : g.random(r)])),
      refused: ['[]', '"{}"', ...(intKeys ? ['{"x":null}', '{"1.5":null}'] : []), ...(g.refused ?? []).map((x) => `{"${EDGE_KEYS[3]}":${x}}`)],
      checked: g.checked?.map((x) => `{"${EDGE_KEYS[3]}":${x}}`),
    };
  }
  if ((m = /^Tuple\((.*)\)$/.exec(type))) {
    const parts = splitArgs(m[1]!);
    const named = parts.map((p) => /^([a-z_][a-z0-9_]*) (.+)$/.exec(p));
    if (named.every(Boolean)) {
      const gens = named.map((n) => ({ name: n![1]!, g: generator(n![2]!) }));
      const obj = (vals: unknown[]) => new RawJson(`{${gens.map(({ name }, i) => (vals[i] === undefined ? null : `${JSON.stringify(name)}:${jsonText(vals[i])}`)).filter(Boolean).join(',')}}`);
      return {
        edge: [obj(gens.map(({ g }) => g.edge[0])), obj(gens.map(() => undefined)), obj(gens.map(({ g }) => g.edge.at(-1))), new RawJson(`{"zz_unknown":1,${jsonText(obj(gens.map(({ g }) => g.edge[1] ?? g.edge[0]))).slice(1)}`), null],
        random: (r) => obj(gens.map(({ g }) => (r() < 0.1 ? undefined : r() < 0.4 ? pick(r, g.edge) : g.random(r)))),
        refused: ['[]', '"x"', `[${gens.map(({ g }) => jsonText(g.edge[0])).join(',')}]`],
      };
    }
    const gens = parts.map(generator);
    return {
      edge: [gens.map((g) => g.edge[0]), gens.map((g) => g.edge.at(-1)), null],
      random: (r) => gens.map((g) => (r() < 0.4 ? pick(r, g.edge) : g.random(r))),
      refused: ['[]', `[${gens.map((g) => jsonText(g.edge[0])).join(',')},1]`, '{}'],
    };
  }
  throw new Error(`no value generator for ${type}`);
}

function splitArgs(s: string): string[] {
  const out: string[] = [];
  let depth = 0;
  let quote = false;
  let start = 0;
  for (let i = 0; i < s.length; i++) {
    const ch = s[i]!;
    if (quote) {
      if (ch === '\\') i++;
      else if (ch === "'") quote = false;
    } else if (ch === "'") quote = true;
    else if (ch === '(') depth++;
    else if (ch === ')') depth--;
    else if (ch === ',' && depth === 0) {
      out.push(s.slice(start, i).trim());
      start = i + 1;
    }
  }
  out.push(s.slice(start).trim());
  return out;
}

/** JSON text of a generated value. */
export function jsonText(v: unknown): string {
  if (v instanceof RawJson) return v.text;
  if (Array.isArray(v)) return `[${v.map(jsonText).join(',')}]`;
  return JSON.stringify(v);
}

/**
 * `count` JSON texts for `type`: the edge cases, the values ClickHouse
 * refuses, then seeded random values.
 */
export function jsonValues(type: string, seed: number, count: number): Array<{ json: string; checked?: true }> {
  const g = generator(type);
  const r = rng(seed);
  const out: Array<{ json: string; checked?: true }> = [
    ...g.edge.map((v) => ({ json: jsonText(v) })),
    ...(g.refused ?? []).map((json) => ({ json })),
    ...(g.checked ?? []).map((json) => ({ json, checked: true as const })),
  ];
  while (out.length < count) out.push({ json: jsonText(g.random(r)) });
  return out;
}
