/**
 * Synthetic CSV for the benchmark: deterministic (seeded PRNG), generated in
 * chunks of joined strings so 2 M rows take a couple of seconds.
 */
import { open } from 'node:fs/promises';

/** The columns every bench file has, in order, with the types the tables use. */
export const BENCH_COLUMNS = [
  { name: 'timestamp', type: 'DateTime' },
  { name: 'user_id', type: 'UInt32' },
  { name: 'page', type: 'String' },
  { name: 'country', type: 'LowCardinality(String)' },
  { name: 'duration_ms', type: 'UInt32' },
  { name: 'amount', type: 'Decimal(12, 2)' },
] as const;

export const CSV_HEADER = `${BENCH_COLUMNS.map((c) => c.name).join(',')}\n`;

/** `name Type, ...` for ClickHouse's file()/CREATE TABLE. */
export const STRUCTURE = BENCH_COLUMNS.map((c) => `\`${c.name}\` ${c.type}`).join(', ');

const PAD2 = Array.from({ length: 100 }, (_, i) => String(i).padStart(2, '0'));
const STATIC_PAGES = [
  '/', '/home', '/pricing', '/docs', '/docs/getting-started', '/docs/api', '/blog', '/blog/launch',
  '/about', '/careers', '/contact', '/login', '/signup', '/cart', '/checkout', '/checkout/done',
  '/search', '/account', '/account/settings', '/support',
];
const COUNTRIES = ['US', 'DE', 'FR', 'GB', 'JP', 'BR', 'IN', 'CA', 'AU', 'ES', 'IT', 'NL', 'SE', 'PL', 'MX', 'KR', 'CN', 'ZA', 'AR', 'CH'];
const CHUNK_ROWS = 10_000;

/** mulberry32: a small seeded PRNG, fast and good enough for test data; the same seed gives the same values. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const MARCH_SECONDS = 31 * 86_400;

/** `rows` CSV data lines (no header) for file number `seed`, yielded in chunks. */
export function* csvChunks(seed: number, rows: number): Generator<string> {
  const rand = prng(0x5eed + seed * 7919);
  for (let done = 0; done < rows; ) {
    const n = Math.min(CHUNK_ROWS, rows - done);
    const lines = new Array<string>(n);
    for (let i = 0; i < n; i++) {
      // A random second of March 2024 (UTC), one month so one partition.
      const s = Math.floor(rand() * MARCH_SECONDS);
      const day = Math.floor(s / 86_400) + 1;
      const hh = Math.floor((s % 86_400) / 3600);
      const mm = Math.floor((s % 3600) / 60);
      const ss = s % 60;
      const r = rand();
      const page = r < 0.4 ? STATIC_PAGES[Math.floor(r * 50)]! : `/product/${Math.floor(rand() * 5000)}`;
      lines[i] =
        `2024-03-${PAD2[day]} ${PAD2[hh]}:${PAD2[mm]}:${PAD2[ss]},${Math.floor(rand() * 10_000_000)},${page},` +
        `${COUNTRIES[Math.floor(rand() * COUNTRIES.length)]},${Math.floor(rand() * 30_000)},` +
        `${Math.floor(rand() * 10_000)}.${PAD2[Math.floor(rand() * 100)]}`;
    }
    done += n;
    yield `${lines.join('\n')}\n`;
  }
}

/** A whole small file as a string (header included). */
export function csvString(seed: number, rows: number): string {
  return CSV_HEADER + [...csvChunks(seed, rows)].join('');
}

/** Write a CSV file (header + rows) chunk by chunk; returns its size in bytes. */
export async function writeCsvFile(path: string, seed: number, rows: number): Promise<number> {
  const fh = await open(path, 'w');
  let bytes = 0;
  try {
    const write = async (chunk: string) => {
      const buf = Buffer.from(chunk, 'utf8');
      await fh.write(buf);
      bytes += buf.length;
    };
    await write(CSV_HEADER);
    for (const chunk of csvChunks(seed, rows)) await write(chunk);
    // On disk now, so later timings do not pay for this file's writeback.
    await fh.sync();
  } finally {
    await fh.close();
  }
  return bytes;
}
