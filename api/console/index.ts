/**
 * The web console: static files served by the API's own Hono app at `/`.
 * It is a client of the public HTTP API only (same routes, same auth), so it
 * needs no back end of its own; the pages themselves are public (they hold no
 * data), every /v1 call from the page carries the user's token.
 */
import type { Hono } from 'hono';
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import type { AppEnv } from '../context.js';

const STATIC_DIR = fileURLToPath(new URL('./static/', import.meta.url));
const DATASOURCE_FILE_MODULE = fileURLToPath(new URL('../../schemas/datasource-file.ts', import.meta.url));

const ASSETS: Record<string, { file: string; type: string }> = {
  '/console/app.js': { file: 'app.js', type: 'text/javascript; charset=utf-8' },
  '/console/chart.js': { file: 'chart.js', type: 'text/javascript; charset=utf-8' },
  '/console/dom.js': { file: 'dom.js', type: 'text/javascript; charset=utf-8' },
  '/console/console.css': { file: 'console.css', type: 'text/css; charset=utf-8' },
  '/console/favicon.svg': { file: 'favicon.svg', type: 'image/svg+xml' },
};

// Everything from this origin, nothing inline, nothing from a CDN.
const SECURITY_HEADERS = {
  'content-security-policy':
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
};

/**
 * The `.datasource` writer of `schemas/` as a browser module, so the console
 * shows exactly what the product writes rather than a second implementation.
 * Built once per process with esbuild (already used by tsx), on first request.
 */
let datasourceFileModule: Promise<string> | null = null;
async function buildDatasourceFileModule(): Promise<string> {
  const { build } = await import('esbuild');
  const out = await build({ entryPoints: [DATASOURCE_FILE_MODULE], bundle: true, format: 'esm', platform: 'browser', target: 'es2022', write: false, logLevel: 'silent' });
  return out.outputFiles[0]!.text;
}

const htmlEscape = (s: string) => s.replace(/[&<>"']/g, (ch) => `&#${ch.charCodeAt(0)};`);

export interface ConsoleOptions {
  /** Base URL of the Temporal Web UI; default: port 8233 on the host the console was opened from. */
  temporalUiUrl?: string;
}

/** Mount the console: `/` (the page) and `/console/*` (its assets). Register before the bearer-auth middleware. */
export function registerConsole(app: Hono<AppEnv>, options: ConsoleOptions = {}) {
  app.get('/', async (c) => {
    const namespace = c.var.deps?.temporal.options.namespace ?? 'default';
    const html = (await readFile(`${STATIC_DIR}index.html`, 'utf8'))
      .replace('{{temporalNamespace}}', htmlEscape(namespace))
      .replace('{{temporalUiUrl}}', htmlEscape(options.temporalUiUrl ?? ''));
    return c.body(html, 200, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-cache', ...SECURITY_HEADERS });
  });
  app.get('/console/datasource-file.js', async (c) => {
    datasourceFileModule ??= buildDatasourceFileModule().catch((err) => {
      datasourceFileModule = null;
      throw err;
    });
    return c.body(await datasourceFileModule, 200, { 'content-type': 'text/javascript; charset=utf-8', 'cache-control': 'no-cache', ...SECURITY_HEADERS });
  });
  for (const [path, asset] of Object.entries(ASSETS)) {
    app.get(path, async (c) => c.body(await readFile(`${STATIC_DIR}${asset.file}`), 200, { 'content-type': asset.type, 'cache-control': 'no-cache', ...SECURITY_HEADERS }));
  }
}
