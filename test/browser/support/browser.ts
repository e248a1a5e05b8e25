/**
 * Browser-test support: find (or install) the system Chromium, serve a test
 * connector's Hono app on a loopback port, check accessibility with axe-core
 * and keep screenshots of every page.
 */
import { serve, type ServerType } from '@hono/node-server';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium, type Browser, type Page } from 'playwright-core';

const CANDIDATES = ['/usr/bin/chromium', '/usr/bin/chromium-browser', '/usr/bin/google-chrome', '/usr/bin/google-chrome-stable'];
const INSTALL_HINT =
  'The browser tests drive a system Chromium (no browser is downloaded). Install it — Debian/Ubuntu: `sudo apt-get update && sudo apt-get install -y chromium` — or set CHROMIUM_PATH to a Chromium or Chrome binary.';

const log = (line: string) => process.stderr.write(`[browser] ${line}\n`);

/** The Chromium binary to drive; installs Debian's package when missing and running as root. */
export function ensureChromium(): string {
  const configured = process.env.CHROMIUM_PATH;
  if (configured) {
    if (!existsSync(configured)) throw new Error(`CHROMIUM_PATH=${configured} does not exist. ${INSTALL_HINT}`);
    return configured;
  }
  const found = CANDIDATES.find((p) => existsSync(p));
  if (found) return found;
  const canInstall = process.platform === 'linux' && process.getuid?.() === 0 && existsSync('/usr/bin/apt-get');
  if (!canInstall) throw new Error(`Chromium not found (looked at ${CANDIDATES.join(', ')}). ${INSTALL_HINT}`);
  log('Chromium not found; installing Debian\'s package: apt-get update && apt-get install -y chromium');
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  for (const args of [['update'], ['install', '-y', 'chromium']]) {
    log(`running apt-get ${args.join(' ')}`);
    const r = spawnSync('apt-get', args, { stdio: ['ignore', 'inherit', 'inherit'], env });
    if (r.status !== 0) throw new Error(`apt-get ${args.join(' ')} failed (exit ${r.status}). ${INSTALL_HINT}`);
  }
  const installed = CANDIDATES.find((p) => existsSync(p));
  if (!installed) throw new Error(`apt-get installed chromium but no binary is at ${CANDIDATES.join(', ')}. ${INSTALL_HINT}`);
  log(`installed ${installed}`);
  return installed;
}

export async function launchBrowser(): Promise<Browser> {
  return chromium.launch({ executablePath: ensureChromium(), headless: true, args: ['--no-sandbox', '--disable-dev-shm-usage'] });
}

/** Serve a Hono app on 127.0.0.1 with an ephemeral port. */
export async function serveApp(app: { fetch: (req: Request) => Response | Promise<Response> }): Promise<{ url: string; close: () => Promise<void> }> {
  let server: ServerType | undefined;
  const port = await new Promise<number>((resolve, reject) => {
    server = serve({ fetch: app.fetch, port: 0, hostname: '127.0.0.1' }, (info) => resolve(info.port));
    server.once('error', reject);
  });
  return {
    url: `http://127.0.0.1:${port}`,
    close: () => new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve())),
  };
}

const AXE_SOURCE = readFileSync(createRequire(import.meta.url).resolve('axe-core/axe.min.js'), 'utf8');

export interface AxeViolation {
  id: string;
  impact: string | null;
  help: string;
  targets: string[];
}

/** axe-core's serious and critical violations on the page as it is now. */
export async function seriousA11yViolations(page: Page): Promise<AxeViolation[]> {
  await page.evaluate(AXE_SOURCE);
  const violations = await page.evaluate(async () => {
    const axe = (window as unknown as { axe: { run: (ctx: Document, opts: object) => Promise<{ violations: Array<{ id: string; impact: string | null; help: string; nodes: Array<{ target: unknown[] }> }> }> } }).axe;
    const result = await axe.run(document, { resultTypes: ['violations'] });
    return result.violations.map((v) => ({ id: v.id, impact: v.impact, help: v.help, targets: v.nodes.map((n) => String(n.target.join(' '))) }));
  });
  return violations.filter((v) => v.impact === 'serious' || v.impact === 'critical');
}

/** Where screenshots of a test run go (printed once). */
export function artifactsDir(): string {
  const dir = process.env.S3CH_ARTIFACTS_DIR ?? join(tmpdir(), 's3ch-console-artifacts');
  mkdirSync(dir, { recursive: true });
  return dir;
}

export async function screenshot(page: Page, name: string, { fullPage = true } = {}): Promise<string> {
  const file = join(artifactsDir(), `${name}.png`);
  await page.screenshot({ path: file, fullPage });
  log(`screenshot ${file}`);
  return file;
}
