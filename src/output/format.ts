// The small pieces of text every message is made of, written once: byte sizes, counted nouns,
// samples of long path lists, durations and ages, and the text of a caught error. Pure: no clock,
// no I/O (callers pass the times in).

const BYTE_UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB'] as const;

/** `512 B`, `14.0 KiB`, `3.2 MiB`, `1.5 GiB`: binary units, one decimal above bytes. */
export function formatBytes(bytes: number): string {
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < BYTE_UNITS.length - 1) {
    value /= 1024;
    unit++;
  }
  return `${unit === 0 ? value : value.toFixed(1)} ${BYTE_UNITS[unit]}`;
}

/** `1 file`, `0 files`, `2,000 files`; `pluralNoun` for nouns that do not just take an `s`. */
export function plural(count: number, noun: string, pluralNoun = `${noun}s`): string {
  return `${withCommas(count)} ${count === 1 ? noun : pluralNoun}`;
}

/** 12345 → `12,345`, as toLocaleString('en-US') writes it, without loading ICU's locale data (19 ms at its first call, in every plan). */
function withCommas(count: number): string {
  const [whole, fraction] = String(count).split('.');
  return `${whole!.replace(/\B(?=(\d{3})+$)/g, ',')}${fraction === undefined ? '' : `.${fraction}`}`;
}

/** The first `limit` paths, then how many more: `a, b, c and 4 more`. All of them when they fit. */
export function samplePaths(paths: readonly string[], limit = 3): string {
  if (paths.length <= limit) return paths.map(showPath).join(', ');
  return `${paths.slice(0, limit).map(showPath).join(', ')} and ${paths.length - limit} more`;
}

const CONTROL_NAMES: Record<string, string> = { '\n': '\\n', '\t': '\\t', '\r': '\\r' };

/**
 * A path as a person reads it, on one line: a byte of a name that is not UTF-8 (a lone surrogate,
 * host/names.ts) as `\xE9`, not U+FFFD; a newline, tab or other control character as `\n`,
 * `\t`, `\x1B` (a name holding one would break a list, or a terminal).
 */
export function showPath(path: string): string {
  return path
    .replace(/(?<![\uD800-\uDBFF])[\uDC80-\uDCFF]/g, (raw) => `\\x${(raw.charCodeAt(0) - 0xdc00).toString(16).toUpperCase()}`)
    .replace(/[\x00-\x1F\x7F]/g, (raw) => CONTROL_NAMES[raw] ?? `\\x${raw.charCodeAt(0).toString(16).toUpperCase().padStart(2, '0')}`);
}

/** Rounded to at most one decimal, without a trailing `.0`: 3 -> `3`, 2.25 -> `2.3`. */
function tenths(value: number): string {
  return String(Math.round(value * 10) / 10);
}

/**
 * How long something took or may take: `0.4 ms`, `12 ms`, `5 s`, `1.5 s`, `90 s`, `3 min`, `2 h`.
 * Below 10 ms a tenth is kept (a local file call takes microseconds).
 */
export function formatDuration(ms: number): string {
  const value = Math.max(0, ms);
  if (value < 10) return `${tenths(value)} ms`;
  if (value < 1000) return `${Math.round(value)} ms`;
  const seconds = value / 1000;
  if (seconds < 120) return `${tenths(seconds)} s`;
  if (seconds < 7200) return `${Math.round(seconds / 60)} min`;
  return `${tenths(seconds / 3600)} h`;
}

/** How long ago `fromMs` was at `now`, compactly: `45s`, `3m`, `5h`, `2d` (never negative). */
export function formatAge(fromMs: number, now: Date): string {
  const seconds = Math.max(0, Math.round((now.getTime() - fromMs) / 1000));
  if (seconds < 120) return `${seconds}s`;
  if (seconds < 7200) return `${Math.round(seconds / 60)}m`;
  if (seconds < 172800) return `${Math.round(seconds / 3600)}h`;
  return `${Math.round(seconds / 86400)}d`;
}

/** The message of anything thrown: an Error's message, else its text. */
export function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** The errno code of a failed system call (`ENOENT`), else the error's name (`ReadOnlyViolation`). */
export function errorCode(error: unknown): string {
  const code = (error as NodeJS.ErrnoException | null)?.code;
  if (typeof code === 'string' && code) return code;
  return error instanceof Error ? error.name : typeof error;
}

/**
 * What a file system error says about a path, in words, and what to do about it (`fix`, one
 * sentence). `transient`: the path changed while it was read; the same read may pass in a moment.
 */
export interface PathTrouble {
  words: string;
  fix: (path: string) => string;
  transient?: boolean;
}

const ANOTHER_PATH = 'or name another path in the spec';

/** By errno code: the codes a path itself can answer (its own trouble, not persist's); engine/observe.ts turns them into a conflict on the resource. */
export const PATH_TROUBLE: Readonly<Record<string, PathTrouble>> = {
  ELOOP: {
    words: 'too many levels of symbolic links, as when a link on the way leads back to itself',
    fix: (path) => `Make every symbolic link on the way to ${showPath(path)} lead to a real file or folder (ls -l shows where each one leads), ${ANOTHER_PATH}.`,
  },
  EACCES: {
    words: 'permission denied',
    fix: (path) => `Let the user persist runs as read ${showPath(path)} and search every folder above it (chmod or chown), run persist as a user who may, ${ANOTHER_PATH}.`,
  },
  EPERM: {
    words: 'operation not permitted',
    fix: (path) => `Let the user persist runs as read ${showPath(path)} and search every folder above it (chmod, chown, or chattr for an immutable file), ${ANOTHER_PATH}.`,
  },
  ENOTDIR: {
    words: 'a part of the path is not a folder',
    fix: (path) => `Make each part of ${showPath(path)} above its last name a folder (move the file that stands in the way aside), ${ANOTHER_PATH}.`,
  },
  EISDIR: {
    words: 'it is a folder, where a file was expected',
    fix: (path) => `Move the folder ${showPath(path)} aside, ${ANOTHER_PATH}.`,
  },
  ENAMETOOLONG: {
    words: 'the name is too long for the file system',
    fix: () => `Use a shorter path in the spec.`,
  },
  EIO: {
    words: 'input/output error, the disk or file system under it failed',
    fix: (path) => `Check the disk or file system holding ${showPath(path)} (dmesg shows its errors), then run the command again.`,
  },
  ENXIO: {
    words: 'no such device or address, a special file whose device is gone',
    fix: (path) => `Move ${showPath(path)} aside, ${ANOTHER_PATH}.`,
  },
  ENODEV: {
    words: 'no such device',
    fix: (path) => `Move ${showPath(path)} aside, ${ANOTHER_PATH}.`,
  },
  ENOTCONN: {
    words: 'not connected, a FUSE mount whose program is gone',
    fix: (path) => `Unmount the dead FUSE mount holding ${showPath(path)} (fusermount3 -u or umount -l on its mount point), then run the command again.`,
  },
  ESTALE: {
    words: 'stale file handle, the network file system lost it',
    fix: (path) => `Remount the file system holding ${showPath(path)}, then run the command again.`,
    transient: true,
  },
  ENOENT: {
    words: 'no such file or folder, it went away while it was looked at',
    fix: () => 'Run the command again.',
    transient: true,
  },
};
