import { describe, expect, it } from 'vitest';
import { ReusedReads } from '../../api/reused-reads.js';
import { statsReuseMs } from '../../api/service.js';

/** A read the test settles by hand, counting how often it was started. */
function manualReads() {
  let started = 0;
  const pending: Array<{ resolve: (v: { n: number; cost: number }) => void; reject: (e: Error) => void }> = [];
  return {
    get started() {
      return started;
    },
    read: () => {
      started++;
      return new Promise<{ n: number; cost: number }>((resolve, reject) => pending.push({ resolve, reject }));
    },
    settle: (v: { n: number; cost: number }) => pending.shift()!.resolve(v),
    fail: (e: Error) => pending.shift()!.reject(e),
  };
}

describe('reads shared by key', () => {
  it('callers asking while a read runs share it; a cheap answer is not kept', async () => {
    const r = manualReads();
    const reads = new ReusedReads<{ n: number; cost: number }>((v) => v.cost, () => 0);
    const a = reads.get('ds', r.read);
    const b = reads.get('ds', r.read);
    expect(r.started).toBe(1);
    r.settle({ n: 1, cost: 0 });
    expect(await a).toEqual({ n: 1, cost: 0 });
    expect(await b).toEqual({ n: 1, cost: 0 });
    const c = reads.get('ds', r.read);
    expect(r.started).toBe(2);
    r.settle({ n: 2, cost: 0 });
    expect((await c).n).toBe(2);
  });

  it('a costly answer serves until its time is up, then the next caller reads again', async () => {
    let now = 1000;
    const r = manualReads();
    const reads = new ReusedReads<{ n: number; cost: number }>((v) => v.cost, () => now);
    const first = reads.get('ds', r.read);
    r.settle({ n: 1, cost: 500 });
    await first;
    now = 1499;
    expect((await reads.get('ds', r.read)).n).toBe(1);
    expect(r.started).toBe(1);
    now = 1500;
    const again = reads.get('ds', r.read);
    expect(r.started).toBe(2);
    r.settle({ n: 2, cost: 500 });
    expect((await again).n).toBe(2);
    // Other keys have answers of their own.
    const other = reads.get('other', r.read);
    expect(r.started).toBe(3);
    r.settle({ n: 3, cost: 0 });
    expect((await other).n).toBe(3);
  });

  it('forget makes the next caller read afresh, and a read begun before it is not kept', async () => {
    const r = manualReads();
    const reads = new ReusedReads<{ n: number; cost: number }>((v) => v.cost, () => 0);
    const kept = reads.get('ds', r.read);
    r.settle({ n: 1, cost: 60_000 });
    await kept;
    reads.forget('ds');
    const before = reads.get('ds', r.read);
    expect(r.started).toBe(2);
    reads.forget('ds');
    const after = reads.get('ds', r.read);
    expect(r.started).toBe(3);
    r.settle({ n: 2, cost: 60_000 });
    r.settle({ n: 3, cost: 60_000 });
    expect((await before).n).toBe(2);
    expect((await after).n).toBe(3);
    expect((await reads.get('ds', r.read)).n).toBe(3);
    expect(r.started).toBe(3);
  });

  it('a failed read is not kept: the next caller reads again', async () => {
    const r = manualReads();
    const reads = new ReusedReads<{ n: number; cost: number }>((v) => v.cost, () => 0);
    const failing = reads.get('ds', r.read);
    r.fail(new Error('ClickHouse is gone'));
    await expect(failing).rejects.toThrow('ClickHouse is gone');
    const next = reads.get('ds', r.read);
    expect(r.started).toBe(2);
    r.settle({ n: 1, cost: 0 });
    expect((await next).n).toBe(1);
  });
});

describe('how long a data source\'s counters are reused', () => {
  it('never below a million ledger events, then 2 s per million, at most 30 s', () => {
    expect(statsReuseMs(0)).toBe(0);
    expect(statsReuseMs(999_999)).toBe(0);
    expect(statsReuseMs(1_000_000)).toBe(2000);
    expect(statsReuseMs(3_000_000)).toBe(6000);
    expect(statsReuseMs(30_000_000)).toBe(30_000);
  });
});
