/**
 * External binaries the product needs (Temporal CLI dev server, MinIO), built from
 * Go modules at pinned versions and cached OUTSIDE the repository:
 *
 *   ${S3CH_TOOLS_DIR:-$HOME/.cache/s3-clickhouse-connector/tools}/<name>-<version>/<name>
 *
 * - `S3CH_TEMPORAL_BIN` / `S3CH_MINIO_BIN` override the cache entirely.
 * - A build goes into a temp dir (GOBIN=<tmp>) and is renamed into place, so an
 *   interrupted build never leaves a half-written binary behind.
 * - A lock directory (`<name>-<version>.lock`, holding the owner's pid) keeps two
 *   processes from building the same tool at once; locks of dead pids are stale.
 *
 * Runnable directly: `npx tsx scripts/tools.ts` installs both and prints the paths.
 */
import { spawn, execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { constants as fsConstants, readFileSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { access, mkdir, readFile, readdir, rename, rm, stat, writeFile } from 'node:fs/promises';
import { homedir, hostname } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

export type ToolName = 'temporal' | 'minio';

export const TOOL_VERSIONS = {
  temporal: { module: 'github.com/temporalio/cli/cmd/temporal', version: 'v1.5.1' },
  minio: { module: 'github.com/minio/minio', version: 'v0.0.0-20260212201848-7aac2a2c5b7c' },
} as const satisfies Record<ToolName, { module: string; version: string }>;

const ENV_OVERRIDE: Record<ToolName, string> = {
  temporal: 'S3CH_TEMPORAL_BIN',
  minio: 'S3CH_MINIO_BIN',
};

const MIN_GO = [1, 24] as const;
const PROGRESS_EVERY_MS = 30_000;
/** A lock older than this is considered stale even if its pid looks alive (pid reuse). */
const LOCK_MAX_AGE_MS = 90 * 60_000;

export interface EnsureToolOptions {
  /** Progress sink; defaults to writing to stderr. */
  log?: (line: string) => void;
}

const defaultLog = (line: string): void => {
  process.stderr.write(`[tools] ${line}\n`);
};

/** Root of the tool cache. */
export function toolsDir(): string {
  const fromEnv = process.env.S3CH_TOOLS_DIR;
  return resolve(fromEnv && fromEnv.trim() !== '' ? fromEnv : join(homedir(), '.cache', 's3-clickhouse-connector', 'tools'));
}

/** Where the cached binary for `name` lives (whether or not it exists yet). */
export function toolBinaryPath(name: ToolName): string {
  const { version } = TOOL_VERSIONS[name];
  return join(toolsDir(), `${name}-${version}`, exeName(name));
}

function exeName(name: string): string {
  return process.platform === 'win32' ? `${name}.exe` : name;
}

async function isExecutable(path: string): Promise<boolean> {
  try {
    const st = await stat(path);
    if (!st.isFile()) return false;
    await access(path, fsConstants.X_OK);
    return true;
  } catch {
    return false;
  }
}

// One in-flight ensure per tool per process (so ensureTool() called twice concurrently in
// the same process doesn't wait on its own lock).
const inFlight = new Map<ToolName, Promise<string>>();

/** Returns the absolute path of the binary, building it (once, cached) if needed. */
export function ensureTool(name: ToolName, opts: EnsureToolOptions = {}): Promise<string> {
  if (!(name in TOOL_VERSIONS)) {
    return Promise.reject(new Error(`Unknown tool "${String(name)}" (expected one of: ${Object.keys(TOOL_VERSIONS).join(', ')})`));
  }
  const override = process.env[ENV_OVERRIDE[name]];
  if (override && override.trim() !== '') return checkOverride(name, override);

  let p = inFlight.get(name);
  if (!p) {
    p = ensureCached(name, opts.log ?? defaultLog).finally(() => inFlight.delete(name));
    inFlight.set(name, p);
  }
  return p;
}

/** Ensures both tools (built one after the other: each Go build already uses all cores). */
export async function ensureTools(opts: EnsureToolOptions = {}): Promise<{ temporal: string; minio: string }> {
  const temporal = await ensureTool('temporal', opts);
  const minio = await ensureTool('minio', opts);
  return { temporal, minio };
}

async function checkOverride(name: ToolName, value: string): Promise<string> {
  const path = resolve(value);
  if (!(await isExecutable(path))) {
    throw new Error(`${ENV_OVERRIDE[name]}=${value} does not point to an executable file (${name} binary expected).`);
  }
  return path;
}

async function ensureCached(name: ToolName, log: (line: string) => void): Promise<string> {
  const finalPath = toolBinaryPath(name);
  if (await isExecutable(finalPath)) return finalPath;

  const { module, version } = TOOL_VERSIONS[name];
  const goBin = await findGo(); // fail fast, before taking the lock, if Go is missing
  const root = toolsDir();
  await mkdir(root, { recursive: true });

  const lockDir = join(root, `${name}-${version}.lock`);
  const release = await acquireLock(lockDir, `${name}@${version}`, log);
  try {
    // Another process may have finished the build while we waited for the lock.
    if (await isExecutable(finalPath)) return finalPath;
    await removeLeftoverTempDirs(root, name);

    const tmpDir = join(root, `.tmp-${name}-${process.pid}-${Date.now().toString(36)}`);
    await mkdir(tmpDir, { recursive: true });
    try {
      await goInstall({ goBin, module, version, gobin: tmpDir, name, log });
      const built = join(tmpDir, exeName(name));
      if (!(await isExecutable(built))) {
        throw new Error(`go install ${module}@${version} succeeded but produced no ${built}`);
      }
      await mkdir(join(root, `${name}-${version}`), { recursive: true });
      await rename(built, finalPath); // atomic within the same filesystem
    } finally {
      await rm(tmpDir, { recursive: true, force: true });
    }
    log(`${name} ${version} installed at ${finalPath}`);
    return finalPath;
  } finally {
    await release();
  }
}

async function removeLeftoverTempDirs(root: string, name: string): Promise<void> {
  // We hold the lock for `name`, so any `.tmp-<name>-*` dir is from a dead/interrupted build.
  let entries: string[];
  try {
    entries = await readdir(root);
  } catch {
    return;
  }
  await Promise.all(
    entries
      .filter((e) => e.startsWith(`.tmp-${name}-`))
      .map((e) => rm(join(root, e), { recursive: true, force: true }).catch(() => undefined)),
  );
}

// ---------------------------------------------------------------------------------------
// Go toolchain

function goMissingError(detail: string): Error {
  return new Error(
    `${detail}\n` +
      `The Temporal CLI and MinIO binaries are built from source with Go on first use.\n` +
      `Install Go >= ${MIN_GO.join('.')} from https://go.dev/dl/ (make sure \`go\` is on PATH), ` +
      `or set S3CH_TEMPORAL_BIN and S3CH_MINIO_BIN to existing temporal / minio binaries.`,
  );
}

async function findGo(): Promise<string> {
  const goBin = process.env.GOROOT ? join(process.env.GOROOT, 'bin', exeName('go')) : 'go';
  const candidates = goBin === 'go' ? ['go'] : [goBin, 'go'];
  let lastErr: unknown;
  for (const candidate of candidates) {
    try {
      const out = await new Promise<string>((res, rej) =>
        execFile(candidate, ['env', 'GOVERSION'], { timeout: 60_000 }, (err, stdout) => (err ? rej(err) : res(stdout))),
      );
      const m = /go(\d+)\.(\d+)/.exec(out.trim());
      if (!m) throw new Error(`could not parse Go version from "${out.trim()}"`);
      const major = Number(m[1]);
      const minor = Number(m[2]);
      if (major < MIN_GO[0] || (major === MIN_GO[0] && minor < MIN_GO[1])) {
        throw goMissingError(`Found ${out.trim()} (${candidate}), but Go >= ${MIN_GO.join('.')} is required.`);
      }
      return candidate;
    } catch (err) {
      if (err instanceof Error && err.message.includes('is required')) throw err;
      lastErr = err;
    }
  }
  const code = (lastErr as NodeJS.ErrnoException | undefined)?.code;
  throw goMissingError(
    code === 'ENOENT'
      ? 'Go toolchain not found: `go` is not on PATH.'
      : `Go toolchain not usable: ${(lastErr as Error | undefined)?.message ?? String(lastErr)}`,
  );
}

function fmtElapsed(ms: number): string {
  const s = Math.round(ms / 1000);
  return s < 60 ? `${s}s` : `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`;
}

async function goInstall(args: {
  goBin: string;
  module: string;
  version: string;
  gobin: string;
  name: string;
  log: (line: string) => void;
}): Promise<void> {
  const { goBin, module, version, gobin, name, log } = args;
  const target = `${module}@${version}`;
  log(`Building ${name} (go install ${target}).`);
  log(`This is a one-time step (cached in ${toolsDir()}); it can take several minutes.`);
  const started = Date.now();
  const tail: string[] = [];
  let lastLine = '';

  await new Promise<void>((res, rej) => {
    const child = spawn(goBin, ['install', target], {
      env: { ...process.env, GOBIN: gobin },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const onData = (buf: Buffer): void => {
      for (const line of buf.toString('utf8').split(/\r?\n/)) {
        if (!line.trim()) continue;
        lastLine = line.trim();
        tail.push(line);
        if (tail.length > 40) tail.shift();
      }
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    const timer = setInterval(() => {
      const hint = lastLine.startsWith('go: downloading') ? ` (${lastLine})` : '';
      log(`... still building ${name}: ${fmtElapsed(Date.now() - started)} elapsed${hint}`);
    }, PROGRESS_EVERY_MS);
    const kill = (): void => {
      child.kill('SIGKILL');
    };
    process.once('exit', kill);
    child.on('error', (err) => {
      clearInterval(timer);
      process.off('exit', kill);
      rej(err);
    });
    child.on('close', (code, signal) => {
      clearInterval(timer);
      process.off('exit', kill);
      if (code === 0) return res();
      rej(
        new Error(
          `go install ${target} failed (${signal ? `signal ${signal}` : `exit code ${code}`}) after ${fmtElapsed(Date.now() - started)}:\n` +
            tail.join('\n'),
        ),
      );
    });
  });
  log(`Built ${name} in ${fmtElapsed(Date.now() - started)}.`);
}

// ---------------------------------------------------------------------------------------
// Cross-process lock: `mkdir` is atomic; the owner writes owner.json with its pid.

interface LockOwner {
  pid: number;
  host: string;
  startedAt: number;
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

async function readOwner(lockDir: string): Promise<LockOwner | undefined> {
  try {
    const parsed = JSON.parse(await readFile(join(lockDir, 'owner.json'), 'utf8')) as Partial<LockOwner>;
    if (typeof parsed.pid === 'number') {
      return { pid: parsed.pid, host: String(parsed.host ?? ''), startedAt: Number(parsed.startedAt ?? 0) };
    }
  } catch {
    /* missing or half-written */
  }
  return undefined;
}

async function isStale(lockDir: string): Promise<{ stale: boolean; owner?: LockOwner }> {
  const owner = await readOwner(lockDir);
  if (!owner) {
    // The owner creates the dir and then writes owner.json; give it a moment.
    try {
      const st = await stat(lockDir);
      return { stale: Date.now() - st.mtimeMs > 10_000 };
    } catch {
      return { stale: false }; // vanished: just retry mkdir
    }
  }
  if (owner.host && owner.host !== hostname()) {
    // Shared cache dir across machines: only trust age.
    return { stale: Date.now() - owner.startedAt > LOCK_MAX_AGE_MS, owner };
  }
  return { stale: !pidAlive(owner.pid) || Date.now() - owner.startedAt > LOCK_MAX_AGE_MS, owner };
}

async function acquireLock(lockDir: string, what: string, log: (line: string) => void): Promise<() => Promise<void>> {
  const waitStarted = Date.now();
  let lastReport = 0;
  for (;;) {
    try {
      await mkdir(lockDir);
      const me: LockOwner = { pid: process.pid, host: hostname(), startedAt: Date.now() };
      await writeFile(join(lockDir, 'owner.json'), JSON.stringify(me));
      let released = false;
      // If the process exits while holding the lock (the go child is killed too), drop it.
      const releaseSync = (): void => {
        try {
          rmSync(lockDir, { recursive: true, force: true });
        } catch {
          /* a dead pid is detected as stale anyway */
        }
      };
      process.once('exit', releaseSync);
      return async () => {
        if (released) return;
        released = true;
        process.off('exit', releaseSync);
        await rm(lockDir, { recursive: true, force: true });
      };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
    const { stale, owner } = await isStale(lockDir);
    if (stale) {
      log(`Removing stale lock ${lockDir}${owner ? ` (pid ${owner.pid} is gone)` : ''}.`);
      // Rename first so two processes noticing the same stale lock can't both delete a fresh one.
      const trash = `${lockDir}.stale-${process.pid}-${Date.now().toString(36)}`;
      try {
        await rename(lockDir, trash);
        await rm(trash, { recursive: true, force: true });
      } catch {
        /* someone else handled it */
      }
      continue;
    }
    const now = Date.now();
    if (lastReport === 0 || now - lastReport >= PROGRESS_EVERY_MS) {
      log(
        `Waiting for another process${owner ? ` (pid ${owner.pid})` : ''} that is building ${what} ` +
          `(${fmtElapsed(now - waitStarted)} so far)...`,
      );
      lastReport = now;
    }
    await new Promise((r) => setTimeout(r, 1000));
  }
}

// ---------------------------------------------------------------------------------------
// ElasticMQ: the SQS-compatible server the tests and the SQS benchmark run against.
//
// goaws (the Go one) was tried first: v0.4.5, the newest on the Go module proxy, speaks only
// SQS's old query protocol (form-encoded `Action=...`, XML answers) and answers 400 "Bad
// Request - Action:" to @aws-sdk/client-sqs, which speaks AWS JSON 1.0 as Amazon SQS does
// today. ElasticMQ speaks both, with visibility timeouts, long polling, receive counts and
// dead-letter queues. Its jars come from Maven Central (`mvn dependency:copy-dependencies`)
// into the tool cache: `<tools>/elasticmq-<version>/lib/*.jar`, run with `java -cp`.

export const ELASTICMQ = { group: 'org.elasticmq', artifact: 'elasticmq-server_2.13', version: '1.7.1', main: 'org.elasticmq.server.Main' } as const;

/** The directory of ElasticMQ's jars (`S3CH_ELASTICMQ_LIB` overrides), fetched once with Maven. */
export async function ensureElasticmq(opts: EnsureToolOptions = {}): Promise<{ java: string; lib: string }> {
  const log = opts.log ?? defaultLog;
  const java = process.env.JAVA_HOME ? join(process.env.JAVA_HOME, 'bin', exeName('java')) : 'java';
  const override = process.env.S3CH_ELASTICMQ_LIB;
  if (override && override.trim() !== '') return { java, lib: resolve(override) };
  const root = toolsDir();
  const dir = join(root, `elasticmq-${ELASTICMQ.version}`);
  const lib = join(dir, 'lib');
  const complete = join(dir, 'complete');
  if (await stat(complete).then(() => true, () => false)) return { java, lib };
  await mkdir(root, { recursive: true });
  const release = await acquireLock(`${dir}.lock`, `elasticmq@${ELASTICMQ.version}`, log);
  try {
    if (await stat(complete).then(() => true, () => false)) return { java, lib };
    await removeLeftoverTempDirs(root, 'elasticmq');
    const tmp = join(root, `.tmp-elasticmq-${process.pid}-${Date.now().toString(36)}`);
    await mkdir(tmp, { recursive: true });
    try {
      await writeFile(
        join(tmp, 'pom.xml'),
        `<project xmlns="http://maven.apache.org/POM/4.0.0"><modelVersion>4.0.0</modelVersion>` +
          `<groupId>local.s3ch</groupId><artifactId>elasticmq-tool</artifactId><version>1</version><packaging>pom</packaging>` +
          `<dependencies><dependency><groupId>${ELASTICMQ.group}</groupId><artifactId>${ELASTICMQ.artifact}</artifactId><version>${ELASTICMQ.version}</version></dependency></dependencies></project>\n`,
      );
      log(`Fetching ElasticMQ ${ELASTICMQ.version} from Maven Central (mvn dependency:copy-dependencies); one time, cached in ${root}.`);
      const started = Date.now();
      await new Promise<void>((res, rej) => {
        const child = spawn('mvn', ['-B', '-q', 'dependency:copy-dependencies', `-DoutputDirectory=${join(tmp, 'lib')}`], { cwd: tmp, stdio: ['ignore', 'pipe', 'pipe'] });
        const tail: string[] = [];
        const onData = (b: Buffer) => tail.push(...b.toString('utf8').split(/\r?\n/).filter((l) => l.trim()).slice(-40));
        child.stdout.on('data', onData);
        child.stderr.on('data', onData);
        const timer = setInterval(() => log(`... still fetching elasticmq: ${fmtElapsed(Date.now() - started)} elapsed`), PROGRESS_EVERY_MS);
        child.on('error', (err) => (clearInterval(timer), rej(new Error(`cannot run mvn (Maven is needed once to fetch ElasticMQ): ${err.message}`))));
        child.on('close', (code) => {
          clearInterval(timer);
          if (code === 0) res();
          else rej(new Error(`mvn dependency:copy-dependencies for ElasticMQ failed (exit code ${code}):\n${tail.slice(-40).join('\n')}`));
        });
      });
      await rm(dir, { recursive: true, force: true });
      await mkdir(dir, { recursive: true });
      await rename(join(tmp, 'lib'), lib);
      await writeFile(complete, `${ELASTICMQ.group}:${ELASTICMQ.artifact}:${ELASTICMQ.version}\n`);
      log(`ElasticMQ ${ELASTICMQ.version} cached in ${dir} (${fmtElapsed(Date.now() - started)}).`);
    } finally {
      await rm(tmp, { recursive: true, force: true });
    }
    return { java, lib };
  } finally {
    await release();
  }
}

// ---------------------------------------------------------------------------------------
// The ClickHouse engine: the chDB library from npm, run by a small C launcher

/** Source of the launcher (scripts/engine/launcher.c): the cache key includes its hash. */
const LAUNCHER_SOURCE = fileURLToPath(new URL('./engine/launcher.c', import.meta.url));

/**
 * ClickHouse itself: `libchdb.so` of the `@chdb/lib-*` package npm installed
 * for this platform (ClickHouse 26.7, clickhouse-local's entry point inside).
 */
export function chdbLibraryPath(): string {
  const require = createRequire(import.meta.url);
  const pkg = `@chdb/lib-${process.platform}-${process.arch}-gnu`;
  try {
    return join(dirname(require.resolve(`${pkg}/package.json`)), 'libchdb.so');
  } catch {
    throw new Error(`the ClickHouse engine needs the npm package ${pkg} (installed with chdb by \`npm ci\`); it is missing, or this platform has no build of it`);
  }
}

/** Where the launcher built from the current source is cached. */
export function engineLauncherPath(): string {
  const hash = createHash('sha256').update(readFileSync(LAUNCHER_SOURCE)).digest('hex').slice(0, 12);
  return join(toolsDir(), `s3ch-engine-${hash}`, 's3ch-engine');
}

/**
 * The engine launcher and the library it runs. The launcher is ~40 lines of
 * C built once with the system's C compiler (`cc`, the one Go's cgo uses),
 * cached like the Go tools under a name that carries its source's hash.
 * `S3CH_ENGINE_LAUNCHER` overrides the cache.
 */
export async function ensureEngine(opts: EnsureToolOptions = {}): Promise<{ launcher: string; library: string }> {
  const library = chdbLibraryPath();
  const override = process.env.S3CH_ENGINE_LAUNCHER;
  if (override && override.trim() !== '') {
    const path = resolve(override);
    if (!(await isExecutable(path))) throw new Error(`S3CH_ENGINE_LAUNCHER=${override} does not point to an executable file`);
    return { launcher: path, library };
  }
  const finalPath = engineLauncherPath();
  if (await isExecutable(finalPath)) return { launcher: finalPath, library };
  const log = opts.log ?? defaultLog;
  const root = toolsDir();
  await mkdir(root, { recursive: true });
  const release = await acquireLock(`${dirname(finalPath)}.lock`, 's3ch-engine', log);
  try {
    if (await isExecutable(finalPath)) return { launcher: finalPath, library };
    const tmp = `${finalPath}.tmp-${process.pid}`;
    await mkdir(dirname(finalPath), { recursive: true });
    const cc = process.env.CC && process.env.CC.trim() !== '' ? process.env.CC : 'cc';
    log(`Building the ClickHouse engine launcher (${cc} ${LAUNCHER_SOURCE}).`);
    await new Promise<void>((res, rej) =>
      execFile(cc, ['-O2', '-o', tmp, LAUNCHER_SOURCE, '-ldl'], { timeout: 120_000 }, (err, _out, stderr) => {
        if (!err) return res();
        const missing = (err as NodeJS.ErrnoException).code === 'ENOENT';
        rej(
          new Error(
            missing
              ? `no C compiler: \`${cc}\` is not on PATH. The embedded ClickHouse engine needs one to build its launcher once (install gcc or clang, e.g. \`apt-get install gcc\`; Go's cgo needs the same), or set CLICKHOUSE_URL to use a ClickHouse server.`
              : `building the engine launcher failed: ${stderr || err.message}`,
          ),
        );
      }),
    );
    await rename(tmp, finalPath);
    log(`engine launcher installed at ${finalPath}`);
    return { launcher: finalPath, library };
  } finally {
    await release();
  }
}

// ---------------------------------------------------------------------------------------

const invokedDirectly = (() => {
  const entry = process.argv[1];
  if (!entry) return false;
  try {
    return import.meta.url === pathToFileURL(resolve(entry)).href;
  } catch {
    return false;
  }
})();

if (invokedDirectly) {
  ensureTools()
    .then(async (paths) => {
      for (const [name, path] of Object.entries(paths)) process.stdout.write(`${name}: ${path}\n`);
      process.stdout.write(`engine: ${(await ensureEngine()).launcher}\n`);
    })
    .catch((err: unknown) => {
      process.stderr.write(`${err instanceof Error ? err.message : String(err)}\n`);
      process.exit(1);
    });
}
