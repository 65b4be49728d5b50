// Copying a file so that its holes stay holes. node:fs has no lseek (no SEEK_DATA/SEEK_HOLE) and
// its copyFile writes every zero: a 1 GiB sparse file holding 4 KiB of data comes out as 1 GiB on
// disk. Here every block of zeros is skipped (not written) and the file is given its length at the
// end, so the file system leaves those blocks unallocated: the copy reads the same bytes and costs
// only its data. Reading a hole is cheap (the kernel returns zeros without touching the disk).
import * as fs from 'node:fs/promises';

/** The file system's allocation unit on Linux (ext4, xfs, tmpfs): smaller zero runs cannot be holes. */
export const HOLE_BLOCK = 4096;
const CHUNK = 1024 * 1024;
const ZERO = Buffer.alloc(HOLE_BLOCK);

/** Whether a file occupies fewer blocks than its length needs: it has holes. */
export function isSparse(info: { size: number; blocks?: number }): boolean {
  return info.blocks !== undefined && info.size > HOLE_BLOCK && info.blocks * 512 < info.size - HOLE_BLOCK;
}

/** Copy `from` to `to` (created with `from`'s permission bits), leaving every all-zero block a hole. */
export async function copySparse(from: string | Buffer, to: string | Buffer): Promise<void> {
  const source = await fs.open(from, 'r');
  try {
    const { size, mode } = await source.stat();
    const target = await fs.open(to, 'w', mode & 0o7777);
    try {
      const buffer = Buffer.alloc(CHUNK);
      for (let offset = 0; offset < size; ) {
        const { bytesRead } = await source.read(buffer, 0, Math.min(CHUNK, size - offset), offset);
        if (bytesRead === 0) break;
        // Write each run of blocks that hold data; skip the blocks of zeros.
        let runStart = -1;
        for (let at = 0; at < bytesRead; at += HOLE_BLOCK) {
          const end = Math.min(at + HOLE_BLOCK, bytesRead);
          const data = !buffer.subarray(at, end).equals(ZERO.subarray(0, end - at));
          if (data && runStart < 0) runStart = at;
          if (!data && runStart >= 0) {
            await target.write(buffer, runStart, at - runStart, offset + runStart);
            runStart = -1;
          }
        }
        if (runStart >= 0) await target.write(buffer, runStart, bytesRead - runStart, offset + runStart);
        offset += bytesRead;
      }
      await target.truncate(size);
    } finally {
      await target.close();
    }
  } finally {
    await source.close();
  }
}
