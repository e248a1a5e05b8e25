/**
 * `discovery_idle_list_calls_tracked` / `_ordered`: ListObjectsV2 calls an
 * idle scheduled tick makes over a prefix holding N keys (100,000; 2,000 with
 * BENCH_SCALE=small). Target: at most 2 per tick, whatever N is.
 *
 * What is measured: every key matches the glob and the first sync imports
 * them all; only then are ticks counted. That is the honest "idle over N
 * keys" state for both modes: a glob matching nothing would leave the ordered
 * marker where it started (it only passes settled files), so ordered mode
 * would be measured in a state it never sits in once it has imported.
 * Tracked mode gets a long `sweepInterval` so the window holds only ticks
 * between sweeps (a sweep lists the whole prefix by design). Each data
 * source talks to MinIO through its own counting proxy, so LIST calls are
 * attributed to one mode; ticks are counted from `status.polling.idleTicks`.
 */
import { PutObjectCommand } from '@aws-sdk/client-s3';
import { startS3Proxy, type S3Proxy } from '../../test/support/s3-proxy.js';
import type { SummaryEntry } from './many-sources.js';
import { mapLimit, sleep, startBenchStack } from './stack.js';

export interface DiscoveryIdleOptions {
  keys?: number;
  /** Seconds of idle ticks to count over (default 20: about 10 ticks at @every 2s). */
  idleSeconds?: number;
  log?: (line: string) => void;
}

const TARGET_LISTS_PER_TICK = 2;
const MODES = ['tracked', 'ordered'] as const;

export async function runDiscoveryIdle(opts: DiscoveryIdleOptions = {}): Promise<SummaryEntry[]> {
  const small = process.env.BENCH_SCALE === 'small';
  const n = opts.keys ?? (small ? 2_000 : 100_000);
  const idleSeconds = opts.idleSeconds ?? 20;
  const log = opts.log ?? ((l: string) => process.stdout.write(`[discovery] ${l}\n`));
  const proxies = new Map<string, S3Proxy>();
  const stack = await startBenchStack({
    label: 'discovery',
    log,
    connections: async (minio, { connection }) => {
      const m = new Map();
      for (const mode of MODES) {
        const p = await startS3Proxy(minio);
        proxies.set(mode, p);
        m.set(`via_proxy_${mode}`, connection(p.url));
      }
      return m;
    },
  });
  try {
    log(`uploading ${n.toLocaleString('en-US')} tiny objects ...`);
    const t0 = Date.now();
    const body = 'id,label\n1,a\n';
    await mapLimit(Array.from({ length: n }, (_, i) => i), 64, async (i) => {
      await stack.s3.send(new PutObjectCommand({ Bucket: stack.bucket, Key: `keys/k-${String(i).padStart(6, '0')}.csv`, Body: body }));
    });
    log(`  uploaded in ${((Date.now() - t0) / 1000).toFixed(1)} s`);

    for (const mode of MODES) {
      const res = await stack.api('POST', '/v1/datasources', {
        name: `idle_${mode}`, connection: `via_proxy_${mode}`, bucketUri: `s3://${stack.bucket}/keys/*.csv`, format: 'csv', schedule: '@every 2s', mode,
        ...(mode === 'tracked' ? { sweepInterval: '1h' } : {}),
        columns: [{ name: 'id', type: 'UInt64' }, { name: 'label', type: 'String' }],
      });
      if (res.status !== 201) throw new Error(`creating idle_${mode}: HTTP ${res.status} ${JSON.stringify(res.body)}`);
    }
    // The first sync: everything imported in both.
    log('waiting for both data sources to import every key ...');
    const deadline = Date.now() + Math.max(300_000, n * 50);
    const status = async (mode: string) => {
      const g = await stack.api('GET', `/v1/datasources/idle_${mode}`);
      if (g.status !== 200) throw new Error(`GET idle_${mode}: HTTP ${g.status} ${JSON.stringify(g.body)}`);
      return g.body;
    };
    for (const mode of MODES) {
      let last = 0;
      for (;;) {
        const b = await status(mode);
        const files = b.stats?.files ?? {};
        if ((files.success ?? 0) >= n) break;
        if (files.failure) throw new Error(`idle_${mode}: ${files.failure} file(s) failed`);
        if (Date.now() > deadline) throw new Error(`idle_${mode}: only ${files.success ?? 0}/${n} imported in time`);
        if (Date.now() - last > 10_000) {
          last = Date.now();
          log(`  ${mode}: ${files.success ?? 0}/${n}`);
        }
        await sleep(500);
      }
    }
    // A couple of ticks to let the last batch's run finish and ticks turn idle.
    await sleep(6_000);

    const out: SummaryEntry[] = [];
    const before = new Map<string, { lists: number; ticks: number }>();
    for (const mode of MODES) before.set(mode, { lists: proxies.get(mode)!.lists.length, ticks: (await status(mode)).status?.polling?.idleTicks ?? 0 });
    log(`counting LIST calls over ${idleSeconds} s of idle ticks ...`);
    await sleep(idleSeconds * 1000);
    for (const mode of MODES) {
      const b = before.get(mode)!;
      const s = await status(mode);
      const polling = s.status?.polling;
      const ticks = (polling?.idleTicks ?? 0) - b.ticks;
      const window = proxies.get(mode)!.lists.slice(b.lists);
      const lists = window.length;
      // At small scale a full listing is only 2 pages, so say how many calls started after a key (incremental).
      const incremental = window.filter((l) => l.startAfter !== null).length;
      if (ticks <= 0) throw new Error(`idle_${mode}: no idle tick counted in ${idleSeconds} s (idleTicks ${b.ticks} -> ${polling?.idleTicks}); state ${s.status?.state}`);
      const perTick = lists / ticks;
      log(`  ${mode}: ${lists} LIST calls (${incremental} with start-after) over ${ticks} idle ticks (${n} keys, a full listing is ${Math.ceil(n / 1000)} calls)`);
      out.push({ name: `discovery_idle_list_calls_${mode}`, value: Math.round(perTick * 100) / 100, unit: 'LIST calls/tick', ceiling: TARGET_LISTS_PER_TICK, ratio: Math.round((perTick / TARGET_LISTS_PER_TICK) * 1000) / 1000 });
    }
    return out;
  } finally {
    await stack.stop();
    for (const p of proxies.values()) await p.close().catch(() => undefined);
  }
}
