import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { inject } from 'vitest';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { adminClient, createBucket, minioConnection, processDestination, put, testS3, uid } from '../support/harness.js';
import { freePort, startClickHouseEngine } from '../../scripts/services.js';
import type { Destination } from '../../clickhouse/destination.js';

/**
 * The ClickHouse engine process and its access control, called directly
 * (no guard in front): the reader can read the connector's database and
 * nothing else, cannot lift its limits, and never sees another user's
 * statements (where s3() credentials would show).
 */

interface Answer {
  status: number;
  code: string | null;
  text: string;
}

async function asUser(user: string, password: string, query: string, params: Record<string, string> = {}): Promise<Answer> {
  const url = new URL(inject('clickhouseUrl'));
  for (const [k, v] of Object.entries(params)) url.searchParams.set(k, v);
  const res = await fetch(url, { method: 'POST', headers: { 'X-ClickHouse-User': user, 'X-ClickHouse-Key': password }, body: query });
  return { status: res.status, code: res.headers.get('x-clickhouse-exception-code'), text: await res.text() };
}
const reader = (query: string, params?: Record<string, string>) => asUser(inject('clickhouseReaderUser'), inject('clickhouseReaderPassword'), query, params);

/** ACCESS_DENIED */
const DENIED = '497';
/** READONLY: a setting the profile fixes */
const READONLY = '164';

describe('the engine\'s users', () => {
  let d: Destination;
  let table: string;

  beforeAll(async () => {
    d = await processDestination();
    table = `${d.database}.${uid('r')}`;
    await d.client.command({ query: `CREATE TABLE ${table} (id UInt64, v String) ENGINE = MergeTree ORDER BY id` });
    await d.client.command({ query: `INSERT INTO ${table} VALUES (1, 'a'), (2, 'b')` });
  });

  it('the reader reads the connector\'s tables and their catalogue rows', async () => {
    expect(await reader(`SELECT sum(id) FROM ${table}`)).toMatchObject({ status: 200, text: '3\n' });
    const name = table.split('.')[1]!;
    expect((await reader(`SELECT name FROM system.tables WHERE database = '${d.database}' AND name = '${name}'`)).text).toBe(`${name}\n`);
  });

  it('the reader cannot read another database, the engine\'s system tables or anything through a table function', async () => {
    // A table in a database that is not the connector's, made by the administrator.
    const other = `s3ch_other_${uid('db')}`;
    const admin = await adminClient();
    await admin.command({ query: `CREATE DATABASE ${other}` });
    await admin.command({ query: `CREATE TABLE ${other}.secrets (v String) ENGINE = MergeTree ORDER BY v` });
    await admin.command({ query: `INSERT INTO ${other}.secrets VALUES ('do not read')` });
    for (const q of [
      `SELECT * FROM ${other}.secrets`,
      `SELECT name FROM system.tables WHERE database = '${other}'`,
      'SELECT * FROM system.processes',
      'SELECT * FROM system.users',
      'SELECT * FROM system.parts',
      "SELECT * FROM file('/etc/passwd', 'LineAsString')",
      "SELECT * FROM url('http://127.0.0.1:1/x', 'LineAsString')",
      `SELECT * FROM s3('${minioConnection().endpoint}/some-bucket/k.csv', 'CSV', 'a String')`,
    ]) {
      const a = await reader(q);
      // The catalogue answers, with nothing of what the reader may not see.
      if (q.startsWith('SELECT name FROM system.tables')) expect(a).toMatchObject({ status: 200, text: '' });
      else expect(a.code, `${q}: ${a.text}`).toBe(DENIED);
    }
    await admin.command({ query: `DROP DATABASE ${other}` });
  });

  it('the reader cannot write, change a setting or lift a limit: by SETTINGS, by SET or by URL parameter', async () => {
    expect([DENIED, READONLY]).toContain((await reader(`INSERT INTO ${table} VALUES (3, 'c')`)).code);
    expect((await reader('SELECT 1 SETTINGS max_execution_time = 3600')).code).toBe(READONLY);
    expect((await reader('SELECT 1 SETTINGS readonly = 0')).code).toBe(READONLY);
    expect((await reader('SELECT 1', { max_memory_usage: String(64 * 1024 ** 3) })).code).toBe(READONLY);
    expect((await reader('SELECT 1', { readonly: '0' })).code).toBe(READONLY);
    expect((await reader('SET max_threads = 64')).code).toBe(READONLY);
    // What it runs with: the profile's limits, whatever it asked for.
    expect((await reader("SELECT getSetting('max_execution_time'), getSetting('max_threads'), getSetting('readonly')")).text).toBe('30\t1\t1\n');
    expect(await reader(`SELECT count() FROM ${table}`)).toMatchObject({ status: 200, text: '2\n' });
  });

  it('an s3() statement\'s credentials are not visible to the reader while it runs, nor afterwards', async () => {
    const s3 = testS3();
    const bucket = await createBucket(s3);
    await put(s3, bucket, 'slow.csv', Array.from({ length: 30 }, (_, i) => `${i}\n`).join(''));
    s3.destroy();
    const conn = minioConnection() as { endpoint: string; accessKeyId: string; secretAccessKey: string };
    const tag = uid('slow');
    // The connector's statement, with the MinIO secret in its text: it runs for ~15 s (a row each half second).
    const running = d.client
      .query({ query: `SELECT sleepEachRow(0.5), '${tag}' FROM s3('${conn.endpoint}/${bucket}/slow.csv', '${conn.accessKeyId}', '${conn.secretAccessKey}', 'CSV', 'a String') SETTINGS max_block_size = 1`, format: 'TabSeparated' })
      .then((r) => r.text());
    try {
      // It is there, secret and all, for the user who runs it...
      let seen = '';
      for (let i = 0; i < 100 && !seen.includes(tag); i++) {
        seen = await (await d.client.query({ query: `SELECT query FROM system.processes WHERE query LIKE '%${tag}%' AND query NOT LIKE '%system.processes%'`, format: 'TabSeparated' })).text();
        if (!seen.includes(tag)) await new Promise((r) => setTimeout(r, 100));
      }
      expect(seen).toContain(tag);
      // ...and not for the reader, however it asks.
      for (const q of ['SELECT query FROM system.processes', 'SELECT query FROM system.query_log', 'SHOW PROCESSLIST', "SELECT * FROM clusterAllReplicas('default', system.processes)"]) {
        const a = await reader(q);
        expect(a.status, q).not.toBe(200);
        expect(a.text, q).not.toContain(conn.secretAccessKey);
      }
    } finally {
      await d.client.command({ query: `KILL QUERY WHERE query LIKE '%${tag}%' AND query NOT LIKE '%KILL QUERY%' ASYNC` });
      await running.catch(() => undefined);
    }
  });

  it('a cancelled statement stops on the server (KILL QUERY), not only on this side of the connection', async () => {
    const tag = uid('cancel');
    const target = `${d.database}.${uid('k')}`;
    await d.client.command({ query: `CREATE TABLE ${target} (n UInt64) ENGINE = MergeTree ORDER BY n` });
    const ac = new AbortController();
    // An insert that would run for a minute, a row each 0.2 s (the connector's user may not read system.numbers: a range).
    const insert = d.imports.command({ query: `INSERT INTO ${target} SELECT sleepEachRow(0.2) + number FROM (SELECT arrayJoin(range(300)) AS number) SETTINGS max_block_size = 1, log_comment = '${tag}'`, abort_signal: ac.signal });
    const running = async () => Number((await (await d.client.query({ query: `SELECT count() AS n FROM system.processes WHERE query LIKE '%${tag}%' AND query NOT LIKE '%system.processes%'`, format: 'JSONEachRow' })).json<{ n: string }>())[0]!.n);
    for (let i = 0; i < 100 && (await running()) === 0; i++) await new Promise((r) => setTimeout(r, 100));
    expect(await running()).toBe(1);
    ac.abort();
    await expect(insert).rejects.toThrow();
    let left = 1;
    for (let i = 0; i < 100 && left > 0; i++) {
      left = await running();
      if (left > 0) await new Promise((r) => setTimeout(r, 100));
    }
    expect(left).toBe(0);
  });

  it('the engine\'s own session user (empty password) can read nothing', async () => {
    expect((await asUser('default', '', `SELECT * FROM ${table}`)).code).toBe(DENIED);
    expect((await asUser('default', '', "SELECT * FROM file('/etc/passwd', 'LineAsString')")).code).toBe(DENIED);
  });

  it('the connector\'s user owns its database and no other, and cannot read the host\'s files', async () => {
    expect((await d.client.command({ query: 'CREATE DATABASE not_the_connectors' }).then(() => 'created', (e) => (e as { code?: string }).code))).toBe(DENIED);
    const files = await d.client.query({ query: "SELECT * FROM file('/etc/passwd', 'LineAsString')" }).then(() => 'read', (e) => (e as { code?: string }).code);
    expect(files).toBe(DENIED);
  });
});

describe('the engine process', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 's3ch-engine-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('starts, stops cleanly, is seen to crash, and restarts on its data', { timeout: 180_000 }, async () => {
    const port = await freePort();
    const opts = { launcher: inject('engineLauncher'), library: inject('engineLibrary'), dir, port, databases: ['app'], maxMemory: 1024 ** 3, cacheSize: 16 * 1024 ** 2 };
    const q = (e: { url: string; connector: { user: string; password: string } }, query: string) =>
      fetch(e.url, { method: 'POST', headers: { 'X-ClickHouse-User': e.connector.user, 'X-ClickHouse-Key': e.connector.password }, body: query }).then(async (r) => ({ ok: r.ok, text: await r.text() }));

    const a = await startClickHouseEngine(opts);
    expect(await q(a, 'SELECT version()')).toMatchObject({ ok: true, text: expect.stringMatching(/^26\.7\./) });
    await q(a, 'CREATE DATABASE app');
    await q(a, 'CREATE TABLE app.t (id UInt64) ENGINE = MergeTree ORDER BY id');
    await q(a, 'INSERT INTO app.t SELECT number FROM numbers(1000)');
    await a.stop();
    // A clean stop: the blocking statement was killed and the process ended by itself, not by a signal.
    expect(a.exitInfo()).toMatchObject({ signal: null });
    expect(await q(a, 'SELECT 1').catch(() => 'refused')).toBe('refused');

    // The same passwords (npm start keeps them for a restart): the data is there.
    const b = await startClickHouseEngine({ ...opts, passwords: a.passwords });
    expect((await q(b, 'SELECT count() FROM app.t')).text).toBe('1000\n');
    process.kill(b.pid, 'SIGKILL');
    expect(await b.exited).toMatchObject({ signal: 'SIGKILL' });

    // After a crash: it starts again, on the same data, and the rows committed before are all there.
    const c = await startClickHouseEngine({ ...opts, passwords: a.passwords });
    try {
      expect((await q(c, 'SELECT count(), sum(id) FROM app.t')).text).toBe('1000\t499500\n');
    } finally {
      await c.stop();
    }
    // Its log is at warning level: a start, a stop and a crash leave only a few lines.
    const log = await readFile(join(dir, 'logs', 'clickhouse.log'), 'utf8').catch(() => '');
    expect(log).not.toMatch(/<(Trace|Debug|Information)>/);
  });
});
