import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { request as httpRequest } from 'node:http';
import type { S3Client } from '@aws-sdk/client-s3';
import { WorkflowNotFoundError } from '@temporalio/client';
import { freePort } from '../../scripts/services.js';
import { envSchema, loadEnv, ConfigError } from '../../schemas/config.js';
import { parseTokens } from '../../api/auth.js';
import { startConnector, type Connector } from '../../worker/runtime.js';
import { callApp, createApp } from '../../api/app.js';
import { workflowIdFor } from '../../workflows/messages.js';
import { waitingOnNothing } from '../support/workflow-wait.js';
import {
  createBucket, eventually, minioConnection, processDestination, put, startTestConnector, testS3, uid, type TestConnector, expectProblem,
} from '../support/harness.js';

/**
 * Who may call what, attacked through the real stack (Temporal dev server +
 * MinIO + chDB): a browser reaching the token-less API (foreign Host names,
 * cross-origin writes), notify-only tokens and SNS subscriptions, keys named
 * by callers that lie outside a data source's glob, and the reach of
 * read-only tokens (preview, connection checks) and of preview itself.
 */

type Res = Awaited<ReturnType<TestConnector['request']>>;


const columns = [
  { name: 'ts', type: 'DateTime' },
  { name: 'id', type: 'UInt64' },
  { name: 'v', type: 'String' },
];
const csv = (id: number) => `ts,id,v\n2024-01-01 00:00:00,${id},x\n`;
const s3Event = (bucket: string, ...keys: string[]) => ({
  Records: keys.map((key) => ({ eventName: 'ObjectCreated:Put', s3: { bucket: { name: bucket }, object: { key, size: 10, eTag: 'abc' } } })),
});

async function rowCount(c: TestConnector, table: string, headers?: Record<string, string>): Promise<number> {
  const r = await c.request('POST', '/v1/sql', { query: `SELECT count() AS n FROM ${table}` }, headers);
  expect(r.status, JSON.stringify(r.body)).toBe(200);
  return Number(r.body.data[0].n);
}

/** Wait until the data source's workflow has nothing left to run: from then on a wrongly accepted request would have acted. */
const settle = (c: TestConnector, name: string) =>
  eventually(`${name} to have nothing left to do`, () => waitingOnNothing(c.client.workflow.getHandle(workflowIdFor(name))), 30_000, 100);

describe('without tokens: a browser cannot use the API', () => {
  let c: TestConnector;
  let s3: S3Client;
  let bucket: string;
  const ds = uid('nt');

  beforeAll(async () => {
    c = await startTestConnector();
    s3 = testS3();
    bucket = await createBucket(s3);
    const res = await c.request('POST', '/v1/datasources', { name: ds, connection: 'local', bucketUri: `s3://${bucket}/nt/*.csv`, format: 'csv', schedule: '@on-demand', columns });
    expect(res.status, JSON.stringify(res.body)).toBe(201);
  });
  afterAll(async () => {
    await c?.request('DELETE', `/v1/datasources/${ds}?dropTable=true&dropLedger=true`).catch(() => undefined);
    await c?.stop();
    s3?.destroy();
  });

  it('a foreign Host (DNS rebinding) → 403 naming the Host, on reads, writes, SQL and the console alike', async () => {
    for (const host of ['attacker.example', 'attacker.example:8080', 'rebind.127.0.0.1.nip.io', 'localhost.attacker.example', '0.0.0.0:8080', '128.0.0.1', '[::2]:8080', '127.0.0.256', '']) {
      for (const [method, path, body] of [
        ['GET', '/v1/datasources', undefined],
        ['POST', '/v1/sql', { query: 'SELECT 1' }],
        ['POST', `/v1/datasources/${ds}/pause`, undefined],
        ['GET', '/', undefined],
        ['GET', '/openapi.json', undefined],
      ] as const) {
        const res = await c.request(method, path, body, { host });
        expectProblem(res, 403);
        expect(res.body.detail).toContain(`Host '${host}'`);
        expect(res.body.detail).toMatch(/S3CH_ALLOWED_HOSTS/);
      }
    }
    // The pause never reached the workflow.
    const view = await c.request('GET', `/v1/datasources/${ds}`);
    expect(view.body.status.state).not.toBe('paused');
  });

  it('loopback Host names with any port are answered', async () => {
    for (const host of ['localhost', 'localhost:8080', 'LOCALHOST:1', '127.0.0.1', '127.0.0.1:8080', '127.1.2.3:9', '[::1]', '[::1]:8080']) {
      const res = await c.request('GET', '/v1/datasources', undefined, { host });
      expect(res.status, `${host}: ${JSON.stringify(res.body)}`).toBe(200);
    }
  });

  it('a change from another origin → 403 and nothing happens; the same origin and non-browser clients go through', async () => {
    const runsBefore = (await c.request('GET', `/v1/datasources/${ds}/runs`)).body.items.length;
    const newName = uid('csrf');
    const foreign: Array<[string, Record<string, string>]> = [
      ['a foreign Origin', { origin: 'https://attacker.example' }],
      ['a foreign Origin on the same host name, another port', { origin: 'http://localhost:3000' }],
      ['Origin: null (sandboxed frame, file://)', { origin: 'null' }],
      ['a non-http Origin', { origin: 'chrome-extension://abcdef' }],
      ['Sec-Fetch-Site: cross-site without Origin', { 'sec-fetch-site': 'cross-site' }],
      ['Sec-Fetch-Site: same-site without Origin', { 'sec-fetch-site': 'same-site' }],
    ];
    for (const [what, headers] of foreign) {
      for (const [method, path, body] of [
        ['POST', `/v1/datasources/${ds}/sync`, undefined],
        ['POST', `/v1/datasources/${ds}/pause`, undefined],
        ['PATCH', `/v1/datasources/${ds}`, { description: 'changed cross-origin' }],
        ['DELETE', `/v1/datasources/${ds}?dropTable=true`, undefined],
        // A simple request (text/plain, no preflight): what an HTML form or fetch(no-cors) sends.
        ['POST', `/v1/datasources?name=${newName}`, 'SCHEMA >\n    `a` String\n'],
        ['POST', '/v1/sql', { query: 'SELECT 1' }],
      ] as const) {
        const res = await c.request(method, path, body, headers);
        expectProblem(res, 403);
        expect(res.body.detail, what).toMatch(/cross-origin/);
      }
    }
    // Nothing happened.
    await expect(c.client.workflow.getHandle(workflowIdFor(newName)).describe()).rejects.toBeInstanceOf(WorkflowNotFoundError);
    await settle(c, ds);
    const view = await c.request('GET', `/v1/datasources/${ds}`);
    expect(view.status).toBe(200);
    expect(view.body.status.state).not.toBe('paused');
    expect(view.body.description ?? null).not.toBe('changed cross-origin');
    expect((await c.request('GET', `/v1/datasources/${ds}/runs`)).body.items.length).toBe(runsBefore);

    // Reads with a foreign Origin are answered, but without CORS headers the page cannot read them.
    const read = await c.request('GET', '/v1/datasources', undefined, { origin: 'https://attacker.example' });
    expect(read.status).toBe(200);
    expect(read.headers.get('access-control-allow-origin')).toBeNull();

    // The console's own calls (same origin) and clients that send no Origin are served.
    for (const headers of [{ origin: 'http://localhost' }, { origin: 'http://localhost:8080', host: 'localhost:8080' }, { 'sec-fetch-site': 'same-origin' }, {}] as Array<Record<string, string>>) {
      const res = await c.request('POST', '/v1/sql', { query: 'SELECT 1 AS one' }, headers);
      expect(res.status, `${JSON.stringify(headers)}: ${JSON.stringify(res.body)}`).toBe(200);
    }
  });
});

describe('without tokens, over HTTP: Host check and S3CH_ALLOWED_HOSTS', () => {
  let conn: Connector;
  let port: number;

  beforeAll(async () => {
    port = await freePort();
    conn = await startConnector({
      env: envSchema.parse({ TEMPORAL_TASK_QUEUE: uid('tq'), PORT: String(port), S3CH_ALLOWED_HOSTS: 'connector.internal, proxy.example:8443' }),
      connections: new Map([['local', minioConnection()]]),
      temporalAddress: inject('temporalAddress'),
      runWorker: false,
      serveApi: true,
      destination: await processDestination(),
    });
  });
  afterAll(async () => {
    await conn?.stop();
  });

  /** A raw HTTP request with the Host header a rebound browser would send. */
  const raw = (method: string, path: string, host: string, extra: Record<string, string> = {}, body?: string) =>
    new Promise<{ status: number; body: string }>((resolve, reject) => {
      const req = httpRequest({ host: '127.0.0.1', port, method, path, headers: { host, ...extra, ...(body ? { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(body)) } : {}) } }, (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (d) => (text += d));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text }));
      });
      req.on('error', reject);
      req.end(body);
    });

  it('a rebound name reaching 127.0.0.1 is refused; loopback and configured names are served', async () => {
    const rebound = await raw('GET', '/v1/connections', `attacker.example:${port}`);
    expect(rebound.status).toBe(403);
    expect(JSON.parse(rebound.body).detail).toContain(`Host 'attacker.example:${port}'`);
    expect(rebound.body).not.toContain('minio');
    const post = await raw('POST', '/v1/sql', `attacker.example:${port}`, {}, JSON.stringify({ query: 'SELECT 1' }));
    expect(post.status).toBe(403);

    for (const host of [`127.0.0.1:${port}`, `localhost:${port}`, `connector.internal:${port}`, 'connector.internal', 'proxy.example:8443']) {
      const res = await raw('GET', '/v1/connections', host);
      expect(res.status, `${host}: ${res.body}`).toBe(200);
    }
    // A name configured with a port is answered on that port only.
    expect((await raw('GET', '/v1/connections', 'proxy.example:9999')).status).toBe(403);
    expect((await raw('GET', '/v1/connections', 'proxy.example')).status).toBe(403);
  });

  it('the console keeps working on its own origin: the page, its assets and its same-origin calls', async () => {
    const page = await fetch(`${conn.apiUrl}/`);
    expect(page.status).toBe(200);
    expect(page.headers.get('content-type')).toMatch(/text\/html/);
    const same = await fetch(`${conn.apiUrl}/v1/sql`, {
      method: 'POST', headers: { 'content-type': 'application/json', origin: conn.apiUrl!, 'sec-fetch-site': 'same-origin' }, body: JSON.stringify({ query: 'SELECT 1 AS one' }),
    });
    expect(same.status, await same.clone().text()).toBe(200);
    expect((await same.json()).data).toEqual([{ one: 1 }]);
    const cross = await fetch(`${conn.apiUrl}/v1/sql`, {
      method: 'POST', headers: { 'content-type': 'text/plain', origin: 'https://attacker.example', 'sec-fetch-site': 'cross-site' }, body: JSON.stringify({ query: 'SELECT 1' }),
    });
    expect(cross.status).toBe(403);
  });

  it('S3CH_ALLOWED_HOSTS is validated at start, naming the variable and the entry', () => {
    for (const bad of ['http://connector.internal', 'connector.internal/path', '*.example.com', 'a b', 'host:port', 'host:65536', 'user@host']) {
      let err: unknown;
      try {
        loadEnv({ S3CH_ALLOWED_HOSTS: `ok.example,${bad}` });
      } catch (e) {
        err = e;
      }
      expect(err, bad).toBeInstanceOf(ConfigError);
      expect((err as ConfigError).fields.S3CH_ALLOWED_HOSTS?.[0], bad).toContain(`entry 2 '${bad}'`);
    }
    expect(loadEnv({ S3CH_ALLOWED_HOSTS: 'a.example, 10.0.0.5:8080,[fd00::1]:80' }).S3CH_ALLOWED_HOSTS).toBe('a.example, 10.0.0.5:8080,[fd00::1]:80');
  });
});

describe('notify tokens, SNS subscriptions and keys outside the glob', () => {
  let c: TestConnector;
  let s3: S3Client;
  let bucket: string;
  const ds = uid('nf');
  const TOKENS = 'admin-tok,ro:read-tok,notify:hook-tok';
  const A = { authorization: 'Bearer admin-tok' };
  const N = { authorization: 'Bearer hook-tok' };
  const basic = (user: string, password: string) => ({ authorization: `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}` });
  /** What the SNS confirmation fetched; the app below uses it instead of the network. */
  const fetched: string[] = [];
  let fetchStatus = 200;
  let snsApp: ReturnType<typeof createApp>;
  const sns = (method: string, path: string, body: unknown, headers: Record<string, string>) =>
    callApp(snsApp, method, path, JSON.stringify(body), { 'content-type': 'text/plain; charset=UTF-8', ...headers });

  beforeAll(async () => {
    c = await startTestConnector({ S3CH_API_TOKENS: TOKENS });
    // The same stack, with the SNS confirmation fetch replaced: no internet in tests.
    snsApp = createApp({
      temporal: c.client, taskQueue: c.taskQueue, searchAttributes: false, destination: c.destination, s3: c.s3, tokens: parseTokens(TOKENS),
      fetch: (async (url: string | URL | Request) => {
        fetched.push(String(url));
        return new Response('<ConfirmSubscriptionResponse/>', { status: fetchStatus });
      }) as typeof fetch,
    });
    s3 = testS3();
    bucket = await createBucket(s3);
    const res = await c.request('POST', '/v1/datasources', { name: ds, connection: 'local', bucketUri: `s3://${bucket}/in/**/*.csv`, format: 'csv', schedule: '@on-demand', columns }, A);
    expect(res.status, JSON.stringify(res.body)).toBe(201);
    await eventually('the data source table', async () => (await c.request('POST', '/v1/sql', { query: `EXISTS TABLE ${ds}` }, A)).body?.data?.[0]?.result === 1);
  });
  afterAll(async () => {
    await c?.request('DELETE', `/v1/datasources/${ds}?dropTable=true&dropLedger=true`, undefined, A).catch(() => undefined);
    await c?.stop();
    s3?.destroy();
  });

  it('a notify token notifies, as bearer or as basic auth (any user name, token as password), and the file is imported', async () => {
    await put(s3, bucket, 'in/a.csv', csv(1));
    await put(s3, bucket, 'in/sub/b.csv', csv(2));
    await put(s3, bucket, 'in/c.csv', csv(3));
    const one = await c.request('POST', `/v1/datasources/${ds}/notify`, s3Event(bucket, 'in/a.csv'), N);
    expect(one.status, JSON.stringify(one.body)).toBe(202);
    expect(one.body).toEqual({ accepted: 1, ignored: 0 });
    const all = await c.request('POST', '/v1/notify', s3Event(bucket, 'in/sub/b.csv'), basic('sns', 'hook-tok'));
    expect(all.status, JSON.stringify(all.body)).toBe(202);
    expect(all.body).toEqual({ accepted: 1, dataSources: [ds] });
    const noUser = await c.request('POST', `/v1/datasources/${ds}/notify`, s3Event(bucket, 'in/c.csv'), basic('', 'hook-tok'));
    expect(noUser.status, JSON.stringify(noUser.body)).toBe(202);
    await eventually('the three notified files', async () => (await rowCount(c, ds, A)) === 3, 30_000, 100);
  });

  it('admin tokens still notify; read-only tokens, wrong passwords and no credentials do not', async () => {
    expect((await c.request('POST', '/v1/notify', { Records: [] }, A)).status).toBe(202);
    expect((await c.request('POST', '/v1/notify', { Records: [] }, basic('x', 'admin-tok'))).status).toBe(202);
    expectProblem(await c.request('POST', '/v1/notify', { Records: [] }, { authorization: 'Bearer read-tok' }), 403);
    for (const headers of [{}, basic('sns', 'wrong'), basic('hook-tok', ''), { authorization: 'Basic !!!' }]) {
      const res = await c.request('POST', `/v1/datasources/${ds}/notify`, { Records: [] }, headers);
      expectProblem(res, 401);
      // SNS sends its credentials only once challenged for basic auth.
      expect(res.headers.get('www-authenticate')).toMatch(/^Basic realm=/);
    }
  });

  it('a notify token gets 403 everywhere else, and changes nothing', async () => {
    // The runs of the notifications above are over (and recorded) before counting.
    await settle(c, ds);
    const runsBefore = (await c.request('GET', `/v1/datasources/${ds}/runs`, undefined, A)).body.items.length;
    const newName = uid('nn');
    for (const headers of [N, basic('sns', 'hook-tok')]) {
      for (const [method, path, body] of [
        ['GET', '/v1/datasources', undefined],
        ['GET', `/v1/datasources/${ds}`, undefined],
        ['GET', `/v1/datasources/${ds}/files`, undefined],
        ['GET', '/v1/connections', undefined],
        ['GET', '/openapi.json', undefined],
        ['GET', '/metrics', undefined],
        ['GET', '/v1/notify', undefined],
        ['POST', '/v1/sql', { query: 'SELECT 1' }],
        ['POST', '/v1/preview', { connection: 'local', bucketUri: `s3://${bucket}/in/*.csv` }],
        ['POST', '/v1/connections/local/check', { bucketUri: `s3://${bucket}/in/*.csv` }],
        ['POST', '/v1/datasources', { name: newName, connection: 'local', bucketUri: `s3://${bucket}/nn/*.csv`, columns }],
        ['PATCH', `/v1/datasources/${ds}`, { description: 'by the hook' }],
        ['POST', `/v1/datasources/${ds}/sync`, undefined],
        ['POST', `/v1/datasources/${ds}/pause`, undefined],
        ['POST', `/v1/datasources/${ds}/retry`, undefined],
        ['DELETE', `/v1/datasources/${ds}?dropTable=true&dropLedger=true`, undefined],
      ] as const) {
        const res = await c.request(method, path, body, headers);
        // Basic auth is only read on the notify routes: elsewhere it is no credential at all.
        if (headers === N || path === '/v1/notify') {
          expectProblem(res, 403);
          expect(res.body.detail, `${method} ${path}`).toMatch(/only post event notifications/);
        } else {
          expectProblem(res, 401);
        }
      }
    }
    await expect(c.client.workflow.getHandle(workflowIdFor(newName)).describe()).rejects.toBeInstanceOf(WorkflowNotFoundError);
    await settle(c, ds);
    const view = await c.request('GET', `/v1/datasources/${ds}`, undefined, A);
    expect(view.body.status.state).not.toBe('paused');
    expect(view.body.description ?? null).not.toBe('by the hook');
    expect((await c.request('GET', `/v1/datasources/${ds}/runs`, undefined, A)).body.items.length).toBe(runsBefore);
    expect(await rowCount(c, ds, A)).toBe(3);
  });

  it('SNS: a SubscriptionConfirmation (text/plain, basic auth) is confirmed by GETting its SubscribeURL', async () => {
    const subscribeUrl = 'https://sns.eu-west-1.amazonaws.com/?Action=ConfirmSubscription&TopicArn=arn:aws:sns:eu-west-1:123456789012:uploads&Token=2336412f37';
    const confirmation = {
      Type: 'SubscriptionConfirmation', MessageId: 'm1', Token: '2336412f37', TopicArn: 'arn:aws:sns:eu-west-1:123456789012:uploads',
      Message: 'You have chosen to subscribe to the topic ...', SubscribeURL: subscribeUrl, Timestamp: '2024-01-01T00:00:00.000Z',
    };
    fetched.length = 0;
    for (const path of ['/v1/notify', `/v1/datasources/${ds}/notify`]) {
      const res = await sns('POST', path, confirmation, { ...basic('sns', 'hook-tok'), 'x-amz-sns-message-type': 'SubscriptionConfirmation' });
      expect(res.status, JSON.stringify(res.body)).toBe(200);
      expect(res.body).toEqual({ confirmed: true, type: 'SubscriptionConfirmation', topicArn: confirmation.TopicArn });
    }
    expect(fetched).toEqual([subscribeUrl, subscribeUrl]);
    // China regions too.
    const cn = 'https://sns.cn-north-1.amazonaws.com.cn/?Action=ConfirmSubscription&Token=x';
    expect((await sns('POST', '/v1/notify', { ...confirmation, SubscribeURL: cn }, N)).status).toBe(200);
    expect(fetched.at(-1)).toBe(cn);
    // Without a credential nothing is fetched.
    const before = fetched.length;
    expectProblem(await sns('POST', '/v1/notify', confirmation, {}), 401);
    expect(fetched.length).toBe(before);
    // SNS refusing the confirmation is reported, not hidden.
    fetchStatus = 403;
    try {
      expectProblem(await sns('POST', '/v1/notify', confirmation, N), 502);
    } finally {
      fetchStatus = 200;
    }
  });

  it('SNS: a SubscribeURL that is not an SNS endpoint → 400 naming SubscribeURL, and nothing is fetched (SSRF)', async () => {
    fetched.length = 0;
    for (const url of [
      'http://169.254.169.254/latest/meta-data/iam/security-credentials/',
      'http://sns.us-east-1.amazonaws.com/?Action=ConfirmSubscription',
      'https://sns.us-east-1.amazonaws.com.attacker.example/',
      'https://attacker.example/?sns.us-east-1.amazonaws.com',
      'https://sns.us-east-1.amazonaws.com:8443/',
      'https://user:pw@sns.us-east-1.amazonaws.com/',
      'https://sns.us-east-1.amazonaws.com@attacker.example/',
      'https://127.0.0.1/',
      'file:///etc/passwd',
      'not a url',
      '',
    ]) {
      for (const path of ['/v1/notify', `/v1/datasources/${ds}/notify`]) {
        const res = await sns('POST', path, { Type: 'SubscriptionConfirmation', SubscribeURL: url, TopicArn: 'arn:aws:sns:us-east-1:1:t' }, N);
        expectProblem(res, 400);
        expect(res.body.errors?.[0]?.field, url).toBe('SubscribeURL');
      }
    }
    expectProblem(await sns('POST', '/v1/notify', { Type: 'SubscriptionConfirmation' }, N), 400);
    expect(fetched).toEqual([]);
    // A body that is not JSON at all.
    const notJson = await callApp(snsApp, 'POST', '/v1/notify', '{not json', { 'content-type': 'text/plain', ...N });
    expectProblem(notJson, 400);
  });

  it('SNS: a Notification envelope posted as text/plain imports the object; an UnsubscribeConfirmation is acknowledged', async () => {
    await put(s3, bucket, 'in/sns.csv', csv(4));
    const envelope = { Type: 'Notification', MessageId: 'm2', TopicArn: 'arn:aws:sns:eu-west-1:123456789012:uploads', Message: JSON.stringify(s3Event(bucket, 'in/sns.csv')) };
    const res = await sns('POST', '/v1/notify', envelope, { ...basic('sns', 'hook-tok'), 'x-amz-sns-message-type': 'Notification' });
    expect(res.status, JSON.stringify(res.body)).toBe(202);
    expect(res.body).toEqual({ accepted: 1, dataSources: [ds] });
    await eventually('the SNS-notified file', async () => (await rowCount(c, ds, A)) === 4, 30_000, 100);
    const unsub = await sns('POST', '/v1/notify', { Type: 'UnsubscribeConfirmation', TopicArn: envelope.TopicArn, SubscribeURL: 'https://attacker.example/' }, N);
    expect(unsub.status, JSON.stringify(unsub.body)).toBe(200);
    expect(unsub.body.confirmed).toBe(false);
  });

  it('a notified key outside the glob is never imported, even one that matches it textually through ../', async () => {
    await put(s3, bucket, 'out/secret.csv', csv(99));
    const keys = ['out/secret.csv', 'in/../out/secret.csv', 'in/./../out/secret.csv', 'in/sub/../../out/secret.csv'];
    const one = await c.request('POST', `/v1/datasources/${ds}/notify`, s3Event(bucket, ...keys), N);
    expect(one.status, JSON.stringify(one.body)).toBe(202);
    expect(one.body).toEqual({ accepted: 0, ignored: keys.length });
    const all = await c.request('POST', '/v1/notify', s3Event(bucket, ...keys), N);
    expect(all.body).toEqual({ accepted: 0, dataSources: [] });
    await settle(c, ds);
    expect(await rowCount(c, ds, A)).toBe(4);
    const files = await c.request('GET', `/v1/datasources/${ds}/files?search=out`, undefined, A);
    expect(files.body.items).toEqual([]);
  });

  it('a retry by key outside the glob → 400 naming keys.<i>, before anything reaches the workflow', async () => {
    await settle(c, ds);
    const runsBefore = (await c.request('GET', `/v1/datasources/${ds}/runs`, undefined, A)).body.items.length;
    const res = await c.request('POST', `/v1/datasources/${ds}/retry`, { keys: ['in/a.csv', 'out/secret.csv', 'in/../out/secret.csv', 'other.csv'] }, A);
    expectProblem(res, 400);
    expect(res.body.errors.map((e: { field: string }) => e.field)).toEqual(['keys.1', 'keys.2', 'keys.3']);
    expect(res.body.errors[0].message).toMatch(/does not match the data source's glob 'in\/\*\*\/\*\.csv'/);
    expect(res.body.errors[1].message).toMatch(/'\.\.' path segment/);
    await settle(c, ds);
    expect((await c.request('GET', `/v1/datasources/${ds}/runs`, undefined, A)).body.items.length).toBe(runsBefore);
    expect(await rowCount(c, ds, A)).toBe(4);
    // Keys inside the glob are still retried.
    expect((await c.request('POST', `/v1/datasources/${ds}/retry`, { keys: ['in/a.csv'] }, A)).status).toBe(202);
    await eventually('the retry run', async () => (await c.request('GET', `/v1/datasources/${ds}/runs`, undefined, A)).body.items.length > runsBefore, 30_000, 100);
  });
});

describe('preview and connection checks: admin only, and preview is capped', () => {
  let c: TestConnector;
  let s3: S3Client;
  let bucket: string;
  const A = { authorization: 'Bearer admin-tok' };
  const R = { authorization: 'Bearer read-tok' };

  beforeAll(async () => {
    c = await startTestConnector({ S3CH_API_TOKENS: 'admin-tok,ro:read-tok' });
    s3 = testS3();
    bucket = await createBucket(s3);
    await put(s3, bucket, 'small/a.csv', csv(1));
  });
  afterAll(async () => {
    await c?.stop();
    s3?.destroy();
  });

  it('GET /v1/whoami tells a client what its token may do; no token or an unknown one → 401', async () => {
    expect((await c.request('GET', '/v1/whoami', undefined, A)).body).toEqual({ scope: 'admin', canChange: true, reason: null });
    const ro = await c.request('GET', '/v1/whoami', undefined, R);
    expect(ro.status).toBe(200);
    expect(ro.body).toMatchObject({ scope: 'readOnly', canChange: false, reason: expect.stringContaining('read-only') });
    expect((await c.request('GET', '/v1/whoami')).status).toBe(401);
    expect((await c.request('GET', '/v1/whoami', undefined, { authorization: 'Bearer nope' })).status).toBe(401);
  });

  it('a read-only token gets 403 with the reason on preview and connection checks; the admin token gets them', async () => {
    const preview = { connection: 'local', bucketUri: `s3://${bucket}/small/*.csv`, format: 'csv' };
    for (const [path, body] of [['/v1/preview', preview], ['/v1/connections/local/check', { bucketUri: `s3://${bucket}/small/*.csv` }], ['/v1/connections/local/check', undefined]] as const) {
      const res = await c.request('POST', path, body, R);
      expectProblem(res, 403);
      expect(res.body.detail).toMatch(/read-only.*any bucket a connection reaches.*admin token/);
    }
    const ok = await c.request('POST', '/v1/preview', preview, A);
    expect(ok.status, JSON.stringify(ok.body)).toBe(200);
    expect(ok.body.inferredFrom).toBe('small/a.csv');
    const check = await c.request('POST', '/v1/connections/local/check', { bucketUri: `s3://${bucket}/small/*.csv` }, A);
    expect(check.status).toBe(200);
    expect(check.body.sampleKeys).toEqual(['small/a.csv']);
    // The read-only token still reads through /v1/sql.
    expect((await c.request('POST', '/v1/sql', { query: 'SELECT 1' }, R)).status).toBe(200);
  });

  it('preview refuses to infer from a file over 64 MiB, naming the file and the limit', async () => {
    const line = '2024-01-01 00:00:00,1,xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\n';
    const body = Buffer.alloc(64 * 1024 * 1024 + 1, line);
    body.write('ts,id,v\n', 0);
    await put(s3, bucket, 'big/huge.csv', body);
    const res = await c.request('POST', '/v1/preview', { connection: 'local', bucketUri: `s3://${bucket}/big/*.csv`, format: 'csv' }, A);
    expectProblem(res, 400);
    expect(res.body.errors).toEqual([{ field: 'bucketUri', message: expect.stringMatching(/'big\/huge\.csv' is 67108865 bytes; preview infers columns only from files up to 67108864 bytes \(64 MiB\)/) }]);
  });
});
