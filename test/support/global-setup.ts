import { bundleWorkflowCode } from '@temporalio/worker';
import { mkdtemp, writeFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestProject } from 'vitest/node';
import { ensureTools } from '../../scripts/tools.js';
import { freePort, startMinio, startTemporalDevServer, type RunningService } from '../../scripts/services.js';
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
  }
}

/** Start the real services once for the whole run. */
export default async function setup(project: TestProject) {
  const dir = await mkdtemp(join(tmpdir(), 's3ch-test-'));
  const log = (line: string) => process.stderr.write(`[setup] ${line}\n`);
  const tools = await ensureTools({ log });
  const services: RunningService[] = [];
  const [temporal, minio, bundle] = await Promise.all([
    (async () => {
      const s = await startTemporalDevServer({
        bin: tools.temporal,
        port: await freePort(),
        uiPort: await freePort(),
        searchAttributes: { DataSource: 'Keyword', DataSourceState: 'Keyword' },
        logFile: join(dir, 'temporal.log'),
      });
      services.push(s);
      return s;
    })(),
    (async () => {
      const s = await startMinio({
        bin: tools.minio,
        dataDir: join(dir, 'minio'),
        port: await freePort(),
        consolePort: await freePort(),
        rootUser: 'testadmin',
        rootPassword: 'testadmin-secret-key',
        logFile: join(dir, 'minio.log'),
      });
      services.push(s);
      return s;
    })(),
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
  return async () => {
    await Promise.all(services.map((s) => s.stop()));
    await rm(dir, { recursive: true, force: true });
  };
}
