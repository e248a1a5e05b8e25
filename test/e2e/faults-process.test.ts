import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { inject } from 'vitest';
import type { S3Client } from '@aws-sdk/client-s3';
import { freePort } from '../../scripts/services.js';
import { clickhouseEnv, createBucket, eventually, minioConnection, put, testDatabase, testS3, uid } from '../support/harness.js';

/**
 * Exactly once when the worker dies: the connector runs as its own process
 * (worker + API + chDB), is SIGKILLed mid-import or between the insert and
 * the ledger write, and a new process on the same data directory finishes the
 * job. The table must hold every row of the file exactly once.
 */
interface Proc {
  child: ChildProcess;
  api: string;
  output: string[];
}

// About 180 MB of CSV: several insert blocks, and an insert long enough to be killed half-way.
const ROWS = 4_000_000;

function bigCsv(rows: number, offset = 0): Buffer {
  const parts: string[] = ['id,ts,user,amount\n'];
  let chunk = '';
  for (let i = 0; i < rows; i++) {
    const id = offset + i;
    chunk += `${id},2024-01-${String(1 + (id % 28)).padStart(2, '0')} 12:00:00,user_${id % 9973},${(id % 1000) / 10}\n`;
    if (chunk.length > 1 << 20) {
      parts.push(chunk);
      chunk = '';
    }
  }
  parts.push(chunk);
  return Buffer.from(parts.join(''));
}

describe('worker killed mid-import: nothing lost, nothing doubled', () => {
  let s3: S3Client;
  let bucket: string;
  let dataDir: string;
  let taskQueue: string;
  let database: string;
  let port: number;
  const procs: ChildProcess[] = [];

  beforeAll(async () => {
    s3 = testS3();
    bucket = await createBucket(s3);
  });
  afterEach(async () => {
    for (const p of procs.splice(0)) if (p.exitCode === null && p.signalCode === null) p.kill('SIGKILL');
    if (dataDir) await rm(dataDir, { recursive: true, force: true });
  });
  afterAll(() => s3?.destroy());

  async function startProcess(fault = ''): Promise<Proc> {
    const child = spawn(process.execPath, ['--import', 'tsx', 'test/support/connector-process.ts'], {
      env: {
        ...process.env,
        S3CH_TEST_FAULT: fault,
        S3CH_TEST_CONFIG: JSON.stringify({
          dataDir, temporalAddress: inject('temporalAddress'), taskQueue, port,
          workflowBundlePath: inject('workflowBundlePath'), connections: { local: minioConnection() },
          clickhouse: clickhouseEnv(database),
        }),
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    procs.push(child);
    const output: string[] = [];
    child.stderr!.on('data', (d: Buffer) => output.push(d.toString()));
    const api = await new Promise<string>((resolve, reject) => {
      child.stdout!.on('data', (d: Buffer) => {
        const text = d.toString();
        output.push(text);
        const m = /READY (\S+)/.exec(text);
        if (m) resolve(m[1]!);
      });
      child.once('exit', (code, sig) => reject(new Error(`connector process exited early (${code ?? sig}): ${output.join('').slice(-2000)}`)));
    });
    return { child, api, output };
  }

  async function call(p: Proc, method: string, path: string, body?: unknown) {
    const res = await fetch(p.api + path, { method, headers: body ? { 'content-type': 'application/json' } : {}, body: body ? JSON.stringify(body) : undefined });
    return { status: res.status, body: (await res.json().catch(() => null)) as any };
  }
  const count = async (p: Proc, table: string) => {
    const r = await call(p, 'POST', '/v1/sql', { query: `SELECT count() AS n, uniqExact(id) AS u FROM ${table}` });
    return { n: Number(r.body.data[0].n), u: Number(r.body.data[0].u) };
  };
  const exited = (child: ChildProcess) => new Promise<void>((r) => (child.exitCode !== null || child.signalCode !== null ? r() : child.once('exit', () => r())));

  async function setup(name: string, prefix: string) {
    dataDir = await mkdtemp(join(tmpdir(), 's3ch-proc-'));
    taskQueue = uid('tq');
    database = testDatabase();
    port = await freePort();
    await put(s3, bucket, `${prefix}/big.csv`, bigCsv(ROWS));
    await put(s3, bucket, `${prefix}/small.csv`, bigCsv(1000, ROWS));
    return {
      name, connection: 'local', bucketUri: `s3://${bucket}/${prefix}/*.csv`, format: 'csv', schedule: '@on-demand',
      columns: [{ name: 'id', type: 'UInt64' }, { name: 'ts', type: 'DateTime' }, { name: 'user', type: 'String' }, { name: 'amount', type: 'Float64' }],
      engine: { sortingKey: 'id' },
    };
  }

  it('SIGKILL while a large file is being inserted: a new worker loads it exactly once', async () => {
    // Kill while ClickHouse is reading the big file into the attempt's staging table. No query can
    // watch the insert (embedded ClickHouse runs one statement at a time), so the process says when
    // it starts and the kill comes a little later. Nothing of a file is in the table before its
    // move, so a kill leaves none of its rows or (came too late, after the commit) all of them,
    // never part; a kill that came too late is tried again sooner. Every try must end with every
    // row exactly once; one of them must have hit before the commit.
    let delay = 2000;
    const landed: number[] = [];
    for (let tries = 0; tries < 5; tries++) {
      const name = uid('kill');
      if (dataDir) await rm(dataDir, { recursive: true, force: true });
      const spec = await setup(name, name);
      const a = await startProcess();
      expect((await call(a, 'POST', '/v1/datasources', spec)).status).toBe(201);
      expect((await call(a, 'POST', `/v1/datasources/${name}/sync`)).status).toBe(202);
      await eventually('the big file\'s insert to start', async () => a.output.join('').includes(`INSERT START ${name}/big.csv 1`), 60_000, 20);
      await new Promise((r) => setTimeout(r, delay));
      a.child.kill('SIGKILL');
      await exited(a.child);
      const b = await startProcess();
      // Before the retry (it starts once the killed attempt's heartbeat times out): what the killed insert left.
      const left = await call(b, 'POST', '/v1/sql', { query: `SELECT count() AS n FROM ${name} WHERE id < ${ROWS}` });
      const leftRows = Number(left.body.data[0].n);
      landed.push(leftRows);
      console.log(`[faults-process] killed ${delay} ms after the insert started: ${leftRows} of ${ROWS} rows of the big file committed`);
      const done = await eventually('both files to succeed after the restart', async () => {
        const r = await call(b, 'GET', `/v1/datasources/${name}`);
        return r.body?.stats?.files?.success === 2 ? r.body : null;
      }, 120_000, 500);
      expect(await count(b, name)).toEqual({ n: ROWS + 1000, u: ROWS + 1000 });
      expect(done.stats.rows).toBe(ROWS + 1000);
      const history = await call(b, 'GET', `/v1/datasources/${name}/files/history?key=${encodeURIComponent(`${name}/big.csv`)}`);
      const statuses = history.body.items.map((i: { status: string }) => i.status);
      // A kill before the insert finished leaves the file to a second attempt; one that came after
      // the whole file was committed (a fast machine) may have found it recorded already.
      if (leftRows < ROWS) expect(statuses.filter((s: string) => s === 'running').length).toBeGreaterThanOrEqual(2);
      expect(statuses.at(-1)).toBe('success');
      b.child.kill('SIGKILL');
      await exited(b.child);
      expect(leftRows === 0 || leftRows === ROWS, `part of a file visible after a kill: ${leftRows}`).toBe(true);
      if (leftRows === 0) break;
      delay = Math.round(delay * 0.5);
    }
    expect(landed.some((n) => n === 0), `no kill landed before the commit: ${landed.join(', ')}`).toBe(true);
  }, 600_000);

  it('SIGKILL between the insert and the ledger write: the retry adds no row', async () => {
    const name = uid('gap');
    const spec = await setup(name, name);
    const a = await startProcess(`kill-after-insert:${name}/big.csv`);
    expect((await call(a, 'POST', '/v1/datasources', spec)).status).toBe(201);
    expect((await call(a, 'POST', `/v1/datasources/${name}/sync`)).status).toBe(202);
    await exited(a.child);
    expect(a.output.join('')).toContain(`FAULT kill-after-insert ${name}/big.csv`);

    const b = await startProcess();
    // Every row of the big file was committed before the kill.
    expect((await count(b, name)).n).toBeGreaterThanOrEqual(ROWS);
    await eventually('both files to succeed after the restart', async () => {
      const r = await call(b, 'GET', `/v1/datasources/${name}`);
      return r.body?.stats?.files?.success === 2;
    }, 120_000, 500);
    expect(await count(b, name)).toEqual({ n: ROWS + 1000, u: ROWS + 1000 });
    const files = await call(b, 'GET', `/v1/datasources/${name}/files`);
    const big = files.body.items.find((f: { key: string }) => f.key === `${name}/big.csv`);
    expect(big).toMatchObject({ status: 'success', rows: ROWS });
    expect(big.attempts).toBeGreaterThanOrEqual(2);
  });

  it('twenty random SIGKILLs while batches commit: every data source ends with exact rows', async () => {
    // Each round starts a connector on the same data directory, adds a data source of small files
    // (imported in batches) and SIGKILLs the process at a random moment after a batch's read began:
    // while staging, recording, moving or recording the commit. Killed imports are retried by a
    // later round's process (itself killed in turn) once their heartbeats time out; a last process
    // finishes everything.
    dataDir = await mkdtemp(join(tmpdir(), 's3ch-proc-'));
    taskQueue = uid('tq');
    port = await freePort();
    const KILLS = 20;
    const FILES = 12;
    const ROWS_PER_FILE = 300;
    let seed = 20261208;
    const random = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
    const names: string[] = [];
    const delays: number[] = [];
    for (let k = 0; k < KILLS; k++) {
      const name = uid('rk');
      names.push(name);
      for (let f = 0; f < FILES; f++) {
        await put(s3, bucket, `${name}/f${String(f).padStart(2, '0')}.csv`, bigCsv(ROWS_PER_FILE, f * ROWS_PER_FILE));
      }
      const p = await startProcess();
      const spec = {
        name, connection: 'local', bucketUri: `s3://${bucket}/${name}/*.csv`, format: 'csv', schedule: '@on-demand',
        columns: [{ name: 'id', type: 'UInt64' }, { name: 'ts', type: 'DateTime' }, { name: 'user', type: 'String' }, { name: 'amount', type: 'Float64' }],
        engine: { sortingKey: 'id', partitionKey: 'toYYYYMMDD(ts)' },
      };
      expect((await call(p, 'POST', '/v1/datasources', spec)).status).toBe(201);
      expect((await call(p, 'POST', `/v1/datasources/${name}/sync`)).status).toBe(202);
      await eventually(`${name}: a batch's read to start`, async () => p.output.join('').includes(`INSERT START ${name}/`), 60_000, 10);
      const delay = Math.floor(random() * 1200);
      delays.push(delay);
      await new Promise((r) => setTimeout(r, delay));
      p.child.kill('SIGKILL');
      await exited(p.child);
    }
    console.log(`[faults-process] ${KILLS} kills at ${delays.join(', ')} ms after a batch's read began`);
    const last = await startProcess();
    for (const name of names) {
      await eventually(`${name}: every file settled after the kills`, async () => {
        const r = await call(last, 'GET', `/v1/datasources/${name}`);
        const f = r.body?.stats?.files;
        if (f && f.success + f.failure === FILES) return true;
        // A data source whose sync was cut off before its files were queued: sync again.
        if (r.body?.status?.state === 'idle' && (f?.success ?? 0) < FILES) await call(last, 'POST', `/v1/datasources/${name}/sync`);
        return false;
      }, 240_000, 1000);
    }
    for (const name of names) {
      expect(await count(last, name), name).toEqual({ n: FILES * ROWS_PER_FILE, u: FILES * ROWS_PER_FILE });
      const r = await call(last, 'GET', `/v1/datasources/${name}`);
      expect(r.body.stats.files.success, name).toBe(FILES);
      expect(r.body.stats.rows, name).toBe(FILES * ROWS_PER_FILE);
    }
  }, 900_000);
});
