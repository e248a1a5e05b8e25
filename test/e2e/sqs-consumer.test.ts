import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GetQueueAttributesCommand, type SQSClient } from '@aws-sdk/client-sqs';
import type { Client } from '@temporalio/client';
import { startSqsConsumers } from '../../events/sqs-consumer.js';
import { EventStats } from '../../events/stats.js';
import { eventually } from '../support/harness.js';
import { createQueue, queueConnection, s3Records, send, testSqs } from '../support/sqs.js';

/**
 * The consumer's delivery rule against a real queue (ElasticMQ), with a
 * Temporal client that fails on purpose: a message is deleted only when every
 * data source it concerns accepted the signal; one refused signal leaves it on
 * the queue, to come back and be signalled again.
 */
describe('SQS consumer: delete only after every signal', () => {
  let sqs: SQSClient;
  beforeAll(() => {
    sqs = testSqs();
  });
  afterAll(() => sqs?.destroy());

  it('keeps a message whose second data source refused the signal, and deletes it once both accepted', async () => {
    const queue = await createQueue(sqs, { visibilityTimeout: 1 });
    const signals: Array<{ workflowId: string; keys: string[] }> = [];
    let failB = 2;
    const specs = [
      { name: 'ds_a', connection: 'aws', bucketUri: 's3://bkt/in/*.csv' },
      { name: 'ds_b', connection: 'aws', bucketUri: 's3://bkt/in/**' },
      // Another connection's data source with the same bucket is not this queue's.
      { name: 'ds_other', connection: 'elsewhere', bucketUri: 's3://bkt/in/*.csv' },
    ];
    const temporal = {
      workflow: {
        async *list() {
          for (const spec of specs) yield { workflowId: `datasource:${spec.name}`, memo: { spec } };
        },
        getHandle(workflowId: string) {
          return {
            async signal(_def: unknown, req: { keys: string[] }) {
              if (workflowId === 'datasource:ds_b' && failB-- > 0) throw new Error('Temporal unavailable');
              signals.push({ workflowId, keys: req.keys });
            },
          };
        },
      },
    } as unknown as Client;
    const stats = new EventStats();
    const consumers = startSqsConsumers({ temporal, taskQueue: 'tq', connections: new Map([['aws', queueConnection(queue.url)]]), stats, log: () => undefined });
    try {
      await send(sqs, queue.url, s3Records('bkt', 'in/x.csv'));
      const q = await eventually('the message to be deleted after the third receipt', async () => {
        const s = stats.queues()[0]!;
        return s.deleted === 1 ? s : null;
      }, 60_000, 100);
      expect(q).toMatchObject({ received: 3, redelivered: 2, matched: 3, signalErrors: 2, deleted: 1, unparseable: 0 });
      expect(q.lastError).toMatch(/ds_b.*Temporal unavailable/);
      // ds_a was signalled on every receipt (harmless: the ledger imports a file version once); ds_b once it accepted.
      expect(signals.filter((s) => s.workflowId === 'datasource:ds_a')).toHaveLength(3);
      expect(signals.filter((s) => s.workflowId === 'datasource:ds_b')).toEqual([{ workflowId: 'datasource:ds_b', keys: ['in/x.csv'] }]);
      expect(signals.some((s) => s.workflowId === 'datasource:ds_other')).toBe(false);
      expect(stats.notifications('ds_b')).toMatchObject({ events: 1, byChannel: { sqs: 1, webhook: 0 } });
      const attrs = (await sqs.send(new GetQueueAttributesCommand({ QueueUrl: queue.url, AttributeNames: ['ApproximateNumberOfMessages', 'ApproximateNumberOfMessagesNotVisible'] }))).Attributes!;
      expect(Number(attrs.ApproximateNumberOfMessages) + Number(attrs.ApproximateNumberOfMessagesNotVisible)).toBe(0);
      // The queue's attributes were read (a check that it is reachable, and what the status shows).
      expect(q.visibilityTimeoutSeconds).toBe(1);
      expect(q.receives).toBeGreaterThanOrEqual(3);
    } finally {
      await consumers.stop();
    }
    expect(stats.queues()[0]!.polling).toBe(false);
  });

  it('a queue it cannot reach is retried with backoff and shown as not polling, with the error', async () => {
    const stats = new EventStats();
    const temporal = { workflow: { async *list() {}, getHandle() { throw new Error('unused'); } } } as unknown as Client;
    const missing = queueConnection(`${(await createQueue(sqs)).url}-missing`);
    const consumers = startSqsConsumers({ temporal, taskQueue: 'tq', connections: new Map([['aws', missing]]), stats, log: () => undefined });
    try {
      const q = await eventually('the error to show', async () => {
        const s = stats.queues()[0]!;
        return s.errors > 0 ? s : null;
      }, 30_000, 100);
      expect(q.polling).toBe(false);
      expect(q.lastError).toMatch(/NonExistentQueue|does not exist|QueueDoesNotExist/i);
    } finally {
      await consumers.stop();
    }
  });
});
