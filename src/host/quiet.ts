// When a read of a file the agent may be writing is a whole state of it: the rules a sync's push
// (resources/sync/stable.ts) and a bundle's work-tree snapshot (resources/bundle/worktree.ts)
// share. A read between two equal stats, with nobody inside an update, is whole.
import type { Host } from './types.js';

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

