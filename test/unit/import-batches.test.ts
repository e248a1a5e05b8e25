import { describe, expect, it } from 'vitest';
import { isBatchable, planBatches, MAX_BATCH_FILES, MAX_BATCH_BYTES, SMALL_FILE_BYTES } from '../../schemas/import-batches.js';
import { batchToken } from '../../activities/import-batch.js';

const spec = { format: 'auto', compression: 'auto', limits: { maxFileBytes: 0 } };
const f = (key: string, size = 1000) => ({ key, size });

describe('which files go in batches', () => {
  it('keeps large files, zip archives, glob-like keys, names that do not say their format, and files over maxFileBytes as single imports', () => {
    expect(isBatchable(spec, f('a/b.csv'))).toBe(true);
    expect(isBatchable(spec, f('a/b.ndjson.gz'))).toBe(true);
    expect(isBatchable(spec, f('a/b.parquet'))).toBe(true);
    expect(isBatchable(spec, f('a/b.csv', SMALL_FILE_BYTES + 1))).toBe(false);
    expect(isBatchable(spec, f('a/b.zip'))).toBe(false);
    expect(isBatchable({ ...spec, format: 'csv', compression: 'zip' }, f('a/b.csv'))).toBe(false);
    for (const k of ['a/star*.csv', 'a/q?.csv', 'a/{x,y}.csv']) expect(isBatchable(spec, f(k)), k).toBe(false);
    expect(isBatchable(spec, f('a/noext'))).toBe(false);
    expect(isBatchable({ ...spec, format: 'csv', compression: 'none' }, f('a/noext'))).toBe(true);
    expect(isBatchable({ ...spec, limits: { maxFileBytes: 500 } }, f('a/b.csv', 600))).toBe(false);
  });

  it('batches only when small files outnumber the import slots, sized so every slot gets one, bounded by count and bytes', () => {
    const few = [f('1.csv'), f('2.csv'), f('3.csv')];
    expect(planBatches(spec, few, 4)).toEqual({ batches: [], singles: few });
    const many = Array.from({ length: 40 }, (_, i) => f(`${String(i).padStart(2, '0')}.csv`));
    expect(planBatches(spec, many, 4).batches.map((b) => b.length)).toEqual([10, 10, 10, 10]);
    // limits.maxBatchFiles caps a batch; 1 turns batching off (every file its own import).
    expect(planBatches({ ...spec, limits: { ...spec.limits, maxBatchFiles: 4 } }, many, 4).batches.map((b) => b.length)).toEqual(Array(10).fill(4));
    expect(planBatches({ ...spec, limits: { ...spec.limits, maxBatchFiles: 1 } }, many, 4)).toEqual({ batches: [], singles: many });
    const lots = Array.from({ length: 1000 }, (_, i) => f(`${i}.csv`));
    const plan = planBatches(spec, lots, 2);
    expect(plan.batches.every((b) => b.length <= MAX_BATCH_FILES)).toBe(true);
    expect(plan.batches.flat().length).toBe(1000);
    const big = Array.from({ length: 200 }, (_, i) => f(`${i}.csv`, SMALL_FILE_BYTES));
    expect(planBatches(spec, big, 1).batches.every((b) => b.reduce((n, x) => n + x.size, 0) <= MAX_BATCH_BYTES)).toBe(true);
  });

  it('sends files that cannot be batched, and a batch left with one file, the single-file way, keeping every file once', () => {
    const files = [f('a.csv'), f('b.zip'), f('c.csv', 10 * SMALL_FILE_BYTES), f('d.csv'), f('e.csv'), f('s*.csv')];
    const plan = planBatches(spec, files, 1);
    expect(plan.batches).toEqual([[f('a.csv'), f('d.csv'), f('e.csv')]]);
    expect(plan.singles.map((x) => x.key).sort()).toEqual(['b.zip', 'c.csv', 's*.csv']);
    const odd = planBatches(spec, [f('1.csv'), f('2.csv'), f('3.csv')], 2);
    expect([...odd.batches.flat(), ...odd.singles].map((x) => x.key).sort()).toEqual(['1.csv', '2.csv', '3.csv']);
    expect(odd.batches.every((b) => b.length > 1)).toBe(true);
  });
});

describe('the batch token', () => {
  it('depends on the set of (key, ETag) pairs, not their order, and changes with any ETag or the data source', () => {
    const a = [{ key: 'x.csv', etag: '1' }, { key: 'y.csv', etag: '2' }];
    expect(batchToken('ds', a)).toBe(batchToken('ds', [...a].reverse()));
    expect(batchToken('ds', a)).not.toBe(batchToken('ds', [{ key: 'x.csv', etag: '1' }, { key: 'y.csv', etag: '3' }]));
    expect(batchToken('ds', a)).not.toBe(batchToken('other', a));
    expect(batchToken('ds', a)).not.toBe(batchToken('ds', [a[0]!]));
  });
});
