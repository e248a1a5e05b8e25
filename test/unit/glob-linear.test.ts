/**
 * Matching is linear in the key length for every pattern the syntax accepts:
 * proved by counting the matcher's own steps rather than by timing, so the
 * bound holds on any machine.
 */
import { describe, expect, it } from 'vitest';
import { BucketUriError, GLOB_LIMITS, compileGlob, createGlobMatcher, parseBucketUri } from '../../schemas/glob.js';

/** The most work one key may cost: every NFA state visited twice per character, plus the start closure. */
const bound = (keyLength: number, states: number) => keyLength * (2 * states + 1) + 2 * states;

function stepsFor(pattern: string, key: string): { steps: number; states: number; matched: boolean } {
  const m = createGlobMatcher(pattern);
  const before = m.steps;
  const matched = m.matches(key);
  return { steps: m.steps - before, states: m.states, matched };
}

// The worst patterns the spec accepts, each within the URI limit.
const attack = `*${'{?,?}*'.repeat(8)}.nomatch`;
const worstPatterns: Array<[name: string, pattern: string]> = [
  ['the preview attack (alternatives of ? between stars)', attack],
  ['the attack with the most alternatives allowed', `*${'{?,?}*'.repeat(128)}.nomatch`],
  ['stars and one-character literals', `${'*a'.repeat(400)}*b`],
  ['globstars and literals', `${'**a'.repeat(300)}**b`],
  ['**/ runs', `${'**/a/'.repeat(190)}*.csv`],
  ['? and * alternation', `${'*?'.repeat(490)}x`],
  ['alternatives full of wildcards', `${'{*a*,**b**,?c?}'.repeat(60)}z`],
  ['nested braces at the depth limit', `${'{*,{?,'.repeat(4)}x${'}}'.repeat(4)}`.repeat(16)],
  ['many wide ranges', `${'{10001..19998}*'.repeat(50)}.csv`],
];
const longKeys = [
  'a'.repeat(1000),
  'a/'.repeat(500),
  `${'ab/'.repeat(333)}c`,
  `${'aaaaaaaaa/'.repeat(99)}x.nomatc`,
  Array.from({ length: 1000 }, (_, i) => String(i % 10)).join(''),
];

describe('linear-time matching', () => {
  it.each(worstPatterns)('%s is accepted and within the size limits', (_name, pattern) => {
    const uri = `s3://bucket/${pattern}`;
    expect(uri.length).toBeLessThanOrEqual(1024);
    expect(() => parseBucketUri(uri)).not.toThrow();
    expect(createGlobMatcher(pattern).states).toBeLessThanOrEqual(GLOB_LIMITS.maxStates);
  });

  it.each(worstPatterns)('%s: a 1,000-character key costs bounded steps', (_name, pattern) => {
    for (const key of longKeys) {
      const { steps, states } = stepsFor(pattern, key);
      expect(steps).toBeLessThanOrEqual(bound(key.length, states));
    }
  });

  it.each(worstPatterns)('%s: doubling the key at most doubles the work', (_name, pattern) => {
    for (const unit of ['a', 'a/', 'ab/', '0123456789']) {
      const short = stepsFor(pattern, unit.repeat(Math.ceil(1000 / unit.length))).steps;
      const long = stepsFor(pattern, unit.repeat(Math.ceil(2000 / unit.length))).steps;
      // Slack for the start closure and the first characters, which warm the cache.
      expect(long).toBeLessThanOrEqual(2 * short + 4 * GLOB_LIMITS.maxStates);
    }
  });

  it('the preview attack answers correctly over a 60-character key and a 1,000-character one', () => {
    const matches = compileGlob(attack);
    expect(matches('x'.repeat(60))).toBe(false);
    expect(matches(`${'x'.repeat(60)}.nomatch`)).toBe(true);
    expect(matches(`${'x'.repeat(992)}.nomatch`)).toBe(true);
    expect(matches(`${'x'.repeat(7)}.nomatch`)).toBe(false); // eight `{?,?}` need eight characters
  });

  it('once warm, a key costs one step per character', () => {
    const m = createGlobMatcher(attack);
    const key = 'k'.repeat(1000);
    m.matches(key);
    const before = m.steps;
    for (let i = 0; i < 100; i++) expect(m.matches(key)).toBe(false);
    expect(m.steps - before).toBe(100 * 1000);
  });

  it('a dead end stops at once: a key that leaves the literal prefix costs one step', () => {
    const { steps, matched } = stepsFor('logs/2024/*.csv', `x${'y'.repeat(999)}`);
    expect(matched).toBe(false);
    expect(steps).toBeLessThanOrEqual(1 + 2 * 20);
  });

  it('matches a 1,000-character key in a number of steps linear in the key, for the worst accepted patterns', () => {
    // Counted, not timed (speed belongs to the benchmark): each character costs at most a couple of steps.
    const patterns = ['events/**/*.csv.gz', 'dt=2024-{01..12}-{01..31}/h={00..23}/*', attack, '**/{a,b,c}*_*_*.parquet'];
    const keys = [`events/${'d/'.repeat(490)}x.csv.gz`, `dt=2024-01-01/h=00/${'x'.repeat(980)}`, 'x'.repeat(1000), `${'a_'.repeat(498)}.parquet`];
    for (const pattern of patterns) {
      for (const key of keys) {
        const { steps } = stepsFor(pattern, key);
        expect(steps, `${pattern} on a ${key.length}-character key`).toBeLessThanOrEqual(2 * key.length + 2);
      }
    }
  });

  it('stays correct and bounded when the state sets outgrow the cache (2^13 possible sets)', () => {
    // "an `a` 13 characters before the end": a DFA for it needs 2^13 states, so the cache must be reset.
    const pattern = `**a${'?'.repeat(12)}`;
    const m = createGlobMatcher(pattern);
    let seed = 7;
    const random = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
    for (let i = 0; i < 40; i++) {
      const key = Array.from({ length: 1000 }, () => (random() < 0.5 ? 'a' : 'b')).join('');
      const before = m.steps;
      expect(m.matches(key)).toBe(key[key.length - 13] === 'a');
      expect(m.steps - before).toBeLessThanOrEqual(bound(key.length, m.states));
    }
  });

  it('refuses patterns beyond the complexity limits with the reason', () => {
    const tooManyStates = `${'{10001..19998}'.repeat(60)}`;
    expect(() => parseBucketUri(`s3://bucket/${tooManyStates}`)).toThrow(BucketUriError);
    expect(() => parseBucketUri(`s3://bucket/${tooManyStates}`)).toThrow(/too complex: it needs more than 2048 matcher states/);
    expect(() => parseBucketUri(`s3://bucket/${'{10001..19998}'.repeat(50)}`)).not.toThrow();
    expect(() => parseBucketUri(`s3://bucket/${'{a,b,c,d}'.repeat(65)}`)).toThrow(/more than 256 alternatives/);
  });
});
