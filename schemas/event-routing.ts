/**
 * Which data sources an S3 event concerns: the one rule the notify webhooks
 * and the SQS queue consumer share. An object goes to every data source whose
 * bucket is the object's and whose glob matches its key.
 */
import { compileGlob, parseBucketUri } from './glob.js';
import type { ObjectRef } from './s3-event.js';

/**
 * Why a key named by a caller (notification, retry) is not one the data
 * source imports, or null when it is. Dot segments are refused outright: an
 * HTTP layer on the way to S3 may resolve `a/../b` to `b`, outside the glob.
 */
export function keyOutsideGlob(key: string, match: (key: string) => boolean, pattern: string): string | null {
  if (key.split('/').some((segment) => segment === '.' || segment === '..')) return `'${key.slice(0, 256)}' has a '.' or '..' path segment`;
  if (!match(key)) return `'${key.slice(0, 256)}' does not match the data source's glob '${pattern}'`;
  return null;
}

/** The distinct keys among `refs` that the data source reading `bucketUri` imports. */
export function matchingKeys(bucketUri: string, refs: ObjectRef[]): string[] {
  const { bucket, pattern } = parseBucketUri(bucketUri);
  const match = compileGlob(pattern);
  return [...new Set(refs.filter((r) => r.bucket === bucket && keyOutsideGlob(r.key, match, pattern) === null).map((r) => r.key))];
}

/** For each data source (name, bucketUri) that `refs` concern, the keys it imports. */
export function routeObjectRefs(dataSources: Iterable<{ name: string; bucketUri: string }>, refs: ObjectRef[]): Map<string, string[]> {
  const out = new Map<string, string[]>();
  if (refs.length === 0) return out;
  for (const ds of dataSources) {
    let keys: string[];
    try {
      keys = matchingKeys(ds.bucketUri, refs);
    } catch {
      // A bucket URI this version no longer accepts concerns no event; it must not hold up the others.
      continue;
    }
    if (keys.length) out.set(ds.name, keys);
  }
  return out;
}
