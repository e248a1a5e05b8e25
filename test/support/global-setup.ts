import { bundleWorkflowCode } from '@temporalio/worker';
import { mkdtemp, writeFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestProject } from 'vitest/node';
import { ensureElasticmq, ensureTools } from '../../scripts/tools.js';
import { freePort, startElasticmq, startLocalServices } from '../../scripts/services.js';
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
  const [{ temporal, minio, stop }, bundle] = await Promise.all([
    startLocalServices({ tools, dir, minioUser: 'testadmin', minioPassword: 'testadmin-secret-key' }),
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
  const sqs = await sqsStarting;
  project.provide('sqsEndpoint', sqs.endpoint);
  return async () => {
    await sqs.stop();
    await stop();
    await rm(dir, { recursive: true, force: true });
  };
}
