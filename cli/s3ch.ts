/**
 * s3ch: the command line for s3-clickhouse-connector. Every command talks to
 * the HTTP API (`--api`, default $S3CH_API_URL or http://127.0.0.1:8080).
 * Run it with `node bin/s3ch.mjs` (or `npx s3ch`); tests call runCli in-process.
 */
import { realpathSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { runCli } from './commands.js';

export { runCli, USAGE, DEFAULT_API_URL, type CliIO } from './commands.js';

function isMain(): boolean {
  const entry = process.argv[1];
  if (!entry) return false;
  try {
    return realpathSync(entry) === realpathSync(fileURLToPath(import.meta.url));
  } catch {
    return false;
  }
}

if (isMain()) {
  const onSignal = (signal: NodeJS.Signals) => {
    if (process.stdout.isTTY) process.stdout.write('\n');
    process.exit(signal === 'SIGINT' ? 130 : 143);
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  const code = await runCli(process.argv.slice(2), {
    stdout: (s) => void process.stdout.write(s),
    stderr: (s) => void process.stderr.write(s),
    env: process.env,
    isTTY: Boolean(process.stdout.isTTY),
    columns: process.stdout.columns,
  });
  // Exit now (idle keep-alive sockets must not hold the process), once stdout has drained.
  process.stdout.write('', () => process.exit(code));
}
