import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { S3Client } from '@aws-sdk/client-s3';
import type { Connection } from '../../schemas/connection.js';
import { createBucket, eventually, minioConnection, put, sql, startTestConnector, testS3, uid, type TestConnector } from '../support/harness.js';
import { adminClient } from '../support/harness.js';
import { startS3Proxy, type S3Proxy } from '../support/s3-proxy.js';

/**
 * Hostile and malformed files on the real path (MinIO -> worker -> chDB).
 * Each one ends with a clear file-level error or quarantined rows with
 * reasons; the worker keeps running and the good files next to it, in the
 * same data source, load exactly.
 */

type FileItem = { key: string; etag: string; status: string; attempts: number; rows: number; quarantinedRows: number; error: string | null };
type HistoryItem = { etag: string; status: string; attempt: number; error: string | null };
type QuarantineItem = { key: string; line: number; column: string | null; raw: string; error: string };


/** Deterministic pseudo-random bytes (xorshift32), so a failure can be reproduced. */
function garbage(n: number, seed = 0x9e3779b9): Buffer {
  const out = Buffer.allocUnsafe(n);
  let x = seed >>> 0;
  for (let i = 0; i < n; i++) {
    x ^= x << 13; x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5; x >>>= 0;
    out[i] = x & 0xff;
  }
  return out;
}

const COLUMNS = [{ name: 'id', type: 'UInt64' }, { name: 'v', type: 'String' }];
/** Good rows of a data source: ids base+1 .. base+n. */
const goodCsv = (base: number, n = 3) => 'id,v\n' + Array.from({ length: n }, (_, i) => `${base + i + 1},good${i + 1}\n`).join('');

describe('hostile and malformed files', () => {
  let c: TestConnector;
  let s3: S3Client;
  let bucket: string;
  let proxy: S3Proxy;
  let dir: string;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 's3ch-hostile-'));
    proxy = await startS3Proxy(inject('minioEndpoint'));
    c = await startTestConnector({}, { counted: { ...minioConnection(), endpoint: proxy.url } as Connection });
    s3 = testS3();
    bucket = await createBucket(s3);
  });
  afterAll(async () => {
    await c?.stop();
    await proxy?.close();
    s3?.destroy();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  /** Create an on-demand data source, sync once, and wait until `files` files settled and the run ended. */
  async function load(name: string, spec: Record<string, unknown>, files: number, timeoutMs = 90_000) {
    const res = await c.request('POST', '/v1/datasources', { name, connection: 'local', schedule: '@on-demand', columns: COLUMNS, ...spec });
    expect(res.status, JSON.stringify(res.body)).toBe(201);
    await eventually(`${name} to be prepared`, async () => (await c.request('GET', `/v1/datasources/${name}`)).body.columns);
    expect((await c.request('POST', `/v1/datasources/${name}/sync`)).status).toBe(202);
    return eventually(`${name}: ${files} files settled`, async () => {
      const r = await c.request('GET', `/v1/datasources/${name}`);
      const f = r.body.stats?.files;
      return f && f.success + f.failure === files && r.body.status.state !== 'syncing' && r.body.lastRun?.finishedAt ? r.body : null;
    }, timeoutMs, 200);
  }

  async function files(name: string): Promise<Record<string, FileItem>> {
    const res = await c.request('GET', `/v1/datasources/${name}/files?limit=1000`);
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    return Object.fromEntries((res.body.items as FileItem[]).map((f) => [f.key.slice(name.length + 1), f]));
  }
  async function failures(name: string): Promise<FileItem[]> {
    const res = await c.request('GET', `/v1/datasources/${name}/files?status=failure`);
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    return res.body.items;
  }
  async function history(name: string, key: string): Promise<HistoryItem[]> {
    const res = await c.request('GET', `/v1/datasources/${name}/files/history?key=${encodeURIComponent(`${name}/${key}`)}`);
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    return res.body.items;
  }
  async function quarantine(name: string): Promise<QuarantineItem[]> {
    const res = await c.request('GET', `/v1/datasources/${name}/quarantine?limit=1000`);
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    return res.body.items;
  }
  async function table(name: string) {
    const [t] = await sql<{ n: string; u: string }>(c, `SELECT count() AS n, uniqExact(id) AS u FROM ${name}`);
    const rows = await sql<{ id: string; v: string }>(c, `SELECT toString(id) AS id, substring(v, 1, 100) AS v FROM ${name} ORDER BY id LIMIT 50`);
    return { rows: Number(t!.n), distinct: Number(t!.u), sample: rows.map((r) => [Number(r.id), r.v] as const) };
  }
  const describeFile = (f: FileItem | undefined) => (f ? `${f.status} rows=${f.rows} quarantined=${f.quarantinedRows} attempts=${f.attempts} error=${JSON.stringify(f.error?.slice(0, 300))}` : 'missing');
  const goodRows = (base: number, n = 3) => Array.from({ length: n }, (_, i) => [base + i + 1, `good${i + 1}`] as const);

  const mib = (bytes: number) => Math.round(bytes / 2 ** 20);

  /** Sample RSS every 50 ms while `fn` runs: this process holds the worker and chDB. */
  async function peakRss<T>(fn: () => Promise<T>): Promise<{ result: T; before: number; peak: number }> {
    const before = process.memoryUsage().rss;
    let peak = before;
    const timer = setInterval(() => (peak = Math.max(peak, process.memoryUsage().rss)), 50);
    try {
      const result = await fn();
      return { result, before, peak: Math.max(peak, process.memoryUsage().rss) };
    } finally {
      clearInterval(timer);
    }
  }

  /** The worker survived, the good file loaded exactly, and nothing else is in the table. */
  async function expectOnlyGoodRows(name: string, base: number, n = 3) {
    expect(c.worker!.getState()).toBe('RUNNING');
    const t = await table(name);
    expect(t.sample).toEqual(goodRows(base, n));
    expect(t.rows).toBe(n);
    expect(t.distinct).toBe(t.rows);
  }

  it('binary garbage named .csv (random bytes with NULs) fails with a parse error, once; the good file loads', async () => {
    const name = uid('garbage');
    const bytes = garbage(256 * 1024);
    expect(bytes.includes(0)).toBe(true);
    await put(s3, bucket, `${name}/garbage.csv`, bytes);
    await put(s3, bucket, `${name}/good.csv`, goodCsv(100));
    const ds = await load(name, { bucketUri: `s3://${bucket}/${name}/*.csv`, format: 'csv' }, 2);

    const f = await files(name);
    console.log(`[hostile] garbage.csv: ${describeFile(f['garbage.csv'])}`);
    expect(f['good.csv']).toMatchObject({ status: 'success', rows: 3, quarantinedRows: 0 });
    const [failed] = await failures(name);
    expect(failed).toMatchObject({ key: `${name}/garbage.csv`, status: 'failure', rows: 0 });
    expect(failed!.error).toMatch(/^ClickHouse could not read the file: Cannot parse input/);
    // Not retryable: one attempt.
    expect((await history(name, 'garbage.csv')).map((e) => e.status)).toEqual(['queued', 'running', 'failure']);
    expect(await quarantine(name)).toEqual([]);
    expect(ds.stats.files).toMatchObject({ success: 1, failure: 1 });
    await expectOnlyGoodRows(name, 100);
  });

  it('a zip bomb (an entry declaring 300 MiB from 300 KB) is refused as a zip bomb without expanding it', async () => {
    const name = uid('bomb');
    const work = await mkdtemp(join(dir, 'bomb-'));
    execFileSync('sh', ['-c', 'head -c 300M /dev/zero > data.csv && zip -q -9 bomb.zip data.csv && rm data.csv'], { cwd: work });
    const zip = await readFile(join(work, 'bomb.zip'));
    expect(zip.length).toBeLessThan(400 * 1024);
    await put(s3, bucket, `${name}/bomb.zip`, zip);
    await put(s3, bucket, `${name}/good.csv`, goodCsv(200));

    const { before, peak } = await peakRss(() => load(name, { bucketUri: `s3://${bucket}/${name}/*.{csv,zip}`, format: 'csv' }, 2));
    console.log(`[hostile] bomb.zip (${zip.length} bytes): RSS ${mib(before)} MiB before, ${mib(peak)} MiB peak`);
    expect(peak - before).toBeLessThan(500 * 2 ** 20);

    const f = await files(name);
    console.log(`[hostile] bomb.zip: ${describeFile(f['bomb.zip'])}`);
    expect(f['bomb.zip']).toMatchObject({ status: 'failure', rows: 0 });
    expect(f['bomb.zip']!.error).toMatch(/zip bomb/);
    expect(f['bomb.zip']!.error).toMatch(/314572800 bytes/);
    expect((await history(name, 'bomb.zip')).map((e) => e.status)).toEqual(['queued', 'running', 'failure']);
    expect(f['good.csv']).toMatchObject({ status: 'success', rows: 3 });
    await expectOnlyGoodRows(name, 200);
  });

  describe('a zip bomb whose header lies (declares 1000 bytes, expands to 300 MiB)', () => {
    const name = uid('liar');
    let liarHistory: HistoryItem[] = [];

    it('fails without loading a row; memory stays bounded; the good file loads', async () => {
      const work = await mkdtemp(join(dir, 'liar-'));
      execFileSync('sh', ['-c', 'head -c 300M /dev/zero > data.csv && zip -q -9 liar.zip data.csv && rm data.csv'], { cwd: work });
      const zip = await readFile(join(work, 'liar.zip'));
      // Rewrite the uncompressed size in the local header (offset 22) and the central directory (offset 24 of PK\1\2).
      zip.writeUInt32LE(1000, 22);
      const cd = zip.indexOf(Buffer.from([0x50, 0x4b, 0x01, 0x02]));
      expect(cd).toBeGreaterThan(0);
      zip.writeUInt32LE(1000, cd + 24);
      await put(s3, bucket, `${name}/liar.zip`, zip);
      await put(s3, bucket, `${name}/good.csv`, goodCsv(250));

      const { before, peak } = await peakRss(() => load(name, { bucketUri: `s3://${bucket}/${name}/*.{csv,zip}`, format: 'csv' }, 2, 120_000));
      console.log(`[hostile] liar.zip: RSS ${mib(before)} MiB before, ${mib(peak)} MiB peak`);
      expect(peak - before).toBeLessThan(500 * 2 ** 20);

      const f = await files(name);
      liarHistory = await history(name, 'liar.zip');
      console.log(`[hostile] liar.zip: ${describeFile(f['liar.zip'])}; ${liarHistory.map((e) => `${e.status}#${e.attempt}`).join(' -> ')}`);
      expect(f['liar.zip']).toMatchObject({ status: 'failure', rows: 0 });
      // yauzl checks the real size against the header and stops the stream.
      expect(f['liar.zip']!.error).toMatch(/too many bytes|zip bomb|damaged/);
      expect(f['good.csv']).toMatchObject({ status: 'success', rows: 3 });
      await expectOnlyGoodRows(name, 250);
    }, 180_000);

    it('is refused on the first attempt as a damaged archive or zip bomb', () => {
      // Without the test above there is nothing to judge: return, so this expected failure shows red.
      if (!liarHistory.length) return;
      expect(liarHistory.map((e) => e.status)).toEqual(['queued', 'running', 'failure']);
      expect(liarHistory.at(-1)!.error).toMatch(/zip bomb|damaged/);
    });
  });

  it('NDJSON with lines nested 10,000 deep among good lines: those lines are quarantined, the good ones load', async () => {
    const name = uid('deep');
    const deepArray = '{"id":50,"v":"deep","x":' + '['.repeat(10_000) + ']'.repeat(10_000) + '}';
    const deepObject = '{"id":51,"v":"deep2","x":' + '{"a":'.repeat(10_000) + '1' + '}'.repeat(10_000) + '}';
    const lines = [
      JSON.stringify({ id: 301, v: 'good1' }),
      JSON.stringify({ id: 302, v: 'good2' }),
      deepArray,
      JSON.stringify({ id: 303, v: 'good3' }),
      deepObject,
    ];
    await put(s3, bucket, `${name}/a.ndjson`, lines.join('\n') + '\n');
    await put(s3, bucket, `${name}/b.ndjson`, JSON.stringify({ id: 304, v: 'good4' }) + '\n');
    const ds = await load(name, {
      bucketUri: `s3://${bucket}/${name}/*.ndjson`, format: 'ndjson',
      columns: [{ name: 'id', type: 'UInt64', path: '$.id' }, { name: 'v', type: 'String', path: '$.v' }],
    }, 2);

    const f = await files(name);
    console.log(`[hostile] deep a.ndjson: ${describeFile(f['a.ndjson'])}`);
    expect(f['a.ndjson']).toMatchObject({ status: 'success', rows: 3, quarantinedRows: 2 });
    expect(f['b.ndjson']).toMatchObject({ status: 'success', rows: 1, quarantinedRows: 0 });
    const q = await quarantine(name);
    console.log(`[hostile] deep quarantine: ${JSON.stringify(q.map((i) => ({ line: i.line, error: i.error, rawLength: i.raw.length })))}`);
    // ClickHouse's JSON parser refuses the depth; the line is reported as invalid JSON, whole.
    expect(q.map((i) => ({ key: i.key, line: i.line, error: i.error, raw: i.raw }))).toEqual([
      { key: `${name}/a.ndjson`, line: 3, error: 'invalid JSON', raw: deepArray },
      { key: `${name}/a.ndjson`, line: 5, error: 'invalid JSON', raw: deepObject },
    ]);
    expect(ds.stats.quarantinedRows).toBe(2);
    await expectOnlyGoodRows(name, 300, 4);
  });

  it('Parquet with a corrupt footer fails with a readable error, once; a good Parquet file loads', async () => {
    const name = uid('pqbad');
    const good = join(dir, `${name}-good.parquet`);
    const bad = join(dir, `${name}-bad.parquet`);
    await (await adminClient()).command({ query: `INSERT INTO FUNCTION file('${good}', 'Parquet') SELECT number + 401 AS id, concat('good', toString(number + 1)) AS v FROM numbers(3)` });
    await (await adminClient()).command({ query: `INSERT INTO FUNCTION file('${bad}', 'Parquet') SELECT number AS id FROM numbers(100)` });
    const bytes = await readFile(bad);
    expect(bytes.subarray(-4).toString()).toBe('PAR1');
    garbage(20, 7).copy(bytes, bytes.length - 20);
    await put(s3, bucket, `${name}/good.parquet`, await readFile(good));
    await put(s3, bucket, `${name}/bad.parquet`, bytes);
    const ds = await load(name, { bucketUri: `s3://${bucket}/${name}/*.parquet`, format: 'parquet' }, 2);

    const f = await files(name);
    console.log(`[hostile] bad.parquet: ${describeFile(f['bad.parquet'])}`);
    expect(f['good.parquet']).toMatchObject({ status: 'success', rows: 3 });
    const [failed] = await failures(name);
    expect(failed).toMatchObject({ key: `${name}/bad.parquet`, status: 'failure', rows: 0 });
    expect(failed!.error).toMatch(/^ClickHouse could not read the file: Not a Parquet file/);
    // The message names the object, never the local spool path.
    expect(failed!.error).toContain(`${name}/bad.parquet`);
    expect(failed!.error).not.toMatch(/spool|\.part\b/);
    expect((await history(name, 'bad.parquet')).map((e) => e.status)).toEqual(['queued', 'running', 'failure']);
    expect(ds.stats.files).toMatchObject({ success: 1, failure: 1 });
    await expectOnlyGoodRows(name, 400);
  });

  it('a file over limits.maxFileBytes fails naming the limit, without being downloaded', async () => {
    const name = uid('toobig');
    const big = goodCsv(1000, 500);
    expect(big.length).toBeGreaterThan(1000);
    await put(s3, bucket, `${name}/big.csv`, big);
    await put(s3, bucket, `${name}/good.csv`, goodCsv(500));
    await load(name, { connection: 'counted', bucketUri: `s3://${bucket}/${name}/*.csv`, format: 'csv', limits: { maxFileBytes: 1000 } }, 2);

    const f = await files(name);
    expect(f['big.csv']).toMatchObject({ status: 'failure', rows: 0, error: `file is ${big.length} bytes, over the data source's maxFileBytes of 1000` });
    expect((await history(name, 'big.csv')).map((e) => e.status)).toEqual(['queued', 'running', 'failure']);
    expect(f['good.csv']).toMatchObject({ status: 'success', rows: 3 });
    // The proxy in front of MinIO saw the good file fetched once and the big one never.
    expect(proxy.gets.get(`${name}/good.csv`)).toBe(1);
    expect(proxy.gets.get(`${name}/big.csv`)).toBeUndefined();
    await expectOnlyGoodRows(name, 500);
  });

  it('a CSV with invalid UTF-8 loads every row with its bytes kept as they are', async () => {
    const name = uid('badutf8');
    const invalid = Buffer.from([0xff, 0xfe, 0xc3, 0x28, 0x80]);
    await put(s3, bucket, `${name}/badutf8.csv`, Buffer.concat([Buffer.from('id,v\n611,ok\n612,'), invalid, Buffer.from('\n613,tail\n')]));
    await put(s3, bucket, `${name}/good.csv`, goodCsv(620));
    await load(name, { bucketUri: `s3://${bucket}/${name}/*.csv`, format: 'csv' }, 2);

    const f = await files(name);
    expect(f['badutf8.csv']).toMatchObject({ status: 'success', rows: 3, quarantinedRows: 0 });
    expect(f['good.csv']).toMatchObject({ status: 'success', rows: 3 });
    // ClickHouse strings are bytes: nothing is dropped or replaced.
    const rows = await sql<{ id: string; hex: string; valid: number }>(c, `SELECT toString(t.id) AS id, hex(t.v) AS hex, isValidUTF8(t.v) AS valid FROM ${name} AS t WHERE t.id < 620 ORDER BY t.id`);
    expect(rows).toEqual([
      { id: '611', hex: '6F6B', valid: 1 },
      { id: '612', hex: invalid.toString('hex').toUpperCase(), valid: 0 },
      { id: '613', hex: '7461696C', valid: 1 },
    ]);
    const t = await table(name);
    expect(t.rows).toBe(6);
    expect(t.distinct).toBe(6);
  });

  describe('a UTF-16 CSV', () => {
    const name = uid('utf16');
    let utf16: FileItem | undefined;
    let table16: Awaited<ReturnType<typeof table>> | undefined;

    it('settles (see below); the good file next to it loads exactly', async () => {
      await put(s3, bucket, `${name}/utf16.csv`, Buffer.from('\ufeffid,v\n601,utf16a\n602,utf16b\n', 'utf16le'));
      await put(s3, bucket, `${name}/good.csv`, goodCsv(650));
      await load(name, { bucketUri: `s3://${bucket}/${name}/*.csv`, format: 'csv' }, 2);
      const f = await files(name);
      utf16 = f['utf16.csv'];
      table16 = await table(name);
      console.log(`[hostile] utf16.csv: ${describeFile(utf16)}; table ${JSON.stringify(table16)}; quarantine ${JSON.stringify(await quarantine(name))}`);
      expect(f['good.csv']).toMatchObject({ status: 'success', rows: 3 });
      expect(table16.sample.filter(([id]) => id > 650)).toEqual(goodRows(650));
      expect(c.worker!.getState()).toBe('RUNNING');
    });

    it('is not loaded silently as rows of defaults: it fails or its rows are quarantined', () => {
      // Without the test above there is nothing to judge: return, so this expected failure shows red.
      if (!utf16 || !table16) return;
      expect(table16!.sample.filter(([id]) => id < 650)).toEqual([]);
      if (utf16!.status === 'failure') expect(utf16!.error).toEqual(expect.any(String));
      else expect(utf16).toMatchObject({ status: 'success', rows: 0, quarantinedRows: expect.any(Number) });
    });
  });

  it('a CSV whose single data line is 300 MB: the file is refused by the line pass, before ClickHouse parses it; memory stays bounded', async () => {
    const name = uid('longline');
    const FIELD = 300 * 1024 * 1024;
    await put(s3, bucket, `${name}/long.csv`, Buffer.concat([Buffer.from('id,v\n701,'), Buffer.alloc(FIELD, 'a'), Buffer.from('\n')]));
    await put(s3, bucket, `${name}/good.csv`, goodCsv(700));
    const { before, peak } = await peakRss(() => load(name, { bucketUri: `s3://${bucket}/${name}/*.csv`, format: 'csv' }, 2, 150_000));
    console.log(`[hostile] long.csv: RSS ${mib(before)} MiB before the sync, ${mib(peak)} MiB peak during it`);
    expect(peak - before).toBeLessThan(400 * 1024 * 1024);

    const f = await files(name);
    expect(f['long.csv']).toMatchObject({ status: 'failure', rows: 0, attempts: 1 });
    expect(f['long.csv']!.error).toMatch(/line (2 )?is longer than \d+ bytes: refused before parsing to keep memory bounded/);
    expect(f['good.csv']).toMatchObject({ status: 'success', rows: 3 });
    await expectOnlyGoodRows(name, 700);
  }, 180_000);

  it('a CSV row of 5 MiB (over the 2 MiB maxRowBytes, under the line cap) is quarantined with the reason; the rest load', async () => {
    const name = uid('bigrow');
    const FIELD = 5 * 1024 * 1024;
    await put(s3, bucket, `${name}/long.csv`, Buffer.concat([Buffer.from('id,v\n701,'), Buffer.alloc(FIELD, 'a'), Buffer.from('\n702,ok\n')]));
    await load(name, { bucketUri: `s3://${bucket}/${name}/*.csv`, format: 'csv' }, 1, 60_000);
    const f = await files(name);
    expect(f['long.csv']).toMatchObject({ status: 'success', rows: 1, quarantinedRows: 1 });
    const q = await quarantine(name);
    expect(q).toHaveLength(1);
    expect(q[0]).toMatchObject({ key: `${name}/long.csv`, line: 1, error: `row is ${FIELD + 3} bytes, over the data source's maxRowBytes of ${2 * 1024 * 1024}` });
    // Quarantine keeps only the start of the row's text.
    expect(q[0]!.raw.length).toBeLessThanOrEqual(1024 * 1024);
  }, 120_000);
});
