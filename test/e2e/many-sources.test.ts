import { describe, expect, it } from 'vitest';
import type { S3Client } from '@aws-sdk/client-s3';
import { runCli } from '../../cli/s3ch.js';
import { eventually, put, uid, type TestConnector, useTestStack } from '../support/harness.js';

/**
 * The data source list at scale on the real stack (Temporal dev server with
 * the search attributes registered + MinIO + chDB): 250 data sources paged
 * through `limit`/`cursor`, each exactly once with its state and counters;
 * filters by state and by name prefix; bad paging input is 400 naming the field.
 */
describe('listing many data sources (Temporal visibility + one ledger query per page)', () => {
  let c: TestConnector;
  let s3: S3Client;
  let bucket: string;
  useTestStack((stack) => ({ c, s3, bucket } = stack));

  const COLUMNS = [
    { name: 'id', type: 'UInt64' },
    { name: 'label', type: 'String' },
  ];
  const run = uid('ms');
  const A = 200;
  const B = 50;
  const names = [
    ...Array.from({ length: A }, (_, i) => `${run}_a_${String(i).padStart(3, '0')}`),
    ...Array.from({ length: B }, (_, i) => `${run}_b_${String(i).padStart(3, '0')}`),
  ];
  /** Data sources that import files (rows = 3 per file) and ones that are paused. */
  const loaded = new Map([[names[3]!, 2], [names[120]!, 1], [names[A + 7]!, 3]]);
  const paused = [names[10]!, names[11]!, names[A + 1]!];

  async function listAll(query: string, limit: number): Promise<{ items: any[]; pages: number }> {
    const items: any[] = [];
    let cursor: string | null = null;
    let pages = 0;
    do {
      const res = await c.request('GET', `/v1/datasources?limit=${limit}${query}${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`);
      expect(res.status, JSON.stringify(res.body)).toBe(200);
      expect(res.body.items.length).toBeLessThanOrEqual(limit);
      items.push(...res.body.items);
      cursor = res.body.nextCursor;
      pages++;
      expect(pages, 'pages never end').toBeLessThan(1000);
    } while (cursor);
    return { items, pages };
  }

  it('creates 250 data sources, some loaded and some paused', async () => {
    for (let i = 0; i < names.length; i += 10) {
      await Promise.all(
        names.slice(i, i + 10).map(async (name) => {
          const res = await c.request('POST', '/v1/datasources', {
            name, connection: 'local', bucketUri: `s3://${bucket}/${name}/*.csv`, format: 'csv', schedule: '@on-demand', columns: COLUMNS,
          });
          expect(res.status, JSON.stringify(res.body)).toBe(201);
        }),
      );
    }
    for (const [name, files] of loaded) {
      for (let f = 0; f < files; f++) await put(s3, bucket, `${name}/f${f}.csv`, `id,label\n${f * 10 + 1},x\n${f * 10 + 2},y\n${f * 10 + 3},z\n`);
      expect((await c.request('POST', `/v1/datasources/${name}/sync`)).status).toBe(202);
    }
    for (const name of paused) expect((await c.request('POST', `/v1/datasources/${name}/pause`)).status).toBe(200);
    for (const [name, files] of loaded) {
      await eventually(`${name}: ${files} files imported`, async () => {
        const ds = (await c.request('GET', `/v1/datasources/${name}`)).body;
        return ds.stats.files.success === files && ds.status.state === 'idle';
      }, 90_000);
    }
  }, 600_000);

  it('pages through all 250: every data source exactly once, with its state and counters', async () => {
    // Visibility is eventually consistent: wait until it has every state change.
    const { items, pages } = await eventually('visibility to list 250 with their states', async () => {
      const all = await listAll('', 37);
      const states = all.items.filter((d) => paused.includes(d.name)).map((d) => d.status.state);
      return all.items.length === names.length && states.every((s) => s === 'paused') ? all : null;
    }, 60_000, 1000);
    expect(pages).toBe(Math.ceil(names.length / 37));
    const seen = items.map((d) => d.name);
    expect(new Set(seen).size).toBe(seen.length);
    expect([...seen].sort()).toEqual([...names].sort());

    for (const d of items) {
      expect(d.status.state, d.name).toBe(paused.includes(d.name) ? 'paused' : 'idle');
      expect(d.bucketUri, d.name).toBe(`s3://${bucket}/${d.name}/*.csv`);
      expect(d.columns, d.name).toEqual(COLUMNS.map((col) => expect.objectContaining(col)));
      const files = loaded.get(d.name) ?? 0;
      expect(d.stats.files.success, d.name).toBe(files);
      expect(d.stats.rows, d.name).toBe(files * 3);
      expect(d.stats.files.failure, d.name).toBe(0);
      if (files) expect(d.status.lastRunAt, d.name).not.toBeNull();
      else expect(d.status.lastRunAt, d.name).toBeNull();
      expect(d.status.nextRunAt, d.name).toBeNull(); // @on-demand
    }
    // The list agrees with the live view of a loaded data source.
    const [name] = [...loaded.keys()];
    const live = (await c.request('GET', `/v1/datasources/${name}`)).body;
    const listed = items.find((d) => d.name === name);
    expect(listed.stats).toEqual(live.stats);
    expect(listed.status.lastRunAt).toBe(live.status.lastRunAt);
  }, 300_000);

  it('the default page is 100 items with a cursor to the rest', async () => {
    const res = await c.request('GET', '/v1/datasources');
    expect(res.status).toBe(200);
    expect(res.body.items).toHaveLength(100);
    expect(typeof res.body.nextCursor).toBe('string');
    const last = await c.request('GET', `/v1/datasources?limit=1000`);
    expect(last.body.items).toHaveLength(names.length);
    expect(last.body.nextCursor).toBeNull();
  });

  it('filters by state and by name prefix, and pages within the filter', async () => {
    const p = await listAll('&state=paused', 2);
    expect(p.items.map((d) => d.name).sort()).toEqual([...paused].sort());
    expect(p.pages).toBe(2);

    const b = await listAll(`&prefix=${run}_b`, 20);
    expect(b.items.map((d) => d.name).sort()).toEqual(names.slice(A).sort());

    const both = await listAll(`&prefix=${run}_b&state=paused`, 100);
    expect(both.items.map((d) => d.name)).toEqual([names[A + 1]]);

    const idle = await listAll('&state=idle', 100);
    expect(idle.items).toHaveLength(names.length - paused.length);
    expect((await listAll('&state=error', 100)).items).toEqual([]);
    expect((await listAll('&prefix=zzz', 100)).items).toEqual([]);
  }, 120_000);

  it('s3ch list follows every page and prints each data source once, sorted by name', async () => {
    const requests: string[] = [];
    const cli = async (...argv: string[]) => {
      let stdout = '';
      let stderr = '';
      const code = await runCli(argv, {
        stdout: (t) => void (stdout += t),
        stderr: (t) => void (stderr += t),
        env: {},
        fetch: async (input, init) => {
          const url = new URL(input instanceof Request ? input.url : String(input));
          // Smaller pages than the CLI asks for, so it has to follow several cursors.
          if (url.searchParams.has('limit')) url.searchParams.set('limit', '30');
          requests.push(url.search);
          return c.app.request(url.pathname + url.search, init);
        },
      });
      return { code, stdout, stderr };
    };
    const json = await cli('list', '--json');
    expect(json.code, json.stderr).toBe(0);
    const listed = JSON.parse(json.stdout).items.map((d: { name: string }) => d.name);
    expect(listed).toEqual([...names].sort());
    expect(requests.length).toBe(Math.ceil(names.length / 30));

    const text = await cli('list', '--prefix', `${run}_b`, '--state', 'paused');
    expect(text.code, text.stderr).toBe(0);
    const rows = text.stdout.trim().split('\n');
    expect(rows).toHaveLength(2);
    expect(rows[1]).toMatch(new RegExp(`^${names[A + 1]}\\s+paused\\s`));

    const bad = await cli('list', '--state', 'sleeping');
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/^\s+state: /m);
  }, 60_000);

  it('bad limit, cursor, state or prefix: 400 naming the field, nothing listed', async () => {
    const field = async (query: string) => {
      const res = await c.request('GET', `/v1/datasources?${query}`);
      expect(res.status, `${query}: ${JSON.stringify(res.body)}`).toBe(400);
      expect(res.headers.get('content-type')).toContain('application/problem+json');
      return (res.body.errors as Array<{ field: string }>).map((e) => e.field);
    };
    expect(await field('limit=0')).toContain('limit');
    expect(await field('limit=1001')).toContain('limit');
    expect(await field('limit=ten')).toContain('limit');
    expect(await field('cursor=not%20a%20cursor')).toContain('cursor');
    expect(await field('cursor=%21%21%21')).toContain('cursor');
    // Well-formed base64url that is no page token of Temporal's.
    expect(await field(`cursor=${Buffer.from('{"garbage":true}').toString('base64url')}`)).toContain('cursor');
    expect(await field(`cursor=${'A'.repeat(5000)}`)).toContain('cursor');
    // A real cursor, replayed under other filters than the ones it pages.
    const first = await c.request('GET', `/v1/datasources?limit=1&prefix=${run}_b`);
    expect(first.body.nextCursor).toEqual(expect.any(String));
    expect(await field(`limit=1&prefix=${run}_a&cursor=${first.body.nextCursor}`)).toContain('cursor');
    const next = await c.request('GET', `/v1/datasources?limit=1&prefix=${run}_b&cursor=${first.body.nextCursor}`);
    expect(next.status).toBe(200);
    expect(next.body.items[0].name).not.toBe(first.body.items[0].name);
    expect(await field('state=sleeping')).toContain('state');
    expect(await field('prefix=Bad-Prefix')).toContain('prefix');
    expect(await field('color=red')).toContain('color');
  });
});
