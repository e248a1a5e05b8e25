import { bundleWorkflowCode } from '@temporalio/worker';
import { randomBytes } from 'node:crypto';
import { mkdtemp, writeFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestProject } from 'vitest/node';
import { ensureElasticmq, ensureEngine, ensureTools } from '../../scripts/tools.js';
import { freePort, startClickHouseEngine, startElasticmq, startLocalServices } from '../../scripts/services.js';
import { workflowsPath } from '../../worker/worker.js';

declare module 'vitest' {
  export interface ProvidedContext {
    temporalAddress: string;
    minioEndpoint: string;
    minioUser: string;
    minioPassword: string;
    workflowBundlePath: string;
    temporalBin: string;
    minioBin: string;
    /** ElasticMQ, the SQS-compatible server (region us-east-1, account 000000000000). */
    sqsEndpoint: string;
    /** The run's ClickHouse engine process and its users (see harness.ts processDestination). */
    clickhouseUrl: string;
    clickhouseUser: string;
    clickhousePassword: string;
    clickhouseReaderUser: string;
    clickhouseReaderPassword: string;
    /** A user with every right, for fixtures the connector's user may not make (see harness.ts adminClient). */
    clickhouseAdminPassword: string;
    /** Grant pattern of the databases the test users own: each test process uses one of its own. */
    clickhouseDatabasePrefix: string;
    engineLauncher: string;
    engineLibrary: string;
  }
}

/** Start the real services once for the whole run. */
export default async function setup(project: TestProject) {
  const dir = await mkdtemp(join(tmpdir(), 's3ch-test-'));
  const log = (line: string) => process.stderr.write(`[setup] ${line}\n`);
  const tools = await ensureTools({ log });
  // SQS: started beside the others, stopped after them.
  const sqsStarting = ensureElasticmq({ log }).then(async (emq) => startElasticmq({ ...emq, dir: join(dir, 'elasticmq'), port: await freePort(), logFile: join(dir, 'elasticmq.log') }));
  sqsStarting.catch(() => undefined);
  const engineBins = await ensureEngine({ log });
  const adminPassword = randomBytes(12).toString('hex');
  const [{ temporal, minio, stop }, engine, bundle] = await Promise.all([
    startLocalServices({ tools, dir, minioUser: 'testadmin', minioPassword: 'testadmin-secret-key' }),
    // One ClickHouse server process for the whole run, as in production: every
    // test file talks to it over HTTP in a database of its own.
    startClickHouseEngine({ ...engineBins, dir: join(dir, 'clickhouse'), port: await freePort(), databases: ['s3ch_t_*'], adminPassword, maxMemory: 4 * 1024 ** 3, cacheSize: 64 * 1024 ** 2 }),
    bundleWorkflowCode({ workflowsPath, logger: { info() {}, warn() {}, error: console.error, debug() {}, trace() {}, log() {} } }),
  ]);
  const bundlePath = join(dir, 'workflow-bundle.js');
  await writeFile(bundlePath, bundle.code);
  project.provide('temporalAddress', temporal.address);
  project.provide('minioEndpoint', minio.endpoint);
  project.provide('minioUser', 'testadmin');
  project.provide('minioPassword', 'testadmin-secret-key');
  project.provide('workflowBundlePath', bundlePath);
  project.provide('temporalBin', tools.temporal);
  project.provide('minioBin', tools.minio);
  project.provide('clickhouseUrl', engine.url);
  project.provide('clickhouseUser', engine.connector.user);
  project.provide('clickhousePassword', engine.connector.password);
  project.provide('clickhouseReaderUser', engine.reader.user);
  project.provide('clickhouseReaderPassword', engine.reader.password);
  project.provide('clickhouseDatabasePrefix', 's3ch_t_');
  project.provide('clickhouseAdminPassword', adminPassword);
  project.provide('engineLauncher', engineBins.launcher);
  project.provide('engineLibrary', engineBins.library);
  const sqs = await sqsStarting;
  project.provide('sqsEndpoint', sqs.endpoint);
  return async () => {
    await sqs.stop();
    await Promise.all([stop(), engine.stop()]);
    await rm(dir, { recursive: true, force: true });
  };
}
