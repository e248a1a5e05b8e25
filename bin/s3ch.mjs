#!/usr/bin/env node
// Launcher for the s3ch CLI: runs cli/s3ch.ts with tsx, resolved from this
// package (so it works from any working directory), and passes through the
// arguments, stdio, exit code and signals.
import { spawn } from 'node:child_process';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const require = createRequire(join(root, 'package.json'));

let tsx;
try {
  tsx = pathToFileURL(require.resolve('tsx')).href;
} catch {
  process.stderr.write(`error: tsx is not installed in ${root}; run \`npm install\` (or \`npm start\` once) there first\n`);
  process.exit(1);
}

const child = spawn(process.execPath, ['--import', tsx, join(root, 'cli', 's3ch.ts'), ...process.argv.slice(2)], { stdio: 'inherit' });

// Ctrl-C reaches the whole foreground process group; a signal sent to this
// process alone (kill -INT <pid>) is forwarded. The child decides how to exit.
const forward = (signal) => {
  if (child.exitCode === null && child.signalCode === null) child.kill(signal);
};
for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP']) process.on(signal, forward);

child.on('error', (err) => {
  process.stderr.write(`error: cannot start ${process.execPath}: ${err.message}\n`);
  process.exit(1);
});
child.on('exit', (code, signal) => {
  if (signal) {
    for (const s of ['SIGINT', 'SIGTERM', 'SIGHUP']) process.removeAllListeners(s);
    process.kill(process.pid, signal);
    return;
  }
  process.exit(code ?? 1);
});
