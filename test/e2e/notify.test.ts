import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PutBucketNotificationConfigurationCommand, S3Client } from '@aws-sdk/client-s3';
import { serve, type ServerType } from '@hono/node-server';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { inject } from 'vitest';
import { freePort, startMinio, type RunningService } from '../../scripts/services.js';
import { createBucket, eventually, put, sql, startTestConnector, uid, type TestConnector } from '../support/harness.js';
import { waitingOnNothing } from '../support/workflow-wait.js';

/**
 * Event-driven imports: MinIO's bucket notification webhook points at the
 * API; an @on-demand data source (which never polls) must import a new object
 * within seconds of its upload.
 */
describe('event notifications', () => {
  let c: TestConnector;
  let minio: RunningService & { endpoint: string };
  let server: ServerType;
  let s3: S3Client;
  let dir: string;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 's3ch-notify-'));
    const apiPort = await freePort();
    minio = await startMinio({
      bin: inject('minioBin'),
      dataDir: join(dir, 'data'),
      port: await freePort(),
      consolePort: await freePort(),
      rootUser: 'notifyadmin',
      rootPassword: 'notifyadmin-secret',
      logFile: join(dir, 'minio.log'),
      env: {
        MINIO_NOTIFY_WEBHOOK_ENABLE_S3CH: 'on',
        MINIO_NOTIFY_WEBHOOK_ENDPOINT_S3CH: `http://127.0.0.1:${apiPort}/v1/notify`,
        MINIO_NOTIFY_WEBHOOK_QUEUE_DIR_S3CH: join(dir, 'events'),
      },
    });
    c = await startTestConnector({}, {
      events: { kind: 'static', endpoint: minio.endpoint, region: 'us-east-1', forcePathStyle: true, accessKeyId: 'notifyadmin', secretAccessKey: 'notifyadmin-secret' },
    });
    await new Promise<void>((resolve) => {
      server = serve({ fetch: c.app.fetch, hostname: '127.0.0.1', port: apiPort }, () => resolve());
    });
    s3 = new S3Client({ endpoint: minio.endpoint, region: 'us-east-1', forcePathStyle: true, credentials: { accessKeyId: 'notifyadmin', secretAccessKey: 'notifyadmin-secret' } });
  });

  afterAll(async () => {
    // The webhook target first: MinIO keeps delivering queued events, and each
    // one is a Temporal call that must not outlive the connector's connection.
    await new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve()));
    await c?.stop();
    s3?.destroy();
    await minio?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  it('imports a new object without any poll, through the webhook', async () => {
    const bucket = await createBucket(s3);
    await s3.send(new PutBucketNotificationConfigurationCommand({
      Bucket: bucket,
      NotificationConfiguration: { QueueConfigurations: [{ QueueArn: 'arn:minio:sqs::S3CH:webhook', Events: ['s3:ObjectCreated:*'] }] },
    }));
    const name = uid('n');
    const created = await c.request('POST', '/v1/datasources', {
      name, connection: 'events', bucketUri: `s3://${bucket}/in/*.csv`, format: 'csv', schedule: '@on-demand',
      columns: [{ name: 'id', type: 'UInt32' }, { name: 'v', type: 'String' }],
    });
    expect(created.status, JSON.stringify(created.body)).toBe(201);
    await eventually('the data source to be prepared', async () => (await c.request('GET', `/v1/datasources/${name}`)).body.columns);

    const uploaded = Date.now();
    await put(s3, bucket, 'in/first.csv', 'id,v\n1,a\n2,b\n');
    await put(s3, bucket, 'elsewhere/ignored.csv', 'id,v\n9,z\n');
    await eventually('the notified file to be queryable', async () => Number((await sql<{ n: string }>(c, `SELECT count() AS n FROM ${name}`))[0]?.n) === 2, 30_000, 100);
    const latencyMs = Date.now() - uploaded;
    console.log(`[notify] upload -> queryable in ${latencyMs} ms`);

    // Only the notification could have triggered it: an on-demand source never polls.
    const runs = await eventually('the run to be recorded', async () => {
      const r = await c.request('GET', `/v1/datasources/${name}/runs`);
      return r.body.items.length ? r.body.items : null;
    });
    expect(runs.map((r: { trigger: string }) => r.trigger)).toEqual(['notify']);
    const files = await c.request('GET', `/v1/datasources/${name}/files`);
    expect(files.body.items.map((f: { key: string }) => f.key)).toEqual(['in/first.csv']);

    // The per-data-source endpoint with an S3 event body works too, and a repeat notification imports nothing twice.
    await put(s3, bucket, 'in/second.csv', 'id,v\n3,c\n');
    const event = { Records: [{ eventName: 'ObjectCreated:Put', s3: { bucket: { name: bucket }, object: { key: 'in/second.csv' } } }] };
    const direct = await c.request('POST', `/v1/datasources/${name}/notify`, event);
    expect(direct.status).toBe(202);
    expect(direct.body.accepted).toBe(1);
    await eventually('the second file', async () => Number((await sql<{ n: string }>(c, `SELECT count() AS n FROM ${name}`))[0]?.n) === 3, 30_000, 100);
    expect((await c.request('POST', `/v1/datasources/${name}/notify`, event)).status).toBe(202);
    // The repeat is handled (its run, if any, is over) and nothing is left scheduled: the count is final.
    await eventually('the repeat notification to be handled', () => waitingOnNothing(c.client.workflow.getHandle(`datasource:${name}`)), 30_000, 100);
    expect(Number((await sql<{ n: string }>(c, `SELECT count() AS n FROM ${name}`))[0]?.n)).toBe(3);
  });
});
