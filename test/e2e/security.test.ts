import { afterAll, beforeAll, describe, expect, inject, it, vi } from 'vitest';
import { connect } from 'node:net';
import { networkInterfaces, tmpdir } from 'node:os';
import { join } from 'node:path';
import { rm, writeFile } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { inspect } from 'node:util';
import type { S3Client } from '@aws-sdk/client-s3';
import { WorkflowNotFoundError } from '@temporalio/client';
import { freePort } from '../../scripts/services.js';
import { envSchema } from '../../schemas/config.js';
import { parseTokens } from '../../api/auth.js';
import { startConnector, type Connector } from '../../worker/runtime.js';
import { createApp } from '../../api/app.js';
import { S3Connections } from '../../s3/connections.js';
import type { Destination } from '../../clickhouse/destination.js';
import { workflowIdFor } from '../../workflows/messages.js';
import { waitingOnNothing } from '../support/workflow-wait.js';
import {
  createBucket, eventually, minioConnection, processDestination, put, startTestConnector, testS3, uid, type TestConnector, expectProblem,
} from '../support/harness.js';

/**
 * Security through the real stack (Temporal dev server + MinIO + chDB):
 * bearer auth and read-only tokens, loopback binding without tokens, and
 * connection secrets that must never leave the worker/API configuration.
 * (Bad-input validation lives in bad-input.test.ts and unit/api-fuzz.test.ts.)
 */

type Res = Awaited<ReturnType<TestConnector['request']>>;


const columns = [
  { name: 'ts', type: 'DateTime' },
  { name: 'id', type: 'UInt64' },
  { name: 'v', type: 'String' },
];

describe('bearer auth: admin and read-only tokens', () => {
  let c: TestConnector;
  let s3: S3Client;
  let bucket: string;
  const ds = uid('auth');
  const A = { authorization: 'Bearer admin-tok' };
  const R = { authorization: 'Bearer read-tok' };

  beforeAll(async () => {
    c = await startTestConnector({ S3CH_API_TOKENS: 'admin-tok,ro:read-tok' });
    s3 = testS3();
    bucket = await createBucket(s3);
    const res = await c.request('POST', '/v1/datasources', {
      name: ds, connection: 'local', bucketUri: `s3://${bucket}/auth/*.csv`, format: 'csv', schedule: '@on-demand', columns, description: 'original',
    }, A);
    expect(res.status, JSON.stringify(res.body)).toBe(201);
    // The table exists once the workflow has prepared it.
    await eventually('the data source table', async () => (await c.request('POST', '/v1/sql', { query: `EXISTS TABLE ${ds}` }, A)).body?.data?.[0]?.result === 1);
  });
  afterAll(async () => {
    await c?.request('DELETE', `/v1/datasources/${ds}?dropTable=true&dropLedger=true`, undefined, A).catch(() => undefined);
    await c?.stop();
    s3?.destroy();
  });

  const runsOf = async (name: string) => {
    const r = await c.request('GET', `/v1/datasources/${name}/runs`, undefined, A);
    expect(r.status, JSON.stringify(r.body)).toBe(200);
    return r.body.items as Array<{ runId: string; trigger: string }>;
  };
  const s3Event = (key: string) => ({ Records: [{ eventName: 'ObjectCreated:Put', s3: { bucket: { name: bucket }, object: { key, size: 10, eTag: 'abc' } } }] });

  it('without a token: 401 problem+json on reads, writes and /v1/sql; /healthz needs none', async () => {
    for (const [method, path, body] of [
      ['GET', '/v1/datasources', undefined],
      ['POST', '/v1/datasources', { name: uid('nt'), connection: 'local', bucketUri: `s3://${bucket}/x/*.csv` }],
      ['POST', '/v1/sql', { query: 'SELECT 1' }],
      ['GET', `/v1/datasources/${ds}`, undefined],
      ['GET', '/v1/connections', undefined],
      ['GET', '/openapi.json', undefined],
    ] as const) {
      const res = await c.request(method, path, body);
      expectProblem(res, 401);
      expect(res.body.detail).toMatch(/Bearer/);
    }
    const health = await c.request('GET', '/healthz');
    expect(health.status, JSON.stringify(health.body)).toBe(200);
    expect(health.body.ok).toBe(true);
  });

  it.each<[what: string, header: Record<string, string>]>([
    ['an unknown token', { authorization: 'Bearer wrong-tok' }],
    ['a prefix of the admin token', { authorization: 'Bearer admin-to' }],
    ['the admin token with a suffix', { authorization: 'Bearer admin-tok2' }],
    ['the admin token in another case', { authorization: 'Bearer ADMIN-TOK' }],
    ['the read-only token written with its ro: prefix', { authorization: 'Bearer ro:read-tok' }],
    ['the token without the Bearer scheme', { authorization: 'admin-tok' }],
    ['Basic auth carrying the token', { authorization: `Basic ${Buffer.from('admin-tok:').toString('base64')}` }],
    ['Bearer without a token', { authorization: 'Bearer' }],
    ['two tokens', { authorization: 'Bearer admin-tok read-tok' }],
    ['the token in another header', { 'x-api-key': 'admin-tok' }],
  ])('%s → 401', async (_what, header) => {
    for (const [method, path, body] of [
      ['GET', '/v1/datasources', undefined],
      ['POST', `/v1/datasources/${ds}/pause`, undefined],
    ] as const) {
      const res = await c.request(method, path, body, header);
      expectProblem(res, 401);
    }
  });

  it('a token in the query string is not a credential', async () => {
    expectProblem(await c.request('GET', '/v1/datasources?access_token=admin-tok'), 401);
    expectProblem(await c.request('GET', '/v1/datasources?token=admin-tok'), 401);
  });

  it('a 401 carries WWW-Authenticate: Bearer', async () => {
    const res = await c.request('GET', '/v1/datasources');
    expect(res.status).toBe(401);
    expect(res.headers.get('www-authenticate') ?? '(none)').toMatch(/^Bearer\b/);
  });

  it('the Bearer scheme is case-insensitive and spaces around the token are ignored', async () => {
    for (const authorization of ['bearer admin-tok', 'BEARER admin-tok', 'BeArEr admin-tok', 'Bearer    admin-tok   ', '  Bearer admin-tok', 'Bearer\tadmin-tok']) {
      const res = await c.request('GET', '/v1/datasources', undefined, { authorization });
      expect(res.status, `${JSON.stringify(authorization)}: ${JSON.stringify(res.body)}`).toBe(200);
    }
    // The read-only token likewise; and it stays read-only however it is written.
    for (const authorization of ['bearer read-tok', 'Bearer   read-tok  ']) {
      expect((await c.request('GET', `/v1/datasources/${ds}`, undefined, { authorization })).status).toBe(200);
      expectProblem(await c.request('POST', `/v1/datasources/${ds}/sync`, undefined, { authorization }), 403);
    }
  });

  it('the read-only token reads: lists, details, files, runs, quarantine, connections, the contract and /v1/sql', async () => {
    for (const path of [
      '/v1/datasources', `/v1/datasources/${ds}`, `/v1/datasources/${ds}/files`, `/v1/datasources/${ds}/files/history?key=x.csv`,
      `/v1/datasources/${ds}/runs`, `/v1/datasources/${ds}/quarantine`, '/v1/connections', '/openapi.json',
    ]) {
      const res = await c.request('GET', path, undefined, R);
      expect(res.status, `${path}: ${JSON.stringify(res.body)}`).toBe(200);
    }
    const list = await c.request('GET', '/v1/datasources', undefined, R);
    expect(list.body.items.map((d: { name: string }) => d.name)).toContain(ds);
    const q = await c.request('POST', '/v1/sql', { query: `SELECT count() AS n FROM ${ds}` }, R);
    expect(q.status, JSON.stringify(q.body)).toBe(200);
    expect(q.body.rows).toBe(1);
    // Preview and connection checks read any bucket a connection reaches: admin only (auth-scope.test.ts).
    expectProblem(await c.request('POST', '/v1/preview', { connection: 'local', bucketUri: `s3://${bucket}/auth/*.csv`, format: 'csv' }, R), 403);
    // /v1/sql stays read-only with the read-only token too.
    const write = await c.request('POST', '/v1/sql', { query: `INSERT INTO ${ds} (ts, id, v) VALUES (now(), 1, 'x')` }, R);
    expectProblem(write, 400);
  });

  it('the read-only token changes nothing: every mutating route → 403', async () => {
    await put(s3, bucket, 'auth/a.csv', 'ts,id,v\n2024-01-01 00:00:00,1,a\n');
    const before = await c.request('GET', `/v1/datasources/${ds}`, undefined, A);
    expect(before.status).toBe(200);
    const runsBefore = (await runsOf(ds)).length;

    const newName = uid('ro');
    const attempts: Array<[string, string, unknown]> = [
      ['POST', '/v1/datasources', { name: newName, connection: 'local', bucketUri: `s3://${bucket}/ro/*.csv`, format: 'csv', schedule: '@on-demand', columns }],
      ['POST', `/v1/datasources?name=${newName}`, 'SCHEMA >\n    `a` String\n'],
      ['PATCH', `/v1/datasources/${ds}`, { description: 'changed by ro', schedule: '@every 1s' }],
      ['DELETE', `/v1/datasources/${ds}?dropTable=true&dropLedger=true`, undefined],
      ['POST', `/v1/datasources/${ds}/sync`, undefined],
      ['POST', `/v1/datasources/${ds}/pause`, undefined],
      ['POST', `/v1/datasources/${ds}/resume`, undefined],
      ['POST', `/v1/datasources/${ds}/retry`, undefined],
      ['POST', `/v1/datasources/${ds}/retry`, { keys: ['auth/a.csv'] }],
      ['POST', `/v1/datasources/${ds}/notify`, s3Event('auth/a.csv')],
      ['POST', '/v1/notify', s3Event('auth/a.csv')],
    ];
    for (const [method, path, body] of attempts) {
      const res = await c.request(method, path, body, R);
      expectProblem(res, 403);
      expect(res.body.detail).toMatch(/read-only/);
    }
    // Variants of method and path must not slip past the check either.
    for (const [method, path] of [
      ['PUT', `/v1/datasources/${ds}`],
      ['POST', `/v1/datasources/${ds}/sync/`],
      ['POST', `//v1/datasources/${ds}/sync`],
      ['POST', `/V1/datasources/${ds}/sync`],
      ['POST', `/v1/datasources/${ds}/sync?next=/v1/sql`],
      ['POST', `/v1/sql/../datasources/${ds}/sync`],
      ['POST', `/v1/preview/../datasources/${ds}/pause`],
      ['POST', `/healthz/../v1/datasources/${ds}/sync`],
    ] as const) {
      const res = await c.request(method, path, undefined, R);
      expect([403, 404], `${method} ${path}: ${res.status} ${JSON.stringify(res.body)}`).toContain(res.status);
    }

    // Nothing happened: no new data source, same spec, not paused, no run, table intact.
    expectProblem(await c.request('GET', `/v1/datasources/${newName}`, undefined, A), 404);
    await expect(c.client.workflow.getHandle(workflowIdFor(newName)).describe()).rejects.toBeInstanceOf(WorkflowNotFoundError);
    // Signals are asynchronous: once the workflow has nothing left to handle or run, a wrongly accepted one would have acted.
    await eventually('the workflow to have nothing left to do', () => waitingOnNothing(c.client.workflow.getHandle(workflowIdFor(ds))), 30_000, 100);
    const after = await c.request('GET', `/v1/datasources/${ds}`, undefined, A);
    expect(after.status).toBe(200);
    expect(after.body.description).toBe('original');
    expect(after.body.schedule).toBe('@on-demand');
    expect(after.body.status.state).toBe(before.body.status.state);
    expect(after.body.status.state).not.toBe('paused');
    expect(after.body.stats.files).toEqual(before.body.stats.files);
    expect((await runsOf(ds)).length).toBe(runsBefore);
    const exists = await c.request('POST', '/v1/sql', { query: `EXISTS TABLE ${ds}` }, A);
    expect(exists.body.data).toEqual([{ result: 1 }]);
  });

  // Found by this file: the patch schema fills zod defaults (format, compression, schedule, mode), which
  // used to overwrite the spec (schedule silently became '@auto'; after an import: 409 "needs force").
  it('PATCH changes only the fields it names', async () => {
    const other = uid('pt');
    const created = await c.request('POST', '/v1/datasources', { name: other, connection: 'local', bucketUri: `s3://${bucket}/pt/*.csv`, format: 'csv', schedule: '@on-demand', mode: 'ordered' }, A);
    expect(created.status, JSON.stringify(created.body)).toBe(201);
    try {
      const patched = await c.request('PATCH', `/v1/datasources/${other}`, { description: 'only this' }, A);
      expect(patched.status, JSON.stringify(patched.body)).toBe(200);
      expect(patched.body).toMatchObject({ description: 'only this', format: 'csv', schedule: '@on-demand', mode: 'ordered' });
    } finally {
      await c.request('DELETE', `/v1/datasources/${other}?dropTable=true&dropLedger=true`, undefined, A);
    }
  });

  it('the admin token does everything', async () => {
    const patched = await c.request('PATCH', `/v1/datasources/${ds}`, { description: 'changed by admin' }, A);
    expect(patched.status, JSON.stringify(patched.body)).toBe(200);
    expect(patched.body.description).toBe('changed by admin');

    expect((await c.request('POST', `/v1/datasources/${ds}/sync`, undefined, A)).status).toBe(202);
    await eventually('the admin sync to import a.csv', async () => {
      const r = await c.request('GET', `/v1/datasources/${ds}`, undefined, A);
      return r.body.stats?.files?.success === 1 && r.body.status.state !== 'syncing';
    });

    const paused = await c.request('POST', `/v1/datasources/${ds}/pause`, undefined, A);
    expect(paused.status, JSON.stringify(paused.body)).toBe(200);
    expect(paused.body.state).toBe('paused');
    const resumed = await c.request('POST', `/v1/datasources/${ds}/resume`, undefined, A);
    expect(resumed.status, JSON.stringify(resumed.body)).toBe(200);
    expect(resumed.body.state).not.toBe('paused');

    expect((await c.request('POST', `/v1/datasources/${ds}/retry`, undefined, A)).status).toBe(202);
    const notified = await c.request('POST', `/v1/datasources/${ds}/notify`, s3Event('auth/b.csv'), A);
    expect(notified.status, JSON.stringify(notified.body)).toBe(202);
    expect(notified.body).toEqual({ accepted: 1, ignored: 0 });
    expect((await c.request('POST', '/v1/notify', { Records: [] }, A)).status).toBe(202);
    const check = await c.request('POST', '/v1/connections/local/check', { bucketUri: `s3://${bucket}/auth/*.csv` }, A);
    expect(check.status, JSON.stringify(check.body)).toBe(200);
    expect(check.body.ok).toBe(true);

    const other = uid('adm');
    const created = await c.request('POST', '/v1/datasources', { name: other, connection: 'local', bucketUri: `s3://${bucket}/adm/*.csv`, schedule: '@on-demand' }, A);
    expect(created.status, JSON.stringify(created.body)).toBe(201);
    const deleted = await c.request('DELETE', `/v1/datasources/${other}?dropTable=true&dropLedger=true`, undefined, A);
    expect(deleted.status, JSON.stringify(deleted.body)).toBe(200);
    await eventually(`${other} to be gone`, async () => (await c.request('GET', `/v1/datasources/${other}`, undefined, A)).status === 404);
  });
});

describe('parseTokens and how the app uses them', () => {
  /** The app over inert dependencies: enough to see what the auth middleware lets through. */
  function appWith(spec: string) {
    const inert = new Proxy({}, { get: () => { throw new Error('not used by these requests'); } });
    return createApp({
      temporal: inert as never, taskQueue: 'q', searchAttributes: false,
      destination: { kind: 'server', database: 'default', client: inert, imports: inert, reader: inert } as unknown as Destination,
      s3: new S3Connections(new Map()), tokens: parseTokens(spec),
    });
  }
  const status = async (app: ReturnType<typeof appWith>, method: string, path: string, authorization?: string) => {
    const res = await app.request(path, { method, headers: { 'content-type': 'application/json', ...(authorization ? { authorization } : {}) }, ...(method === 'GET' ? {} : { body: '{}' }) });
    return res.status;
  };

  it('splits on commas, trims, drops empty entries; ro: = read-only, notify: = notify only, admin: or no prefix = admin', () => {
    expect(parseTokens('')).toEqual({ admin: [], readOnly: [], notify: [], required: false });
    expect(parseTokens(' , ,, ')).toEqual({ admin: [], readOnly: [], notify: [], required: false });
    expect(parseTokens('admin-tok,ro:read-tok')).toEqual({ admin: ['admin-tok'], readOnly: ['read-tok'], notify: [], required: true });
    expect(parseTokens(' a , ro:b ,, admin:c ,ro:d, notify:e')).toEqual({ admin: ['a', 'c'], readOnly: ['b', 'd'], notify: ['e'], required: true });
    // Only a leading prefix counts; the rest of the token is kept verbatim.
    expect(parseTokens('ro:ro:x,admin:ro:y,xro:z,notify:ro:w')).toEqual({ admin: ['ro:y', 'xro:z'], readOnly: ['ro:x'], notify: ['ro:w'], required: true });
    // Entries that are empty after their prefix let nobody in, but still switch auth on.
    expect(parseTokens('ro:,admin:,notify:')).toEqual({ admin: [], readOnly: [], notify: [], required: true });
  });

  it('no tokens = no auth; any token = auth on every route but /healthz', async () => {
    const open = appWith('');
    expect(await status(open, 'GET', '/v1/connections')).toBe(200);
    const closed = appWith('adm,ro:rd');
    expect(await status(closed, 'GET', '/v1/connections')).toBe(401);
    expect(await status(closed, 'GET', '/v1/connections', 'Bearer rd')).toBe(200);
    expect(await status(closed, 'GET', '/v1/connections', 'Bearer adm')).toBe(200);
    // A write: the read-only token is stopped before validation, the admin token reaches it (400 for `{}`).
    expect(await status(closed, 'POST', '/v1/datasources', 'Bearer rd')).toBe(403);
    expect(await status(closed, 'POST', '/v1/datasources', 'Bearer adm')).toBe(400);
    // /v1/sql is a read even though it is a POST; preview reads objects from any bucket: admin only.
    expect(await status(closed, 'POST', '/v1/sql', 'Bearer rd')).toBe(400);
    expect(await status(closed, 'POST', '/v1/preview', 'Bearer rd')).toBe(403);
    expect(await status(closed, 'POST', '/v1/preview', 'Bearer adm')).toBe(400);
  });

  it('an empty token after a prefix authenticates nobody', async () => {
    const app = appWith('ro:,admin:,notify:');
    for (const authorization of [undefined, 'Bearer', 'Bearer ', 'Bearer  ', 'Bearer ""', "Bearer ''"]) {
      expect(await status(app, 'GET', '/v1/connections', authorization), String(authorization)).toBe(401);
      expect(await status(app, 'POST', '/v1/datasources', authorization), String(authorization)).toBe(401);
    }
  });

  it('spaces after the ro:/admin:/notify: prefix are not part of the token', async () => {
    expect(parseTokens('admin: adm , ro: rd, notify: nf')).toEqual({ admin: ['adm'], readOnly: ['rd'], notify: ['nf'], required: true });
    expect(await status(appWith('ro: rd'), 'GET', '/v1/connections', 'Bearer rd')).toBe(200);
  });
});

describe('startConnector binds to loopback when there are no tokens', () => {
  const started: Connector[] = [];
  afterAll(async () => {
    for (const conn of started) await conn.stop().catch(() => undefined);
  });

  const externalIPv4 = () => Object.values(networkInterfaces()).flat().find((i) => i && i.family === 'IPv4' && !i.internal)?.address;
  /** Resolves when a TCP connection to host:port opens; rejects with the socket error otherwise. */
  const tcpOpen = (host: string, port: number) =>
    new Promise<void>((resolve, reject) => {
      const s = connect({ host, port });
      s.setTimeout(3000, () => s.destroy(new Error('timeout')));
      s.once('connect', () => { s.destroy(); resolve(); });
      s.once('error', reject);
    });

  async function start(env: Record<string, string>) {
    const conn = await startConnector({
      env: envSchema.parse({ TEMPORAL_TASK_QUEUE: uid('tq'), ...env }),
      connections: new Map([['local', minioConnection()]]),
      temporalAddress: inject('temporalAddress'),
      runWorker: false,
      serveApi: true,
      destination: await processDestination(),
    });
    started.push(conn);
    return conn;
  }

  it('HOST=0.0.0.0 without tokens serves on 127.0.0.1 only, with a warning', async () => {
    const port = await freePort();
    const warn = vi.spyOn(console, 'warn');
    let conn!: Connector;
    try {
      conn = await start({ HOST: '0.0.0.0', PORT: String(port), S3CH_API_TOKENS: '' });
      expect(warn).toHaveBeenCalledWith(expect.stringMatching(/no S3CH_API_TOKENS configured: binding to 127\.0\.0\.1 instead of 0\.0\.0\.0/));
    } finally {
      warn.mockRestore();
    }
    expect(conn.apiUrl).toBe(`http://127.0.0.1:${port}`);
    const health = await fetch(`${conn.apiUrl}/healthz`);
    expect(health.status).toBe(200);
    // Not reachable on the machine's other interfaces.
    const ext = externalIPv4();
    if (ext) await expect(tcpOpen(ext, port)).rejects.toMatchObject({ code: 'ECONNREFUSED' });
    await conn.stop();
  });

  it('HOST=0.0.0.0 with tokens serves on every interface, without the warning, and asks for a token', async () => {
    const port = await freePort();
    const warn = vi.spyOn(console, 'warn');
    let conn!: Connector;
    try {
      conn = await start({ HOST: '0.0.0.0', PORT: String(port), S3CH_API_TOKENS: 'adm' });
      expect(warn.mock.calls.filter((args) => /S3CH_API_TOKENS/.test(String(args[0])))).toEqual([]);
    } finally {
      warn.mockRestore();
    }
    const ext = externalIPv4();
    if (ext) {
      await tcpOpen(ext, port);
      expect((await fetch(`http://${ext}:${port}/v1/datasources`)).status).toBe(401);
      expect((await fetch(`http://${ext}:${port}/healthz`)).status).toBe(200);
    }
    await conn.stop();
  });

  it('other non-loopback hosts without tokens (::, an interface address) are moved to 127.0.0.1 too', async () => {
    for (const host of ['::', externalIPv4()].filter((h): h is string => Boolean(h))) {
      const port = await freePort();
      const warn = vi.spyOn(console, 'warn').mockImplementation(() => undefined);
      let conn!: Connector;
      try {
        conn = await start({ HOST: host, PORT: String(port) });
        expect(warn).toHaveBeenCalledWith(expect.stringContaining(`instead of ${host}`));
      } finally {
        warn.mockRestore();
      }
      expect(conn.apiUrl).toBe(`http://127.0.0.1:${port}`);
      expect((await fetch(`${conn.apiUrl}/healthz`)).status).toBe(200);
      await conn.stop();
    }
  });

  it('with tokens and HOST=:: the apiUrl is a reachable URL', async () => {
    const port = await freePort();
    const conn = await start({ HOST: '::', PORT: String(port), S3CH_API_TOKENS: 'adm' });
    try {
      const url = new URL('/healthz', conn.apiUrl!);
      expect((await fetch(url)).status).toBe(200);
    } finally {
      await conn.stop();
    }
  });
});

describe('connection secrets never leave the configuration', () => {
  let c: TestConnector;
  let s3: S3Client;
  let bucket: string;
  const name = uid('sec');
  // The secret actually in use by `secretconn` (and valid for MinIO): it must show up nowhere.
  const marker = inject('minioPassword');
  const responses: string[] = [];
  const spies: Array<{ what: string; spy: { mock: { calls: unknown[][] }; mockRestore(): void } }> = [];

  beforeAll(async () => {
    expect(marker.length).toBeGreaterThanOrEqual(8);
    // Everything the process prints from here on.
    for (const stream of ['stdout', 'stderr'] as const) spies.push({ what: stream, spy: vi.spyOn(process[stream], 'write') });
    for (const m of ['log', 'info', 'warn', 'error', 'debug', 'trace'] as const) spies.push({ what: `console.${m}`, spy: vi.spyOn(console, m) });
    c = await startTestConnector({}, { secretconn: { ...minioConnection() } });
    const request = c.request.bind(c);
    c.request = async (method, path, body, headers) => {
      const res = await request(method, path, body, headers);
      responses.push(`${method} ${path} -> ${res.status} ${[...res.headers].map(([k, v]) => `${k}: ${v}`).join('; ')}\n${typeof res.body === 'string' ? res.body : JSON.stringify(res.body)}`);
      return res;
    };
    s3 = testS3();
    bucket = await createBucket(s3);
  });
  afterAll(async () => {
    for (const { spy } of spies) spy.mockRestore();
    await c?.destination.client.command({ query: `DROP TABLE IF EXISTS ${name}` }).catch(() => undefined);
    await c?.destination.client.command({ query: `DROP TABLE IF EXISTS ${name}_quarantine` }).catch(() => undefined);
    await c?.stop();
    s3?.destroy();
  });

  const printed = () =>
    spies.flatMap(({ what, spy }) =>
      spy.mock.calls.map((args) => `${what}: ${args.map((a) => (typeof a === 'string' ? a : a instanceof Uint8Array ? Buffer.from(a).toString('utf8') : inspect(a, { depth: 12, showHidden: true }))).join(' ')}`),
    );

  /** Every string in a Temporal history, with every payload's bytes decoded; and each payload's size. */
  function decodeHistory(history: unknown): { texts: string[]; payloadSizes: number[] } {
    const texts: string[] = [];
    const payloadSizes: number[] = [];
    const seen = new Set<object>();
    const walk = (v: unknown, key?: string) => {
      if (v === null || v === undefined) return;
      if (typeof v === 'string') {
        texts.push(v);
        if (key === 'data' && /^[A-Za-z0-9+/=\s]+$/.test(v)) texts.push(Buffer.from(v, 'base64').toString('utf8'));
        return;
      }
      if (v instanceof Uint8Array) {
        texts.push(Buffer.from(v).toString('utf8'));
        return;
      }
      if (typeof v !== 'object' || seen.has(v)) return;
      seen.add(v);
      const o = v as Record<string, unknown>;
      if ('data' in o && 'metadata' in o && (o.data instanceof Uint8Array || typeof o.data === 'string')) {
        payloadSizes.push(o.data instanceof Uint8Array ? o.data.length : Buffer.from(o.data as string, 'base64').length);
      }
      for (const [k, x] of Object.entries(o)) walk(x, k);
    };
    walk(history);
    return { texts, payloadSizes };
  }

  async function settled(what: string, done: (body: any) => boolean) {
    return eventually(what, async () => {
      const r = await c.request('GET', `/v1/datasources/${name}`);
      return r.status === 200 && r.body.status.state !== 'syncing' && done(r.body) ? r.body : null;
    });
  }

  it('a full lifecycle on a static-key connection leaks the secret nowhere', async () => {
    // GET /v1/connections: kind and endpoint, no key material.
    const conns = await c.request('GET', '/v1/connections');
    expect(conns.status).toBe(200);
    const secretconn = conns.body.items.find((i: { name: string }) => i.name === 'secretconn');
    expect(secretconn).toEqual({ name: 'secretconn', kind: 'static', region: 'us-east-1', endpoint: inject('minioEndpoint'), forcePathStyle: true, sqsQueueUrl: null });
    for (const item of conns.body.items) expect(Object.keys(item).sort()).toEqual(['endpoint', 'forcePathStyle', 'kind', 'name', 'region', 'sqsQueueUrl']);

    // Two good CSV files (one row of which is quarantined) and one bad file.
    await put(s3, bucket, 'sec/a.csv', 'ts,id,v\n2024-01-01 00:00:00,1,a\n2024-01-01 00:00:01,2,b\n');
    await put(s3, bucket, 'sec/b.csv', 'ts,id,v\n2024-01-01 00:00:02,3,c\nnot-a-date,4,d\n');
    await put(s3, bucket, 'sec/bad.csv.gz', 'this is not gzip at all\n');
    const created = await c.request('POST', '/v1/datasources', {
      name, connection: 'secretconn', bucketUri: `s3://${bucket}/sec/*`, format: 'csv', schedule: '@on-demand', columns,
    });
    expect(created.status, JSON.stringify(created.body)).toBe(201);
    expect((await c.request('POST', `/v1/datasources/${name}/sync`)).status).toBe(202);
    const afterSync = await settled('2 files imported and 1 failed', (b) => b.stats.files.success === 2 && b.stats.files.failure === 1);
    expect(afterSync.stats.quarantinedRows).toBe(1);
    expect((await c.request('GET', `/v1/datasources/${name}/files`)).status).toBe(200);
    expect((await c.request('GET', `/v1/datasources/${name}/files?status=failure`)).body.items.map((f: { key: string }) => f.key)).toEqual(['sec/bad.csv.gz']);
    expect((await c.request('GET', `/v1/datasources/${name}/files/history?key=sec/bad.csv.gz`)).status).toBe(200);
    const quarantine = await c.request('GET', `/v1/datasources/${name}/quarantine`);
    expect(quarantine.body.items).toHaveLength(1);

    // Pause, resume, retry the failed file (it fails again).
    const paused = await c.request('POST', `/v1/datasources/${name}/pause`);
    expect(paused.status, JSON.stringify(paused.body)).toBe(200);
    expect(paused.body.state).toBe('paused');
    const resumed = await c.request('POST', `/v1/datasources/${name}/resume`);
    expect(resumed.status, JSON.stringify(resumed.body)).toBe(200);
    const runsBefore = (await c.request('GET', `/v1/datasources/${name}/runs`)).body.items.length;
    expect((await c.request('POST', `/v1/datasources/${name}/retry`)).status).toBe(202);
    await eventually('the retry run', async () => (await c.request('GET', `/v1/datasources/${name}/runs`)).body.items.length > runsBefore);
    await settled('the retry to settle', (b) => b.stats.files.failure === 1);
    // After files were imported: a PATCH that does not touch bucketUri or format needs no force.
    const patched = await c.request('PATCH', `/v1/datasources/${name}`, { description: 'patched' });
    expect(patched.status, JSON.stringify(patched.body)).toBe(200);

    // A connection check that fails: the bucket does not exist.
    const check = await c.request('POST', '/v1/connections/secretconn/check', { bucketUri: `s3://${uid('missing').replace(/_/g, '-')}/x/*.csv` });
    expect(check.status, JSON.stringify(check.body)).toBe(200);
    expect(check.body.ok).toBe(false);
    expect(check.body.error).toMatch(/NoSuchBucket|does not exist/);

    // Delete (keeping the table, quarantine and ledger to inspect them).
    const runId = (await c.client.workflow.getHandle(workflowIdFor(name)).describe()).runId;
    expect((await c.request('DELETE', `/v1/datasources/${name}`)).status).toBe(200);
    await eventually(`${name} to be gone`, async () => (await c.request('GET', `/v1/datasources/${name}`)).status === 404);
    expect((await c.request('GET', '/openapi.json')).status).toBe(200);

    // Temporal: every run of the workflow, every event, every payload decoded.
    const id = workflowIdFor(name);
    const runIds = new Set<string>([runId]);
    await eventually('the workflow in visibility', async () => {
      for await (const wf of c.client.workflow.list({ query: `WorkflowId = '${id}'` })) runIds.add(wf.runId);
      return runIds.size > 0;
    });
    const histories = await Promise.all([...runIds].map((r) => c.client.workflow.getHandle(id, r).fetchHistory()));
    const decoded = decodeHistory(histories);
    const historyText = `${JSON.stringify(histories)}\n${decoded.texts.join('\n')}`;
    // The decoding works: the spec and the file keys are in there.
    expect(historyText).toContain(`s3://${bucket}/sec/*`);
    expect(historyText).toContain('secretconn');
    expect(historyText).toContain('sec/bad.csv.gz');
    expect(decoded.payloadSizes.length).toBeGreaterThan(10);
    // Activity inputs and results stay small: no payload over 64 KiB.
    expect(Math.max(...decoded.payloadSizes)).toBeLessThanOrEqual(64 * 1024);

    // ClickHouse: ledger, runs, per-file rows, the table and its quarantine (and the query log when there is one).
    // Forward slashes unescaped, so that texts are searched as they are.
    const dump = async (query: string) => (await c.destination.client.query({ query: `${query} SETTINGS output_format_json_escape_forward_slashes = 0`, format: 'JSONEachRow' })).text();
    const ledger = await dump(`SELECT * FROM s3ch_file_events WHERE datasource = '${name}'`);
    expect(ledger).toContain('sec/bad.csv.gz');
    expect(ledger).toMatch(/"status":"failure"/);
    const runs = await dump(`SELECT * FROM s3ch_runs WHERE datasource = '${name}'`);
    expect(runs.trim().split('\n').length).toBeGreaterThanOrEqual(2);
    const fileRows = await dump(`SELECT * FROM s3ch_file_rows WHERE datasource = '${name}'`);
    const table = await dump(`SELECT * FROM ${name}`);
    expect(table.trim().split('\n')).toHaveLength(3);
    const quarantined = await dump(`SELECT * FROM ${name}_quarantine`);
    expect(quarantined).toContain('not-a-date');
    const queryLog = await dump('SELECT query, exception FROM system.query_log').catch(() => '');

    const places: Record<string, string> = {
      'API responses': responses.join('\n'),
      'Temporal history': historyText,
      'ledger (s3ch_file_events)': ledger,
      's3ch_runs': runs,
      's3ch_file_rows': fileRows,
      'target table': table,
      'quarantine table': quarantined,
      'system.query_log': queryLog,
      'stdout/stderr/console': printed().join('\n'),
    };
    expect(responses.length).toBeGreaterThan(15);
    // The capture works: the worker's log of the failed file went through it.
    expect(places['stdout/stderr/console']).toContain('bad.csv.gz');
    const b64 = Buffer.from(marker).toString('base64');
    for (const [where, text] of Object.entries(places)) {
      // Not printed with expect(text).not.toContain(marker): a failure must not print the secret either.
      expect(text.includes(marker), `the secret appears in ${where}`).toBe(false);
      expect(text.includes(b64), `the base64 secret appears in ${where}`).toBe(false);
    }
  });
});

describe('engine expressions cannot read local files', () => {
  let c: TestConnector;
  let s3: S3Client;
  let bucket: string;
  const secretPath = join(tmpdir(), `s3ch-local-secret-${randomBytes(4).toString('hex')}.txt`);
  const secret = `LOCAL-FILE-SECRET-${randomBytes(8).toString('hex')}`;

  beforeAll(async () => {
    await writeFile(secretPath, `${secret}\n`);
    c = await startTestConnector();
    s3 = testS3();
    bucket = await createBucket(s3);
  });
  afterAll(async () => {
    await rm(secretPath, { force: true });
    await c?.stop();
    s3?.destroy();
  });

  const spec = (engine: Record<string, string>, withColumns = true) => ({
    name: uid('fx'), connection: 'local', bucketUri: `s3://${bucket}/fx/*.csv`, format: 'csv', schedule: '@on-demand',
    ...(withColumns ? { columns: [{ name: 'ts', type: 'DateTime' }] } : {}), engine,
  });

  it('sortingKey with file(): rejected, and the content of the file is not in the answer', async () => {
    const res = await c.request('POST', '/v1/datasources', spec({ sortingKey: `toUInt8(file('${secretPath}'))` }));
    expect(res.status).toBe(400);
    expect(JSON.stringify(res.body).includes(secret), 'the local file content is in the response').toBe(false);
  });

  it('ttl with file(): rejected, and the content of the file is not in the answer', async () => {
    const res = await c.request('POST', '/v1/datasources', spec({ sortingKey: 'ts', ttl: `ts + toIntervalDay(toUInt8(file('${secretPath}')))` }));
    expect(res.status).toBe(400);
    expect(JSON.stringify(res.body).includes(secret), 'the local file content is in the response').toBe(false);
  });

  it('a non-deterministic file() in the key is refused without content', async () => {
    const res = await c.request('POST', '/v1/datasources', spec({ sortingKey: `(ts, file('${secretPath}'))` }));
    expectProblem(res, 400);
    expect(JSON.stringify(res.body).includes(secret)).toBe(false);
  });

  it('without columns (no dry run): the content of the file never reaches the API', async () => {
    await put(s3, bucket, 'fx/a.csv', 'ts\n2024-01-01 00:00:00\n');
    const body = spec({ sortingKey: `toUInt8(file('${secretPath}'))` }, false);
    const res = await c.request('POST', '/v1/datasources', body);
    const texts = [JSON.stringify(res.body)];
    if (res.status === 201) {
      await c.request('POST', `/v1/datasources/${body.name}/sync`);
      const view = await eventually(`${body.name} to finish its first run`, async () => {
        const r = await c.request('GET', `/v1/datasources/${body.name}`);
        return r.status === 200 && r.body.status.state !== 'syncing' && (r.body.status.error || r.body.lastRun?.finishedAt) ? r.body : null;
      }, 90_000);
      texts.push(JSON.stringify(view));
      for (const p of ['files', 'runs']) texts.push(JSON.stringify((await c.request('GET', `/v1/datasources/${body.name}/${p}`)).body));
      await c.request('DELETE', `/v1/datasources/${body.name}?dropTable=true&dropLedger=true`);
    }
    expect(texts.join('\n').includes(secret), 'the local file content reached the API').toBe(false);
  });
});
