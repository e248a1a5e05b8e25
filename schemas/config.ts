import { z } from 'zod';
import { readFileSync } from 'node:fs';
import { totalmem } from 'node:os';
import { connectionsFileSchema, type Connection } from './connection.js';

/** A DNS name, an IPv4 address or a bracketed IPv6 address, optionally with a port. */
const ALLOWED_HOST_ENTRY = /^(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*|\[[0-9A-Fa-f:.]+\])(?::\d{1,5})?$/;

const BYTE_UNITS = { '': 1, KiB: 1024, MiB: 1024 ** 2, GiB: 1024 ** 3 } as const;

/** A size in bytes: plain digits, or a number with KiB, MiB or GiB (`768MiB`, `1.5GiB`), at least `min`. */
const byteSize = (name: string, min: number) =>
  z.string().transform((v, ctx) => {
    const m = /^(\d+(?:\.\d+)?)\s*(KiB|MiB|GiB)?$/.exec(v.trim());
    const bytes = m ? Math.floor(Number(m[1]) * BYTE_UNITS[(m[2] ?? '') as keyof typeof BYTE_UNITS]) : NaN;
    if (!Number.isSafeInteger(bytes)) {
      ctx.addIssue({ code: 'custom', message: `${name} must be a size in bytes, optionally with KiB, MiB or GiB (e.g. 1GiB, 768MiB); got '${v}'` });
      return z.NEVER;
    }
    if (bytes < min) {
      ctx.addIssue({ code: 'custom', message: `${name} must be at least ${min / 1024 ** 2} MiB; got '${v}'` });
      return z.NEVER;
    }
    return bytes;
  });

const bool = z
  .enum(['true', 'false', '1', '0', 'yes', 'no', ''])
  .transform((v) => v === 'true' || v === '1' || v === 'yes');

/**
 * Every environment variable the connector reads. Validated once at start;
 * nothing else reads process.env.
 */
/**
 * Embedded chDB's default memory cap: a quarter of the machine, at least 1 GiB
 * (a few large imports) and at most 4 GiB. A fixed 1 GiB was reached by the
 * catalogue of about 650 data sources (~1.5 MB of tracked memory each); a
 * quarter leaves the rest of a small machine to Temporal and the worker.
 */
export function defaultChdbMaxMemory(total: number = totalmem()): number {
  const GiB = 1024 ** 3;
  return Math.min(4 * GiB, Math.max(GiB, Math.floor(total / 4)));
}

export const envSchema = z.object({
  /** Temporal frontend. Unset = the embedded dev server started by `npm start`. */
  TEMPORAL_ADDRESS: z.string().optional(),
  /** @default "default" */
  TEMPORAL_NAMESPACE: z.string().default('default'),
  /** @default "s3-clickhouse" */
  TEMPORAL_TASK_QUEUE: z.string().default('s3-clickhouse'),
  TEMPORAL_API_KEY: z.string().optional(),
  TEMPORAL_TLS: bool.default(false),
  /** ClickHouse HTTP(S) URL. Unset = `npm start` runs the embedded engine process and points here at it. */
  CLICKHOUSE_URL: z.url({ message: 'CLICKHOUSE_URL must be an http(s) URL' }).optional(),
  CLICKHOUSE_USER: z.string().default('default'),
  CLICKHOUSE_PASSWORD: z.string().default(''),
  /**
   * The API's reader for `/v1/sql` (SELECT on CLICKHOUSE_DATABASE, readonly
   * profile; docs/operations.md has its GRANTs). Unset = CLICKHOUSE_USER,
   * with the read-only settings on each statement.
   */
  CLICKHOUSE_READER_USER: z.string().optional(),
  CLICKHOUSE_READER_PASSWORD: z.string().default(''),
  CLICKHOUSE_DATABASE: z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, 'CLICKHOUSE_DATABASE must be a plain identifier').default('default'),
  /** Where embedded state lives (the ClickHouse engine's data, Temporal db, MinIO data). @default ".data" */
  S3CH_DATA_DIR: z.string().default('.data'),
  /**
   * Memory the embedded ClickHouse engine process may use in all (queries,
   * merges, caches); past it the statement that allocates fails rather than
   * the process growing. Bytes, or
   * with KiB/MiB/GiB. Ignored with CLICKHOUSE_URL. @default a quarter of the machine's memory, from 1GiB to 4GiB (defaultChdbMaxMemory)
   */
  S3CH_CHDB_MAX_MEMORY: byteSize('S3CH_CHDB_MAX_MEMORY', 256 * 1024 ** 2).default(() => defaultChdbMaxMemory()),
  /**
   * Size of each of the embedded engine's mark, primary-index and index-mark caches
   * (ClickHouse's server default is 5 GiB each). Ignored with CLICKHOUSE_URL. @default "64MiB"
   */
  S3CH_CHDB_CACHE_SIZE: byteSize('S3CH_CHDB_CACHE_SIZE', 0).default(64 * 1024 ** 2),
  /**
   * `npm start` only: run the worker as this many separate processes (the
   * production shape: several workers on one task queue) instead of inside
   * the API's process. 0 = in the same process. @default 0
   */
  S3CH_WORKERS: z.coerce
    .number({ message: 'S3CH_WORKERS must be a whole number from 0 to 16' })
    .int({ message: 'S3CH_WORKERS must be a whole number from 0 to 16' })
    .min(0, { message: 'S3CH_WORKERS must be a whole number from 0 to 16' })
    .max(16, { message: 'S3CH_WORKERS must be a whole number from 0 to 16' })
    .default(0),
  /** JSON file with `{ "connections": { name: {...} } }`. */
  S3CH_CONNECTIONS_FILE: z.string().optional(),
  /** The same JSON inline (handy for containers). */
  S3CH_CONNECTIONS: z.string().optional(),
  /**
   * Comma-separated API tokens. No prefix (or `admin:`) = admin; `ro:` = read-only;
   * `notify:` = may only post event notifications (bearer, or HTTP basic auth with the
   * token as password). Empty = no auth, loopback only.
   */
  S3CH_API_TOKENS: z.string().default(''),
  /**
   * Without tokens the API answers only requests whose Host is a loopback name
   * (localhost, 127.0.0.0/8, [::1]), which stops DNS rebinding. Comma-separated
   * extra names it may be reached by (`name` = any port, `name:port` = that port only).
   * @default ""
   */
  S3CH_ALLOWED_HOSTS: z
    .string()
    .default('')
    .superRefine((v, ctx) => {
      for (const [i, entry] of v.split(',').map((e) => e.trim()).entries()) {
        if (entry === '') continue;
        if (!ALLOWED_HOST_ENTRY.test(entry) || Number(/:(\d+)$/.exec(entry)?.[1] ?? 0) > 65535) {
          ctx.addIssue({ code: 'custom', message: `entry ${i + 1} '${entry}' is not a host name or IP, optionally with :port (no scheme, path or wildcard)` });
        }
      }
    }),
  HOST: z.string().default('127.0.0.1'),
  PORT: z.coerce.number().int().min(0).max(65535).default(8080),
  /** Prebuilt workflow bundle for a standalone worker. @default "dist/workflow-bundle.js" (used when present) */
  S3CH_WORKFLOW_BUNDLE: z.string().default('dist/workflow-bundle.js'),
  /** Level of the Temporal SDK's own log lines (worker state, activity failures). @default "warn" */
  LOG_LEVEL: z.enum(['debug', 'info', 'warn', 'error']).default('warn'),
});
export type Env = z.infer<typeof envSchema>;

export class ConfigError extends Error {
  constructor(message: string, readonly fields: Record<string, string[]> = {}) {
    super(message);
  }
}

export function loadEnv(env: NodeJS.ProcessEnv = process.env): Env {
  const parsed = envSchema.safeParse(env);
  if (!parsed.success) {
    const fields: Record<string, string[]> = {};
    for (const issue of parsed.error.issues) (fields[issue.path.join('.')] ??= []).push(issue.message);
    throw new ConfigError(
      'invalid configuration:\n' + Object.entries(fields).map(([k, v]) => `  ${k}: ${v.join('; ')}`).join('\n'),
      fields,
    );
  }
  return parsed.data;
}

/** Load named S3 connections from the file and/or inline JSON (inline wins on name clashes). */
export function loadConnections(env: Env, extra: Record<string, Connection> = {}): Map<string, Connection> {
  const out = new Map<string, Connection>(Object.entries(extra));
  const sources: Array<[string, string]> = [];
  if (env.S3CH_CONNECTIONS_FILE) {
    let text: string;
    try {
      text = readFileSync(env.S3CH_CONNECTIONS_FILE, 'utf8');
    } catch (e) {
      throw new ConfigError(`S3CH_CONNECTIONS_FILE: cannot read ${env.S3CH_CONNECTIONS_FILE}: ${(e as Error).message}`);
    }
    sources.push([`S3CH_CONNECTIONS_FILE (${env.S3CH_CONNECTIONS_FILE})`, text]);
  }
  if (env.S3CH_CONNECTIONS) sources.push(['S3CH_CONNECTIONS', env.S3CH_CONNECTIONS]);
  for (const [where, text] of sources) {
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch (e) {
      throw new ConfigError(`${where}: not valid JSON: ${(e as Error).message}`);
    }
    const parsed = connectionsFileSchema.safeParse(json);
    if (!parsed.success) {
      // Never echo the input: it holds secrets.
      const lines = parsed.error.issues.map((i) => `  ${i.path.join('.')}: ${i.message}`);
      throw new ConfigError(`${where}: invalid connections:\n${lines.join('\n')}`);
    }
    for (const [name, conn] of Object.entries(parsed.data.connections)) out.set(name, conn);
  }
  return out;
}
