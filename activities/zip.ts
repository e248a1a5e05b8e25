import yauzl from 'yauzl';
import type { Readable } from 'node:stream';
import { ImportError } from './errors.js';

/** An entry is refused when it expands more than this many times and past ZIP_BOMB_MIN_BYTES. */
const ZIP_BOMB_RATIO = 1000;
const ZIP_BOMB_MIN_BYTES = 256 * 1024 * 1024;

export interface ZipEntry {
  /** Position in the archive's directory (0-based, every entry counted): two entries may share a name. */
  index: number;
  name: string;
  compressedSize: number;
  uncompressedSize: number;
  open(): Promise<Readable>;
}

/**
 * Walk the file entries of a zip archive on local disk, one at a time.
 * yauzl checks each entry's real size against its header, so a lying header
 * cannot expand past what the ratio check below accepted.
 */
export async function forEachZipEntry(path: string, onEntry: (entry: ZipEntry) => Promise<void>): Promise<number> {
  const zip = await new Promise<yauzl.ZipFile>((resolve, reject) =>
    yauzl.open(path, { lazyEntries: true, autoClose: false }, (err, z) => (err || !z ? reject(new ImportError('bad_file', `not a valid zip archive: ${err?.message}`)) : resolve(z))),
  );
  let count = 0;
  let index = -1;
  try {
    await new Promise<void>((resolve, reject) => {
      zip.on('error', (err: Error) => reject(new ImportError('bad_file', `zip archive is damaged: ${err.message}`)));
      zip.on('end', () => resolve());
      zip.on('entry', (entry: yauzl.Entry) => {
        index++;
        const name = entry.fileName;
        if (name.endsWith('/') || name.startsWith('__MACOSX/') || /(^|\/)\.[^/]*$/.test(name)) {
          zip.readEntry();
          return;
        }
        if (entry.uncompressedSize > ZIP_BOMB_MIN_BYTES && entry.uncompressedSize > ZIP_BOMB_RATIO * Math.max(1, entry.compressedSize)) {
          reject(new ImportError('bad_file', `zip entry ${name} would expand ${Math.round(entry.uncompressedSize / Math.max(1, entry.compressedSize))}x to ${entry.uncompressedSize} bytes: refused as a likely zip bomb`));
          return;
        }
        count++;
        onEntry({
          index,
          name,
          compressedSize: entry.compressedSize,
          uncompressedSize: entry.uncompressedSize,
          open: () =>
            new Promise<Readable>((res, rej) =>
              zip.openReadStream(entry, (err, stream) => (err || !stream ? rej(new ImportError('bad_file', `cannot read zip entry ${name}: ${err?.message}`)) : res(stream))),
            ),
        }).then(() => zip.readEntry(), reject);
      });
      zip.readEntry();
    });
  } finally {
    zip.close();
  }
  return count;
}

/** Compression from a file's first bytes, for `compression: auto` when the name says nothing. */
export function sniffCompression(head: Buffer): 'gzip' | 'zstd' | 'zip' | 'none' {
  if (head.length >= 2 && head[0] === 0x1f && head[1] === 0x8b) return 'gzip';
  if (head.length >= 4 && head.readUInt32LE(0) === 0xfd2fb528) return 'zstd';
  if (head.length >= 4 && head.readUInt32LE(0) === 0x04034b50) return 'zip';
  return 'none';
}
