// The work that is not in any branch, saved in a bundle beside the repo's refs: the stash entries
// (`refs/persist/stash/<n>`, n = 0 the newest) and the work tree snapshot (`refs/persist/worktree`).
//
// How plan knows whether the work tree differs from the saved snapshot, writing nothing: the
// snapshot commit is deterministic (fixed identity and message, HEAD as parent and HEAD's committer
// date), so plan builds it with throwaway objects in a scratch folder (snapshotWorktree with
// `objects: 'temporary'`, every git call read-only) and compares its sha with the one the bundle's
// header lists for `refs/persist/worktree`. Equal commit ids mean an equal tree on the same HEAD.
// Mostly no snapshot is built at all: after a save or a restore the work tree is recorded in the
// state folder, and a plan that finds it as recorded takes the recorded sha (worktree-record.ts;
// by stats alone, or one `git status`); a `git status` that lists nothing means clean, and then
// the bundle must hold no snapshot ref (a stale one is a difference to clear).
// The change line counts the paths that differ from the saved snapshot when its objects are in the
// repo (this machine saved or restored it), else from HEAD. `leaveOut` everywhere: the paths of the
// environment's links inside the repo, which no snapshot holds (worktree.ts).
//
// Safety ("a bundle holding commits the repo lacks is a conflict") for persist's refs: a stash entry
// the repo has as an object (it was dropped or popped here) may leave the bundle; one whose commit
// the repo lacks was never seen here (another machine's) and is a conflict. The bundle's snapshot
// may be replaced only when the repo's own `refs/persist/worktree` names it (this machine saved it,
// or restored it into this work tree); otherwise the bundle holds uncommitted work this work tree
// never had (a repo cloned from elsewhere, a restore that could not bring the files back), and
// replacing it is a conflict.
import type { Change } from '../../engine/types.js';
import type { Host } from '../../host/types.js';
import { plural, samplePaths } from '../../output/format.js';
import { errorMessage } from '../../output/format.js';
import { STASH_REF_PREFIX } from './refs.js';
import { WORKTREE_REF, describeSnapshot, ensureExcluded, restoreStash, restoreWorktree, snapshotWorktree, updateWorktreeRef, type WorktreeObserved } from './worktree.js';
import { recallSnapshot, rememberWorktree } from './worktree-record.js';

const short = (sha: string | null | undefined): string | null => (sha ? sha.slice(0, 12) : null);

export function isPersistRef(name: string): boolean {
  return name.startsWith('refs/persist/');
}

/**
 * The work tree as plan sees it, without writing anything into the repo (`saved`: the bundle's
 * snapshot, `head`: HEAD's commit). When the work tree still looks as it did when this machine last
 * saved or restored it (worktree-record.ts: one `git status` and a few stats), the snapshot made
 * then is the answer; otherwise one is built with throwaway objects.
 */
export async function observeWorktree(host: Host, repo: string, saved: string | null, head: string, leaveOut: readonly string[]): Promise<WorktreeObserved> {
  try {
    const recalled = await recallSnapshot(host, repo, head, leaveOut);
    if (recalled.known && recalled.snapshot === saved) return recalled.snapshot === null ? { state: 'clean' } : { state: 'dirty', sha: recalled.snapshot };
    // Not as recorded: a status that lists nothing still means clean (no snapshot needed).
    if (!recalled.known && recalled.clean) return recalled.skipped.length ? { state: 'clean', skipped: recalled.skipped } : { state: 'clean' };
    const snapshot = await snapshotWorktree(host, repo, { objects: 'temporary', saved, leaveOut });
    const skipped = snapshot.skipped.length ? { skipped: snapshot.skipped } : {};
    if (snapshot.clean) return { state: 'clean', ...skipped };
    return { state: 'dirty', sha: snapshot.sha, ...(snapshot.changes ? { changes: snapshot.changes } : {}), ...skipped };
  } catch (error) {
    return { state: 'unreadable', error: (error as Error).message };
  }
}

/** The persist refs a bundle of this repo holds: stash entries, and the snapshot when the work tree is not clean. */
export function savedWorkRefs(stash: string[], worktree: WorktreeObserved | null): Record<string, string> {
  const refs: Record<string, string> = {};
  stash.forEach((sha, n) => {
    refs[`${STASH_REF_PREFIX}${n}`] = sha;
  });
  if (worktree?.state === 'dirty') refs[WORKTREE_REF] = worktree.sha;
  return refs;
}

/** The plan's line for the work tree: `work tree: <saved> → <now>`, with what differs. */
export function worktreeChange(saved: string | null, worktree: WorktreeObserved | null): Change | null {
  if (!worktree || worktree.state === 'unreadable') return null;
  const now = worktree.state === 'dirty' ? worktree.sha : null;
  if (now === saved) return null;
  const before = saved ? `snapshot ${short(saved)}` : 'as committed';
  if (worktree.state === 'clean') return { field: 'work tree', before, after: 'as committed (the snapshot is removed)' };
  const c = worktree.changes;
  const counts = c
    ? [c.modified && `${c.modified} modified`, c.added && `${c.added} added`, c.deleted && `${c.deleted} deleted`].filter(Boolean).join(', ') || 'no path'
    : 'changed';
  const since = c?.against === 'snapshot' ? 'since the saved snapshot' : 'since HEAD';
  return { field: 'work tree', before, after: `snapshot ${short(now)} (${counts} ${since})` };
}

/**
 * The bundle's persist refs that an update would drop although this repo never had them (see the
 * top of this file). `hasObject` answers whether the repo holds a commit.
 */
export async function lostSavedWork(
  bundleRefs: Record<string, string>,
  expected: Record<string, string>,
  worktreeRef: string | null,
  hasObject: (sha: string) => Promise<boolean>,
): Promise<{ ref: string; sha: string }[]> {
  const lost: { ref: string; sha: string }[] = [];
  const kept = new Set(Object.values(expected));
  for (const [ref, sha] of Object.entries(bundleRefs)) {
    if (!isPersistRef(ref) || kept.has(sha)) continue;
    if (ref === WORKTREE_REF ? sha !== worktreeRef : !(await hasObject(sha))) lost.push({ ref, sha });
  }
  return lost;
}

/**
 * Before an update: keep `.persist-backups/` out of the repo, build the snapshot (on `head`, the
 * commit the bundle records as HEAD; without it, on HEAD as read now) into the repo's objects and
 * point `refs/persist/worktree` at it (deleted when the work tree is clean). Returns the
 * snapshot's sha, or null when there is nothing beyond HEAD to save.
 */
export async function saveWorktree(
  host: Host,
  repo: string,
  hadRef: string | null,
  leaveOut: readonly string[],
  head?: string,
): Promise<{ sha: string | null; excluded: boolean; skipped: string[]; unsettled: string[] }> {
  const excluded = await ensureExcluded(host, repo);
  const snapshot = await rememberWorktree(host, repo, () => snapshotWorktree(host, repo, { objects: 'repo', leaveOut, head }), 'worktree', leaveOut);
  const sha = snapshot.clean ? null : snapshot.sha;
  if (sha !== hadRef) await updateWorktreeRef(host, repo, sha);
  return { sha, excluded, skipped: snapshot.skipped, unsettled: snapshot.unsettled };
}

/**
 * Paths of the work tree git could not read (`skipped`): an untracked one is in no snapshot, a
 * tracked one only as last staged. Not a cause that passes by itself: someone must make them readable.
 */
export function unreadableWork(repo: string, skipped: readonly string[]): string {
  const one = skipped.length === 1;
  return (
    `${plural(skipped.length, 'path')} in ${repo} cannot be read by git and ${one ? 'is' : 'are'} not in the store as ${one ? 'it is' : 'they are'} now ` +
    `(untracked: not saved; tracked: saved as last staged): ${samplePaths(skipped)}; make ${one ? 'it' : 'them'} readable, then persist apply saves ${one ? 'it' : 'them'}`
  );
}

/**
 * Files of the work tree that changed at every read (the agent rewriting them without pause): saved
 * at their last saved version, the rest of the repo as it is. A cause that passes by itself.
 */
export function unsettledWork(repo: string, unsettled: readonly string[]): string {
  const one = unsettled.length === 1;
  return (
    `${plural(unsettled.length, 'file')} in ${repo} changed at every read: the store keeps ${one ? 'its' : 'their'} last saved version (none for a new file), ` +
    `not the one now (everything else is saved; the next save reads ${one ? 'it' : 'them'} again): ${samplePaths(unsettled)}`
  );
}

/** After a restore: the stash entries back in `git stash list`, the snapshot's files back in the work tree. Notes for the outcome. */
export async function restoreSavedWork(
  host: Host,
  repo: string,
  persistRefs: Record<string, string>,
  leaveOut: readonly string[],
): Promise<{ notes: string[]; stash: number; worktree: boolean }> {
  const notes: string[] = [];
  await ensureExcluded(host, repo);
  const stash = Object.keys(persistRefs)
    .filter((name) => name.startsWith(STASH_REF_PREFIX) && /^\d+$/.test(name.slice(STASH_REF_PREFIX.length)))
    .sort((a, b) => Number(a.slice(STASH_REF_PREFIX.length)) - Number(b.slice(STASH_REF_PREFIX.length)))
    .map((name) => persistRefs[name]!);
  try {
    await restoreStash(host, repo, stash);
  } catch (error) {
    notes.push(`the ${plural(stash.length, 'stash entry', 'stash entries')} saved in the bundle could not be restored: ${errorMessage(error)}`);
  }
  const snapshot = persistRefs[WORKTREE_REF];
  let worktree = false;
  if (snapshot) {
    try {
      await restoreWorktree(host, repo, snapshot);
      await updateWorktreeRef(host, repo, snapshot);
      worktree = true;
    } catch (error) {
      notes.push(
        `the uncommitted work saved in the bundle was not brought back (${errorMessage(error)}); its commit is ${snapshot}: ` +
          `see it with git show --stat ${short(snapshot)}, bring files back with git checkout ${short(snapshot)} -- <path>`,
      );
    }
  }
  // What the restored work tree looks like, so that the plans after a restore need no snapshot.
  await rememberWorktree(host, repo, () => describeSnapshot(host, repo, worktree ? snapshot! : null), 'restored', leaveOut).catch(() => undefined);
  return { notes, stash: stash.length, worktree };
}
