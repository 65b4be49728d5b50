// Sparse files: a file with holes (blocks of zeros the file system never allocated). node:fs has
// no lseek (no SEEK_DATA/SEEK_HOLE) and its copyFile writes every zero, so a 1 GiB sparse file
// holding 4 KiB of data comes out as 1 GiB on disk. The real host's sparse copy (real.ts,
// copyFile with `sparse`) skips every all-zero block and sets the length at the end, so the file
// system leaves those blocks unallocated: the same bytes, only the data on disk.

/** The file system's allocation unit on Linux (ext4, xfs, tmpfs): smaller zero runs cannot be holes. */
export const HOLE_BLOCK = 4096;

/** Whether a file occupies fewer blocks than its length needs: it has holes. */
export function isSparse(info: { size: number; blocks?: number }): boolean {
  return info.blocks !== undefined && info.size > HOLE_BLOCK && info.blocks * 512 < info.size - HOLE_BLOCK;
}
