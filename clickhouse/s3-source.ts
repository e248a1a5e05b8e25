import { quoteString } from '../schemas/identifiers.js';
import type { S3Credentials } from '../s3/connections.js';

/**
 * The `s3()` table function through which ClickHouse reads an object itself.
 * Credentials exist only in this SQL text, built inside the activity: never
 * in an activity's input or result, a log line or the ledger. ClickHouse
 * masks s3() secrets in its own logs and messages; `scrubSecrets` removes
 * them from every error that leaves an activity anyway (a syntax error, for
 * one, quotes the statement as written).
 */
export interface S3Source {
  /** `s3('url', ..., 'format', 'structure', 'compression')`. */
  sql: string;
  /** The strings that must never appear in anything the activity returns or throws. */
  secrets: string[];
}

export type SourceCompression = 'none' | 'gzip' | 'zstd';

export function s3Source(opts: { url: string; credentials: S3Credentials | null; format: string; structure: string; compression: SourceCompression }): S3Source {
  const auth = opts.credentials
    ? [opts.credentials.accessKeyId, opts.credentials.secretAccessKey, ...(opts.credentials.sessionToken ? [opts.credentials.sessionToken] : [])].map(quoteString)
    : ['NOSIGN'];
  const args = [quoteString(opts.url), ...auth, quoteString(opts.format), quoteString(opts.structure), quoteString(opts.compression)];
  const secrets = opts.credentials ? [opts.credentials.secretAccessKey, opts.credentials.sessionToken, opts.credentials.accessKeyId].filter((s): s is string => Boolean(s)) : [];
  return { sql: `s3(${args.join(', ')})`, secrets };
}

/** Replace every secret (as written, and as quoted in SQL) with [HIDDEN]. */
export function scrubText(text: string, secrets: string[]): string {
  let out = text;
  for (const s of secrets) {
    if (s.length < 4) continue;
    for (const form of new Set([s, quoteString(s).slice(1, -1), encodeURIComponent(s)])) out = out.split(form).join('[HIDDEN]');
  }
  return out;
}

/** Scrub an error (message, stack and causes) in place and return it. */
export function scrubSecrets<T>(err: T, secrets: string[]): T {
  const seen = new Set<unknown>();
  let e: unknown = err;
  while (e && typeof e === 'object' && !seen.has(e)) {
    seen.add(e);
    const o = e as { message?: unknown; stack?: unknown; cause?: unknown };
    try {
      if (typeof o.message === 'string') o.message = scrubText(o.message, secrets);
      if (typeof o.stack === 'string') o.stack = scrubText(o.stack, secrets);
    } catch {
      // A read-only property: nothing to rewrite.
    }
    e = o.cause;
  }
  return err;
}
