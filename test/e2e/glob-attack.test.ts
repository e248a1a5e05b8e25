import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import type { S3Client } from '@aws-sdk/client-s3';
import { createBucket, put, startTestConnector, testS3, uid, type TestConnector } from '../support/harness.js';

/**
 * Pathological globs through the real stack (API + worker in this process,
 * Temporal dev server, MinIO, chDB). A backtracking matcher once froze the
 * whole process for minutes on the first pattern below over a 60-character
 * key; here every answer must be right AND the event loop must stay
 * responsive while it is computed: what is asserted is the longest the loop
 * was blocked, not the total time.
 */
const MAX_BLOCKED_MS = 400;

const attackTail = `${'{?,?}*'.repeat(8)}.nomatch`;
const k60 = 'x'.repeat(60);
const hit = `${'x'.repeat(40)}.nomatch`;
const long1 = `${Array.from({ length: 4 }, () => 'y'.repeat(240)).join('/')}/z.csv`;
const long2 = `${`${'d'.repeat(9)}/`.repeat(95)}ending.nomatch`;
const long3 = `${'z'.repeat(240)}.nomatch`;
const ranged = ['r/file1.csv', 'r/file2.csv', 'r/file3.csv', 'r/file4.csv', 'r/file01.csv'];

describe('pathological globs keep the process responsive and answer correctly', () => {
  let c: TestConnector;
  let s3: S3Client;
  let bucket: string;
  const created: string[] = [];

  beforeAll(async () => {
    c = await startTestConnector();
    s3 = testS3();
    bucket = await createBucket(s3);
    // Empty objects: the preview then lists and matches without reading any file.
    for (const key of [k60, hit, long1, long2, long3, ...ranged]) await put(s3, bucket, key, '');
    // Warm up (first request, the worker's start-up work) so the measurements below see only the request.
    await c.request('POST', '/v1/preview', { connection: 'local', bucketUri: `s3://${bucket}/r/*.csv` });
    await new Promise((r) => setTimeout(r, 1000));
  });
  afterAll(async () => {
    for (const name of created) await c?.request('DELETE', `/v1/datasources/${name}?dropTable=true`).catch(() => undefined);
    await c?.stop();
    s3?.destroy();
  });

  /** Run one API request while sampling the event loop; the longest block in ms. */
  async function measured(method: string, path: string, body: unknown) {
    const histogram = monitorEventLoopDelay({ resolution: 10 });
    // A second probe that does not depend on the histogram's sampling.
    let last = performance.now();
    let worstGap = 0;
    const probe = setInterval(() => {
      const now = performance.now();
      worstGap = Math.max(worstGap, now - last);
      last = now;
    }, 5);
    histogram.enable();
    try {
      const res = await c.request(method, path, body);
      await new Promise((r) => setTimeout(r, 20)); // one more probe tick after the answer
      return { res, blockedMs: Math.max(histogram.max / 1e6, worstGap) };
    } finally {
      histogram.disable();
      clearInterval(probe);
    }
  }

  const preview = (pattern: string) => measured('POST', '/v1/preview', { connection: 'local', bucketUri: `s3://${bucket}/${pattern}`, format: 'csv', limit: 100 });

  const cases: Array<[name: string, pattern: string, expected: string[]]> = [
    ['the reported attack, over the 60-character key', `*${attackTail}`, [hit, long3].sort()],
    ['the attack with the most alternatives allowed', `*${'{?,?}*'.repeat(128)}.nomatch`, [long3]],
    ['the attack below **/', `**/*${'{?,?}*'.repeat(4)}.nomatch`, [hit, long2, long3].sort()],
    ['stars and literals that almost match', `${'*x'.repeat(30)}*y`, []],
    ['globstars around literals, over the ~1,000-character key', `${'**y'.repeat(8)}**/z.csv`, [long1]],
    ['**/ runs over the deep key', `${'**/d'.repeat(40)}**/ending.nomatch`, [long2]],
    ['? and * alternation', `${'*?'.repeat(200)}`, [long3]],
    ['nested alternatives full of wildcards', `${'{*,{?,{**,x}}}'.repeat(20)}.csv`, ['r/file01.csv', 'r/file1.csv', 'r/file2.csv', 'r/file3.csv', 'r/file4.csv', long1].sort()],
  ];

  it.each(cases)('preview: %s', async (_name, pattern, expected) => {
    const { res, blockedMs } = await preview(pattern);
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    expect(res.body.files.map((f: { key: string }) => f.key).sort()).toEqual(expected);
    expect(res.body.total).toBe(expected.length);
    expect(res.body.glob.pattern).toBe(pattern);
    expect(res.body.glob.matcher).toEqual(expect.any(String));
    expect(blockedMs).toBeLessThan(MAX_BLOCKED_MS);
    if (expected.length === 0) {
      expect(res.body.warnings.some((w: string) => w.includes(`bucket "${bucket}"`) && w.includes('matches'))).toBe(true);
    }
  });

  it('preview shows a range expansion, the literal prefix it listed and the matched files', async () => {
    const { res, blockedMs } = await preview('r/file{1..3}.csv');
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    expect(res.body.files.map((f: { key: string }) => f.key).sort()).toEqual(['r/file1.csv', 'r/file2.csv', 'r/file3.csv']);
    expect(res.body.glob).toMatchObject({
      listPrefix: 'r/file',
      ranges: [{ text: '{1..3}', count: 3, width: 0, values: ['1', '2', '3'], truncated: false }],
    });
    expect(res.body.warnings).toEqual([]);
    expect(blockedMs).toBeLessThan(MAX_BLOCKED_MS);

    const padded = await preview('r/file{01..03}.csv');
    expect(padded.res.body.files.map((f: { key: string }) => f.key)).toEqual(['r/file01.csv']);
    expect(padded.res.body.glob.ranges[0].values).toEqual(['01', '02', '03']);
  });

  it('a key ending in "/" is a file when it has content, a folder marker when empty', async () => {
    await put(s3, bucket, 'm/with-content/', 'a\n1\n');
    await put(s3, bucket, 'm/marker/', '');
    await put(s3, bucket, 'm/marker/x.tsv', 'a\n1\n');
    const { res } = await preview('m/**');
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    expect(res.body.files.map((f: { key: string }) => f.key).sort()).toEqual(['m/marker/x.tsv', 'm/with-content/']);
    const named = await preview('m/with-content{/}');
    expect(named.res.body.files.map((f: { key: string }) => f.key)).toEqual(['m/with-content/']);
    expect(named.res.body.glob.warnings).toEqual([expect.stringContaining('only matches keys that end in "/"')]);
  });

  it('preview of a glob that matches nothing warns with the prefix it searched', async () => {
    const { res } = await preview('r/none-{1..3}.csv');
    expect(res.status).toBe(200);
    expect(res.body.total).toBe(0);
    expect(res.body.warnings).toEqual([
      `no object under the prefix "r/none-" of bucket "${bucket}" matches "r/none-{1..3}.csv" yet; matching files are imported when they appear`,
    ]);
  });

  it.each([
    ['a range too large', 'x{0..99999}.csv', 'stands for 100000 values'],
    ['too many alternatives', `${'{a,b}'.repeat(129)}`, 'more than 256 alternatives'],
    ['too many matcher states', `${'{10001..19998}'.repeat(60)}`, 'too complex'],
    ['unbalanced braces', '{a,b.csv', 'unclosed "{"'],
    ['a letter range', '{a..z}.csv', 'non-negative integers'],
  ])('preview and create refuse %s with 400 naming bucketUri', async (_name, pattern, reason) => {
    const uri = `s3://${bucket}/${pattern}`;
    for (const [path, body] of [
      ['/v1/preview', { connection: 'local', bucketUri: uri }],
      ['/v1/datasources', { name: uid('glob'), connection: 'local', bucketUri: uri, format: 'csv', schedule: '@on-demand', columns: [{ name: 'a', type: 'String' }] }],
    ] as const) {
      const { res, blockedMs } = await measured('POST', path, body);
      expect(res.status, JSON.stringify(res.body)).toBe(400);
      expect(res.body.errors).toEqual(expect.arrayContaining([expect.objectContaining({ field: 'bucketUri', message: expect.stringContaining(reason) })]));
      expect(blockedMs).toBeLessThan(MAX_BLOCKED_MS);
    }
  });

  it('creating data sources with pathological globs answers at once, with a warning when nothing matches yet', async () => {
    const specFor = (pattern: string) => {
      const name = uid('glob');
      created.push(name);
      return { name, connection: 'local', bucketUri: `s3://${bucket}/${pattern}`, format: 'csv', schedule: '@on-demand', columns: [{ name: 'a', type: 'String' }] };
    };
    const matching = await measured('POST', '/v1/datasources', specFor(`*${attackTail}`));
    expect(matching.res.status, JSON.stringify(matching.res.body)).toBe(201);
    expect(matching.res.body.warnings).toEqual([]);
    expect(matching.blockedMs).toBeLessThan(MAX_BLOCKED_MS);

    const nothingYet = await measured('POST', '/v1/datasources', specFor(`later/${'*x'.repeat(30)}*y`));
    expect(nothingYet.res.status, JSON.stringify(nothingYet.res.body)).toBe(201);
    expect(nothingYet.res.body.warnings).toEqual([
      `no object under the prefix "later/" of bucket "${bucket}" matches "later/${'*x'.repeat(30)}*y" yet; matching files are imported when they appear`,
    ]);
    expect(nothingYet.blockedMs).toBeLessThan(MAX_BLOCKED_MS);
  });
});
