import { afterEach, describe, expect, it, vi } from 'vitest';
import { askAgainWhileUnanswered, QUERY_ASK_AGAIN_AFTER_MS } from '../../api/service.js';

/**
 * The status read asks the workflow again while a query goes unanswered
 * (Temporal can hold one until the workflow is idle), on fake timers.
 */
describe('asking a status query again while it goes unanswered', () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  it('a held query is asked again; the first answer wins and no more are asked', async () => {
    vi.useFakeTimers();
    const asked: number[] = [];
    const answer = askAgainWhileUnanswered(() => {
      asked.push(Date.now());
      // The first is held (never answers); the second answers.
      return asked.length === 1 ? new Promise<string>(() => undefined) : Promise.resolve(`answer ${asked.length}`);
    }, QUERY_ASK_AGAIN_AFTER_MS);
    await vi.advanceTimersByTimeAsync(QUERY_ASK_AGAIN_AFTER_MS[0]!);
    await expect(answer).resolves.toBe('answer 2');
    await vi.advanceTimersByTimeAsync(10_000);
    expect(asked).toHaveLength(2);
  });

  it('an answer that comes at once is asked for once', async () => {
    vi.useFakeTimers();
    let asked = 0;
    const answer = askAgainWhileUnanswered(() => Promise.resolve(++asked), QUERY_ASK_AGAIN_AFTER_MS);
    await expect(answer).resolves.toBe(1);
    await vi.advanceTimersByTimeAsync(10_000);
    expect(asked).toBe(1);
  });

  it('a failure fails at once (it is not a held query) and nothing more is asked', async () => {
    vi.useFakeTimers();
    let asked = 0;
    const answer = askAgainWhileUnanswered(() => {
      asked++;
      return Promise.reject(new Error('workflow not found'));
    }, QUERY_ASK_AGAIN_AFTER_MS);
    await expect(answer).rejects.toThrow('workflow not found');
    await vi.advanceTimersByTimeAsync(10_000);
    expect(asked).toBe(1);
  });

  it('asks at most once more for each step, however long all of them are held', async () => {
    vi.useFakeTimers();
    let asked = 0;
    const answer = askAgainWhileUnanswered(() => {
      asked++;
      return new Promise<never>(() => undefined);
    }, QUERY_ASK_AGAIN_AFTER_MS);
    let done = false;
    void answer.then(() => (done = true));
    await vi.advanceTimersByTimeAsync(60_000);
    expect(asked).toBe(1 + QUERY_ASK_AGAIN_AFTER_MS.length);
    expect(done).toBe(false);
  });
});
