import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { GetQueueAttributesCommand, ReceiveMessageCommand, type SQSClient } from '@aws-sdk/client-sqs';
import type { S3Client } from '@aws-sdk/client-s3';
import { createBucket, eventually, processDestination, put, sql, startTestConnector, testS3, uid, type TestConnector } from '../support/harness.js';
import { startConnector } from '../../worker/runtime.js';
import { envSchema } from '../../schemas/config.js';
import { callApp } from '../../api/app.js';
import { createQueue, eventBridge, queueConnection, s3Records, s3TestEvent, send, snsEnvelope, testSqs } from '../support/sqs.js';

/**
 * S3 events through SQS, against a real SQS-compatible server (ElasticMQ):
 * the connector's worker long-polls the queue of the connection `aws` and
 * hands each created object to the data sources whose bucket and glob take it.
 * The data sources here are @on-demand (they never poll), so only an event
 * can have imported a file, unless a test says otherwise.
 */
describe('events from SQS', () => {
  let c: TestConnector;
  let s3: S3Client;
  let sqs: SQSClient;
  let bucket: string;
  let queue: { url: string; dlqUrl: string | null };

  const columns = [{ name: 'id', type: 'UInt32' }, { name: 'v', type: 'String' }];
  const queueStats = async () => {
    const res = await c.request('GET', '/v1/events');
    expect(res.status).toBe(200);
    return res.body.queues.find((q: { connection: string }) => q.connection === 'aws');
  };
  const rows = async (table: string) => Number((await sql<{ n: string }>(c, `SELECT count() AS n FROM ${table}`))[0]?.n);
  const queueDepth = async (url: string) => {
    const a = (await sqs.send(new GetQueueAttributesCommand({ QueueUrl: url, AttributeNames: ['ApproximateNumberOfMessages', 'ApproximateNumberOfMessagesNotVisible'] }))).Attributes!;
    return Number(a.ApproximateNumberOfMessages) + Number(a.ApproximateNumberOfMessagesNotVisible);
  };
  async function create(name: string, bucketUri: string, schedule = '@on-demand') {
    const res = await c.request('POST', '/v1/datasources', { name, connection: 'aws', bucketUri, format: 'csv', schedule, columns });
    expect(res.status, JSON.stringify(res.body)).toBe(201);
    // The consumer routes to the data sources Temporal's visibility lists; a
    // workflow started a moment ago may not be listed yet (events for it
    // before then are unmatched, and the schedule's sweep is the net).
    await eventually(`${name} to be listed`, async () => {
      const list = await c.request('GET', `/v1/datasources?prefix=${name}`);
      return (list.body.items as Array<{ name: string }> | undefined)?.some((d) => d.name === name);
    }, 30_000, 100);
  }

  beforeAll(async () => {
    s3 = testS3();
    sqs = testSqs();
    bucket = await createBucket(s3);
    // A short visibility timeout so a message left on the queue comes back within the test; two receipts then the dead-letter queue.
    queue = await createQueue(sqs, { visibilityTimeout: 2, maxReceiveCount: 2 });
    c = await startTestConnector({}, { aws: queueConnection(queue.url) });
  });
  afterAll(async () => {
    await c?.stop();
    s3?.destroy();
    sqs?.destroy();
  });

  it('accepts every shape AWS delivers: S3 Records, SNS (raw and not), EventBridge; a test event is acknowledged', async () => {
    const name = uid('shapes');
    await create(name, `s3://${bucket}/shapes/*.csv`);
    const before = await queueStats();
    const keys = ['shapes/direct.csv', 'shapes/sns wrapped.csv', 'shapes/sns-raw.csv', 'shapes/eventbridge.csv'];
    for (const [i, key] of keys.entries()) await put(s3, bucket, key, `id,v\n${i},${key}\n`);
    await send(sqs, queue.url, s3TestEvent(bucket));
    await send(sqs, queue.url, s3Records(bucket, keys[0]!));
    await send(sqs, queue.url, snsEnvelope(s3Records(bucket, keys[1]!)));
    await send(sqs, queue.url, s3Records(bucket, keys[2]!)); // raw delivery: the body is S3's own JSON
    await send(sqs, queue.url, eventBridge(bucket, keys[3]!));

    await eventually('all four files to be imported', async () => (await rows(name)) === 4, 60_000, 200);
    const files = (await c.request('GET', `/v1/datasources/${name}/files`)).body.items;
    expect(files.map((f: { key: string }) => f.key).sort()).toEqual([...keys].sort());
    const after = await eventually('the five messages to be deleted', async () => {
      const q = await queueStats();
      return q.deleted - before.deleted >= 5 ? q : null;
    });
    expect(after.received - before.received).toBe(5);
    expect(after.matched - before.matched).toBe(4);
    expect(after.testEvents - before.testEvents).toBe(1);
    expect(after.unparseable - before.unparseable).toBe(0);
    expect(await queueDepth(queue.url)).toBe(0);
    // Only events could have done it: an @on-demand data source never lists by itself.
    // A run is recorded when it ends, after its files.
    const runs = await eventually('the runs to be recorded', async () => {
      const items = (await c.request('GET', `/v1/datasources/${name}/runs`)).body.items;
      return items.length ? items : null;
    });
    expect(runs.every((r: { trigger: string }) => r.trigger !== 'schedule')).toBe(true);
    // Notification health shows on the data source.
    const ds = (await c.request('GET', `/v1/datasources/${name}`)).body;
    expect(ds.notifications.events).toBe(4);
    expect(ds.notifications.byChannel.sqs).toBe(4);
    expect(ds.notifications.lastEventAt).not.toBeNull();
  });

  it('one queue feeds two data sources: one message imports its object into both', async () => {
    const a = uid('feed_a');
    const b = uid('feed_b');
    await create(a, `s3://${bucket}/shared/*.csv`);
    await create(b, `s3://${bucket}/shared/**/*.csv`);
    const before = await queueStats();
    await put(s3, bucket, 'shared/one.csv', 'id,v\n1,x\n2,y\n');
    await send(sqs, queue.url, s3Records(bucket, 'shared/one.csv'));
    await eventually('both data sources to import it', async () => (await rows(a)) === 2 && (await rows(b)) === 2, 60_000, 200);
    const after = await eventually('the message to be deleted', async () => {
      const q = await queueStats();
      return q.deleted - before.deleted >= 1 ? q : null;
    });
    expect(after.received - before.received).toBe(1);
    expect(after.matched - before.matched).toBe(1);
    expect(await queueDepth(queue.url)).toBe(0);
  });

  it('an event for a key no glob takes is deleted, counted, and imports nothing', async () => {
    const name = uid('refuse');
    await create(name, `s3://${bucket}/only/*.csv`);
    await put(s3, bucket, 'only/not-this.txt', 'id,v\n1,x\n');
    await put(s3, bucket, 'only/nested/deeper.csv', 'id,v\n1,x\n');
    const before = await queueStats();
    await send(sqs, queue.url, s3Records(bucket, 'only/not-this.txt'));
    await send(sqs, queue.url, s3Records(bucket, 'only/nested/deeper.csv'));
    await send(sqs, queue.url, s3Records(bucket, 'only/../only/x.csv'));
    await send(sqs, queue.url, s3Records(`${bucket}-other`, 'only/x.csv'));
    // A deletion is understood, and concerns no import.
    await send(sqs, queue.url, s3Records(bucket, 'only/gone.csv', 0, 'ObjectRemoved:Delete'));
    const after = await eventually('the five messages to be deleted', async () => {
      const q = await queueStats();
      return q.deleted - before.deleted >= 5 ? q : null;
    });
    expect(after.unmatched - before.unmatched).toBe(5);
    expect(after.matched - before.matched).toBe(0);
    expect(await queueDepth(queue.url)).toBe(0);
    const files = (await c.request('GET', `/v1/datasources/${name}/files`)).body.items;
    expect(files).toEqual([]);
    expect((await c.request('GET', `/v1/datasources/${name}`)).body.notifications.events).toBe(0);
  });

  it('a malformed message is never deleted: counted, and left to the redrive policy (dead-letter queue)', async () => {
    const before = await queueStats();
    await send(sqs, queue.url, '{"not": "an S3 event"');
    await send(sqs, queue.url, JSON.stringify({ hello: 'world' }));
    // Each comes back after the visibility timeout; after two receipts the queue moves it to its dead-letter queue.
    const dead = await eventually('both messages to reach the dead-letter queue', async () => {
      const r = await sqs.send(new ReceiveMessageCommand({ QueueUrl: queue.dlqUrl!, MaxNumberOfMessages: 10, WaitTimeSeconds: 1, VisibilityTimeout: 60 }));
      return (r.Messages?.length ?? 0) > 0 ? r.Messages : null;
    }, 60_000, 200);
    const bodies = [...dead.map((m) => m.Body)];
    if (bodies.length < 2) {
      const more = await sqs.send(new ReceiveMessageCommand({ QueueUrl: queue.dlqUrl!, MaxNumberOfMessages: 10, WaitTimeSeconds: 10, VisibilityTimeout: 60 }));
      bodies.push(...(more.Messages ?? []).map((m) => m.Body));
    }
    expect(bodies.sort()).toEqual(['{"hello":"world"}', '{"not": "an S3 event"']);
    const after = await queueStats();
    expect(after.unparseable - before.unparseable).toBeGreaterThanOrEqual(2);
    expect(after.deleted - before.deleted).toBe(0);
    expect(after.lastUnparseable).toMatch(/not JSON|neither S3 Records/);
    // The second receipt of each was a redelivery.
    expect(after.redelivered - before.redelivered).toBeGreaterThanOrEqual(1);
    expect(after.polling).toBe(true);
  });

  it('a lost event is caught by the schedule: a data source on events still sweeps', async () => {
    const name = uid('sweep');
    await create(name, `s3://${bucket}/lost/*.csv`, '@every 5s');
    await put(s3, bucket, 'lost/no-event.csv', 'id,v\n1,x\n2,y\n3,z\n');
    const before = await queueStats();
    // No message is sent for this object (as when a queue is purged, or a notification is lost).
    await eventually('the schedule to import the file', async () => (await rows(name)) === 3, 60_000, 500);
    expect((await queueStats()).received - before.received).toBe(0);
    await eventually('the run to be recorded', async () => (await c.request('GET', `/v1/datasources/${name}/runs`)).body.items.some((r: { filesImported: number }) => r.filesImported === 1));
  });

  it('an API in another process (a split deployment) shows the workers\' queue counters and notification health', async () => {
    // An API-only connector on the same ClickHouse and task queue, with no worker and no queue of its own.
    const api = await startConnector({
      env: envSchema.parse({ TEMPORAL_TASK_QUEUE: c.taskQueue }), connections: new Map([['aws', queueConnection(queue.url)]]),
      temporalAddress: inject('temporalAddress'), runWorker: false, destination: await processDestination(),
    });
    try {
      const name = uid('split');
      await create(name, `s3://${bucket}/split/*.csv`);
      await put(s3, bucket, 'split/one.csv', 'id,v\n1,x\n');
      await send(sqs, queue.url, s3Records(bucket, 'split/one.csv'));
      await eventually('the file to be imported', async () => (await rows(name)) === 1, 60_000, 200);
      const expected = await queueStats();
      const seen = await eventually('the API process to show the worker\'s counters', async () => {
        const r = await callApp(api.app, 'GET', '/v1/events');
        const q = r.body.queues.find((x: { connection: string }) => x.connection === 'aws');
        return q && q.deleted >= expected.deleted ? q : null;
      }, 60_000, 500);
      expect(seen).toMatchObject({ queueUrl: queue.url, polling: true });
      expect(api.events.queues()).toEqual([]);
      const ds = (await callApp(api.app, 'GET', `/v1/datasources/${name}`)).body;
      expect(ds.notifications).toMatchObject({ events: 1, byChannel: { sqs: 1, webhook: 0 } });
    } finally {
      await api.stop();
    }
  });

  it('shows the queue in /metrics and in /v1/connections, with no secret', async () => {
    const metrics = await c.request('GET', '/metrics');
    const text = String(metrics.body ?? '');
    expect(text).toMatch(new RegExp(`s3ch_sqs_messages_received_total\\{connection="aws",queue="${queue.url.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}"\\} \\d+`));
    expect(text).toMatch(/s3ch_sqs_lag_seconds\{connection="aws"/);
    const conns = await c.request('GET', '/v1/connections');
    const aws = conns.body.items.find((x: { name: string }) => x.name === 'aws');
    expect(aws.sqsQueueUrl).toBe(queue.url);
    expect(JSON.stringify(conns.body)).not.toContain('secret');
    expect(JSON.stringify((await c.request('GET', '/v1/events')).body)).not.toContain('secret');
    expect(text).not.toContain(inject('minioPassword'));
    // What the consumer sent the workflows: keys, never the connection.
    const names = (await c.request('GET', '/v1/datasources')).body.items.map((d: { name: string }) => d.name);
    expect(names.length).toBeGreaterThan(0);
    for (const n of names) {
      const history = JSON.stringify(await c.client.workflow.getHandle(`datasource:${n}`).fetchHistory());
      expect(history).not.toContain(inject('minioPassword'));
      expect(history).not.toContain(inject('sqsEndpoint'));
    }
  });
});
