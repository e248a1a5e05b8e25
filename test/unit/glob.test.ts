import { describe, it, expect } from 'vitest';
import { BucketUriError, compileGlob, hasWildcard, parseBucketUri } from '../../schemas/glob.js';

function bucketUriErrorFrom(uri: string): BucketUriError {
  try {
    parseBucketUri(uri);
  } catch (e) {
    if (e instanceof BucketUriError) return e;
    throw e;
  }
  throw new Error(`expected parseBucketUri(${JSON.stringify(uri)}) to throw`);
}

describe('parseBucketUri', () => {
  it.each([
    ['s3://my-bucket/events/2024/*.csv', 'my-bucket', 'events/2024/*.csv', 'events/2024/'],
    ['s3://my-bucket/events/{a,b}/x.csv', 'my-bucket', 'events/{a,b}/x.csv', 'events/'],
    ['s3://my-bucket/data.csv', 'my-bucket', 'data.csv', 'data.csv'],
    ['s3://my-bucket/logs/2024-01-0?.gz', 'my-bucket', 'logs/2024-01-0?.gz', 'logs/2024-01-0'],
    ['s3://my-bucket/**/*.parquet', 'my-bucket', '**/*.parquet', ''],
    ['s3://my-bucket', 'my-bucket', '*', ''],
    ['s3://my-bucket/', 'my-bucket', '*', ''],
    ['s3://my-bucket/logs/', 'my-bucket', 'logs/*', 'logs/'],
    ['s3://my-bucket/a/b/c/', 'my-bucket', 'a/b/c/*', 'a/b/c/'],
    ['s3://my.bucket.v2/x', 'my.bucket.v2', 'x', 'x'],
    ['s3://abc/x', 'abc', 'x', 'x'],
    [`s3://${'a'.repeat(63)}/x`, 'a'.repeat(63), 'x', 'x'],
    ['s3://b-1-2/a,b/(c)+$.csv', 'b-1-2', 'a,b/(c)+$.csv', 'a,b/(c)+$.csv'],
    ['s3://my-bucket/data files/report 1.csv', 'my-bucket', 'data files/report 1.csv', 'data files/report 1.csv'],
    // keys S3 allows: a leading "/", empty segments, and a key that ends in "/"
    ['s3://my-bucket//data.csv', 'my-bucket', '/data.csv', '/data.csv'],
    ['s3://my-bucket/a//b', 'my-bucket', 'a//b', 'a//b'],
    ['s3://my-bucket/logs//', 'my-bucket', 'logs//*', 'logs//'],
    ['s3://my-bucket/logs{/}', 'my-bucket', 'logs{/}', 'logs'],
    // ranges list from the text before them
    ['s3://my-bucket/dt=2024-01-{01..10}/*.csv', 'my-bucket', 'dt=2024-01-{01..10}/*.csv', 'dt=2024-01-'],
    ['s3://my-bucket/file{1..3}.csv', 'my-bucket', 'file{1..3}.csv', 'file'],
  ])('%s', (uri, bucket, pattern, listPrefix) => {
    expect(parseBucketUri(uri)).toEqual({ bucket, pattern, listPrefix });
  });

  it('accepts a URI of exactly 1024 characters', () => {
    const uri = `s3://my-bucket/${'k'.repeat(1024 - 's3://my-bucket/'.length)}`;
    expect(uri).toHaveLength(1024);
    expect(parseBucketUri(uri).pattern).toHaveLength(1024 - 's3://my-bucket/'.length);
  });

  it.each([
    // [uri, a fragment the reason must contain to point at the problem]
    ['my-bucket/data.csv', 's3://'],
    ['https://my-bucket/data.csv', 'https://'],
    ['s3a://my-bucket/data.csv', 's3a://'],
    ['S3://my-bucket/data.csv', 'S3://'],
    ['s3:/my-bucket/data.csv', 's3://'],
    ['', 's3://'],
    ['s3://', 'bucket name is missing'],
    ['s3:///data.csv', 'bucket name is missing'],
    ['s3://ab/x', '"ab" is 2 characters'],
    [`s3://${'a'.repeat(64)}/x`, '3-63'],
    ['s3://My-Bucket/x', '"M"'],
    ['s3://my_bucket/x', '"_"'],
    ['s3://my bucket/x', '" "'],
    ['s3://logs-*/x', '"*"'],
    ['s3://-bucket/x', 'start and end'],
    ['s3://bucket-/x', 'start and end'],
    ['s3://.bucket/x', 'start and end'],
    ['s3://my..bucket/x', '".."'],
    ['s3://192.168.10.1/x', 'IP address'],
    ['s3://my-bucket/a{}b', 'empty braces "{}" at position 2'],
    ['s3://my-bucket/{,}', 'can only match an empty key'],
    ['s3://my-bucket/{a..z}.csv', 'non-negative integers'],
    ['s3://my-bucket/{-1..3}.csv', 'non-negative integers'],
    ['s3://my-bucket/{1..10..2}.csv', 'non-negative integers'],
    ['s3://my-bucket/{1..10001}.csv', 'stands for 10001 values; the maximum is 10000'],
    ['s3://my-bucket/{20240101..20251231}.csv', 'split it'],
    ['s3://my-bucket/{1..1234567890123456}', 'longer than 15 digits'],
    [`s3://my-bucket/${'{a,b}'.repeat(129)}`, 'more than 256 alternatives'],
    [`s3://my-bucket/${'{a,'.repeat(9)}b${'}'.repeat(9)}`, 'more than 8 deep'],
    [`s3://my-bucket/${'😀'.repeat(300)}`, 'S3 keys are at most 1024 bytes'],
    ['s3://my-bucket/{a,b/x.csv', 'unclosed "{"'],
    ['s3://my-bucket/{a,{b,c}/x.csv', 'unclosed "{"'],
    ['s3://my-bucket/a}b.csv', 'unmatched "}"'],
    ['s3://my-bucket/{a,b}}.csv', 'unmatched "}"'],
    ['s3://my-bucket/a\nb', 'U+000A'],
    ['s3://my-bucket/a\u0000b', 'U+0000'],
    ['s3://my-bucket/a\u007fb', 'U+007F'],
    [`s3://my-bucket/${'k'.repeat(1010)}`, '1025 characters'],
  ])('rejects %j', (uri, fragment) => {
    const err = bucketUriErrorFrom(uri);
    expect(err.field).toBe('bucketUri');
    expect(err.reason).toContain(fragment);
    expect(err.message).toBe(`bucketUri: ${err.reason}`);
  });

  it('names what is allowed in scheme and bucket errors', () => {
    expect(bucketUriErrorFrom('https://b/x').reason).toContain('only s3:// is allowed');
    expect(bucketUriErrorFrom('s3://My-Bucket/x').reason).toContain('lowercase letters, digits, dots (.) and hyphens (-)');
    expect(bucketUriErrorFrom('s3://my-bucket/a}b').reason).toContain('position 2');
  });
});

describe('compileGlob', () => {
  const cases: Array<[pattern: string, key: string, matches: boolean]> = [
    // * stays within a segment
    ['*.csv', 'a.csv', true],
    ['*.csv', '.csv', true],
    ['*.csv', 'dir/a.csv', false],
    ['*.csv', 'a.csv.gz', false],
    ['*.csv', 'a.CSV', false],
    ['events/*/x.csv', 'events/2024/x.csv', true],
    ['events/*/x.csv', 'events/2024/01/x.csv', false],
    ['a*b*c', 'aXXbYYc', true],
    ['a*b*c', 'aXX/bYYc', false],
    // ** crosses segments; **/ also matches zero directories
    ['a/**/*.csv', 'a/x.csv', true],
    ['a/**/*.csv', 'a/b/x.csv', true],
    ['a/**/*.csv', 'a/b/c/d/x.csv', true],
    ['a/**/*.csv', 'b/a/x.csv', false],
    ['a/**/*.csv', 'a/b/x.json', false],
    ['a/**/*.csv', 'ax.csv', false],
    ['**/*.csv', 'x.csv', true],
    ['**/*.csv', 'a/b/x.csv', true],
    ['**/*.csv', 'a/b/x.csv/y', false],
    ['**', '', true],
    ['**', 'any/depth/at/all', true],
    ['logs/**', 'logs/a/b.gz', true],
    ['logs/**', 'logs/', true],
    ['logs/**', 'logs', false],
    ['logs/**', 'logsx/a', false],
    ['a**b', 'ab', true],
    ['a**b', 'a/x/y/b', true],
    ['a**/b', 'a/b', true],
    ['a**/b', 'ax/y/b', true],
    ['a**/b', 'ab', false],
    ['***.csv', 'deep/dir/x.csv', true],
    ['**/**/x', 'x', true],
    ['**/**/x', 'a/b/x', true],
    ['**/**/x', 'a/bx', false],
    // ? is exactly one non-slash character
    ['file?.csv', 'file1.csv', true],
    ['file?.csv', 'file.csv', false],
    ['file?.csv', 'file12.csv', false],
    ['file?.csv', 'file/.csv', false],
    ['?', 'é', true],
    ['?', '😀', true],
    ['??', '😀', false],
    // braces
    ['{a,b}.csv', 'a.csv', true],
    ['{a,b}.csv', 'b.csv', true],
    ['{a,b}.csv', 'c.csv', false],
    ['{a,b}.csv', '{a,b}.csv', false],
    ['{*.csv,*.tsv}', 'x.csv', true],
    ['{*.csv,*.tsv}', 'x.tsv', true],
    ['{*.csv,*.tsv}', 'x.json', false],
    ['{*.csv,*.tsv}', 'dir/x.csv', false],
    ['{a,b{1,2}}/x', 'a/x', true],
    ['{a,b{1,2}}/x', 'b1/x', true],
    ['{a,b{1,2}}/x', 'b2/x', true],
    ['{a,b{1,2}}/x', 'b/x', false],
    ['{a,b{1,2}}/x', 'b3/x', false],
    ['{2023,2024}/**/*.parquet', '2024/01/02/part-0.parquet', true],
    ['{2023,2024}/**/*.parquet', '2025/01/part-0.parquet', false],
    ['{,pre-}x', 'x', true],
    ['{,pre-}x', 'pre-x', true],
    ['{logs/,}**/*.gz', 'a.gz', true],
    ['{logs/,}**/*.gz', 'logs/a.gz', true],
    ['{logs/,}**/*.gz', 'logs/2024/a.gz', true],
    ['x{**/,}y', 'xy', true],
    ['x{**/,}y', 'xa/y', true],
    ['{a/,b/}**/*.gz', 'a/x.gz', true],
    ['{a/,b/}**/*.gz', 'b/c/x.gz', true],
    // `**/` after braces behaves like the spelled-out alternatives a/**/x and b**/x
    ['{a/,b}**/x', 'a/x', true],
    ['{a/,b}**/x', 'a/d/x', true],
    ['{a/,b}**/x', 'bx', false],
    ['{a/,b}**/x', 'b/x', true],
    ['{a/,b}**/x', 'bc/d/x', true],
    // everything else is literal, including regex metacharacters
    ['a.b', 'a.b', true],
    ['a.b', 'axb', false],
    ['a+b', 'a+b', true],
    ['a+b', 'aab', false],
    ['(x)|y', '(x)|y', true],
    ['(x)|y', 'y', false],
    ['^$.csv', '^$.csv', true],
    ['[ab].csv', '[ab].csv', true],
    ['[ab].csv', 'a.csv', false],
    ['a\\d', 'a\\d', true],
    ['a\\d', 'a1', false],
    ['a,b', 'a,b', true],
    ['a-b', 'a-b', true],
    ['data files/*.csv', 'data files/x y.csv', true],
    // anchored at both ends
    ['data.csv', 'data.csv', true],
    ['data.csv', 'old/data.csv', false],
    ['data.csv', 'data.csv.bak', false],
    // keys may contain newlines; ** still crosses them
    ['**', 'a\nb', true],
    ['*', 'a\nb', true],
  ];

  it.each(cases)('%j vs %j -> %s', (pattern, key, expected) => {
    expect(compileGlob(pattern)(key)).toBe(expected);
  });

  it('agrees with the pattern parseBucketUri normalises', () => {
    const { pattern } = parseBucketUri('s3://my-bucket/logs/');
    const matches = compileGlob(pattern);
    expect(matches('logs/a.gz')).toBe(true);
    expect(matches('logs/2024/a.gz')).toBe(false);
    const top = compileGlob(parseBucketUri('s3://my-bucket').pattern);
    expect(top('a.csv')).toBe(true);
    expect(top('dir/a.csv')).toBe(false);
  });

  it('throws BucketUriError for unbalanced braces', () => {
    expect(() => compileGlob('{a,b')).toThrow(BucketUriError);
    expect(() => compileGlob('a}')).toThrow(BucketUriError);
  });

  it('does not backtrack catastrophically on long non-matching keys', () => {
    const matches = compileGlob('**/**/**/*.csv');
    const keys = ['x'.repeat(1000), 'a/'.repeat(500), `${'ab/'.repeat(333)}c.cs`, `${'a/'.repeat(499)}x.csvx`];
    for (let i = 0; i < 1000; i++) {
      for (const key of keys) expect(matches(key)).toBe(false);
    }
    expect(matches(`${'a/'.repeat(499)}x.csv`)).toBe(true);
  });

  // Each of these takes seconds to forever with a naive glob-to-regex translation.
  it.each([
    ['*a*a*a*a*a*a*b', 'a'.repeat(1000)],
    ['**a**a**a**b', 'a/'.repeat(500)],
    ['**/a/**/b/**/*.csv', 'a/b/'.repeat(250)],
    ['**/*_*_*_*.csv', `${'_/'.repeat(10)}${'_'.repeat(980)}`],
    ['**a*b**a*b**a*b**c', 'ab/'.repeat(333)],
  ])('stays fast for %j against an adversarial key', (pattern, key) => {
    const matches = compileGlob(pattern);
    for (let i = 0; i < 100; i++) expect(matches(key)).toBe(false);
  });

  it('agrees with a brute-force reference matcher on generated patterns and keys', () => {
    const random = seededRandom(20240229);
    const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)]!;
    const tokens = ['a', 'b', 'ab', '/', '.', '*', '**', '**/', '?', '1', '0', '%', '+', 'é'];
    const ranges = ['0..3', '07..10', '3..1', '1..12', '00..02', '9..011', '010..8', '0..10', '1..010', '5..5'];
    const genSequence = (depth: number, maxTokens: number): string => {
      let out = '';
      const count = Math.floor(random() * maxTokens);
      for (let i = 0; i < count; i++) {
        const roll = random();
        if (depth < 2 && roll < 0.12) {
          const options = Array.from({ length: 1 + Math.floor(random() * 3) }, () => (random() < 0.15 ? pick(ranges) : genSequence(depth + 1, 3)));
          // `{}` is refused by the parser; an empty option needs a comma.
          out += options.length === 1 && options[0] === '' ? '{,a}' : `{${options.join(',')}}`;
        } else if (roll < 0.2) {
          out += `{${pick(ranges)}}`;
        } else {
          out += pick(tokens);
        }
      }
      return out;
    };
    const genKey = () => Array.from({ length: Math.floor(random() * 9) }, () => pick(['a', 'b', '/', '.', '0', '1', '2', '7', '8', '%', 'é'])).join('');

    let comparisons = 0;
    let positives = 0;
    let rangePositives = 0;
    for (let p = 0; p < 600; p++) {
      const pattern = genSequence(0, 7);
      const matches = compileGlob(pattern);
      for (let k = 0; k < 60; k++) {
        // Half the keys are drawn from the pattern's own language, so matches are common.
        const key = k % 2 ? genKey() : sampleKey(pattern, random) ?? genKey();
        const expected = referenceMatch(pattern, key);
        if (matches(key) !== expected) {
          throw new Error(`compileGlob(${JSON.stringify(pattern)})(${JSON.stringify(key)}) should be ${expected}`);
        }
        comparisons++;
        if (expected) positives++;
        if (expected && pattern.includes('..')) rangePositives++;
      }
    }
    expect(comparisons).toBe(36_000);
    // Guard against a generator that only ever produces trivial non-matches.
    expect(positives).toBeGreaterThan(5_000);
    expect(rangePositives).toBeGreaterThan(1_000);
  });
});

describe('hasWildcard', () => {
  it.each([
    ['a*', true],
    ['a?b', true],
    ['{a,b}', true],
    ['**', true],
    ['plain/key.csv', false],
    ['a}', false],
    ['a,b', false],
    ['', false],
  ])('%j -> %s', (s, expected) => {
    expect(hasWildcard(s)).toBe(expected);
  });
});

/** Small deterministic PRNG (mulberry32) so failures reproduce. */
function seededRandom(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * Independent, deliberately naive semantics for the differential test: expand
 * braces textually, then match each brace-free pattern by memoised recursion.
 * Brace edges leave a BOUNDARY mark, because wildcards do not join across them
 * (`{*,}*` is never `**`).
 */
const BOUNDARY = '\u0001';

function referenceMatch(pattern: string, key: string): boolean {
  return expandBraces(pattern).some((p) => matchBraceFree(Array.from(p), Array.from(key)));
}

/**
 * ClickHouse's range rule, transcribed from its description rather than from
 * the matcher: the bounds are swapped when descending, and the (new) first
 * bound decides padding: a leading zero pads to the wider width, except a
 * first bound of width 1 ("0"), which means plain numbers.
 */
function referenceRange(text: string): string[] {
  const [left, right] = text.split('..') as [string, string];
  let begin = Number(left);
  let end = Number(right);
  let beginWidth = left.length;
  let endWidth = right.length;
  let leadingZeros = left[0] === '0';
  if (begin > end) {
    [begin, end] = [end, begin];
    [beginWidth, endWidth] = [endWidth, beginWidth];
    leadingZeros = right[0] === '0';
  }
  const width = beginWidth === 1 && leadingZeros ? 1 : Math.max(beginWidth, endWidth);
  const out: string[] = [];
  for (let v = begin; v <= end; v++) out.push(leadingZeros ? String(v).padStart(width, '0') : String(v));
  return out;
}

function expandBraces(pattern: string): string[] {
  const open = pattern.indexOf('{');
  if (open === -1) return [pattern];
  let depth = 0;
  let optionStart = open + 1;
  const options: string[] = [];
  for (let i = open; i < pattern.length; i++) {
    const ch = pattern[i];
    if (ch === '{') depth++;
    else if (ch === '}' && --depth === 0) {
      options.push(pattern.slice(optionStart, i));
      const expanded = options.flatMap((o) => (/^\d+\.\.\d+$/.test(o) ? referenceRange(o) : [o]));
      const before = pattern.slice(0, open);
      const after = pattern.slice(i + 1);
      return expanded.flatMap((option) => expandBraces(before + BOUNDARY + option + BOUNDARY + after));
    } else if (ch === ',' && depth === 1) {
      options.push(pattern.slice(optionStart, i));
      optionStart = i + 1;
    }
  }
  throw new Error(`unbalanced test pattern ${pattern}`);
}

function matchBraceFree(pattern: string[], key: string[]): boolean {
  const memo = new Map<number, boolean>();
  const match = (pi: number, ki: number): boolean => {
    const memoKey = pi * 10_000 + ki;
    const known = memo.get(memoKey);
    if (known !== undefined) return known;
    let result = false;
    if (pi === pattern.length) {
      result = ki === key.length;
    } else if (pattern[pi] === BOUNDARY) {
      result = match(pi + 1, ki);
    } else if (pattern[pi] === '*') {
      let runEnd = pi;
      while (pattern[runEnd] === '*') runEnd++;
      if (runEnd - pi === 1) {
        // `*`: any run without `/`
        for (let k = ki; k <= key.length; k++) {
          if (match(runEnd, k)) result = true;
          if (result || key[k] === '/') break;
        }
      } else if (pattern[runEnd] === '/') {
        // `**/`: nothing at a segment start of the key, otherwise anything ending in `/`
        const atSegmentStart = ki === 0 || key[ki - 1] === '/';
        result = atSegmentStart && match(runEnd + 1, ki);
        for (let k = ki; !result && k < key.length; k++) {
          if (key[k] === '/' && match(runEnd + 1, k + 1)) result = true;
        }
      } else {
        // `**`: anything
        for (let k = ki; !result && k <= key.length; k++) result = match(runEnd, k);
      }
    } else if (pattern[pi] === '?') {
      result = ki < key.length && key[ki] !== '/' && match(pi + 1, ki + 1);
    } else {
      result = key[ki] === pattern[pi] && match(pi + 1, ki + 1);
    }
    memo.set(memoKey, result);
    return result;
  };
  return match(0, 0);
}

/** A key the pattern should match, built from one brace expansion (undefined when the expansion is too large). */
function sampleKey(pattern: string, random: () => number): string | undefined {
  const expansions = expandBraces(pattern);
  if (expansions.length > 5_000) return undefined;
  const chosen = expansions[Math.floor(random() * expansions.length)]!;
  const filler = () => ['a', 'b', '7'][Math.floor(random() * 3)]!;
  return chosen
    .replaceAll(BOUNDARY, '')
    .replace(/\*\*+\/?|\*|\?/g, (w) => (w === '?' ? filler() : w === '*' ? filler().repeat(Math.floor(random() * 3)) : random() < 0.5 ? '' : `${filler()}/`));
}
