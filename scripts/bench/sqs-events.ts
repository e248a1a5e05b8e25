/**
 * `sqs_event_latency_p95`: a file put in an `@on-demand` data source's prefix,
 * announced by the S3 event message AWS would put on the connection's SQS
 * queue (ElasticMQ here), until its rows answer `POST /v1/sql`. 100 files, one
 * at a time; the clock starts before the upload. Target: p95 under 1 s (a long
 * poll returns as soon as a message arrives).
 *
 * `sqs_idle_receives_per_hour`: ReceiveMessage requests the worker makes while
 * the queue is empty, over a minute, per hour. Target: one long poll per queue
 * per 20 s, 180 an hour. `sqs_idle_requests_per_hour` counts every SQS request
 * (the queue's attributes are also read every 5 minutes).
 */
import { PutObjectCommand } from '@aws-sdk/client-s3';
import { CreateQueueCommand, SendMessageCommand, SQSClient } from '@aws-sdk/client-sqs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import type { SummaryEntry } from './many-sources.js';
import { sleep, startBenchStack } from './stack.js';
import { freePort, startElasticmq } from '../services.js';
import { ensureElasticmq } from '../tools.js';

export interface SqsEventsOptions {
  files?: number;
  /** Seconds the idle queue is watched. @default 60 */
  idleSeconds?: number;
  log?: (line: string) => void;
}

const TARGET_P95_MS = 1000;
const TARGET_IDLE_RECEIVES_PER_HOUR = 3600 / 20;
const POLL_MS = 25;
const PER_FILE_TIMEOUT_MS = 60_000;
const NAME = 'sqs_events';

const percentile = (xs: number[], p: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))] ?? NaN;
};

export async function runSqsEvents(opts: SqsEventsOptions = {}): Promise<SummaryEntry[]> {
  const files = opts.files ?? (process.env.BENCH_SCALE === 'small' ? 30 : 100);
  const idleSeconds = opts.idleSeconds ?? 60;
  const log = opts.log ?? ((l: string) => process.stdout.write(`[sqs] ${l}\n`));
  const dir = await mkdtemp(join(tmpdir(), 's3ch-bench-sqs-'));
  const emq = await startElasticmq({ ...(await ensureElasticmq({ log: (l) => log(`[tools] ${l}`) })), dir, port: await freePort(), logFile: join(dir, 'elasticmq.log') });
  const sqs = new SQSClient({ endpoint: emq.endpoint, region: 'us-east-1', credentials: { accessKeyId: 'bench', secretAccessKey: 'bench' } });
  try {
    const queueUrl = (await sqs.send(new CreateQueueCommand({ QueueName: 's3-events' }))).QueueUrl!;
    const stack = await startBenchStack({
      label: 'sqs', log,
      connections: async (minio, { connection }) => new Map([['local', { ...connection(minio), sqs: { queueUrl, endpoint: emq.endpoint, waitTimeSeconds: 20 } }]]),
    });
    try {
      const res = await stack.api('POST', '/v1/datasources', {
        name: NAME, connection: 'local', bucketUri: `s3://${stack.bucket}/events/*.csv`, format: 'csv', schedule: '@on-demand',
        columns: [{ name: 'id', type: 'UInt64' }, { name: 'label', type: 'String' }],
      });
      if (res.status !== 201) throw new Error(`creating ${NAME}: HTTP ${res.status} ${JSON.stringify(res.body)}`);
      const count = async (): Promise<number | null> => {
        const r = await stack.api('POST', '/v1/sql', { query: `SELECT count() AS n FROM ${NAME}` });
        return r.status === 200 ? Number(r.body.data[0].n) : null;
      };
      const prepDeadline = Date.now() + 60_000;
      while ((await count()) === null && Date.now() < prepDeadline) await sleep(200);

      log(`${files} files, one at a time: upload, S3 event message to SQS, poll POST /v1/sql until the row answers ...`);
      const ms: number[] = [];
      for (let i = 0; i < files; i++) {
        const key = `events/f-${String(i).padStart(4, '0')}.csv`;
        const t0 = performance.now();
        const put = await stack.s3.send(new PutObjectCommand({ Bucket: stack.bucket, Key: key, Body: `id,label\n${i},e${i}\n` }));
        await sqs.send(new SendMessageCommand({
          QueueUrl: queueUrl,
          MessageBody: JSON.stringify({ Records: [{ eventVersion: '2.1', eventSource: 'aws:s3', eventName: 'ObjectCreated:Put', eventTime: new Date().toISOString(), s3: { bucket: { name: stack.bucket }, object: { key, size: 20, eTag: (put.ETag ?? '').replace(/"/g, '') } } }] }),
        }));
        for (;;) {
          if (((await count()) ?? 0) >= i + 1) break;
          if (performance.now() - t0 > PER_FILE_TIMEOUT_MS) throw new Error(`${key}: its row was not queryable within ${PER_FILE_TIMEOUT_MS / 1000} s`);
          await sleep(POLL_MS);
        }
        ms.push(performance.now() - t0);
        if ((i + 1) % 25 === 0) log(`  ${i + 1}/${files}: p50 ${percentile(ms, 50).toFixed(0)} ms, p95 ${percentile(ms, 95).toFixed(0)} ms`);
      }
      const queue = async () => (await stack.api('GET', '/v1/events')).body.queues[0] as { receives: number; requests: number; deleted: number; received: number };
      const drained = await queue();
      if (drained.deleted !== files) throw new Error(`${drained.deleted} of ${files} messages deleted`);

      // Idle: let the poll in flight end, then count over the window.
      await sleep(21_000);
      const a = await queue();
      log(`idle for ${idleSeconds} s: counting SQS requests ...`);
      await sleep(idleSeconds * 1000);
      const b = await queue();
      const perHour = (n: number) => Math.round((n * 3600) / idleSeconds);
      const receivesPerHour = perHour(b.receives - a.receives);
      const p95 = percentile(ms, 95);
      return [
        { name: 'sqs_event_latency_p95', value: Math.round(p95), unit: 'ms', ceiling: TARGET_P95_MS, ratio: Math.round((p95 / TARGET_P95_MS) * 1000) / 1000 },
        { name: 'sqs_event_latency_p50', value: Math.round(percentile(ms, 50)), unit: 'ms', ceiling: null, ratio: null },
        { name: 'sqs_event_latency_max', value: Math.round(Math.max(...ms)), unit: 'ms', ceiling: null, ratio: null },
        { name: 'sqs_idle_receives_per_hour', value: receivesPerHour, unit: 'req/h', ceiling: TARGET_IDLE_RECEIVES_PER_HOUR, ratio: Math.round((receivesPerHour / TARGET_IDLE_RECEIVES_PER_HOUR) * 1000) / 1000 },
        { name: 'sqs_idle_requests_per_hour', value: perHour(b.requests - a.requests), unit: 'req/h', ceiling: null, ratio: null },
      ];
    } finally {
      await stack.stop();
    }
  } finally {
    sqs.destroy();
    await emq.stop();
    await rm(dir, { recursive: true, force: true });
  }
}
