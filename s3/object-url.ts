import type { Connection } from '../schemas/connection.js';

/**
 * The URL ClickHouse's `s3()` reads one object from, built from the
 * connection: path-style (`<endpoint>/<bucket>/<key>`) for S3-compatible
 * stores that ask for it, virtual-hosted (`<bucket>.<host>`) otherwise, and
 * AWS's regional endpoint when no endpoint is configured.
 */

/** Characters ClickHouse expands in an s3() path: `*`, `?`, `{...}` (and `**`). */
const GLOB_CHARS = /[*?{}]/g;

/** RFC 3986 encoding of one path segment, as S3 expects (`!'()*` included). */
function encodeSegment(segment: string): string {
  return encodeURIComponent(segment).replace(/[!'()*]/g, (ch) => `%${ch.charCodeAt(0).toString(16).toUpperCase()}`);
}

/**
 * A key as a path of an s3() URL that matches that key and no other way of
 * reading it: ClickHouse decodes percent-escapes before it expands globs, so
 * a literal `*`, `?` or `{` cannot be escaped. Each of them becomes the
 * one-character wildcard `?` (which matches the literal character too), and
 * the statement pins the object with `WHERE _path = '<bucket>/<key>'`, which
 * ClickHouse applies to the listing before it reads anything.
 */
export function keyPath(key: string): { path: string; globbed: boolean } {
  const path = key
    .split('/')
    .map((segment) =>
      segment
        .split(GLOB_CHARS)
        .map(encodeSegment)
        .join('%3F'),
    )
    .join('/');
  return { path, globbed: /[*?{}]/.test(key) };
}

/** The base URL of a bucket (no trailing slash) for a connection. */
export function bucketUrl(conn: Pick<Connection, 'endpoint' | 'forcePathStyle' | 'region'>, bucket: string): string {
  if (conn.endpoint) {
    const u = new URL(conn.endpoint);
    const base = `${u.protocol}//${u.host}${u.pathname.replace(/\/+$/, '')}`;
    return conn.forcePathStyle ? `${base}/${encodeSegment(bucket)}` : `${u.protocol}//${bucket}.${u.host}${u.pathname.replace(/\/+$/, '')}`;
  }
  // AWS: virtual-hosted, regional (bucket names with dots need path style over TLS).
  if (conn.forcePathStyle || bucket.includes('.')) return `https://s3.${conn.region}.amazonaws.com/${encodeSegment(bucket)}`;
  return `https://${bucket}.s3.${conn.region}.amazonaws.com`;
}

/** URL of one object for s3(), and the `_path` value ClickHouse reports for it. */
export function objectUrl(conn: Pick<Connection, 'endpoint' | 'forcePathStyle' | 'region'>, bucket: string, key: string): { url: string; path: string; globbed: boolean } {
  const k = keyPath(key);
  return { url: `${bucketUrl(conn, bucket)}/${k.path}`, path: `${bucket}/${key}`, globbed: k.globbed };
}
