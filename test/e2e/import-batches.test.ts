import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { S3Client } from '@aws-sdk/client-s3';
import { gzipSync } from 'node:zlib';
import { createBucket, eventually, put, sql, startTestConnector, testS3, uid, type TestConnector } from '../support/harness.js';
import type { FileRef } from '../../activities/index.js';

/**
 * Small files many to an activity and an insert: exactly once when a batch
 * is retried after its insert committed, and a bad file splitting out of its
 * batch while the others load, each with its own status and row count.
 */

type FileItem = { key: string; status: string; rows: number; quarantinedRows: number; error: string | null };
type HistoryItem = { status: string; attempt: number; error: string | null };

describe('small files in batches', () => {
  let c: TestConnector;
  let s3: S3Client;
  let bucket: string;
  /** Data sources whose batches fail after their insert on attempt 1. */
  const failAfterInsert = new Set<string>();
  /** Every batch the activity started: data source prefix -> [attempt, keys]. */
  const batches: Array<{ attempt: number; keys: string[] }> = [];

  beforeAll(async () => {
    c = await startTestConnector({}, {}, {
      hooks: {
        onBatch(files: FileRef[], attempt: number) {
          batches.push({ attempt, keys: files.map((f) => f.key) });
        },
        afterInsert(file: FileRef, attempt: number) {
          const ds = file.key.split('/')[0]!;
          // The worker "dies" after the batch's rows are committed and before its ledger says success.
          if (failAfterInsert.has(ds) && attempt === 1) throw new Error(`worker lost after the insert of ${file.key}`);
        },
      },
    });
    s3 = testS3();
    bucket = await createBucket(s3);
  });
  afterAll(async () => {
    await c?.stop();
    s3?.destroy();
  });

  async function load(name: string, concurrency: number, files: number) {
    const res = await c.request('POST', '/v1/datasources', {
      name, connection: 'local', schedule: '@on-demand', bucketUri: `s3://${bucket}/${name}/*`, format: 'csv',
      columns: [{ name: 'id', type: 'UInt64' }, { name: 'v', type: 'String' }], limits: { concurrency },
      // No merges: each insert block stays a part of its own, so parts count blocks.
      engine: { engine: 'MergeTree', sortingKey: 'id', settings: { max_bytes_to_merge_at_max_space_in_pool: 1 } },
    });
    expect(res.status, JSON.stringify(res.body)).toBe(201);
    await eventually(`${name} to be prepared`, async () => (await c.request('GET', `/v1/datasources/${name}`)).body.columns);
    expect((await c.request('POST', `/v1/datasources/${name}/sync`)).status).toBe(202);
    return eventually(`${name}: ${files} files settled`, async () => {
      const r = await c.request('GET', `/v1/datasources/${name}`);
      const f = r.body.stats?.files;
      return f && f.success + f.failure === files && r.body.status.state !== 'syncing' ? r.body : null;
    }, 180_000, 250);
  }
  async function fileItems(name: string): Promise<Record<string, FileItem>> {
    const res = await c.request('GET', `/v1/datasources/${name}/files?limit=1000`);
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    return Object.fromEntries((res.body.items as FileItem[]).map((f) => [f.key.slice(name.length + 1), f]));
  }
  async function history(name: string, file: string): Promise<string[]> {
    const h = await c.request('GET', `/v1/datasources/${name}/files/history?key=${encodeURIComponent(`${name}/${file}`)}`);
    return (h.body.items as HistoryItem[]).map((e) => `${e.status}#${e.attempt}`);
  }
  const csv = (first: number, rows: number) => 'id,v\n' + Array.from({ length: rows }, (_, i) => `${first + i},r${first + i}`).join('\n') + '\n';

  it('a batch retried after its insert committed (worker lost before success) loads every file exactly once, with its own row count', async () => {
    const name = uid('batchretry');
    failAfterInsert.add(name);
    const FILES = 40;
    // File i has i + 1 rows, so a count that is right for one file and wrong for another shows.
    let next = 1;
    const expected: Record<string, number> = {};
    for (let i = 0; i < FILES; i++) {
      const file = `f${String(i).padStart(3, '0')}.csv`;
      expected[file] = i + 1;
      let body = csv(next, i + 1);
      // f005's third data row does not convert: quarantined with its own file and line.
      if (i === 5) body = body.replace(`\n${next + 2},`, '\nnot-a-number,');
      await put(s3, bucket, `${name}/${file}`, body);
      next += i + 1;
    }
    expected['f005.csv'] = 5;
    const total = next - 2;
    await load(name, 4, FILES);

    const mine = batches.filter((b) => b.keys[0]!.startsWith(`${name}/`));
    const firstTries = mine.filter((b) => b.attempt === 1);
    // Four import slots: four batches of ten, each tried twice (the first try's insert committed, then it failed).
    expect(firstTries.map((b) => b.keys.length)).toEqual([10, 10, 10, 10]);
    expect(new Set(firstTries.flatMap((b) => b.keys)).size).toBe(FILES);
    expect(mine.filter((b) => b.attempt === 2).length).toBe(4);

    const [n] = await sql<{ n: string; u: string }>(c, `SELECT count() AS n, uniqExact(id) AS u FROM ${name}`);
    expect({ n: Number(n!.n), u: Number(n!.u) }).toEqual({ n: total, u: total });
    const f = await fileItems(name);
    for (const [file, rows] of Object.entries(expected)) expect(f[file], file).toMatchObject({ status: 'success', rows, quarantinedRows: file === 'f005.csv' ? 1 : 0 });
    const q = await sql<{ _file: string; _line: string; raw: string }>(c, `SELECT _file, _line, raw FROM ${name}_quarantine`);
    expect(q.map((r) => ({ file: r._file, line: Number(r._line) }))).toEqual([{ file: `${name}/f005.csv`, line: 3 }]);
    expect(await history(name, 'f007.csv')).toEqual(['queued#0', 'running#1', 'pending_retry#1', 'running#2', 'success#2']);
    const ds = await c.request('GET', `/v1/datasources/${name}`);
    expect(ds.body.stats.rows).toBe(total);
  }, 240_000);

  it('a bad file fails its batch before anything is committed; the batch splits, the others load exactly once and the bad one fails alone', async () => {
    const name = uid('batchbad');
    const GOOD = 24;
    const ROWS = 100_000; // two batches of 12-13 files: over a million rows each, more than one default insert block
    const expected: Record<string, number> = {};
    for (let i = 0; i < GOOD; i++) {
      const file = `g${String(i).padStart(3, '0')}.csv.gz`;
      expected[file] = ROWS;
      const body = gzipSync(csv(i * ROWS + 1, ROWS));
      expect(body.length).toBeLessThan(1024 * 1024);
      await put(s3, bucket, `${name}/${file}`, body);
    }
    // A gzip cut in half, named to sort last: the second batch reads over a million good rows
    // before it (more than one default insert block), so only a one-block insert commits none of them.
    const whole = gzipSync(csv(10_000_000, ROWS));
    await put(s3, bucket, `${name}/h-bad.csv.gz`, whole.subarray(0, Math.floor(whole.length / 2)));
    await load(name, 2, GOOD + 1);

    const mine = batches.filter((b) => b.keys[0]!.startsWith(`${name}/`));
    expect(mine.length).toBe(2);
    expect(mine.find((b) => b.keys.includes(`${name}/h-bad.csv.gz`))!.keys.length).toBeGreaterThan(10);

    const f = await fileItems(name);
    expect(f['h-bad.csv.gz']).toMatchObject({ status: 'failure', rows: 0 });
    expect(f['h-bad.csv.gz']!.error).toBeTruthy();
    for (const [file, rows] of Object.entries(expected)) expect(f[file], file).toMatchObject({ status: 'success', rows, quarantinedRows: 0 });
    const [n] = await sql<{ n: string; u: string }>(c, `SELECT count() AS n, uniqExact(id) AS u FROM ${name}`);
    expect({ n: Number(n!.n), u: Number(n!.u) }).toEqual({ n: GOOD * ROWS, u: GOOD * ROWS });
    // Each good file was committed once: by its batch, or alone after the bad batch split (nothing of that batch was moved).
    const commits = await sql<{ key: string; n: string }>(c, `SELECT key, count() AS n FROM s3ch_commits WHERE datasource = '${name}' AND state = 'committed' GROUP BY key`);
    expect(commits.length).toBe(GOOD);
    expect(commits.every((r) => Number(r.n) === 1)).toBe(true);
    // A file of the split batch: its batch attempt, then its own import.
    expect(await history(name, 'g023.csv.gz')).toEqual(['queued#0', 'running#1', 'running#1', 'success#1']);
    // A file of the other batch loaded with its batch.
    expect(await history(name, 'g000.csv.gz')).toEqual(['queued#0', 'running#1', 'success#1']);
  }, 300_000);
});
