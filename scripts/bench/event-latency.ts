/**
 * `event_latency_p95`: a file put in an `@on-demand` data source's prefix,
 * announced at once with an S3 event notification (POST
 * /v1/datasources/:name/notify, the S3 `Records` body), until its rows answer
 * `POST /v1/sql`. 100 files, one at a time (each waits for the previous one's
 * rows); the clock starts before the upload, so the figure is what a producer
 * waits from writing a file to querying it. Target: p95 under 1 s.
 */
import { PutObjectCommand } from '@aws-sdk/client-s3';
import { performance } from 'node:perf_hooks';
import type { SummaryEntry } from './many-sources.js';
import { sleep, startBenchStack } from './stack.js';

export interface EventLatencyOptions {
  files?: number;
  log?: (line: string) => void;
}

const TARGET_P95_MS = 1000;
const POLL_MS = 25;
const PER_FILE_TIMEOUT_MS = 60_000;
const NAME = 'events';

const percentile = (xs: number[], p: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))] ?? NaN;
};

export async function runEventLatency(opts: EventLatencyOptions = {}): Promise<SummaryEntry[]> {
  const files = opts.files ?? 100;
  const log = opts.log ?? ((l: string) => process.stdout.write(`[events] ${l}\n`));
  const stack = await startBenchStack({ label: 'events', log, connections: async (minio, { connection }) => new Map([['local', connection(minio)]]) });
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
    // The table is prepared when the data source is created; wait for it so the first file does not time table creation.
    const prepDeadline = Date.now() + 60_000;
    while ((await count()) === null && Date.now() < prepDeadline) await sleep(200);

    log(`${files} files, one at a time: upload, notify, poll POST /v1/sql until the row answers ...`);
    const ms: number[] = [];
    for (let i = 0; i < files; i++) {
      const key = `events/f-${String(i).padStart(4, '0')}.csv`;
      const t0 = performance.now();
      await stack.s3.send(new PutObjectCommand({ Bucket: stack.bucket, Key: key, Body: `id,label\n${i},e${i}\n` }));
      const n = await stack.api('POST', `/v1/datasources/${NAME}/notify`, {
        Records: [{ eventSource: 'aws:s3', eventName: 'ObjectCreated:Put', s3: { bucket: { name: stack.bucket }, object: { key } } }],
      });
      if (n.status !== 202) throw new Error(`notify ${key}: HTTP ${n.status} ${JSON.stringify(n.body)}`);
      for (;;) {
        if (((await count()) ?? 0) >= i + 1) break;
        if (performance.now() - t0 > PER_FILE_TIMEOUT_MS) throw new Error(`${key}: its row was not queryable within ${PER_FILE_TIMEOUT_MS / 1000} s`);
        await sleep(POLL_MS);
      }
      ms.push(performance.now() - t0);
      if ((i + 1) % 25 === 0) log(`  ${i + 1}/${files}: p50 ${percentile(ms, 50).toFixed(0)} ms, p95 ${percentile(ms, 95).toFixed(0)} ms`);
    }
    const p95 = percentile(ms, 95);
    return [
      { name: 'event_latency_p95', value: Math.round(p95), unit: 'ms', ceiling: TARGET_P95_MS, ratio: Math.round((p95 / TARGET_P95_MS) * 1000) / 1000 },
      { name: 'event_latency_p50', value: Math.round(percentile(ms, 50)), unit: 'ms', ceiling: null, ratio: null },
      { name: 'event_latency_max', value: Math.round(Math.max(...ms)), unit: 'ms', ceiling: null, ratio: null },
    ];
  } finally {
    await stack.stop();
  }
}
