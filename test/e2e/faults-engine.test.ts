import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { inject } from 'vitest';
import type { S3Client } from '@aws-sdk/client-s3';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createDestination, type Destination } from '../../clickhouse/destination.js';
import { envSchema } from '../../schemas/config.js';
import { freePort, startClickHouseEngine, type ClickHouseEngine, type ClickHouseEngineOptions } from '../../scripts/services.js';
import type { FileRef } from '../../activities/index.js';
import { createBucket, eventually, put, startTestConnector, testS3, uid, type TestConnector } from '../support/harness.js';

/**
 * Exactly once when ClickHouse itself dies: the engine process is SIGKILLed
 * while a large file's insert runs, and while a batch of small files'
 * insert runs, then started again on its data. The connector (whose
 * statements fail with the connection) retries; every row lands once.
 */

function csv(rows: number, offset: number): Buffer {
  const parts: string[] = ['id,user,amount\n'];
  let chunk = '';
  for (let i = 0; i < rows; i++) {
    const id = offset + i;
    chunk += `${id},user_${id % 9973},${(id % 1000) / 10}\n`;
    if (chunk.length > 1 << 20) {
      parts.push(chunk);
      chunk = '';
    }
  }
  parts.push(chunk);
  return Buffer.from(parts.join(''));
}

describe('engine killed mid-insert: nothing lost, nothing doubled', () => {
  let dir: string;
  let engine: ClickHouseEngine;
  let opts: ClickHouseEngineOptions;
  let destination: Destination;
  let c: TestConnector;
  let s3: S3Client;
  let bucket: string;
  /** Data source name -> what to do when its insert (or batch) starts. */
  const onInsert = new Map<string, () => void>();
  const kills: string[] = [];

  /** SIGKILL the engine, then start it again on the same data, port and users. */
  async function crashAndRestart(what: string) {
    kills.push(what);
    process.kill(engine.pid, 'SIGKILL');
    await engine.exited;
    engine = await startClickHouseEngine({ ...opts, passwords: engine.passwords });
  }

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 's3ch-engine-fault-'));
    opts = { launcher: inject('engineLauncher'), library: inject('engineLibrary'), dir, port: await freePort(), databases: ['fault'], maxMemory: 2 * 1024 ** 3, cacheSize: 32 * 1024 ** 2 };
    engine = await startClickHouseEngine(opts);
    destination = createDestination(envSchema.parse({ CLICKHOUSE_URL: engine.url, CLICKHOUSE_USER: engine.connector.user, CLICKHOUSE_PASSWORD: engine.connector.password, CLICKHOUSE_READER_USER: engine.reader.user, CLICKHOUSE_READER_PASSWORD: engine.reader.password, CLICKHOUSE_DATABASE: 'fault' }));
    const trigger = (key: string) => {
      const name = key.split('/')[0]!;
      const f = onInsert.get(name);
      onInsert.delete(name);
      f?.();
    };
    c = await startTestConnector({}, {}, {
      destination,
      hooks: {
        beforeInsert: (file: FileRef, attempt: number) => (attempt === 1 && file.size > 1024 * 1024 ? trigger(file.key) : undefined),
        onBatch: (files: FileRef[], attempt: number) => (attempt === 1 ? trigger(files[0]!.key) : undefined),
      },
    });
    s3 = testS3();
    bucket = await createBucket(s3);
  });
  afterAll(async () => {
    await c?.stop();
    await destination?.close();
    await engine?.stop();
    s3?.destroy();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  async function load(name: string, files: number) {
    const res = await c.request('POST', '/v1/datasources', {
      name, connection: 'local', schedule: '@on-demand', bucketUri: `s3://${bucket}/${name}/*.csv`, format: 'csv',
      columns: [{ name: 'id', type: 'UInt64' }, { name: 'user', type: 'String' }, { name: 'amount', type: 'Float64' }],
      engine: { sortingKey: 'id' },
    });
    expect(res.status, JSON.stringify(res.body)).toBe(201);
    await eventually(`${name} to be prepared`, async () => (await c.request('GET', `/v1/datasources/${name}`)).body.columns, 120_000);
    expect((await c.request('POST', `/v1/datasources/${name}/sync`)).status).toBe(202);
    return eventually(`${name}: ${files} files imported`, async () => {
      const r = await c.request('GET', `/v1/datasources/${name}`);
      const f = r.body.stats?.files;
      return f && f.success === files && r.body.status.state !== 'syncing' ? r.body : null;
    }, 420_000, 500);
  }

  const exact = async (name: string) => {
    const rs = await destination.client.query({ query: `SELECT count() AS n, uniqExact(id) AS u, min(id) AS lo, max(id) AS hi FROM fault.${name}`, format: 'JSONEachRow' });
    const [r] = await rs.json<{ n: string; u: string; lo: string; hi: string }>();
    return { n: Number(r!.n), u: Number(r!.u), lo: Number(r!.lo), hi: Number(r!.hi) };
  };

  it('SIGKILL of the engine while a large file is inserted: after a restart, every row exactly once', { timeout: 600_000 }, async () => {
    const name = uid('big');
    const ROWS = 3_000_000;
    await put(s3, bucket, `${name}/big.csv`, csv(ROWS, 0));
    await put(s3, bucket, `${name}/small.csv`, csv(1000, ROWS));
    let restarted: Promise<void> | undefined;
    // A second and a half into the insert: ClickHouse is parsing and writing blocks.
    onInsert.set(name, () => void (restarted = new Promise((r) => setTimeout(r, 1500)).then(() => crashAndRestart(`${name} mid-insert`))));
    await load(name, 2);
    await restarted;
    expect(kills).toContain(`${name} mid-insert`);
    expect(await exact(name)).toEqual({ n: ROWS + 1000, u: ROWS + 1000, lo: 0, hi: ROWS + 999 });
  });

  it('SIGKILL of the engine while a batch of small files is inserted: after a restart, every file exactly once', { timeout: 600_000 }, async () => {
    const name = uid('batch');
    const FILES = 60;
    const PER = 20_000;
    for (let i = 0; i < FILES; i++) await put(s3, bucket, `${name}/part-${String(i).padStart(3, '0')}.csv`, csv(PER, i * PER));
    let restarted: Promise<void> | undefined;
    onInsert.set(name, () => void (restarted = new Promise((r) => setTimeout(r, 300)).then(() => crashAndRestart(`${name} mid-batch`))));
    const ds = await load(name, FILES);
    await restarted;
    expect(kills).toContain(`${name} mid-batch`);
    expect(ds.stats.rows).toBe(FILES * PER);
    expect(await exact(name)).toEqual({ n: FILES * PER, u: FILES * PER, lo: 0, hi: FILES * PER - 1 });
  });
});
