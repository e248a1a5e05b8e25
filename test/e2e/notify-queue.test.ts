import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PutBucketNotificationConfigurationCommand, S3Client } from '@aws-sdk/client-s3';
import { serve, type ServerType } from '@hono/node-server';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { inject } from 'vitest';
import { freePort, startMinio, type RunningService } from '../../scripts/services.js';
import { createBucket, eventually, put, sql, startTestConnector, uid, type TestConnector } from '../support/harness.js';

/**
 * MinIO's webhook target with a persistent queue (`queue_dir`, as `npm start`
 * configures it): objects uploaded while the API is down are notified once it
 * listens again, and the data source's notification health counts them.
 */
describe('webhook events wait while the API is down', () => {
  let c: TestConnector;
  let minio: RunningService & { endpoint: string };
  let server: ServerType | undefined;
  let s3: S3Client;
  let dir: string;
  let apiPort: number;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 's3ch-notify-queue-'));
    apiPort = await freePort();
    minio = await startMinio({
      bin: inject('minioBin'),
      dataDir: join(dir, 'data'),
      port: await freePort(),
      consolePort: await freePort(),
      rootUser: 'queueadmin',
      rootPassword: 'queueadmin-secret',
      logFile: join(dir, 'minio.log'),
      env: {
        MINIO_NOTIFY_WEBHOOK_ENABLE_S3CH: 'on',
        MINIO_NOTIFY_WEBHOOK_ENDPOINT_S3CH: `http://127.0.0.1:${apiPort}/v1/notify`,
        MINIO_NOTIFY_WEBHOOK_QUEUE_DIR_S3CH: join(dir, 'events'),
      },
    });
    c = await startTestConnector({}, {
      queued: { kind: 'static', endpoint: minio.endpoint, region: 'us-east-1', forcePathStyle: true, accessKeyId: 'queueadmin', secretAccessKey: 'queueadmin-secret' },
    });
    s3 = new S3Client({ endpoint: minio.endpoint, region: 'us-east-1', forcePathStyle: true, credentials: { accessKeyId: 'queueadmin', secretAccessKey: 'queueadmin-secret' } });
  });

  afterAll(async () => {
    await c?.stop();
    await new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve()));
    s3?.destroy();
    await minio?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  it('uploads made while nothing listens are imported once the API is back', async () => {
    const bucket = await createBucket(s3);
    await s3.send(new PutBucketNotificationConfigurationCommand({
      Bucket: bucket,
      NotificationConfiguration: { QueueConfigurations: [{ QueueArn: 'arn:minio:sqs::S3CH:webhook', Events: ['s3:ObjectCreated:*'] }] },
    }));
    const name = uid('queued');
    const created = await c.request('POST', '/v1/datasources', {
      name, connection: 'queued', bucketUri: `s3://${bucket}/in/*.csv`, format: 'csv', schedule: '@on-demand',
      columns: [{ name: 'id', type: 'UInt32' }, { name: 'v', type: 'String' }],
    });
    expect(created.status, JSON.stringify(created.body)).toBe(201);
    // The API is not listening: the webhook cannot be delivered.
    for (let i = 0; i < 3; i++) await put(s3, bucket, `in/down-${i}.csv`, `id,v\n${i},x\n`);
    await new Promise((r) => setTimeout(r, 3000));
    expect((await c.request('GET', `/v1/datasources/${name}`)).body.notifications.events).toBe(0);

    await new Promise<void>((resolve) => {
      server = serve({ fetch: c.app.fetch, hostname: '127.0.0.1', port: apiPort }, () => resolve());
    });
    await eventually('the queued events to import the three files', async () => Number((await sql<{ n: string }>(c, `SELECT count() AS n FROM ${name}`))[0]?.n) === 3, 90_000, 250);
    const ds = (await c.request('GET', `/v1/datasources/${name}`)).body;
    expect(ds.notifications.byChannel.webhook).toBe(3);
    expect(ds.notifications.lastEventAt).not.toBeNull();
    const runs = await eventually('the runs to be recorded', async () => {
      const items = (await c.request('GET', `/v1/datasources/${name}/runs`)).body.items;
      return items.length ? items : null;
    });
    expect(runs.every((r: { trigger: string }) => r.trigger === 'notify')).toBe(true);
  });
});
