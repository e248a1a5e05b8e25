import type { RunSummary } from '../workflows/messages.js';
import { readFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { ApiClient, ApiResponseError, UnreachableError } from './api.js';
import { formatBytes, formatCount, formatDuration, formatWhen, table, truncate } from './format.js';

export interface CliIO {
  stdout: (s: string) => void;
  stderr: (s: string) => void;
  /** Defaults to the global fetch; tests route it to the Hono app in-process. */
  fetch?: typeof fetch;
  /** Defaults to process.env. */
  env?: Record<string, string | undefined>;
  /** stdout is a terminal: `sync --wait` redraws one progress line instead of printing lines. */
  isTTY?: boolean;
  /** Terminal width, to keep the progress line on one line. */
  columns?: number;
  /** Base for relative file paths (default: process.cwd()). */
  cwd?: string;
}

export const DEFAULT_API_URL = 'http://127.0.0.1:8080';
const POLL_INTERVAL_MS = 500;
const DEFAULT_TIMEOUT_S = 600;
/** How long `sync --wait` tolerates an 'error' state with no new run before giving up. */
const ERROR_GRACE_MS = 15_000;

export const USAGE = `s3ch: control s3-clickhouse-connector data sources through its HTTP API

Usage: s3ch <command> [arguments] [options]

Commands:
  list [--state S] [--prefix P]             data sources with state and counters (every page, by name);
                                            S: idle, syncing, paused, error, deleting; P: start of the name
  status <name>                             state, last/next run, error, files by status, rows, bytes
  create <file.json|file.datasource>        create a data source from a spec file
  sync <name> [--wait] [--timeout SECONDS]  sync now; --wait follows the run and prints its summary
                                            (exit 1 if files failed or after --timeout, default ${DEFAULT_TIMEOUT_S})
  pause <name>                              start no new files; cancel in-flight imports
  resume <name>                             continue where it stopped
  retry <name> [--key K ...]                import these keys again (default: every failed file)
  files <name> [--status S] [--search Q] [--limit N] [--cursor C]
                                            files with their latest status, newest first
  delete <name> [--drop-table] [--drop-ledger]
                                            delete it; optionally drop its table and its ledger rows

Global options:
  --api URL     API base URL (default: $S3CH_API_URL or ${DEFAULT_API_URL})
  --token T     bearer token (default: $S3CH_API_TOKEN)
  --json        print the API's JSON response instead of text
  -h, --help    show this help

File statuses: queued, running, success, failure, pending_retry, paused, cancelled.
Exit status: 0 ok; 1 error (API error, API unreachable, failed files, timeout); 2 usage error.
`;

const OPTIONS = {
  api: { type: 'string' },
  token: { type: 'string' },
  json: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
  wait: { type: 'boolean' },
  timeout: { type: 'string' },
  key: { type: 'string', multiple: true },
  'drop-table': { type: 'boolean' },
  'drop-ledger': { type: 'boolean' },
  status: { type: 'string' },
  search: { type: 'string' },
  limit: { type: 'string' },
  cursor: { type: 'string' },
  state: { type: 'string' },
  prefix: { type: 'string' },
} as const;

const GLOBAL_OPTIONS = ['api', 'token', 'json', 'help'];

type Values = ReturnType<typeof parseArgs<{ options: typeof OPTIONS; allowPositionals: true }>>['values'];

interface Ctx {
  api: ApiClient;
  values: Values;
  json: boolean;
  io: CliIO;
  out: (s: string) => void;
  err: (s: string) => void;
}

interface CommandDef {
  /** The one positional argument, if any. */
  arg: 'name' | 'file' | null;
  options: string[];
  run: (ctx: Ctx, arg: string) => Promise<number>;
}

/** A failure of the command itself (not of the API), reported as `error: <message>`, exit 1. */
class CliFailure extends Error {
  constructor(
    message: string,
    readonly hints: string[] = [],
  ) {
    super(message);
  }
}

class UsageError extends Error {}

// ---- response shapes (documented by /openapi.json; only what the CLI reads) ----


interface DataSource {
  name: string;
  table?: string;
  connection?: string;
  bucketUri?: string;
  format?: string;
  schedule?: string;
  mode?: string;
  status: {
    state: string;
    lastRunAt: string | null;
    nextRunAt: string | null;
    error: string | null;
    backlog: boolean;
    inFlight?: Array<{ key: string; startedAt: string }>;
  };
  stats: { files: Record<string, number>; rows: number; bytes: number; quarantinedRows: number };
  inferredFrom?: string | null;
  lastRun: RunSummary | null;
}

interface StatusView {
  state: string;
  lastRunAt: string | null;
  nextRunAt: string | null;
  error: string | null;
}

interface FileItem {
  key: string;
  etag: string;
  size: number;
  status: string;
  attempts: number;
  rows: number;
  quarantinedRows: number;
  error: string | null;
  updatedAt: string;
}

interface Page<T> {
  items: T[];
  nextCursor: string | null;
}

// ---- helpers ----

const dsPath = (name: string, suffix = '') => `/v1/datasources/${encodeURIComponent(name)}${suffix}`;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function printJson(ctx: Ctx, text: string, body: unknown) {
  // Pretty-print the API's JSON; fall back to the text as received.
  try {
    ctx.out(`${JSON.stringify(body, null, 2)}\n`);
  } catch {
    ctx.out(text.endsWith('\n') ? text : `${text}\n`);
  }
}

function fileCounts(files: Record<string, number>): string {
  const parts = Object.entries(files)
    .filter(([, n]) => n > 0)
    .map(([s, n]) => `${s} ${formatCount(n)}`);
  return parts.length ? parts.join(', ') : 'none';
}

function runLine(r: RunSummary, now = Date.now()): string {
  const took = r.finishedAt ? formatDuration(Date.parse(r.finishedAt) - Date.parse(r.startedAt)) : null;
  const head = r.finishedAt ? `finished ${formatWhen(r.finishedAt, now)} in ${took}` : `running since ${formatWhen(r.startedAt, now)}`;
  return `${head} (${r.trigger}): ${formatCount(r.filesFound)} found, ${formatCount(r.filesImported)} imported, ${formatCount(r.filesFailed)} failed, ${formatCount(r.rows)} rows, ${formatBytes(r.bytes)}`;
}

function ago(iso: string | null | undefined, now = Date.now()): string {
  if (!iso) return '-';
  const t = Date.parse(iso);
  if (Number.isNaN(t)) return iso;
  return t <= now ? `${formatDuration(now - t)} ago` : `in ${formatDuration(t - now)}`;
}

// ---- commands ----

/** Page size of `list`: the API's largest, so a thousand data sources take one or two requests. */
const LIST_PAGE = 1000;

async function cmdList(ctx: Ctx): Promise<number> {
  const filter = new URLSearchParams({ limit: String(LIST_PAGE) });
  if (ctx.values.state) filter.set('state', ctx.values.state);
  if (ctx.values.prefix) filter.set('prefix', ctx.values.prefix);
  // The API answers a page at a time: follow nextCursor to the end, then print everything, sorted by name.
  const items: DataSource[] = [];
  for (let cursor: string | null = null, pages = 0; ; pages++) {
    if (cursor) filter.set('cursor', cursor);
    const res: { body: Page<DataSource> } = await ctx.api.request<Page<DataSource>>('GET', `/v1/datasources?${filter}`);
    items.push(...(res.body.items ?? []));
    cursor = res.body.nextCursor;
    if (!cursor) break;
    if (pages > 10_000) throw new CliFailure('the API kept answering with a next page; giving up after 10,000 pages');
  }
  items.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  if (ctx.json) return printJson(ctx, '', { items, nextCursor: null }), 0;
  if (!items.length) {
    ctx.out(ctx.values.state || ctx.values.prefix ? 'no data sources match\n' : 'no data sources (create one with: s3ch create <file.json>)\n');
    return 0;
  }
  const now = Date.now();
  ctx.out(
    table(
      ['NAME', 'STATE', 'SCHEDULE', 'FILES', 'FAILED', 'ROWS', 'BYTES', 'LAST RUN', 'NEXT RUN', 'ERROR'],
      items.map((d) => [
        d.name,
        d.status.state,
        d.schedule ?? '-',
        formatCount(d.stats.files.success ?? 0),
        formatCount(d.stats.files.failure ?? 0),
        formatCount(d.stats.rows),
        formatBytes(d.stats.bytes),
        ago(d.status.lastRunAt, now),
        ago(d.status.nextRunAt, now),
        d.status.error ? truncate(d.status.error, 60) : '-',
      ]),
      [3, 4, 5, 6],
    ),
  );
  return 0;
}

function describeDataSource(d: DataSource, now = Date.now()): string {
  const rows: Array<[string, string]> = [
    ['name', d.name],
    ['state', d.status.state + (d.status.backlog ? ' (backlog: more files waiting)' : '')],
  ];
  if (d.bucketUri) rows.push(['source', `${d.bucketUri}${d.format ? ` (${d.format}` : ''}${d.connection ? `${d.format ? ', ' : ' ('}connection ${d.connection}` : ''}${d.format || d.connection ? ')' : ''}`]);
  if (d.table) rows.push(['table', d.table]);
  if (d.schedule) rows.push(['schedule', d.schedule + (d.mode && d.mode !== 'tracked' ? `, ${d.mode} mode` : '')]);
  rows.push(['last run', d.lastRun ? runLine(d.lastRun, now) : formatWhen(d.status.lastRunAt, now)]);
  rows.push(['next run', d.status.nextRunAt ? formatWhen(d.status.nextRunAt, now) : d.status.state === 'paused' ? '- (paused)' : d.schedule === '@on-demand' ? '- (on demand: s3ch sync)' : '-']);
  rows.push(['error', d.status.error ?? '-']);
  const inFlight = d.status.inFlight ?? [];
  if (inFlight.length) rows.push(['in flight', `${inFlight.length}: ${truncate(inFlight.map((f) => f.key).join(', '), 100)}`]);
  rows.push(['files', fileCounts(d.stats.files)]);
  rows.push(['rows', formatCount(d.stats.rows)]);
  rows.push(['bytes', formatBytes(d.stats.bytes)]);
  rows.push(['quarantined', `${formatCount(d.stats.quarantinedRows)} rows`]);
  if (d.inferredFrom) rows.push(['schema from', d.inferredFrom]);
  const w = Math.max(...rows.map(([k]) => k.length));
  return rows.map(([k, v]) => `${k.padEnd(w)}  ${v}`).join('\n') + '\n';
}

async function cmdStatus(ctx: Ctx, name: string): Promise<number> {
  const res = await ctx.api.request<DataSource>('GET', dsPath(name));
  if (ctx.json) return printJson(ctx, res.text, res.body), 0;
  ctx.out(describeDataSource(res.body));
  return 0;
}

async function cmdCreate(ctx: Ctx, file: string): Promise<number> {
  const path = resolve(ctx.io.cwd ?? process.cwd(), file);
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    throw new CliFailure(`cannot read ${file}: ${(err as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (err as Error).message}`);
  }
  let body: { json: unknown } | { text: string; contentType: string };
  if (/\.datasource$/i.test(file)) {
    body = { text, contentType: 'text/plain; charset=utf-8' };
  } else {
    try {
      body = { json: JSON.parse(text) };
    } catch (err) {
      throw new CliFailure(`${file} is not valid JSON: ${(err as Error).message}`, ['a .datasource file is sent as text; any other file must be a JSON spec']);
    }
  }
  const res = await ctx.api.request<DataSource>('POST', '/v1/datasources', body);
  if (ctx.json) return printJson(ctx, res.text, res.body), 0;
  const d = res.body;
  ctx.out(`created ${d.name}${d.table ? ` -> table ${d.table}` : ''}${d.schedule ? `, schedule ${d.schedule}` : ''}\n`);
  ctx.out(describeDataSource(d));
  return 0;
}

async function cmdPauseResume(ctx: Ctx, name: string, action: 'pause' | 'resume'): Promise<number> {
  const res = await ctx.api.request<StatusView>('POST', dsPath(name, `/${action}`));
  if (ctx.json) return printJson(ctx, res.text, res.body), 0;
  ctx.out(`${action === 'pause' ? 'paused' : 'resumed'} ${name} (state: ${res.body.state})\n`);
  return 0;
}

async function cmdRetry(ctx: Ctx, name: string): Promise<number> {
  const keys = ctx.values.key ?? [];
  const res = await ctx.api.request('POST', dsPath(name, '/retry'), keys.length ? { json: { keys } } : undefined);
  if (ctx.json) return printJson(ctx, res.text, res.body), 0;
  ctx.out(keys.length ? `retry queued for ${name}: ${keys.length} key${keys.length === 1 ? '' : 's'}\n` : `retry queued for ${name}: every failed file\n`);
  return 0;
}

async function cmdDelete(ctx: Ctx, name: string): Promise<number> {
  const dropTable = Boolean(ctx.values['drop-table']);
  const dropLedger = Boolean(ctx.values['drop-ledger']);
  const res = await ctx.api.request<StatusView>('DELETE', dsPath(name, `?dropTable=${dropTable}&dropLedger=${dropLedger}`));
  if (ctx.json) return printJson(ctx, res.text, res.body), 0;
  const extra = [dropTable ? 'table dropped' : 'table kept', dropLedger ? 'ledger rows dropped' : 'ledger rows kept'];
  ctx.out(`deleted ${name} (${extra.join(', ')})\n`);
  return 0;
}

async function cmdFiles(ctx: Ctx, name: string): Promise<number> {
  const q = new URLSearchParams();
  if (ctx.values.status) q.set('status', ctx.values.status);
  if (ctx.values.search) q.set('search', ctx.values.search);
  if (ctx.values.limit) q.set('limit', ctx.values.limit);
  if (ctx.values.cursor) q.set('cursor', ctx.values.cursor);
  const qs = q.toString();
  const res = await ctx.api.request<Page<FileItem>>('GET', dsPath(name, `/files${qs ? `?${qs}` : ''}`));
  if (ctx.json) return printJson(ctx, res.text, res.body), 0;
  const items = res.body.items ?? [];
  if (!items.length) {
    ctx.out(`no files${ctx.values.status ? ` with status ${ctx.values.status}` : ''}${ctx.values.search ? ` matching '${ctx.values.search}'` : ''}\n`);
    return 0;
  }
  const now = Date.now();
  ctx.out(
    table(
      ['KEY', 'STATUS', 'ROWS', 'QUARANTINED', 'SIZE', 'ATTEMPTS', 'UPDATED', 'ERROR'],
      items.map((f) => [
        f.key,
        f.status,
        formatCount(f.rows),
        formatCount(f.quarantinedRows),
        formatBytes(f.size),
        String(f.attempts),
        ago(f.updatedAt, now),
        f.error ? truncate(f.error, 80) : '',
      ]),
      [2, 3, 4, 5],
    ),
  );
  if (res.body.nextCursor) {
    const again = ['s3ch files', name];
    if (ctx.values.status) again.push('--status', ctx.values.status);
    if (ctx.values.search) again.push('--search', JSON.stringify(ctx.values.search));
    if (ctx.values.limit) again.push('--limit', ctx.values.limit);
    again.push('--cursor', res.body.nextCursor);
    ctx.out(`more: ${again.join(' ')}\n`);
  }
  return 0;
}

/** One line of progress: redrawn in place on a terminal, printed when it changes otherwise. */
function progressPrinter(ctx: Ctx) {
  const tty = Boolean(ctx.io.isTTY) && !ctx.json;
  const write = ctx.json ? ctx.err : ctx.out;
  const width = Math.max(20, (ctx.io.columns ?? 100) - 1);
  let last = '';
  let drawn = false;
  return {
    update(line: string, elapsedMs: number) {
      if (tty) {
        write(`\r\x1b[2K${truncate(`${line} [${formatDuration(elapsedMs)}]`, width)}`);
        drawn = true;
      } else if (line !== last) {
        write(`${line}\n`);
      }
      last = line;
    },
    end() {
      if (tty && drawn) write('\n');
      drawn = false;
    },
  };
}

const startedSince = (r: { startedAt: string }, since: number) => Date.parse(r.startedAt) >= since;

async function cmdSync(ctx: Ctx, name: string): Promise<number> {
  let timeoutS = DEFAULT_TIMEOUT_S;
  if (ctx.values.timeout !== undefined) {
    timeoutS = Number(ctx.values.timeout);
    if (!ctx.values.wait) throw new UsageError('--timeout needs --wait');
    if (!Number.isFinite(timeoutS) || timeoutS <= 0) throw new UsageError(`--timeout must be a positive number of seconds, got '${ctx.values.timeout}'`);
  }
  // Runs that start at or after this instant answer this request (the workflow's clock is the server's).
  const requestedAt = Date.now();
  const res = await ctx.api.request('POST', dsPath(name, '/sync'));
  if (!ctx.values.wait) {
    if (ctx.json) return printJson(ctx, res.text, res.body), 0;
    ctx.out(`sync requested for ${name} (follow it with: s3ch sync ${name} --wait, or s3ch status ${name})\n`);
    return 0;
  }

  const deadline = requestedAt + timeoutS * 1000;
  const progress = progressPrinter(ctx);
  let errorSince: number | null = null;
  let finalDs!: DataSource;
  try {
    for (;;) {
      const ds = (await ctx.api.request<DataSource>('GET', dsPath(name))).body;
      const lr = ds.lastRun;
      const state = ds.status.state;
      const fresh = lr !== null && startedSince(lr, requestedAt);
      let finishedRun = fresh && lr.finishedAt !== null;
      if (!lr && state !== 'syncing') {
        // No live status (no worker answered the query): the ledger's run history still tells.
        const runs = (await ctx.api.request<Page<RunSummary>>('GET', dsPath(name, '/runs?limit=20'))).body.items ?? [];
        finishedRun = runs.some((r) => startedSince(r, requestedAt) && r.finishedAt);
      }
      if (finishedRun && state !== 'syncing') {
        finalDs = ds;
        break;
      }
      if (state === 'paused') throw new CliFailure(`data source '${name}' is paused: the sync runs once it is resumed`, [`resume it with: s3ch resume ${name}`]);
      if (state === 'deleting') throw new CliFailure(`data source '${name}' is being deleted`);
      if (state === 'error' && !fresh) {
        errorSince ??= Date.now();
        if (Date.now() - errorSince > ERROR_GRACE_MS) throw new CliFailure(`no run started: data source '${name}' is in error: ${ds.status.error ?? 'unknown error'}`);
      } else {
        errorSince = null;
      }
      const now = Date.now();
      let line: string;
      if (fresh && lr) {
        const done = lr.filesImported + lr.filesFailed;
        line = `syncing ${name}: ${formatCount(done)}/${formatCount(lr.filesFound)} files${lr.filesFailed ? ` (${formatCount(lr.filesFailed)} failed)` : ''}, ${formatCount(lr.rows)} rows, ${(ds.status.inFlight ?? []).length} in flight`;
        if (ds.status.backlog) line += ', more files waiting';
      } else {
        line = `waiting for ${name} to start a run (state: ${state}${ds.status.error ? `, error: ${truncate(ds.status.error, 120)}` : ''})`;
      }
      progress.update(line, now - requestedAt);
      if (now >= deadline) {
        throw new CliFailure(`timed out after ${timeoutS}s waiting for the sync of '${name}' to finish (state: ${state}${fresh && lr ? `, ${lr.filesImported + lr.filesFailed}/${lr.filesFound} files done` : ', no run started yet'})`, [
          'the sync goes on; follow it with: s3ch status ' + name,
          'wait longer with --timeout SECONDS',
        ]);
      }
      await sleep(Math.max(0, Math.min(POLL_INTERVAL_MS, deadline - now)));
    }
  } finally {
    progress.end();
  }

  // Every run that answered the request (a backlog continues in further runs), oldest first.
  const history = (await ctx.api.request<Page<RunSummary>>('GET', dsPath(name, '/runs?limit=100'))).body.items ?? [];
  let runs = history.filter((r) => startedSince(r, requestedAt) && r.finishedAt).reverse();
  if (!runs.length && finalDs.lastRun) runs = [finalDs.lastRun];
  const failed = runs.reduce((n, r) => n + r.filesFailed, 0);

  if (ctx.json) {
    ctx.out(`${JSON.stringify({ runs, datasource: finalDs }, null, 2)}\n`);
  } else {
    const now = Date.now();
    for (const r of runs) ctx.out(`run ${r.runId} ${runLine(r, now)}\n`);
    if (runs.length > 1) {
      const sum = (k: 'filesFound' | 'filesImported' | 'filesFailed' | 'rows' | 'bytes') => runs.reduce((n, r) => n + r[k], 0);
      ctx.out(`total: ${runs.length} runs, ${formatCount(sum('filesFound'))} found, ${formatCount(sum('filesImported'))} imported, ${formatCount(failed)} failed, ${formatCount(sum('rows'))} rows, ${formatBytes(sum('bytes'))}\n`);
    }
    ctx.out(`${name}: ${finalDs.status.state}; files ${fileCounts(finalDs.stats.files)}; ${formatCount(finalDs.stats.rows)} rows, ${formatBytes(finalDs.stats.bytes)}, ${formatCount(finalDs.stats.quarantinedRows)} quarantined\n`);
    if (finalDs.status.error) ctx.out(`error: ${finalDs.status.error}\n`);
  }
  if (failed > 0) {
    ctx.err(`error: ${failed} file${failed === 1 ? '' : 's'} failed; see: s3ch files ${name} --status failure\n`);
    return 1;
  }
  return 0;
}

const COMMANDS: Record<string, CommandDef> = {
  list: { arg: null, options: ['state', 'prefix'], run: (ctx) => cmdList(ctx) },
  status: { arg: 'name', options: [], run: cmdStatus },
  create: { arg: 'file', options: [], run: cmdCreate },
  sync: { arg: 'name', options: ['wait', 'timeout'], run: cmdSync },
  pause: { arg: 'name', options: [], run: (ctx, name) => cmdPauseResume(ctx, name, 'pause') },
  resume: { arg: 'name', options: [], run: (ctx, name) => cmdPauseResume(ctx, name, 'resume') },
  retry: { arg: 'name', options: ['key'], run: cmdRetry },
  delete: { arg: 'name', options: ['drop-table', 'drop-ledger'], run: cmdDelete },
  files: { arg: 'name', options: ['status', 'search', 'limit', 'cursor'], run: cmdFiles },
};

function reportError(err: unknown, io: CliIO, apiUrl: string): number {
  const e = io.stderr;
  if (err instanceof ApiResponseError) {
    const p = err.problem;
    const fields = p?.errors ?? [];
    let detail = p?.detail ?? err.message;
    // The API's validation detail repeats the field errors; they are listed below, once.
    const repeated = `: ${fields.map((f) => `${f.field}: ${f.message}`).join('; ')}`;
    if (fields.length && detail.endsWith(repeated) && detail.length > repeated.length) detail = detail.slice(0, -repeated.length);
    e(`error: ${detail}\n`);
    for (const fe of fields) e(`  ${fe.field}: ${fe.message}\n`);
    if (err.status === 401) e('  (pass --token T or set S3CH_API_TOKEN)\n');
    if (err.status === 403) e('  (this needs an admin token)\n');
    return 1;
  }
  if (err instanceof UnreachableError) {
    e(`error: the API is not reachable at ${apiUrl} (${err.reason})\n`);
    e('  start it with `npm start`, or pass --api URL (or set S3CH_API_URL)\n');
    return 1;
  }
  if (err instanceof CliFailure) {
    e(`error: ${err.message}\n`);
    for (const h of err.hints) e(`  ${h}\n`);
    return 1;
  }
  e(`error: ${(err as Error)?.message ?? String(err)}\n`);
  return 1;
}

/** The whole CLI: parse argv, call the API, print. Resolves to the exit status. */
export async function runCli(argv: string[], io: CliIO): Promise<number> {
  let values: Values;
  let positionals: string[];
  try {
    ({ values, positionals } = parseArgs({ args: argv, options: OPTIONS, allowPositionals: true, strict: true }));
  } catch (err) {
    io.stderr(`error: ${(err as Error).message}\n\n${USAGE}`);
    return 2;
  }
  if (values.help || positionals[0] === 'help') {
    io.stdout(USAGE);
    return 0;
  }
  const [command, arg, ...extra] = positionals;
  if (!command) {
    io.stderr(`error: no command given\n\n${USAGE}`);
    return 2;
  }
  const def = Object.hasOwn(COMMANDS, command) ? COMMANDS[command] : undefined;
  if (!def) {
    io.stderr(`error: unknown command '${command}'\n\n${USAGE}`);
    return 2;
  }
  const usageError = (message: string) => {
    io.stderr(`error: ${message}\n\n${USAGE}`);
    return 2;
  };
  if (def.arg && !arg) return usageError(`${command} needs a ${def.arg === 'name' ? 'data source name' : 'spec file (.json or .datasource)'}: s3ch ${command} <${def.arg}>`);
  const unexpected = def.arg ? extra : [arg, ...extra].filter((x): x is string => x !== undefined);
  if (unexpected.length) return usageError(`unexpected argument${unexpected.length > 1 ? 's' : ''} for ${command}: ${unexpected.join(' ')}`);
  const used = Object.keys(values).filter((k) => values[k as keyof Values] !== undefined);
  const foreign = used.filter((k) => !GLOBAL_OPTIONS.includes(k) && !def.options.includes(k));
  if (foreign.length) return usageError(`${command} does not take ${foreign.map((k) => `--${k}`).join(', ')}`);

  const env = io.env ?? process.env;
  const apiUrl = (values.api || env.S3CH_API_URL || DEFAULT_API_URL).replace(/\/+$/, '');
  if (!/^https?:\/\/[^/]/i.test(apiUrl)) return usageError(`--api must be an http(s) URL, got '${apiUrl}'`);
  const api = new ApiClient({ baseUrl: apiUrl, token: values.token || env.S3CH_API_TOKEN || undefined, fetch: io.fetch ?? globalThis.fetch });
  const ctx: Ctx = { api, values, json: Boolean(values.json), io, out: io.stdout, err: io.stderr };
  try {
    return await def.run(ctx, arg ?? '');
  } catch (err) {
    if (err instanceof UsageError) return usageError(err.message);
    return reportError(err, io, apiUrl);
  }
}
