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

function sameStat(a: FileInfo | null, b: FileInfo | null): boolean {
  if (!a || !b) return a === b;
  return a.size === b.size && a.mtimeMs === b.mtimeMs && a.ctimeMs === b.ctimeMs;
}

/**
 * The content of the file at `path` as one whole state of it, read into memory: between two equal
 * stats, nobody inside an update (isWhole; `look`: whether to look at its writers, else the quiet
 * rule alone), and not emptied within EMPTIED_SETTLE_MS. For a file known to have changed lately
 * (a work tree's, see bundle/worktree.ts). A read a write landed in is tried again after a jitter,
 * one a writer may be inside of after SETTLE_MS, an emptied one once it is EMPTIED_SETTLE_MS old;
 * at most INTERRUPTED_READS reads, STABLE_READS waits of each kind. `gone`: no file there now;
 * `too large`: more than `maxBytes`; `unsettled`: never whole.
 */
export async function readWhole(host: Host, path: string, look: boolean, maxBytes: number): Promise<Buffer | 'gone' | 'too large' | 'unsettled'> {
  let inside = 0;
  let emptied = 0;
  for (let read = 1; read <= INTERRUPTED_READS; read++) {
    const before = await host.lstat(path);
    if (!before || before.type !== 'file') return 'gone';
    if (before.size > maxBytes) return 'too large';
    const readAt = host.now().getTime();
    // Looked at however long ago it changed: a writer blocked inside its update leaves no recent stamp.
    const writers = look ? await host.writersOf(path) : { writers: [], complete: false };
    let data: Buffer;
    try {
      data = await host.readFile(path);
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (code === 'ENOENT' || code === 'ENOTDIR' || code === 'EISDIR') return 'gone';
      throw error;
    }
    const after = await host.lstat(path);
    if (!after || !sameStat(before, after) || data.length !== before.size) {
      await host.sleep(jitter());
      continue;
    }
    if (!isWhole(after, readAt, writers)) {
      if (++inside >= STABLE_READS) return 'unsettled';
      await host.sleep(SETTLE_MS);
      continue;
    }
    const quietFor = readAt - Math.max(after.mtimeMs, after.ctimeMs ?? 0);
    if (data.length > 0 || quietFor >= EMPTIED_SETTLE_MS) return data;
    if (++emptied >= STABLE_READS) return 'unsettled';
    await host.sleep(EMPTIED_SETTLE_MS - quietFor);
  }
  return 'unsettled';
}
