/**
 * Reads by key that callers share: callers asking while a read runs get its
 * answer, and an answer may be kept for a while afterwards, as long as the
 * read itself says (`reuseMs`). What a read cost decides how long its answer
 * serves, so cheap reads stay fresh and only costly ones are spaced out. A
 * failed read is never kept; `forget` drops a key's answer when its data is
 * known to have changed.
 */
export class ReusedReads<T> {
  private readonly running = new Map<string, { value: Promise<T> }>();
  private readonly kept = new Map<string, { value: T; until: number }>();

  constructor(
    private readonly reuseMs: (value: T) => number,
    private readonly now: () => number = () => performance.now(),
  ) {}

  get(key: string, read: () => Promise<T>): Promise<T> {
    const kept = this.kept.get(key);
    if (kept && this.now() < kept.until) return Promise.resolve(kept.value);
    this.kept.delete(key);
    const running = this.running.get(key);
    if (running) return running.value;
    // Only the read still registered for its key may keep its answer: after a `forget` it may not.
    const entry = {} as { value: Promise<T> };
    entry.value = (async () => {
      try {
        const value = await read();
        if (this.running.get(key) === entry) {
          const ms = this.reuseMs(value);
          if (ms > 0) this.keep(key, value, ms);
        }
        return value;
      } finally {
        if (this.running.get(key) === entry) this.running.delete(key);
      }
    })();
    this.running.set(key, entry);
    return entry.value;
  }

  /** The key's data changed: the next caller reads afresh (a read already running answers its callers but is not kept). */
  forget(key: string): void {
    this.kept.delete(key);
    this.running.delete(key);
  }

  /** `forget` every key that starts with `prefix`. */
  forgetPrefix(prefix: string): void {
    for (const key of [...this.kept.keys(), ...this.running.keys()]) if (key.startsWith(prefix)) this.forget(key);
  }

  /** Keep an answer; answers past their time are dropped once many are kept, so keys read once do not pile up. */
  private keep(key: string, value: T, ms: number): void {
    if (this.kept.size >= 256) {
      const now = this.now();
      for (const [k, v] of this.kept) if (v.until <= now) this.kept.delete(k);
    }
    this.kept.set(key, { value, until: this.now() + ms });
  }
}
