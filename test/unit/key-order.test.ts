import { describe, expect, it } from 'vitest';
import { compareKeys } from '../../schemas/key-order.js';
import { keyAfter } from '../../schemas/datasource.js';

/** S3 orders keys by their UTF-8 bytes (ListObjectsV2, StartAfter). */
const byBytes = (a: string, b: string) => Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));

describe('key order is S3 order (UTF-8 bytes)', () => {
  it('a full-width character sorts before a character above U+FFFF, as in UTF-8 (UTF-16 says the opposite)', () => {
    expect('k/！' > 'k/😀').toBe(true); // UTF-16 code units: 0xFF01 > 0xD83D
    expect(compareKeys('k/！', 'k/😀')).toBeLessThan(0);
    expect(byBytes('k/！', 'k/😀')).toBeLessThan(0);
    expect(['k/😀', 'k/！', 'k/a', 'k/￿', 'k/𐀀'].sort(compareKeys)).toEqual(['k/a', 'k/！', 'k/￿', 'k/𐀀', 'k/😀']);
  });

  it('keyAfter (startAfter) keeps a key S3 lists after the bound', () => {
    expect(keyAfter('k/😀', 'k/！')).toBe(true);
    expect(keyAfter('k/！', 'k/😀')).toBe(false);
    expect(keyAfter('k/！', undefined)).toBe(true);
  });

  it('agrees with a byte comparison on random keys of mixed planes', () => {
    const alphabet = ['a', 'z', '/', '~', 'é', '中', '\uE000', '！', '\uFFFD', '😀', '𐀀', '\u{10FFFF}', '-'];
    let seed = 7;
    const rnd = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
    const key = () => Array.from({ length: 1 + Math.floor(rnd() * 5) }, () => alphabet[Math.floor(rnd() * alphabet.length)]).join('');
    for (let n = 0; n < 5000; n++) {
      const a = key();
      const b = key();
      expect(Math.sign(compareKeys(a, b)), `${a} vs ${b}`).toBe(Math.sign(byBytes(a, b)));
    }
  });
});
