/** Ids of file `i` are i*ID_SPAN + 1 .. i*ID_SPAN + rows: a file's rows are exactly the ids in its span. */
export const ID_SPAN = 100_000_000;

/** A CSV with only an `id` column: `rows` rows of file `file`, fixed-width ids, built fast for large files. */
export function idCsv(file: number, rows: number): Buffer {
  const width = String((file + 1) * ID_SPAN).length;
  const header = 'id\n';
  const buf = Buffer.allocUnsafe(header.length + rows * (width + 1));
  buf.write(header);
  let o = header.length;
  for (let j = 1; j <= rows; j++) {
    let n = file * ID_SPAN + j;
    for (let d = width - 1; d >= 0; d--) {
      buf[o + d] = 48 + (n % 10);
      n = Math.floor(n / 10);
    }
    buf[o + width] = 10;
    o += width + 1;
  }
  return buf;
}
