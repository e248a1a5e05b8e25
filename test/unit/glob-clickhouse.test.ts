/**
 * Globs as a ClickHouse user writes them: one table per class of the
 * comparison with ClickHouse's own s3() glob expansion (ranges, patterns that
 * match nothing, our deliberate extensions, keys S3 allows).
 */
import { describe, expect, it } from 'vitest';
import { BucketUriError, compileGlob, describeBucketUri, noMatchWarning, parseBucketUri } from '../../schemas/glob.js';

const seq = (from: number, to: number, width = 0) =>
  Array.from({ length: Math.abs(to - from) + 1 }, (_, i) => String(from <= to ? from + i : from - i).padStart(width, '0'));

describe('{N..M} ranges with ClickHouse padding', () => {
  // [range as written, every value it stands for (written order), keys it must not match]
  const cases: Array<[range: string, values: string[], nonMatches: string[]]> = [
    ['1..3', ['1', '2', '3'], ['0', '4', '01', '1..3', '{1..3}', '']],
    ['01..10', seq(1, 10, 2), ['1', '9', '10 ', '010', '00', '11']],
    ['00..23', seq(0, 23, 2), ['0', '7', '24', '000']],
    ['0001..0005', seq(1, 5, 4), ['1', '0006', '00001', '0000']],
    ['0..10', seq(0, 10), ['00', '01', '010', '11']],
    ['1..010', seq(1, 10), ['01', '010', '0', '11']],
    ['001..10', seq(1, 10, 3), ['1', '01', '10', '011']],
    ['01..100', seq(1, 100, 3), ['1', '01', '99', '101']],
    ['20..15', seq(20, 15), ['14', '21', '015']],
    ['9..01', seq(9, 1, 2), ['1', '9', '00', '10']],
    ['10..0', seq(10, 0), ['00', '05', '11']],
    ['05..1', seq(5, 1), ['01', '05', '6']],
    ['5..5', ['5'], ['05', '4', '6']],
    ['05..05', ['05'], ['5', '04']],
    ['0..0', ['0'], ['00', '1']],
    ['00..5', seq(0, 5, 2), ['0', '5', '06']],
    ['08..11', seq(8, 11, 2), ['8', '9', '07', '12']],
    ['98..102', seq(98, 102), ['97', '103', '098']],
    ['010..8', seq(10, 8), ['08', '010', '11']],
    ['099..101', seq(99, 101, 3), ['99', '100 ', '102']],
    ['7..12', seq(7, 12), ['07', '6', '13']],
    ['0000..9999', seq(0, 9999, 4), ['0', '999', '10000', '00000']],
    ['1..10000', seq(1, 10000), ['0', '01', '10001']],
    ['365..1', seq(365, 1), ['0', '366', '001']],
  ];

  it.each(cases)('{%s}', (range, values, nonMatches) => {
    const uri = `s3://bucket/dt={${range}}/part.csv`;
    const description = describeBucketUri(uri);
    expect(description.listPrefix).toBe('dt=');
    expect(description.ranges).toHaveLength(1);
    const [expansion] = description.ranges;
    expect(expansion!.text).toBe(`{${range}}`);
    expect(expansion!.count).toBe(values.length);
    expect(expansion!.values).toEqual(values.slice(0, 20));
    expect(expansion!.truncated).toBe(values.length > 20);

    const matches = compileGlob(parseBucketUri(uri).pattern);
    for (const v of values) expect(matches(`dt=${v}/part.csv`), v).toBe(true);
    for (const v of nonMatches) expect(matches(`dt=${v}/part.csv`), v).toBe(false);
  });

  it('composes ranges with each other and with wildcards, as in dated partitions', () => {
    const matches = compileGlob(parseBucketUri('s3://bucket/logs/2024-{01..12}-{01..31}/h={00..23}/*.csv.gz').pattern);
    expect(matches('logs/2024-01-01/h=00/a.csv.gz')).toBe(true);
    expect(matches('logs/2024-12-31/h=23/part-0001.csv.gz')).toBe(true);
    expect(matches('logs/2024-13-01/h=00/a.csv.gz')).toBe(false);
    expect(matches('logs/2024-1-01/h=00/a.csv.gz')).toBe(false);
    expect(matches('logs/2024-01-32/h=00/a.csv.gz')).toBe(false);
    expect(matches('logs/2024-01-01/h=24/a.csv.gz')).toBe(false);
    expect(matches('logs/2024-01-01/h=00/sub/a.csv.gz')).toBe(false);
  });

  it('names a range of several values in the matcher description', () => {
    const d = describeBucketUri('s3://bucket/file{1..3}.csv');
    expect(d.matcher).toBe('"file", then one of 3 numbers 1, 2, 3, then ".csv"');
    expect(describeBucketUri('s3://bucket/h={00..23}').matcher).toBe('"h=", then one of 24 numbers 00, 01, ..., 23 (zero-padded to 2 digits)');
  });

  it.each([
    ['{a..e}', 'non-negative integers'],
    ['{-3..3}', 'non-negative integers'],
    ['{1..9..2}', 'non-negative integers'],
    ['{0..10000}', 'stands for 10001 values; the maximum is 10000'],
    ['{0..99999999}', 'stands for 100000000 values'],
    ['{0000000000000001..2}', 'longer than 15 digits'],
  ])('refuses %s with the reason', (range, reason) => {
    let error: unknown;
    try {
      parseBucketUri(`s3://bucket/x${range}.csv`);
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(BucketUriError);
    expect((error as BucketUriError).field).toBe('bucketUri');
    expect((error as BucketUriError).reason).toContain(reason);
  });
});

describe('patterns that cannot match, or match nothing yet, say so', () => {
  it.each([
    ['s3://bucket/{,}', 'can only match an empty key'],
    ['s3://bucket/{,{,}}', 'can only match an empty key'],
    ['s3://bucket/a{}', 'empty braces'],
    [`s3://bucket/${'é'.repeat(513)}*`, 'only matches keys of 1026 bytes or more'],
    // the shorter alternative (500 bytes) plus 600 bytes: no key fits
    [`s3://bucket/{${'é'.repeat(300)},${'ü'.repeat(250)}}${'ö'.repeat(300)}`, 'only matches keys of 1100 bytes or more'],
  ])('refuses %s', (uri, reason) => {
    expect(() => parseBucketUri(uri)).toThrow(reason);
  });

  it.each([
    ['s3://bucket//x.csv', /starts with "\/"/],
    ['s3://bucket/a//b/*.csv', /"\/\/" at position 2/],
    ['s3://bucket/logs{/}', /only matches keys that end in "\/"/],
    ['s3://bucket/{a/,b/}', /only matches keys that end in "\/"/],
  ])('warns about %s', (uri, warning) => {
    const { warnings } = describeBucketUri(uri);
    expect(warnings.some((w) => warning.test(w)), warnings.join('; ')).toBe(true);
  });

  it.each(['s3://bucket/a/b/*.csv', 's3://bucket/{a,b}/**', 's3://bucket/x{1..3}', 's3://bucket/logs/'])('does not warn about %s', (uri) => {
    expect(describeBucketUri(uri).warnings).toEqual([]);
  });

  it('shows the literal prefix and the matcher it built', () => {
    const d = describeBucketUri('s3://bucket/events/{2023,2024}/**/*.csv');
    expect(d).toMatchObject({ bucket: 'bucket', pattern: 'events/{2023,2024}/**/*.csv', listPrefix: 'events/' });
    expect(d.matcher).toBe(
      '"events/", then one of ("2023" | "2024"), then "/", then zero or more directories at a segment start, otherwise any characters ending in "/" (**/), then any characters except "/" (*), then ".csv"',
    );
    expect(d.states).toBeGreaterThan(0);
    expect(describeBucketUri('s3://bucket/**/x').matcher).toBe('zero or more directories (**/), then "x"');
  });

  it('the zero-match warning names the bucket, the pattern and the prefix listed', () => {
    const uri = parseBucketUri('s3://bucket/in/{1..3}.csv');
    expect(noMatchWarning(uri, { complete: true })).toBe(
      'no object under the prefix "in/" of bucket "bucket" matches "in/{1..3}.csv" yet; matching files are imported when they appear',
    );
    expect(noMatchWarning(uri, { complete: false, scanned: 10_000 })).toContain('the listing stopped after 10000 keys');
    expect(noMatchWarning(parseBucketUri('s3://bucket/*.csv'), { complete: true })).toContain('in the whole bucket');
  });
});

describe('extensions beyond ClickHouse are deliberate, and documented per pattern', () => {
  const cases: Array<[pattern: string, extension: string, matches: string[], nonMatches: string[]]> = [
    ['data.{csv,csv.*}', 'wildcards inside braces', ['data.csv', 'data.csv.gz', 'data.csv.zst'], ['data.csvx', 'data.cs', 'data.csv/x']],
    ['data.csv{,.gz}', 'empty alternatives', ['data.csv', 'data.csv.gz'], ['data.csv.zst', 'data.csv.']],
    ['{a,b{1,2}}/x', 'nested braces', ['a/x', 'b1/x', 'b2/x'], ['b/x', 'b3/x', 'a1/x']],
    ['part-{1..3,7}.csv', 'ranges among alternatives', ['part-1.csv', 'part-3.csv', 'part-7.csv'], ['part-4.csv', 'part-1..3.csv']],
    ['a/**/x.csv', '**/ matches zero directories', ['a/x.csv', 'a/b/x.csv', 'a/b/c/x.csv'], ['ax.csv', 'a/b/x.csvx']],
  ];

  it.each(cases)('%s uses "%s"', (pattern, extension, yes, no) => {
    const d = describeBucketUri(`s3://bucket/${pattern}`);
    expect(d.extensions.map((e) => e.syntax)).toContain(extension);
    expect(d.extensions.find((e) => e.syntax === extension)!.note).toMatch(/ClickHouse/);
    const matches = compileGlob(d.pattern);
    for (const key of yes) expect(matches(key), key).toBe(true);
    for (const key of no) expect(matches(key), key).toBe(false);
  });

  it('plain ClickHouse syntax lists no extension', () => {
    expect(describeBucketUri('s3://bucket/dt={01..10}/{a,b}/*.csv').extensions).toEqual([]);
  });

  it.each([
    ['s3://bucket/{a,b/x.csv', 'unclosed "{" at position 1'],
    ['s3://bucket/{a,{b,c}/x.csv', 'unclosed "{" at position 1'],
    ['s3://bucket/a}b.csv', 'unmatched "}" at position 2'],
    ['s3://bucket/{a,b}}.csv', 'unmatched "}" at position 6'],
  ])('refuses unbalanced braces in %s instead of guessing', (uri, reason) => {
    expect(() => parseBucketUri(uri)).toThrow(reason);
  });
});

describe('every key S3 allows is addressable', () => {
  const cases: Array<[uri: string, key: string, matches: boolean]> = [
    ['s3://bucket//x.csv', '/x.csv', true],
    ['s3://bucket//x.csv', 'x.csv', false],
    ['s3://bucket//*', '/x.csv', true],
    ['s3://bucket/a//b/*.csv', 'a//b/c.csv', true],
    ['s3://bucket/a//b/*.csv', 'a/b/c.csv', false],
    ['s3://bucket/**', 'a//b', true],
    ['s3://bucket/**', '/leading', true],
    ['s3://bucket/**/*.csv', '/x.csv', true],
    ['s3://bucket/data files/*.csv', 'data files/report 1.csv', true],
    ['s3://bucket/pct/%20x.csv', 'pct/%20x.csv', true],
    ['s3://bucket/pct/%20x.csv', 'pct/ x.csv', false],
    ['s3://bucket/pct/*%*.csv', 'pct/100%.csv', true],
    ['s3://bucket/plus/a+b.csv', 'plus/a+b.csv', true],
    ['s3://bucket/plus/a+b.csv', 'plus/a b.csv', false],
    ['s3://bucket/dt=2024-01-01/*.csv', 'dt=2024-01-01/x.csv', true],
    ['s3://bucket/k=v&x=y/*', 'k=v&x=y/z', true],
    ['s3://bucket/données/*.csv', 'données/été.csv', true],
    ['s3://bucket/données/*.csv', 'donnees/ete.csv', false],
    ['s3://bucket/?.csv', '日.csv', true],
    ['s3://bucket/?.csv', '😀.csv', true],
    ['s3://bucket/??.csv', '😀.csv', false],
    ['s3://bucket/日本/{東京,大阪}.csv', '日本/大阪.csv', true],
    ['s3://bucket/a?b', 'a{b', true],
    ['s3://bucket/(x)[y]^$|\\.csv', '(x)[y]^$|\\.csv', true],
    // a key ending in "/" is named with the slash in braces; a trailing "/" means the folder's children
    ['s3://bucket/logs{/}', 'logs/', true],
    ['s3://bucket/logs{/}', 'logs/a', false],
    ['s3://bucket/logs/', 'logs/a.csv', true],
    ['s3://bucket/logs/', 'logs/2024/a.csv', false],
    ['s3://bucket/logs/**', 'logs/2024/', true],
  ];

  it.each(cases)('%s vs %j -> %s', (uri, key, expected) => {
    expect(compileGlob(parseBucketUri(uri).pattern)(key)).toBe(expected);
  });

  it('matches a 1,024-byte key', () => {
    const key = `${'d/'.repeat(300)}${'é'.repeat(200)}.csv`;
    expect(Buffer.byteLength(key)).toBe(1004);
    expect(compileGlob('**/*.csv')(key)).toBe(true);
    expect(compileGlob('d/**/?*.csv')(key)).toBe(true);
  });
});
