#!/usr/bin/env node
// Entry point of `npm start`, `npm test` and `npm run bench`. Plain JavaScript
// with no dependencies, because it runs before any are installed: it installs
// them when missing or stale, then hands over to the TypeScript entry point.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const [major, minor] = process.versions.node.split('.').map(Number);
if (major < 20 || (major === 20 && minor < 3)) {
  console.error(`s3-clickhouse-connector needs Node.js >= 20.3 (this is ${process.versions.node}). Install a newer Node.js and run again.`);
  process.exit(1);
}

function dependenciesStale() {
  const marker = join(root, 'node_modules', '.package-lock.json');
  if (!existsSync(marker)) return true;
  const lock = join(root, 'package-lock.json');
  return existsSync(lock) && statSync(lock).mtimeMs > statSync(marker).mtimeMs + 1000;
}

if (dependenciesStale()) {
  // `npm ci` installs exactly the lockfile and never rewrites it. The lockfile
  // lists every platform's optional native package (test/unit/lockfile.test.ts
  // keeps it so), which is what `npm ci` needs to accept it.
  const lock = existsSync(join(root, 'package-lock.json'));
  const args = lock ? ['ci', '--no-audit', '--no-fund'] : ['install', '--no-audit', '--no-fund'];
  console.error(`[setup] installing npm dependencies (npm ${args[0]}${lock ? ', exactly as package-lock.json pins them' : ''}) ...`);
  const r = spawnSync('npm', args, { cwd: root, stdio: 'inherit' });
  if (r.status !== 0) {
    console.error(`[setup] npm ${args[0]} failed; fix the error above and run again.`);
    process.exit(r.status ?? 1);
  }
}

const tsx = ['--import', 'tsx'];
const targets = {
  start: [[...tsx, 'scripts/start.ts']],
  tools: [[...tsx, 'scripts/tools.ts']],
  bench: [[...tsx, 'scripts/tools.ts'], [...tsx, 'scripts/bench.ts']],
  // Build (or find cached) tools first so their one-time build shows progress outside the test runner.
  test: [[...tsx, 'scripts/tools.ts'], [join(root, 'node_modules', 'vitest', 'vitest.mjs'), 'run']],
};

const [command, ...rest] = process.argv.slice(2);
const steps = targets[command];
if (!steps) {
  console.error(`usage: bootstrap.mjs ${Object.keys(targets).join('|')} [args]`);
  process.exit(2);
}

let child = null;
for (const sig of ['SIGINT', 'SIGTERM']) {
  process.on(sig, () => {
    if (child) child.kill(sig);
  });
}

for (let i = 0; i < steps.length; i++) {
  const args = i === steps.length - 1 ? [...steps[i], ...rest] : steps[i];
  const code = await new Promise((resolve) => {
    // The AWS SDK warns on every start that its 2027 releases will need Node 22;
    // this release runs on Node >= 20.3 (the README says so), so the notice is noise here.
    const env = { AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true', ...process.env };
    child = spawn(process.execPath, args, { cwd: root, stdio: 'inherit', env });
    child.on('exit', (c, signal) => resolve(c ?? (signal ? 1 : 0)));
  });
  if (code !== 0) process.exit(code);
}
