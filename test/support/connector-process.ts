/**
 * The connector as a separate OS process, for the failure tests that kill it:
 * worker + API against the run's ClickHouse engine (in the database the test
 * names), configured by one JSON environment variable. Prints
 * `READY <apiUrl>` once serving.
 *
 * S3CH_TEST_FAULT=kill-after-insert:<key> SIGKILLs the process right after
 * that file's rows are inserted and before its ledger entry says success.
 * Every insert prints `INSERT START <key> <attempt>` as it begins.
 *
 * S3CH_TEST_FAULT=kill-before-sqs-delete SIGKILLs the process after its SQS
 * consumer signalled a batch's keys and before it deletes the messages.
 */
import { DefaultLogger, Runtime } from '@temporalio/worker';
import { envSchema } from '../../schemas/config.js';
import type { Connection } from '../../schemas/connection.js';
import { startConnector } from '../../worker/runtime.js';

interface ProcessConfig {
  dataDir: string;
  temporalAddress: string;
  taskQueue: string;
  port: number;
  workflowBundlePath: string;
  connections: Record<string, Connection>;
  /** CLICKHOUSE_* variables: the engine, its users and the test's database. */
  clickhouse: Record<string, string>;
}

const config = JSON.parse(process.env.S3CH_TEST_CONFIG ?? '{}') as ProcessConfig;
const fault = process.env.S3CH_TEST_FAULT ?? '';
Runtime.install({ logger: new DefaultLogger('WARN') });

const env = envSchema.parse({ ...config.clickhouse, S3CH_DATA_DIR: config.dataDir, TEMPORAL_TASK_QUEUE: config.taskQueue, PORT: String(config.port) });
const connector = await startConnector({
  env,
  connections: new Map(Object.entries(config.connections)),
  temporalAddress: config.temporalAddress,
  serveApi: true,
  workflowBundle: { codePath: config.workflowBundlePath },
  sqsHooks: {
    beforeDelete(ids) {
      process.stdout.write(`SQS DELETE ${ids.join(',')}\n`);
      if (fault === 'kill-before-sqs-delete') {
        process.stdout.write('FAULT kill-before-sqs-delete\n');
        process.kill(process.pid, 'SIGKILL');
      }
    },
  },
  hooks: {
    // Tells a test that kills this process when a file's insert has begun.
    beforeInsert(file, attempt) {
      process.stdout.write(`INSERT START ${file.key} ${attempt}\n`);
    },
    afterInsert(file) {
      if (fault === `kill-after-insert:${file.key}`) {
        process.stdout.write(`FAULT kill-after-insert ${file.key}\n`);
        process.kill(process.pid, 'SIGKILL');
      }
    },
  },
});
process.stdout.write(`READY ${connector.apiUrl}\n`);
for (const sig of ['SIGINT', 'SIGTERM'] as const) process.once(sig, () => void connector.stop().then(() => process.exit(0)));
