import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createDestination, inlineQueryParams, queryRows, type Destination } from '../../clickhouse/destination.js';
import { ConfigError, defaultChdbMaxMemory, loadEnv } from '../../schemas/config.js';

/**
 * Embedded chDB's connections: the API's client answers while the worker's
 * connection is busy with a long parameterized statement and more are queued
 * behind it, parameters bind exactly as on a server, and the engine starts
 * with the configured memory cap and cache sizes. Ordering, not timing: each
 * test asserts which statement settled first.
 */
describe('embedded chDB connections', () => {
  let dir: string;
  let d: Destination;

  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 's3ch-conn-'));
    d = createDestination({ ...loadEnv({ S3CH_DATA_DIR: dir, S3CH_CHDB_MAX_MEMORY: '768MiB', S3CH_CHDB_CACHE_SIZE: '32MiB', S3CH_CHDB_IMPORT_SLOTS: '2' }), CLICKHOUSE_URL: undefined });
  });
  afterAll(async () => {
    await d?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('starts the engine with the configured memory cap and cache sizes', async () => {
    const rows = await queryRows<{ name: string; value: string }>(
      d.api.client,
      'SELECT name, value FROM system.server_settings WHERE name IN {names:Array(String)} ORDER BY name',
      { names: ['mark_cache_size', 'max_server_memory_usage', 'primary_index_cache_size', 'uncompressed_cache_size'] },
    );
    expect(Object.fromEntries(rows.map((r) => [r.name, Number(r.value)]))).toEqual({
      mark_cache_size: 32 * 1024 ** 2,
      max_server_memory_usage: 768 * 1024 ** 2,
      primary_index_cache_size: 32 * 1024 ** 2,
      uncompressed_cache_size: 0,
    });
  });

  it('binds parameters as a server does: quotes, backslashes, control characters, unicode, arrays, numbers, identifiers', async () => {
    const s = "it's a \\ back\\slash\t tab\n newline \u0000 nul ünï €";
    await d.client.command({ query: 'CREATE TABLE {t:Identifier} (s String) ENGINE = MergeTree ORDER BY s', query_params: { t: 'weird name`' } });
    await d.client.command({ query: 'INSERT INTO {t:Identifier} SELECT {s:String}', query_params: { t: 'weird name`', s } });
    const [row] = await queryRows<{ s: string; a: string[]; n: number | string; len: number | string }>(
      d.api.client,
      'SELECT s, {a:Array(String)} AS a, {n:UInt64} AS n, length(s) AS len FROM {t:Identifier}',
      { t: 'weird name`', a: ["x'y", 'z\\w', ''], n: 9007199254740991 },
    );
    expect({ ...row, n: Number(row!.n), len: Number(row!.len) }).toEqual({ s, a: ["x'y", 'z\\w', ''], n: 9007199254740991, len: Buffer.byteLength(s) });
  });

  it('refuses a parameter name that is not an identifier, before anything runs', () => {
    expect(() => inlineQueryParams({ query: 'SELECT {x:String}', query_params: { 'x = 1; DROP TABLE t; SET param_y': 'v' } })).toThrow(/invalid query parameter name/);
  });

  it("answers the API while the worker's connection runs a long parameterized statement with four more queued behind it", async () => {
    const settled: string[] = [];
    // Two 1-second blocks each: the held statement and four queued ones (as four imports waiting
    // for the engine would be), all parameterized, all on the worker's connection.
    const hold = (i: number) =>
      d.client
        .query({ query: 'SELECT sleep(1) FROM numbers({n:UInt32}) SETTINGS max_block_size = 1', query_params: { n: 2 }, format: 'TabSeparated' })
        .then((r) => r.text())
        .then(() => settled.push(`worker ${i}`));
    const worker = [0, 1, 2, 3, 4].map(hold);
    await new Promise((r) => setTimeout(r, 200));
    // A parameterized read, a plain one and a ping, on the API's client.
    await Promise.all([
      queryRows(d.api.client, 'SELECT count() AS n FROM system.tables WHERE database = {db:String}', { db: 'default' }).then(() => settled.push('api read')),
      queryRows(d.api.client, 'SELECT 1 AS one').then(() => settled.push('api plain')),
      d.api.client.ping().then((p) => settled.push(p.success ? 'api ping' : 'api ping failed')),
    ]);
    await Promise.all(worker);
    expect(settled.slice(0, 3).sort()).toEqual(['api ping', 'api plain', 'api read']);
    // The worker's statements ran one at a time, in the order they were issued.
    expect(settled.slice(3)).toEqual(['worker 0', 'worker 1', 'worker 2', 'worker 3', 'worker 4']);
  }, 60_000);

  it('a statement cancelled while it waits its turn never runs', async () => {
    await d.client.command({ query: 'CREATE TABLE cancelled_t (x UInt8) ENGINE = MergeTree ORDER BY x' });
    const busy = d.client.query({ query: 'SELECT sleep(1)', format: 'TabSeparated' }).then((r) => r.text());
    const ac = new AbortController();
    const queued = d.client.command({ query: 'INSERT INTO cancelled_t VALUES (1)', abort_signal: ac.signal });
    ac.abort();
    await expect(queued).rejects.toThrow();
    await busy;
    const [r] = await queryRows<{ n: string }>(d.client, 'SELECT count() AS n FROM cancelled_t');
    expect(Number(r!.n)).toBe(0);
  }, 30_000);
});

describe('embedded chDB import slots', () => {
  let dir: string;
  let d: Destination;

  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 's3ch-slots-'));
    d = createDestination({ ...loadEnv({ S3CH_DATA_DIR: dir, S3CH_CHDB_IMPORT_SLOTS: '2' }), CLICKHOUSE_URL: undefined });
  });
  afterAll(async () => {
    await d?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  /** Whether the statement tagged `tag` is running in the engine now, asked on the API's connections. */
  const running = async (tag: string) => {
    const [r] = await queryRows<{ n: string }>(d.api.client, "SELECT count() AS n FROM system.processes WHERE query LIKE {p:String} AND query NOT LIKE '%system.processes%'", { p: `%${tag}%` });
    return Number(r!.n) > 0;
  };
  const hold = (tag: string, seconds: number) =>
    d.imports.query({ query: `SELECT sleep(1), '${tag}' FROM numbers(${seconds}) SETTINGS max_block_size = 1`, format: 'TabSeparated' }).then((r) => r.text());

  it('runs two import statements at once, while the ledger connection stays free', async () => {
    const settled: string[] = [];
    const first = hold('slot-one', 3).then(() => settled.push('first'));
    const second = hold('slot-two', 3).then(() => settled.push('second'));
    // Both are in the engine together before either finishes: the second did not queue behind the first.
    for (;;) {
      if ((await running('slot-one')) && (await running('slot-two'))) break;
      expect(settled).toEqual([]);
      await new Promise((r) => setTimeout(r, 50));
    }
    // The ledger's connection answers while both slots are busy.
    await queryRows(d.client, 'SELECT 1 AS one').then(() => settled.push('ledger'));
    await Promise.all([first, second]);
    expect(settled[0]).toBe('ledger');
  }, 30_000);

  it('a third import waits for a free slot, and one cancelled while it waits leaves at once', async () => {
    const settled: string[] = [];
    const busy = [hold('busy-one', 2), hold('busy-two', 2)].map((p, i) => p.then(() => settled.push(`busy ${i}`)));
    const ac = new AbortController();
    const cancelled = d.imports.command({ query: "SELECT 'never-runs'", abort_signal: ac.signal }).then(
      () => settled.push('cancelled ran'),
      () => settled.push('cancelled refused'),
    );
    const third = hold('third', 1).then(() => settled.push('third'));
    ac.abort();
    await cancelled;
    expect(settled).toEqual(['cancelled refused']);
    await Promise.all([...busy, third]);
    expect(settled.at(-1)).toBe('third');
  }, 30_000);
});

describe('embedded chDB limits in the environment', () => {
  it('reads sizes in bytes or with KiB, MiB, GiB, and defaults to a 1 GiB cap and 64 MiB caches', () => {
    expect(loadEnv({ S3CH_CHDB_MAX_MEMORY: '1.5GiB', S3CH_CHDB_CACHE_SIZE: '1048576' })).toMatchObject({ S3CH_CHDB_MAX_MEMORY: 1.5 * 1024 ** 3, S3CH_CHDB_CACHE_SIZE: 1024 ** 2 });
    expect(loadEnv({})).toMatchObject({ S3CH_CHDB_MAX_MEMORY: defaultChdbMaxMemory(), S3CH_CHDB_CACHE_SIZE: 64 * 1024 ** 2 });
    // A quarter of the machine, from 1 GiB (small VMs) to 4 GiB (large hosts).
    const GiB = 1024 ** 3;
    expect([2, 4, 8, 24, 64].map((total) => defaultChdbMaxMemory(total * GiB) / GiB)).toEqual([1, 1, 2, 4, 4]);
  });

  it.each([
    ['S3CH_CHDB_MAX_MEMORY', '1GB', /size in bytes, optionally with KiB, MiB or GiB/],
    ['S3CH_CHDB_MAX_MEMORY', '-5', /size in bytes/],
    ['S3CH_CHDB_MAX_MEMORY', '100MiB', /at least 256 MiB/],
    ['S3CH_CHDB_CACHE_SIZE', 'lots', /size in bytes/],
    ['S3CH_CHDB_IMPORT_SLOTS', '0', /whole number from 1 to 16/],
    ['S3CH_CHDB_IMPORT_SLOTS', 'many', /whole number from 1 to 16/],
  ])('refuses %s=%s, naming the variable and the reason', (name, value, reason) => {
    let err: unknown;
    try {
      loadEnv({ [name]: value });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ConfigError);
    expect(Object.keys((err as ConfigError).fields)).toEqual([name]);
    expect((err as ConfigError).fields[name]!.join(' ')).toMatch(reason);
  });
});
