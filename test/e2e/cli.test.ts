import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { S3Client } from '@aws-sdk/client-s3';
import { runCli } from '../../cli/s3ch.js';
import { createBucket, eventually, put, startTestConnector, testS3, uid, type TestConnector } from '../support/harness.js';

const root = fileURLToPath(new URL('../..', import.meta.url));

describe('s3ch CLI against the real stack (in-process API)', () => {
  let c: TestConnector;
  let s3: S3Client;
  let bucket: string;
  let dir: string;

  /** Run the CLI in-process; its fetch is routed to the Hono app, so no port is needed. */
  async function cli(...argv: string[]) {
    let stdout = '';
    let stderr = '';
    const code = await runCli(argv, {
      stdout: (s) => void (stdout += s),
      stderr: (s) => void (stderr += s),
      env: {},
      cwd: dir,
      fetch: async (input, init) => {
        const url = new URL(input instanceof Request ? input.url : String(input));
        return c.app.request(url.pathname + url.search, init);
      },
    });
    return { code, stdout, stderr };
  }

  beforeAll(async () => {
    c = await startTestConnector();
    s3 = testS3();
    bucket = await createBucket(s3);
    dir = await mkdtemp(join(tmpdir(), 's3ch-cli-'));
  });
  afterAll(async () => {
    await c?.stop();
    s3?.destroy();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('creates, syncs and waits, shows status, lists, pauses, resumes, lists files and deletes', async () => {
    const name = uid('cli');
    await put(s3, bucket, 'data/a.csv', 'ts,id,name\n2024-01-01 00:00:00,1,alpha\n2024-01-01 01:00:00,2,beta\n');
    await put(s3, bucket, 'data/b.csv', 'ts,id,name\n2024-02-01 00:00:00,3,gamma\n');
    await writeFile(
      join(dir, 'spec.json'),
      JSON.stringify({
        name,
        connection: 'local',
        bucketUri: `s3://${bucket}/data/*.csv`,
        format: 'csv',
        schedule: '@on-demand',
        columns: [
          { name: 'ts', type: 'DateTime' },
          { name: 'id', type: 'UInt64' },
          { name: 'name', type: 'String' },
        ],
        engine: { sortingKey: 'ts' },
      }),
    );

    const created = await cli('create', 'spec.json');
    expect(created.code, created.stderr).toBe(0);
    expect(created.stdout).toContain(`created ${name}`);

    const synced = await cli('sync', name, '--wait', '--timeout', '110');
    expect(synced.code, synced.stdout + synced.stderr).toBe(0);
    expect(synced.stdout).toMatch(/^run datasource:\S+ finished .* 2 found, 2 imported, 0 failed, 3 rows/m);
    expect(synced.stdout).toContain('success 2');

    const statusJson = await cli('status', name, '--json');
    expect(statusJson.code, statusJson.stderr).toBe(0);
    const ds = JSON.parse(statusJson.stdout);
    expect(ds.name).toBe(name);
    expect(ds.stats.files.success).toBe(2);
    expect(ds.stats.rows).toBe(3);

    const status = await cli('status', name);
    expect(status.code).toBe(0);
    expect(status.stdout).toMatch(/^state\s+idle$/m);
    expect(status.stdout).toMatch(/^files\s+success 2$/m);
    expect(status.stdout).toMatch(/^rows\s+3$/m);

    // Listing goes through the visibility store, which may lag a moment behind the start.
    const list = await eventually('list to show the data source', async () => {
      const r = await cli('list');
      return r.code === 0 && r.stdout.includes(name) ? r : null;
    });
    expect(list.stdout).toMatch(/^NAME\s+STATE/);

    const paused = await cli('pause', name);
    expect(paused.code, paused.stderr).toBe(0);
    expect(paused.stdout).toContain(`paused ${name}`);
    const statusPaused = await cli('status', name);
    expect(statusPaused.stdout).toMatch(/^state\s+paused$/m);

    const resumed = await cli('resume', name);
    expect(resumed.code, resumed.stderr).toBe(0);
    expect(resumed.stdout).toContain(`resumed ${name}`);
    await eventually('state to leave paused', async () => {
      const r = await cli('status', name, '--json');
      return r.code === 0 && JSON.parse(r.stdout).status.state !== 'paused';
    });

    const files = await cli('files', name, '--status', 'success');
    expect(files.code, files.stderr).toBe(0);
    expect(files.stdout).toMatch(/^KEY\s+STATUS/);
    expect(files.stdout).toMatch(/^data\/a\.csv\s+success\s+2\s/m);
    expect(files.stdout).toMatch(/^data\/b\.csv\s+success\s+1\s/m);
    const filesJson = await cli('files', name, '--search', 'b.csv', '--limit', '5', '--json');
    expect(JSON.parse(filesJson.stdout).items.map((f: { key: string }) => f.key)).toEqual(['data/b.csv']);

    const badFilter = await cli('files', name, '--status', 'bogus');
    expect(badFilter.code).toBe(1);
    expect(badFilter.stderr).toMatch(/^error: .*\n {2}status: /);

    const deleted = await cli('delete', name, '--drop-table');
    expect(deleted.code, deleted.stderr).toBe(0);
    expect(deleted.stdout).toContain(`deleted ${name} (table dropped`);
    const gone = await cli('status', name);
    expect(gone.code).toBe(1);
    expect(gone.stderr).toContain(`error: no data source named '${name}'`);
  });

  it('reports problems: unknown name, invalid spec, unknown command, missing name, unreachable API', async () => {
    const nope = await cli('status', 'nope');
    expect(nope.code).toBe(1);
    expect(nope.stderr).toMatch(/^error: no data source named 'nope'/);

    await writeFile(join(dir, 'bad.json'), JSON.stringify({ name: 'Bad Name', connection: 'local', bucketUri: `s3://${bucket}/x/*.csv` }));
    const bad = await cli('create', 'bad.json');
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/^error: .+\n/);
    expect(bad.stderr).toMatch(/^ {2}name: name must match/m);

    const unknown = await cli('frobnicate');
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toContain("unknown command 'frobnicate'");
    expect(unknown.stderr).toContain('Usage: s3ch <command>');

    const missing = await cli('pause');
    expect(missing.code).toBe(2);
    expect(missing.stderr).toContain('Usage: s3ch');

    let unreachableErr = '';
    const unreachable = await runCli(['list', '--api', 'http://127.0.0.1:9'], {
      stdout: () => undefined,
      stderr: (s) => void (unreachableErr += s),
      env: {},
      fetch: async () => {
        throw new TypeError('fetch failed', { cause: Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:9'), { code: 'ECONNREFUSED' }) });
      },
    });
    expect(unreachable).toBe(1);
    expect(unreachableErr).toContain('the API is not reachable at http://127.0.0.1:9');
    expect(unreachableErr).toContain('npm start');
  });

  it('runs as a real executable: node bin/s3ch.mjs --help', async () => {
    const { code, stdout } = await new Promise<{ code: number; stdout: string }>((resolve) => {
      execFile(process.execPath, [join(root, 'bin', 's3ch.mjs'), '--help'], { cwd: tmpdir(), timeout: 60_000 }, (err, stdout) => {
        resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout });
      });
    });
    expect(code).toBe(0);
    expect(stdout).toContain('Usage: s3ch <command>');
    expect(stdout).toContain('sync <name> [--wait]');
  });
});

/** `sync --wait` edge cases against a scripted API (no stack needed). */
describe('s3ch sync --wait against a scripted API', () => {
  const dsBody = (state: string, lastRun: Record<string, unknown> | null, extra: Record<string, unknown> = {}) => ({
    name: 'x', schedule: '@on-demand',
    status: { state, lastRunAt: null, nextRunAt: null, error: null, backlog: false, inFlight: [], ...extra },
    stats: { files: { success: 1, failure: 1 }, rows: 5, bytes: 10, quarantinedRows: 0 },
    lastRun,
  });
  const run = (over: Record<string, unknown>) => ({
    runId: 'datasource:x/1', trigger: 'sync', startedAt: new Date().toISOString(), finishedAt: null,
    filesFound: 2, filesImported: 1, filesFailed: 0, rows: 5, bytes: 10, ...over,
  });

  async function scripted(argv: string[], getDs: (n: number) => unknown, runs: () => unknown[] = () => [], tty = false) {
    let out = '';
    let err = '';
    let gets = 0;
    const code = await runCli(argv, {
      stdout: (s) => void (out += s),
      stderr: (s) => void (err += s),
      env: { S3CH_API_URL: 'http://api.test', S3CH_API_TOKEN: 'tok' },
      isTTY: tty,
      columns: 200,
      fetch: async (input, init) => {
        const url = new URL(String(input));
        expect(url.origin).toBe('http://api.test');
        expect(new Headers(init?.headers).get('authorization')).toBe('Bearer tok');
        const json = (status: number, body: unknown) => new Response(JSON.stringify(body), { status, headers: { 'content-type': 'application/json' } });
        if (init?.method === 'POST' && url.pathname === '/v1/datasources/x/sync') return json(202, { accepted: true });
        if (url.pathname === '/v1/datasources/x/runs') return json(200, { items: runs(), nextCursor: null });
        if (url.pathname === '/v1/datasources/x') return json(200, getDs(gets++));
        return json(404, { type: 'about:blank', title: 'Not Found', status: 404, detail: `no route for ${url.pathname}` });
      },
    });
    return { code, out, err };
  }

  it('follows the run on one redrawn line on a terminal and exits 1 when files failed', async () => {
    let started: Record<string, unknown> | null = null;
    const r = await scripted(['sync', 'x', '--wait'], (n) => {
      started ??= run({});
      if (n < 2) return dsBody('syncing', { ...started, filesImported: n }, { inFlight: [{ key: 'k', startedAt: started.startedAt }] });
      return dsBody('idle', { ...started, finishedAt: new Date().toISOString(), filesImported: 1, filesFailed: 1 });
    }, () => (started ? [{ ...started, finishedAt: new Date().toISOString(), filesImported: 1, filesFailed: 1 }] : []), true);
    expect(r.code).toBe(1);
    expect(r.out).toContain('\r\x1b[2Ksyncing x: 0/2 files, 5 rows, 1 in flight');
    expect(r.out).toMatch(/run datasource:x\/1 finished .*: 2 found, 1 imported, 1 failed, 5 rows/);
    expect(r.err).toContain('error: 1 file failed; see: s3ch files x --status failure');
  });

  it('ignores a run that started before the request', async () => {
    const old = run({ runId: 'datasource:x/1', startedAt: new Date(Date.now() - 60_000).toISOString(), finishedAt: new Date(Date.now() - 50_000).toISOString(), filesFailed: 3 });
    let fresh: Record<string, unknown> | null = null;
    const r = await scripted(['sync', 'x', '--wait'], (n) => {
      if (n < 2) return dsBody('idle', old);
      fresh ??= run({ runId: 'datasource:x/2', finishedAt: new Date().toISOString(), filesFound: 0, filesImported: 0 });
      return dsBody('idle', fresh);
    }, () => (fresh ? [fresh, old] : [old]));
    expect(r.code, r.err).toBe(0);
    expect(r.out).toContain('waiting for x to start a run (state: idle)\n');
    expect(r.out).toContain('run datasource:x/2 finished');
    expect(r.out).not.toContain('datasource:x/1');
  });

  it('gives up after --timeout, and at once when the data source is paused', async () => {
    const t = await scripted(['sync', 'x', '--wait', '--timeout', '1'], () => dsBody('idle', null));
    expect(t.code).toBe(1);
    expect(t.err).toContain("error: timed out after 1s waiting for the sync of 'x' to finish (state: idle, no run started yet)");

    const p = await scripted(['sync', 'x', '--wait'], () => dsBody('paused', null));
    expect(p.code).toBe(1);
    expect(p.err).toContain("error: data source 'x' is paused");
    expect(p.err).toContain('s3ch resume x');

    const bad = await scripted(['sync', 'x', '--wait', '--timeout', 'soon'], () => dsBody('idle', null));
    expect(bad.code).toBe(2);
  });
});
