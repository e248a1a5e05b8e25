/**
 * Integration test for scripts/tools.ts + scripts/services.ts: uses the real Temporal CLI
 * and MinIO binaries (built once, cached outside the repo).
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CreateBucketCommand, GetObjectCommand, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { ensureTools } from '../../scripts/tools.js';
import { freePort, startMinio, startTemporalDevServer, tcpOpen } from '../../scripts/services.js';
import { closeConnection, openConnection } from '../../temporal/client.js';

/** temporal.api.enums.v1.IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD */
const INDEXED_VALUE_TYPE_KEYWORD = 2;

let bins: { temporal: string; minio: string };
let workDir: string;

beforeAll(async () => {
  bins = await ensureTools({ log: (line) => console.log(`[tools] ${line}`) });
  workDir = await mkdtemp(join(tmpdir(), 's3ch-services-test-'));
}, 900_000);

afterAll(async () => {
  if (workDir) await rm(workDir, { recursive: true, force: true });
});

describe('services', () => {
  it('ensureTools returns absolute paths to executables', () => {
    expect(bins.temporal).toMatch(/^\//);
    expect(bins.minio).toMatch(/^\//);
  });

  it('starts MinIO, stores and reads an object, and stops it', { timeout: 120_000 }, async () => {
    const port = await freePort();
    const consolePort = await freePort();
    const logFile = join(workDir, 'minio.log');
    const minio = await startMinio({
      bin: bins.minio,
      dataDir: join(workDir, 'minio-data'),
      port,
      consolePort,
      rootUser: 'testroot',
      rootPassword: 'testroot-secret',
      logFile,
    });
    try {
      expect(minio.endpoint).toBe(`http://127.0.0.1:${port}`);
      expect(minio.pid).toBeGreaterThan(0);

      const s3 = new S3Client({
        endpoint: minio.endpoint,
        region: 'us-east-1',
        forcePathStyle: true,
        credentials: { accessKeyId: 'testroot', secretAccessKey: 'testroot-secret' },
      });
      try {
        await s3.send(new CreateBucketCommand({ Bucket: 'services-test' }));
        await s3.send(
          new PutObjectCommand({ Bucket: 'services-test', Key: 'dir/hello.txt', Body: 'hello minio', ContentType: 'text/plain' }),
        );
        const got = await s3.send(new GetObjectCommand({ Bucket: 'services-test', Key: 'dir/hello.txt' }));
        expect(await got.Body?.transformToString()).toBe('hello minio');
      } finally {
        s3.destroy();
      }
    } finally {
      await minio.stop();
    }
    await minio.stop(); // idempotent
    expect(await tcpOpen('127.0.0.1', port)).toBe(false);
  });

  it('starts an in-memory Temporal dev server with a search attribute, and stops it', { timeout: 120_000 }, async () => {
    const port = await freePort();
    const uiPort = await freePort();
    const logFile = join(workDir, 'temporal.log');
    const temporal = await startTemporalDevServer({
      bin: bins.temporal,
      port,
      uiPort,
      searchAttributes: { DataSource: 'Keyword' },
      logFile,
    });
    try {
      expect(temporal.address).toBe(`127.0.0.1:${port}`);
      expect(temporal.uiUrl).toBe(`http://127.0.0.1:${uiPort}`);

      const connection = await openConnection({ address: temporal.address });
      try {
        const ns = await connection.workflowService.describeNamespace({ namespace: 'default' });
        expect(ns.namespaceInfo?.name).toBe('default');

        const sa = await connection.operatorService.listSearchAttributes({ namespace: 'default' });
        expect(sa.customAttributes).toHaveProperty('DataSource');
        expect(Number(sa.customAttributes?.DataSource)).toBe(INDEXED_VALUE_TYPE_KEYWORD);
      } finally {
        await closeConnection(connection);
      }
    } finally {
      await temporal.stop();
    }
    await temporal.stop(); // idempotent
    expect(await tcpOpen('127.0.0.1', port)).toBe(false);
  });
});
