/**
 * S3's key order: ListObjectsV2 returns keys, and `StartAfter` compares them,
 * in the order of their UTF-8 bytes. JavaScript's `<` and `sort()` compare
 * UTF-16 code units, which disagree for keys with characters above U+FFFF
 * (an emoji, as a surrogate pair from 0xD800) next to characters from U+E000
 * to U+FFFF (full-width forms): `'k/！' < 'k/😀'` in UTF-8 bytes, the other
 * way round in UTF-16. Comparing code points is comparing UTF-8 bytes.
 *
 * Pure and allocation-free, so the workflow sandbox can sort with it.
 */
export function compareKeys(a: string, b: string): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const x = a.charCodeAt(i);
    const y = b.charCodeAt(i);
    if (x === y) continue;
    const sx = x >= 0xd800 && x <= 0xdfff;
    const sy = y >= 0xd800 && y <= 0xdfff;
    // A surrogate starts a code point above U+FFFF: after every BMP character, whatever its unit.
    if (sx !== sy) return sx ? 1 : -1;
    return x < y ? -1 : 1;
  }
  return a.length === b.length ? 0 : a.length < b.length ? -1 : 1;
}
