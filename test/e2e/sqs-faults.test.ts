import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { inject } from 'vitest';
import { GetQueueAttributesCommand, type SQSClient } from '@aws-sdk/client-sqs';
import type { S3Client } from '@aws-sdk/client-s3';
import { freePort } from '../../scripts/services.js';
import { clickhouseEnv, createBucket, eventually, minioConnection, put, testDatabase, testS3, uid } from '../support/harness.js';
import { createQueue, queueConnection, s3Records, send, testSqs } from '../support/sqs.js';

/**
 * A worker killed between receiving an SQS message and deleting it: the
 * connector runs as its own process, signals the data source, and SIGKILLs
 * itself before the delete. The message comes back after the visibility
 * timeout to a new process, which signals again and deletes it. The file is
 * in the table once.
 */
interface Proc {
  child: ChildProcess;
  api: string;
  output: string[];
}

describe('SQS consumer killed before the delete', () => {
  let s3: S3Client;
  let sqs: SQSClient;
  let bucket: string;
  let dataDir: string;
  /** The processes' database on the run's engine (each process is a worker of the same connector). */
  let database: string;
  const procs: ChildProcess[] = [];

  beforeAll(async () => {
    s3 = testS3();
    sqs = testSqs();
    bucket = await createBucket(s3);
    dataDir = await mkdtemp(join(tmpdir(), 's3ch-sqs-proc-'));
    database = testDatabase();
  });
  afterEach(() => {
    for (const p of procs.splice(0)) if (p.exitCode === null && p.signalCode === null) p.kill('SIGKILL');
  });
  afterAll(async () => {
    s3?.destroy();
    sqs?.destroy();
    if (dataDir) await rm(dataDir, { recursive: true, force: true });
  });

  async function startProcess(config: { taskQueue: string; port: number; queueUrl: string }, fault = ''): Promise<Proc> {
    const child = spawn(process.execPath, ['--import', 'tsx', 'test/support/connector-process.ts'], {
      env: {
        ...process.env,
        S3CH_TEST_FAULT: fault,
        S3CH_TEST_CONFIG: JSON.stringify({
          dataDir, temporalAddress: inject('temporalAddress'), taskQueue: config.taskQueue, port: config.port,
          workflowBundlePath: inject('workflowBundlePath'), connections: { local: minioConnection(), aws: queueConnection(config.queueUrl) },
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
  const exited = (child: ChildProcess) => new Promise<void>((r) => (child.exitCode !== null || child.signalCode !== null ? r() : child.once('exit', () => r())));

  it('the message is redelivered, signalled again, deleted; the file is imported once', async () => {
    const name = uid('sqskill');
    const queue = await createQueue(sqs, { visibilityTimeout: 3 });
    const config = { taskQueue: uid('tq'), port: await freePort(), queueUrl: queue.url };
    const key = `${name}/data.csv`;
    await put(s3, bucket, key, 'id,v\n1,a\n2,b\n3,c\n');

    const a = await startProcess(config, 'kill-before-sqs-delete');
    const created = await call(a, 'POST', '/v1/datasources', {
      name, connection: 'aws', bucketUri: `s3://${bucket}/${name}/*.csv`, format: 'csv', schedule: '@on-demand',
      columns: [{ name: 'id', type: 'UInt32' }, { name: 'v', type: 'String' }],
    });
    expect(created.status, JSON.stringify(created.body)).toBe(201);
    await send(sqs, queue.url, s3Records(bucket, key));
    await exited(a.child);
    expect(a.output.join('')).toContain('FAULT kill-before-sqs-delete');

    // Not deleted: the message is still on the queue (in flight until its visibility timeout ends).
    const attrs = (await sqs.send(new GetQueueAttributesCommand({ QueueUrl: queue.url, AttributeNames: ['ApproximateNumberOfMessages', 'ApproximateNumberOfMessagesNotVisible'] }))).Attributes!;
    expect(Number(attrs.ApproximateNumberOfMessages) + Number(attrs.ApproximateNumberOfMessagesNotVisible)).toBe(1);

    const b = await startProcess(config);
    const stats = await eventually('the redelivered message to be deleted', async () => {
      const q = (await call(b, 'GET', '/v1/events')).body.queues.find((x: { connection: string }) => x.connection === 'aws');
      return q?.deleted === 1 ? q : null;
    }, 90_000, 250);
    expect(stats).toMatchObject({ received: 1, redelivered: 1, matched: 1, unparseable: 0 });
    expect(b.output.join('')).toMatch(/SQS DELETE \S+/);

    const done = await eventually('the file to be imported', async () => {
      const r = await call(b, 'GET', `/v1/datasources/${name}`);
      return r.body?.stats?.files?.success === 1 ? r.body : null;
    }, 120_000, 500);
    // The first signal (before the kill) and the redelivered one name the same file version: it is in once.
    await new Promise((r) => setTimeout(r, 2000));
    const count = await call(b, 'POST', '/v1/sql', { query: `SELECT count() AS n, uniqExact(id) AS u FROM ${name}` });
    expect({ n: Number(count.body.data[0].n), u: Number(count.body.data[0].u) }).toEqual({ n: 3, u: 3 });
    expect(done.stats.rows).toBe(3);
    const files = await call(b, 'GET', `/v1/datasources/${name}/files`);
    expect(files.body.items).toHaveLength(1);
    expect(files.body.items[0]).toMatchObject({ key, status: 'success', rows: 3 });
    const after = (await sqs.send(new GetQueueAttributesCommand({ QueueUrl: queue.url, AttributeNames: ['ApproximateNumberOfMessages', 'ApproximateNumberOfMessagesNotVisible'] }))).Attributes!;
    expect(Number(after.ApproximateNumberOfMessages) + Number(after.ApproximateNumberOfMessagesNotVisible)).toBe(0);
  }, 300_000);
});
