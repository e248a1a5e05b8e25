import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { S3Client } from '@aws-sdk/client-s3';
import { createBucket, del, eventually, processDestination, put, sql, startTestConnector, testS3, uid, type TestConnector } from '../support/harness.js';
import type { FileRef, ImportHooks } from '../../activities/index.js';
import type { CommitStep } from '../../activities/commit.js';

/**
 * Exactly once by construction (activities/commit.ts), through the real
 * stack: faults injected at every step of the commit (before staging, while
 * staging, after the stage is recorded and before the move, during the move,
 * after the move and before the commit is recorded), each a real failure of
 * the engine where one can be had (TOO_MANY_PARTS from a partition limit, a
 * memory limit, a row limit, a timeout). Every test checks the table (exact
 * rows, each id once), the quarantine (each bad row once, at its line) and
 * the ledger as the API shows it.
 */

type FileItem = { key: string; status: string; rows: number; quarantinedRows: number; error: string | null };

/** What a data source's first attempt meets, by step. */
interface Fault {
  /** Throw from this hook point on attempt 1. */
  throwAt?: 'beforeStage' | 'beforeMove' | 'afterMove';
  /** Extra settings for a step's statements on attempt 1 (a real engine error). */
  settings?: { step: CommitStep; values: Record<string, string | number> };
  /** Run before a move on a later attempt (e.g. inserts that fill the target's deduplication window first). */
  beforeRetryMove?: () => Promise<void>;
  /** Run when the first staging insert starts (the test pauses the data source there). */
  onInsert?: () => Promise<void>;
  /** Run on attempt 1 before staging (e.g. the object is replaced or deleted after it was listed). */
  beforeStageDo?: (files: FileRef[]) => Promise<void>;
  /** Extra settings for every staging statement (every attempt). */
  stageAlways?: Record<string, string | number>;
}

describe('exactly once by construction: a file version commits all at once, and "is it in?" is asked of the commit', () => {
  let c: TestConnector;
  let s3: S3Client;
  let bucket: string;
  const faults = new Map<string, Fault>();
  /** Attempts seen per data source and step. */
  const seen: Array<{ ds: string; step: string; attempt: number }> = [];
  const dsOf = (files: FileRef[]) => files[0]!.key.split('/')[0]!;

  beforeAll(async () => {
    const hook = (step: 'beforeStage' | 'beforeMove' | 'afterMove') => async (files: FileRef[], attempt: number) => {
      const ds = dsOf(files);
      seen.push({ ds, step, attempt });
      const f = faults.get(ds);
      if (f && attempt > 1 && step === 'beforeMove') await f.beforeRetryMove?.();
      if (f && attempt === 1 && step === 'beforeStage') await f.beforeStageDo?.(files);
      if (f?.throwAt === step && attempt === 1) throw new Error(`injected: worker lost at ${step}`);
    };
    const hooks: ImportHooks = {
      beforeStage: hook('beforeStage'),
      beforeMove: hook('beforeMove'),
      afterMove: hook('afterMove'),
      settings(step, files, attempt) {
        const f = faults.get(dsOf(files));
        return { ...(step === 'stage' ? f?.stageAlways : {}), ...(f?.settings?.step === step && attempt === 1 ? f.settings.values : {}) };
      },
      async beforeInsert(file) {
        const f = faults.get(file.key.split('/')[0]!);
        const go = f?.onInsert;
        if (go) {
          f.onInsert = undefined;
          await go();
        }
      },
    };
    c = await startTestConnector({}, {}, { hooks });
    s3 = testS3();
    bucket = await createBucket(s3);
  });
  afterAll(async () => {
    await c?.stop();
    s3?.destroy();
  });

  const COLUMNS = [{ name: 'id', type: 'UInt64' }, { name: 'd', type: 'Date' }, { name: 'v', type: 'UInt32' }];

  async function create(name: string, over: Record<string, unknown> = {}) {
    const res = await c.request('POST', '/v1/datasources', {
      name, connection: 'local', schedule: '@on-demand', bucketUri: `s3://${bucket}/${name}/*`, format: 'csv', columns: COLUMNS,
      // One partition per day: a batch's rows span hundreds of them.
      engine: { engine: 'MergeTree', partitionKey: 'd', sortingKey: 'id' },
      limits: { concurrency: 2 },
      ...over,
    });
    expect(res.status, JSON.stringify(res.body)).toBe(201);
    await eventually(`${name} to be prepared`, async () => (await c.request('GET', `/v1/datasources/${name}`)).body.columns);
  }
  async function sync(name: string, files: number, timeoutMs = 180_000) {
    expect((await c.request('POST', `/v1/datasources/${name}/sync`)).status).toBe(202);
    return settled(name, files, timeoutMs);
  }
  function settled(name: string, files: number, timeoutMs = 180_000) {
    return eventually(`${name}: ${files} files settled`, async () => {
      const r = await c.request('GET', `/v1/datasources/${name}`);
      const f = r.body.stats?.files;
      return f && f.success + f.failure === files && r.body.status.state !== 'syncing' ? r.body : null;
    }, timeoutMs, 250);
  }
  async function fileItems(name: string): Promise<Record<string, FileItem>> {
    const res = await c.request('GET', `/v1/datasources/${name}/files?limit=1000`);
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    return Object.fromEntries((res.body.items as FileItem[]).map((f) => [f.key.slice(name.length + 1), f]));
  }

  /**
   * `files` small CSV files of `rows` rows each, ids 1.. in order, dates over
   * `days` days; in each file whose index is a multiple of 4, the second data
   * row's `v` does not convert (quarantined at line 2). Returns what must load.
   */
  async function putFiles(name: string, files: number, rows: number, days = 400) {
    let id = 1;
    const expected: Record<string, { rows: number; quarantined: number }> = {};
    const bad: Array<{ file: string; line: number }> = [];
    for (let i = 0; i < files; i++) {
      const file = `f${String(i).padStart(3, '0')}.csv`;
      const lines = ['id,d,v'];
      for (let r = 0; r < rows; r++, id++) {
        const v = i % 4 === 0 && r === 1 ? 'not-a-number' : String(id % 1000);
        lines.push(`${id},${new Date(Date.UTC(2020, 0, 1) + (id % days) * 86_400_000).toISOString().slice(0, 10)},${v}`);
      }
      if (i % 4 === 0) bad.push({ file: `${name}/${file}`, line: 2 });
      expected[file] = { rows: i % 4 === 0 ? rows - 1 : rows, quarantined: i % 4 === 0 ? 1 : 0 };
      await put(s3, bucket, `${name}/${file}`, lines.join('\n') + '\n');
    }
    return { expected, bad, total: files * rows - bad.length };
  }

  /** The table holds every good row once, the quarantine every bad row once at its line, and each file says so. */
  async function expectExact(name: string, want: Awaited<ReturnType<typeof putFiles>>) {
    const [n] = await sql<{ n: string; u: string }>(c, `SELECT count() AS n, uniqExact(id) AS u FROM ${name}`);
    expect({ n: Number(n!.n), u: Number(n!.u) }).toEqual({ n: want.total, u: want.total });
    const q = await sql<{ _file: string; _line: string }>(c, `SELECT _file, _line FROM ${name}_quarantine ORDER BY _file, _line`);
    expect(q.map((r) => ({ file: r._file, line: Number(r._line) }))).toEqual(want.bad);
    const f = await fileItems(name);
    for (const [file, e] of Object.entries(want.expected)) expect(f[file], file).toMatchObject({ status: 'success', rows: e.rows, quarantinedRows: e.quarantined });
    const ds = (await c.request('GET', `/v1/datasources/${name}`)).body;
    expect(ds.stats.rows).toBe(want.total);
    expect(ds.stats.quarantinedRows).toBe(want.bad.length);
  }

  it('a batch whose rows span more partitions than max_partitions_per_insert_block loads every row (it lost them all and read success before)', async () => {
    const name = uid('spread');
    await create(name);
    const want = await putFiles(name, 24, 50);
    await sync(name, 24);
    await expectExact(name, want);
    const [parts] = await sql<{ n: string }>(c, `SELECT uniqExact(_partition_id) AS n FROM ${name}`);
    expect(Number(parts!.n)).toBeGreaterThan(100);
  }, 240_000);

  const cases: Array<[string, Fault]> = [
    ['before staging: the worker is lost', { throwAt: 'beforeStage' }],
    ['while staging: a memory limit', { settings: { step: 'stage', values: { max_memory_usage: 1 } } }],
    ['while staging: an engine error (a row limit)', { settings: { step: 'stage', values: { max_rows_to_read: 10, read_overflow_mode: 'throw' } } }],
    ['after the stage is recorded, before the move: the worker is lost', { throwAt: 'beforeMove' }],
    ['during the move: TOO_MANY_PARTS (a low max_partitions_per_insert_block) after the quarantine moved', { settings: { step: 'move', values: { max_partitions_per_insert_block: 3, throw_on_max_partitions_per_insert_block: 1 } } }],
    ['during the move: a memory limit', { settings: { step: 'move', values: { max_memory_usage: 1 } } }],
    ['during the move: an engine error (a row limit)', { settings: { step: 'move', values: { max_rows_to_read: 10, read_overflow_mode: 'throw' } } }],
    ['after the move, before the commit is recorded: the worker is lost', { throwAt: 'afterMove' }],
  ];
  for (const [what, fault] of cases) {
    it(`a fault ${what}: every row once, every bad row once, every file's count`, async () => {
      const name = uid('fault');
      faults.set(name, fault);
      await create(name);
      const want = await putFiles(name, 12, 40);
      await sync(name, 12);
      await expectExact(name, want);
      // The fault was met: a first attempt reached its step.
      expect(seen.some((s) => s.ds === name && s.attempt === 1)).toBe(true);
    }, 240_000);
  }

  it('a retry after more than the target\'s deduplication window of other inserts: exact (the move that failed is redone, the commit record answers the rest)', async () => {
    const name = uid('window');
    const ch = (await processDestination()).client;
    const flood = async () => {
      for (let i = 0; i < 12; i++) await ch.command({ query: `INSERT INTO ${name} (id, d, v) SETTINGS insert_deduplication_token = 'other-${i}-${Math.random()}' VALUES (${10_000_000 + i}, '2020-01-01', 0)` });
    };
    faults.set(name, {
      // The rows' move fails with a real TOO_MANY_PARTS after the quarantine's move committed ...
      settings: { step: 'move', values: { max_partitions_per_insert_block: 3, throw_on_max_partitions_per_insert_block: 1 } },
      // ... and before the retry moves again, more inserts reach the target than its window remembers.
      beforeRetryMove: flood,
    });
    await create(name);
    await eventually(`${name}: the table made`, () => ch.command({ query: `ALTER TABLE ${name} MODIFY SETTING non_replicated_deduplication_window = 5` }).then(() => true, () => false));
    const want = await putFiles(name, 8, 30);
    await sync(name, 8);
    expect(seen.some((s) => s.ds === name && s.step === 'beforeMove' && s.attempt > 1)).toBe(true);
    const count = async () => {
      const [n] = await sql<{ n: string; u: string }>(c, `SELECT count() AS n, uniqExact(id) AS u FROM ${name} WHERE id < 10000000`);
      return { n: Number(n!.n), u: Number(n!.u) };
    };
    expect(await count()).toEqual({ n: want.total, u: want.total });
    const q = await sql<{ _file: string; _line: string }>(c, `SELECT _file, _line FROM ${name}_quarantine ORDER BY _file, _line`);
    expect(q.map((r) => ({ file: r._file, line: Number(r._line) }))).toEqual(want.bad);
    // Asked again past the window (a retry of every key), each file is answered by its commit record: nothing is added.
    await flood();
    const retry = await c.request('POST', `/v1/datasources/${name}/retry`, { keys: Object.keys(want.expected).map((f) => `${name}/${f}`) });
    expect(retry.status, JSON.stringify(retry.body)).toBeLessThan(300);
    await eventually(`${name}: the retry ran`, async () => {
      const runs = (await c.request('GET', `/v1/datasources/${name}/runs`)).body.items as Array<{ trigger: string; filesImported: number }>;
      return runs.some((r) => r.trigger === 'retry' && r.filesImported === 8);
    }, 120_000);
    await settled(name, 8);
    expect(await count()).toEqual({ n: want.total, u: want.total });
  }, 300_000);

  it('a pause while a batch is being staged and a resume within a second: every row once', async () => {
    const name = uid('pause');
    let paused = false;
    faults.set(name, {
      onInsert: async () => {
        const r = await c.request('POST', `/v1/datasources/${name}/pause`);
        expect(r.status, JSON.stringify(r.body)).toBeLessThan(300);
        paused = true;
        setTimeout(() => void c.request('POST', `/v1/datasources/${name}/resume`), 300);
      },
    });
    await create(name);
    const want = await putFiles(name, 16, 2000);
    expect((await c.request('POST', `/v1/datasources/${name}/sync`)).status).toBe(202);
    await eventually(`${name}: paused`, async () => paused, 60_000, 20);
    // Resumed, the data source syncs what is left (a sync may be needed if the resume found nothing due).
    await eventually(`${name}: resumed`, async () => (await c.request('GET', `/v1/datasources/${name}`)).body.status.state !== 'paused', 30_000);
    await c.request('POST', `/v1/datasources/${name}/sync`);
    await settled(name, 16);
    await expectExact(name, want);
  }, 240_000);

  it('Parquet with many row groups read with max_threads = 8, cut off and retried: exact rows at exact lines', async () => {
    const name = uid('pqlines');
    const ch = (await processDestination()).client;
    const N = 300_000;
    // ids 1..N in file order, 60 row groups; every 9,973rd row's v does not fit UInt32.
    const res = await ch.exec({ query: `SELECT number + 1 AS id, toDate('2020-01-01') + (number % 30) AS d, if((number + 1) % 9973 = 0, 'x', toString(number % 1000)) AS v FROM numbers(${N}) SETTINGS output_format_parquet_row_group_size = 5000 FORMAT Parquet` });
    const chunks: Buffer[] = [];
    for await (const chunk of res.stream) chunks.push(chunk as Buffer);
    await put(s3, bucket, `${name}/big.parquet`, Buffer.concat(chunks));
    faults.set(name, {
      // Every attempt parses with eight threads; the first is cut off mid-read,
      // after a third of the rows (a row limit, not a time limit: a fast
      // machine would finish before any time limit worth waiting for).
      stageAlways: { max_threads: 8 },
      settings: { step: 'stage', values: { max_rows_to_read: N / 3, read_overflow_mode: 'throw' } },
    });
    await create(name, {
      bucketUri: `s3://${bucket}/${name}/*.parquet`, format: 'parquet',
      columns: [...COLUMNS, { name: 'line', type: 'UInt64', from: 'line' }],
    });
    await sync(name, 1);
    const bad = Math.floor(N / 9973);
    const [s] = await sql<{ n: string; u: string; off: string }>(c, `SELECT count() AS n, uniqExact(id) AS u, countIf(line != id) AS off FROM ${name}`);
    expect({ n: Number(s!.n), u: Number(s!.u), off: Number(s!.off) }).toEqual({ n: N - bad, u: N - bad, off: 0 });
    const q = await sql<{ _line: string }>(c, `SELECT _line FROM ${name}_quarantine ORDER BY _line`);
    expect(q.map((r) => Number(r._line))).toEqual(Array.from({ length: bad }, (_, i) => (i + 1) * 9973));
    expect((await fileItems(name))['big.parquet']).toMatchObject({ status: 'success', rows: N - bad, quarantinedRows: bad });
    // The first attempt was cut off (and its staged rows never moved).
    const h = await c.request('GET', `/v1/datasources/${name}/files/history?key=${encodeURIComponent(`${name}/big.parquet`)}`);
    expect((h.body.items as Array<{ status: string }>).map((e) => e.status)).toContain('pending_retry');
  }, 240_000);

  describe('statuses tell the truth', () => {
    type Event = { etag: string; status: string; rows: number; error: string | null };
    async function history(name: string, key: string): Promise<Event[]> {
      const h = await c.request('GET', `/v1/datasources/${name}/files/history?key=${encodeURIComponent(key)}`);
      expect(h.status, JSON.stringify(h.body)).toBe(200);
      return h.body.items as Event[];
    }

    it('an object replaced by an empty one after it was listed: the listed version fails as changed (it read success with 0 rows), the empty one loads nothing', async () => {
      const name = uid('emptied');
      const key = `${name}/a.csv`;
      faults.set(name, { beforeStageDo: async () => put(s3, bucket, key, '') });
      await create(name, { bucketUri: `s3://${bucket}/${name}/*.csv` });
      await put(s3, bucket, key, 'id,d,v\n1,2020-01-01,1\n2,2020-01-02,2\n');
      const listed = (await sync(name, 1)).stats;
      expect(listed.files.failure).toBe(1);
      const first = await history(name, key);
      const v1 = first[0]!.etag;
      expect(first.filter((e) => e.etag === v1).map((e) => e.status)).not.toContain('success');
      expect(first.find((e) => e.status === 'failure')!.error).toMatch(/changed/);
      expect(Number((await sql<{ n: string }>(c, `SELECT count() AS n FROM ${name}`))[0]!.n)).toBe(0);
      // The next sync imports what is there now: the empty version, 0 rows, and the listed one is superseded.
      expect((await c.request('POST', `/v1/datasources/${name}/sync`)).status).toBe(202);
      await eventually(`${name}: the empty version settled`, async () => (await history(name, key)).some((e) => e.etag !== v1 && e.status === 'success'), 60_000);
      const after = await history(name, key);
      expect(after.filter((e) => e.etag === v1 && e.status === 'success')).toEqual([]);
      expect(Number((await sql<{ n: string }>(c, `SELECT count() AS n FROM ${name}`))[0]!.n)).toBe(0);
    }, 120_000);

    it('a key with glob characters deleted after it was listed fails as missing (it read success with 0 rows)', async () => {
      const name = uid('gone');
      const key = `${name}/we*ird{1}.csv`;
      faults.set(name, { beforeStageDo: async () => del(s3, bucket, key) });
      await create(name, { bucketUri: `s3://${bucket}/${name}/*.csv` });
      await put(s3, bucket, key, 'id,d,v\n1,2020-01-01,1\n');
      await sync(name, 1);
      const h = await history(name, key);
      expect(h.map((e) => e.status)).not.toContain('success');
      expect(h.find((e) => e.status === 'failure')!.error).toMatch(/no longer exists/);
    }, 120_000);

    it('an object replaced while a multi-block file is being read leaves no row of it (it left its first blocks before)', async () => {
      const name = uid('midread');
      const key = `${name}/big.csv`;
      const N = 2_500_000;
      const lines = ['id,d,v'];
      for (let i = 1; i <= N; i++) lines.push(`${i},2020-01-01,${i % 1000}`);
      faults.set(name, {
        beforeStageDo: async () => {
          // Replaced a moment after the read begins: the rest of the read is pinned to the listed ETag and fails.
          setTimeout(() => void put(s3, bucket, key, 'id,d,v\n900000001,2020-01-01,1\n'), 400);
        },
      });
      await create(name, { bucketUri: `s3://${bucket}/${name}/*.csv` });
      await put(s3, bucket, key, lines.join('\n') + '\n');
      await sync(name, 1);
      const h = await history(name, key);
      const v1 = h[0]!.etag;
      const mine = h.filter((e) => e.etag === v1);
      // Either the read finished before the replacement (every row, success) or it failed as changed with nothing in.
      const [n] = await sql<{ n: string; u: string }>(c, `SELECT count() AS n, uniqExact(id) AS u FROM ${name} WHERE id < 900000000`);
      if (mine.some((e) => e.status === 'success')) {
        expect({ n: Number(n!.n), u: Number(n!.u) }).toEqual({ n: N, u: N });
      } else {
        expect(mine.find((e) => e.status === 'failure')!.error).toMatch(/changed/);
        expect(Number(n!.n)).toBe(0);
      }
    }, 240_000);
  });

  it('keys in S3 order (UTF-8 bytes): with startAfter and in ordered mode, full-width and non-BMP names load as S3 lists them', async () => {
    const name = uid('utf8');
    const keys = ['a.csv', '！.csv', '😀.csv', '𐀀.csv'];
    let id = 1;
    for (const k of keys) await put(s3, bucket, `${name}/${k}`, `id,d,v\n${id++},2020-01-01,1\n`);
    // startAfter a full-width name: S3 lists '😀' and '𐀀' after it (UTF-16 would put them before and drop them).
    await create(name, { bucketUri: `s3://${bucket}/${name}/*.csv`, mode: 'ordered', startAfter: `${name}/！` });
    await sync(name, 3);
    const loaded = await sql<{ id: string }>(c, `SELECT id FROM ${name} ORDER BY id`);
    expect(loaded.map((r) => Number(r.id))).toEqual([2, 3, 4]);
    // The marker is the last key in S3's order: a later non-BMP name after it is found, a full-width one before it is not (ordered mode).
    await put(s3, bucket, `${name}/🙂.csv`, 'id,d,v\n5,2020-01-01,1\n');
    await put(s3, bucket, `${name}/！！.csv`, 'id,d,v\n6,2020-01-01,1\n');
    await sync(name, 4);
    const after = await sql<{ id: string }>(c, `SELECT id FROM ${name} ORDER BY id`);
    expect(after.map((r) => Number(r.id))).toEqual([2, 3, 4, 5]);
  }, 120_000);
});
