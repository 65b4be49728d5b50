// When a read of a file the agent may be writing is a whole state of it: the rules a sync's push
// (resources/sync/stable.ts) and a bundle's work-tree snapshot (resources/bundle/worktree.ts)
// share. A read between two equal stats, with nobody inside an update, is whole.
import type { FileInfo, Host } from './types.js';

/**
 * A file whose last change is this recent when it is read may be mid-write (a writer between its
 * truncate and its write, descheduled on a busy machine, shows a size and times that do not move):
 * it is read again after this long.
 */
export const SETTLE_MS = 250;

export function isFresh(info: { mtimeMs: number; ctimeMs?: number }, readAt: number): boolean {
  return readAt - Math.max(info.mtimeMs, info.ctimeMs ?? 0) < SETTLE_MS && readAt >= info.mtimeMs - 1000;
}

/** A file changed less than this long before it is read: who holds it open for writing is looked at. */
export const RECENT_MS = 2000;

export type WritersLook = Awaited<ReturnType<Host['writersOf']>>;

export function isRecent(info: { mtimeMs: number; ctimeMs?: number }, readAt: number): boolean {
  return readAt - Math.max(info.mtimeMs, info.ctimeMs ?? 0) < RECENT_MS && readAt >= info.mtimeMs - 1000;
}

/**
 * Whether a read between two equal stats is a whole state of the file. `look`: the processes that
 * held it open for writing, looked at between those stats (null: the file was quiet for
 * RECENT_MS, nothing looked at). No writer then, or only writers that append (every read is a
 * prefix that existed), means none was inside an update: taken however recent the change (a file
 * the agent rewrites without pause is never quiet for SETTLE_MS). A writer that holds it open
 * otherwise may be between two writes of one update, however long ago the last was: read again.
 * When not every process could be looked into, the file must have been quiet for SETTLE_MS.
 */
export function isWhole(after: { mtimeMs: number; ctimeMs?: number }, readAt: number, look: WritersLook | null): boolean {
  if (look === null) return true;
  if (!look.complete) return !isFresh(after, readAt);
  return look.writers.every((writer) => writer.append);
}

/** How many times a file that may be inside an update (see isWhole) is read again, SETTLE_MS apart. */
export const STABLE_READS = 3;
/**
 * How many reads in all a write may land in before the file counts as never settling: each is
 * tried again after a short random pause, at another point of the writer's rhythm (a file the agent
 * rewrites every 100 ms leaves gaps that a read fits in, but not every time).
 */
export const INTERRUPTED_READS = 10;

/** A pause of 5 to 45 ms, so that retries do not keep step with a writer's rhythm. */
export function jitter(): number {
  return 5 + Math.floor(Math.random() * 40);
}

/**
 * How long a file that was emptied must stay empty before an empty read of it is taken: a writer
 * inside `open` with O_TRUNC has emptied the file before it holds a descriptor that a look could
 * see, and a busy disk can keep it there (ext4 waiting on its journal) for hundreds of ms.
 */
export const EMPTIED_SETTLE_MS = 2000;

/**
 * Whether an empty read may be a writer's truncate, not a state of the file: it changed less
 * than EMPTIED_SETTLE_MS before the read and had content before: known to (`hadContent`), or born
 * before its last change. A file created empty keeps its birth time equal to its mtime until it is
 * written, so it is taken at once; a birth time the file system does not give counts as before.
 */
export function mayBeEmptied(info: FileInfo, readAt: number, hadContent: boolean): boolean {
  if (info.size > 0 || readAt - Math.max(info.mtimeMs, info.ctimeMs ?? 0) >= EMPTIED_SETTLE_MS) return false;
  return hadContent || info.birthtimeMs === undefined || info.birthtimeMs < info.mtimeMs;
}

function sameStat(a: FileInfo | null, b: FileInfo | null): boolean {
  if (!a || !b) return a === b;
  return a.size === b.size && a.mtimeMs === b.mtimeMs && a.ctimeMs === b.ctimeMs;
}

export interface WholeRead {
  data: Buffer;
  /** The file's stats around the read (equal before and after it). */
  info: FileInfo;
  /** An earlier read was not taken: the file changed during it, or a writer may have been inside an update. */
  retried: boolean;
}

export interface WholeReadOptions {
  /** Larger files are not read (`too large`): the whole read is held in memory. */
  maxBytes: number;
  /** Who holds the file open for writing, looked at between the stats (see isWhole); null: nothing looked at. */
  look: (before: FileInfo, readAt: number) => Promise<WritersLook | null>;
  /** The file is known to have had content (see mayBeEmptied). */
  hadContent: boolean;
}

/**
 * The content of the file at `path` as one whole state of it, read into memory: between two equal
 * stats, nobody inside an update (isWhole), and not perhaps emptied by a writer (mayBeEmptied).
 * A read a write landed in is tried again after a jitter, one a writer may be inside of after
 * SETTLE_MS, an emptied one once it is EMPTIED_SETTLE_MS old; at most INTERRUPTED_READS reads,
 * STABLE_READS waits of each kind. `gone`: no file there now; `too large`: more than `maxBytes`;
 * `unsettled`: never whole. Errors other than a missing file are thrown.
 */
export async function readWhole(host: Host, path: string, options: WholeReadOptions): Promise<WholeRead | 'gone' | 'too large' | 'unsettled'> {
  let inside = 0;
  let emptied = 0;
  for (let read = 1; read <= INTERRUPTED_READS; read++) {
    const before = await host.lstat(path);
    if (!before || before.type !== 'file') return 'gone';
    if (before.size > options.maxBytes) return 'too large';
    const readAt = host.now().getTime();
    const writers = await options.look(before, readAt);
    let data: Buffer;
    try {
      data = await host.readFile(path);
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (code === 'ENOENT' || code === 'ENOTDIR' || code === 'EISDIR') return 'gone';
      throw error;
    }
    const after = await host.lstat(path);
    const retried = read > 1;
    if (!after || !sameStat(before, after) || data.length !== before.size) {
      await host.sleep(jitter());
      continue;
    }
    if (!isWhole(after, readAt, writers)) {
      if (++inside >= STABLE_READS) return 'unsettled';
      await host.sleep(SETTLE_MS);
      continue;
    }
    if (!mayBeEmptied(after, readAt, options.hadContent)) return { data, info: after, retried };
    if (++emptied >= STABLE_READS) return 'unsettled';
    await host.sleep(EMPTIED_SETTLE_MS - (readAt - Math.max(after.mtimeMs, after.ctimeMs ?? 0)));
  }
  return 'unsettled';
}
