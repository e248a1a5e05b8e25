import { Context } from '@temporalio/activity';
import { keyAfter, modifiedSince, type DataSourceSpec } from '../schemas/datasource.js';
import { compareKeys } from '../schemas/key-order.js';
import { classify, toApplicationFailure } from './errors.js';
import type { Ledger } from './ledger.js';
import type { FileRef } from './schema.js';

export interface DiscoverInput {
  dataSource: string;
  spec: DataSourceSpec;
  runId: string;
  /** Most new files to return (a batch); the rest come in the next batch. */
  limit: number;
  /**
   * List only keys after this one: the ordered-mode marker, or in tracked mode
   * where the previous batch of the same sweep stopped, or (a tick between
   * sweeps) the last key any listing has seen.
   */
  startAfter?: string;
  /** Only whether matching keys exist (no ledger lookup, nothing recorded): before a table can be made. */
  peek?: boolean;
}

export interface DiscoverResult {
  files: FileRef[];
  /** True when more new files remain beyond this batch. */
  more: boolean;
  /** With `more`: the key to continue after in the next batch of this sweep. */
  cursor: string | null;
  /** Keys listed (matching the glob or not). */
  listed: number;
  /**
   * Without `more`: the last key the listing saw under the list prefix (null
   * when it saw none). Every key up to it has been looked at, so a tick can
   * list after it; only a key that arrives named before it needs a sweep.
   */
  lastKey?: string | null;
  /** ListObjectsV2 calls made. */
  lists?: number;
}

type Pages = (
  spec: Pick<DataSourceSpec, 'bucketUri' | 'connection'>,
  opts: { startAfter?: string; signal?: AbortSignal },
) => AsyncGenerator<{ files: FileRef[]; listed: number; lastKey?: string | null }>;

function activityContext(): Context | null {
  try {
    return Context.current();
  } catch {
    return null; // called directly (unit tests, the bench)
  }
}

/**
 * Discovery: one bounded batch of files not yet settled. It costs ClickHouse
 * nothing when the listing finds no matching key (no ledger lookup, no write),
 * so an idle tick is one LIST call and nothing else. It runs as a regular
 * activity (a sweep, a backlog) or as a local activity (a tick between sweeps,
 * where it heartbeats nothing: local activities have no heartbeat).
 */
export function createDiscovery({ ledger, pages }: { ledger: Pick<Ledger, 'settled' | 'record'>; pages: Pages }) {
  return async function discover({ dataSource, spec, runId, limit, startAfter, peek }: DiscoverInput): Promise<DiscoverResult> {
    const ctx = activityContext();
    const beat = ctx && !ctx.info.isLocal ? (d: unknown) => ctx.heartbeat(d) : () => undefined;
    const found: FileRef[] = [];
    let listed = 0;
    let lists = 0;
    let more = false;
    let lastKey: string | null = null;
    // The spec's startAfter is where listing starts when it is later than the position asked for
    // (in ordered mode: the initial marker); `since` filters by last-modified time.
    const from = spec.startAfter !== undefined && (startAfter === undefined || compareKeys(spec.startAfter, startAfter) > 0) ? spec.startAfter : startAfter;
    try {
      for await (const page of pages(spec, { startAfter: from, signal: ctx?.cancellationSignal })) {
        lists++;
        listed += page.listed;
        if (page.lastKey) lastKey = page.lastKey;
        const eligible = page.files.filter((f) => keyAfter(f.key, spec.startAfter) && modifiedSince(f.lastModified, spec.since));
        // Nothing matched on this page: nothing to look up in the ledger.
        const settled = eligible.length && !peek ? await ledger.settled(dataSource, eligible.map((f) => f.key)) : new Set<string>();
        for (const f of eligible) {
          if (settled.has(`${f.key}\u0000${f.etag}`)) continue;
          if (found.length >= limit) {
            more = true;
            break;
          }
          found.push(f);
        }
        beat({ listed, found: found.length });
        if (more) break;
      }
    } catch (e) {
      throw toApplicationFailure(classify(e));
    }
    if (found.length && !peek) {
      await ledger.record(found.map((f) => ({ datasource: dataSource, key: f.key, etag: f.etag, size: f.size, attempt: 0, status: 'queued', run_id: runId })));
    }
    // Listing is in key order, so the last file taken is where the next batch continues.
    return { files: found, more, cursor: more ? found[found.length - 1]?.key ?? null : null, listed, lastKey: more ? null : lastKey, lists };
  };
}
