// How close together two changes of a file can be and still get the same mtime: the timestamp tick
// of the file system holding a folder (docs/architecture.md, "Racily clean files are hashed").
//
// Linux's local file systems take file times from the kernel's coarse clock (one jiffy: 1 to 10 ms)
// and store them to the nanosecond, unless the file system cannot: ext3 and ext4 with 128-byte
// inodes keep whole seconds, FAT two seconds, and a network or FUSE file system takes the times of
// another machine's clock. So the short tick is given only to a folder on a local file system
// known to keep nanoseconds, whose own ctime and whose files' ctimes (which nobody can set back)
// show a fraction of a second; anything else gets the long one.
import type { FileInfo, Host, MountEntry } from './types.js';

/** A tick of a local file system with nanosecond times: ten jiffies at the slowest kernel clock (100 Hz). */
export const FINE_TICK_MS = 100;
/** Any other file system: FAT's two seconds (which also covers whole-second times), and one more for a network file system's clock. */
export const COARSE_TICK_MS = 3000;

/** File systems that keep nanoseconds and take file times from this kernel's clock (overlay: from its upper layer). */
const FINE_FILE_SYSTEMS = new Set(['ext4', 'xfs', 'btrfs', 'tmpfs', 'overlay', 'zfs', 'f2fs']);

/** `st_dev` as `major:minor`, as mountinfo writes it (glibc's encoding; a device number past 32 bits is not matched). */
export function deviceName(dev: number): string | null {
  if (!Number.isSafeInteger(dev) || dev < 0 || dev >= 2 ** 32) return null;
  const major = Math.floor(dev / 256) % 4096;
  const minor = (dev % 256) + (Math.floor(dev / 2 ** 20) % 4096) * 256;
  return `${major}:${minor}`;
}

const hasFraction = (ms: number | undefined) => ms !== undefined && ms % 1000 !== 0;

/**
 * The timestamp tick of `folder`'s file system, with margin. `files`: stats of files in it (a walk's
 * listing); one whose ctime is a whole second means times may be kept in seconds there.
 */
export async function timestampTickMs(host: Host, folder: string, files: Iterable<{ ctimeMs?: number }> = []): Promise<number> {
  let info: FileInfo | null;
  let mounts: MountEntry[];
  try {
    [info, mounts] = await Promise.all([host.stat(folder), host.mounts()]);
  } catch {
    return COARSE_TICK_MS;
  }
  const device = info?.dev === undefined ? null : deviceName(info.dev);
  if (!info || device === null || !hasFraction(info.ctimeMs)) return COARSE_TICK_MS;
  // Several entries share a device when a folder of it is mounted elsewhere too (a bind mount): same file system.
  const types = new Set(mounts.filter((entry) => entry.device === device).map((entry) => entry.fsType));
  if (types.size !== 1 || !FINE_FILE_SYSTEMS.has([...types][0]!)) return COARSE_TICK_MS;
  for (const file of files) if (file.ctimeMs !== undefined && !hasFraction(file.ctimeMs)) return COARSE_TICK_MS;
  return FINE_TICK_MS;
}
