// diffSync on plain observed objects: every rule of src/resources/sync.ts.
import { describe, expect, it } from 'vitest';
import { diffSync, type SyncObserved } from '../../src/resources/sync/index.js';
import type { ResolvedSync } from '../../src/spec/types.js';
import { emptyComparison, type TreeComparison } from '../../src/resources/sync/compare.js';

const sync: ResolvedSync = {
  name: 'clawdbot',
  bucket: 'data',
  from: '/root/.clawdbot',
  relTo: 'clawdbot',
  to: '/data/m/clawdbot',
  delete: true,
  exclude: [],
  maxDeleteRatio: 0.5,
};
const keepSync: ResolvedSync = { ...sync, delete: false };
const plan = { allowShrink: false };
const shrink = { allowShrink: true };

function paths(prefix: string, count: number): string[] {
  return Array.from({ length: count }, (_, i) => `${prefix}${i}`);
}

function observed(
  local: SyncObserved['local'],
  mirror: SyncObserved['mirror'],
  comparison: Partial<TreeComparison> = {},
): SyncObserved {
  return { local, mirror, comparison: { ...emptyComparison(), ...comparison } };
}
const localDir = (files: number, extra: { skipped?: string[]; restoreIncomplete?: boolean } = {}): SyncObserved['local'] => ({
  state: 'dir',
  files,
  skipped: extra.skipped ?? [],
  restoreIncomplete: extra.restoreIncomplete ?? false,
});
const mirrorDir = (files: number, manifest = true): SyncObserved['mirror'] =>
  manifest ? { state: 'dir', manifest: true, files, pushedAt: '2026-01-01T00:00:00.000Z' } : { state: 'dir', manifest: false, files };

describe('diffSync: empty local folders', () => {
  it('restores when the local folder is missing and the mirror has files', () => {
    const action = diffSync(sync, observed({ state: 'missing' }, mirrorDir(50)), plan)!;
    expect(action).toMatchObject({ address: 'sync.clawdbot', kind: 'sync', action: 'restore', phase: 'restore' });
    expect(action.reason).toContain('/root/.clawdbot does not exist');
    expect(action.changes).toEqual([{ field: 'files', before: '0', after: '50' }]);
  });

  it('restores when the local folder has no files (after excludes)', () => {
    expect(diffSync(sync, observed(localDir(0), mirrorDir(3)), plan)).toMatchObject({ action: 'restore' });
    expect(diffSync(sync, observed(localDir(0), mirrorDir(3, false)), plan)).toMatchObject({ action: 'restore' });
  });

  it('does nothing when both sides are empty or missing', () => {
    expect(diffSync(sync, observed({ state: 'missing' }, { state: 'missing' }), plan)).toBeNull();
    expect(diffSync(sync, observed(localDir(0), mirrorDir(0)), plan)).toBeNull();
    expect(diffSync(sync, observed({ state: 'missing' }, mirrorDir(0, false)), plan)).toBeNull();
  });

  it('never pushes from an empty folder, even with allowShrink', () => {
    const action = diffSync(sync, observed(localDir(0), mirrorDir(50), { removed: paths('f', 50) }), shrink);
    expect(action?.action).toBe('restore');
  });

  it('resumes an interrupted restore instead of pushing a partial folder', () => {
    const action = diffSync(sync, observed(localDir(30, { restoreIncomplete: true }), mirrorDir(50), { removed: paths('f', 20) }), shrink)!;
    expect(action.action).toBe('restore');
    expect(action.reason).toContain('interrupted restore');
  });
});

describe('diffSync: mount not ready', () => {
  it('restores an empty folder, decided after the mount', () => {
    const action = diffSync(sync, observed({ state: 'missing' }, { state: 'unknown' }), plan)!;
    expect(action).toMatchObject({ action: 'restore', phase: 'restore' });
    expect(action.reason).toContain('once mount.data is up');
  });

  it('pushes a folder with files, re-checked after the mount', () => {
    const action = diffSync(sync, observed(localDir(4), { state: 'unknown' }), plan)!;
    expect(action).toMatchObject({ action: 'push', phase: 'push' });
    expect(action.reason).toContain('once mount.data is up');
  });
});

describe('diffSync: pushes', () => {
  it('pushes everything into a missing or empty mirror', () => {
    const action = diffSync(sync, observed(localDir(2), { state: 'missing' }, { added: ['a', 'b'] }), plan)!;
    expect(action).toMatchObject({ action: 'push', phase: 'push' });
    expect(action.reason).toContain('first push');
    expect(action.changes).toContainEqual({ field: 'changes', before: null, after: '2 added' });
  });

  it('summarises counts and lists at most three paths', () => {
    const action = diffSync(sync, observed(localDir(10), mirrorDir(10), { added: ['n1'], changed: ['c1', 'c2', 'c3'], removed: ['gone'] }), plan)!;
    expect(action.action).toBe('push');
    expect(action.changes).toEqual([
      { field: 'files', before: '10', after: '10' },
      { field: 'changes', before: null, after: '1 added, 3 changed, 1 deleted' },
      { field: 'paths', before: null, after: 'n1, c1, c2 and 2 more' },
    ]);
  });

  it('is nothing when only mtimes moved', () => {
    expect(diffSync(sync, observed(localDir(3), mirrorDir(3), { touched: ['a'] }), plan)).toBeNull();
  });

  it('finishes an interrupted push (shards newer than the root) even when the files match', () => {
    const interrupted: SyncObserved['mirror'] = { state: 'dir', manifest: true, files: 3, pushedAt: '2026-01-01T00:00:00.000Z', interruptedPush: true };
    const action = diffSync(sync, observed(localDir(3), interrupted, { touched: ['a'] }), plan)!;
    expect(action).toMatchObject({ action: 'push', phase: 'push' });
    expect(action.reason).toBe('an interrupted push left /data/m/clawdbot/.persist-sync.json older than its shards');
    expect(action.changes).toEqual([{ field: 'manifest', before: 'unfinished', after: 'finished' }]);
    // With changes it is an ordinary push, and an empty local folder is still a restore.
    expect(diffSync(sync, observed(localDir(3), interrupted, { changed: ['a'] }), plan)?.changes).toContainEqual({ field: 'changes', before: null, after: '1 changed' });
    expect(diffSync(sync, observed(localDir(0), interrupted), plan)?.action).toBe('restore');
  });

  it('with delete: false, says removed files are kept in the mirror', () => {
    const action = diffSync(keepSync, observed(localDir(9), mirrorDir(10), { removed: ['old'] }), plan)!;
    expect(action.changes).toContainEqual({ field: 'changes', before: null, after: '1 removed locally (kept in the mirror)' });
  });

  it('warns about skipped symlinks', () => {
    const action = diffSync(sync, observed(localDir(1, { skipped: ['link'] }), { state: 'missing' }, { added: ['a'] }), plan)!;
    expect(action.warnings).toEqual(['1 symlink or special file not synced (only regular files are): link']);
  });
});

describe('diffSync: the shrink guard', () => {
  const fresh = observed(localDir(1), mirrorDir(50), { changed: ['config.json'], removed: paths('f', 49) });

  it('a fresh container with one template file against a 50-file mirror is a conflict, not a wipe', () => {
    const action = diffSync(sync, fresh, plan)!;
    expect(action.action).toBe('conflict');
    expect(action.conflict?.overrideFlag).toBe('--allow-shrink');
    expect(action.conflict?.message).toContain('lacks 49 of the mirror\'s 50 files (98%, above maxDeleteRatio 0.5)');
    expect(action.conflict?.message).toContain('delete them from the mirror');
    expect(action.conflict?.fix).toContain('move /root/.clawdbot aside and apply again');
    expect(action.conflict?.fix).toContain('--allow-shrink');
  });

  it('--allow-shrink turns it back into a push that deletes', () => {
    const action = diffSync(sync, fresh, shrink)!;
    expect(action.action).toBe('push');
    expect(action.changes).toContainEqual({ field: 'changes', before: null, after: '1 changed, 49 deleted' });
  });

  it('also guards delete: false, where a fresh file would replace the good one', () => {
    const action = diffSync(keepSync, fresh, plan)!;
    expect(action.action).toBe('conflict');
    expect(action.conflict?.message).toContain('drop them from the manifest and replace up to 1 mirror file');
  });

  it('lets deletions up to the ratio through', () => {
    expect(diffSync(sync, observed(localDir(5), mirrorDir(10), { removed: paths('f', 5) }), plan)?.action).toBe('push');
    expect(diffSync(sync, observed(localDir(4), mirrorDir(10), { removed: paths('f', 6) }), plan)?.action).toBe('conflict');
    expect(diffSync({ ...sync, maxDeleteRatio: 0.7 }, observed(localDir(4), mirrorDir(10), { removed: paths('f', 6) }), plan)?.action).toBe('push');
  });
});

describe('diffSync: a mirror without a manifest', () => {
  it('pushes an adoption that writes the manifest and deletes nothing', () => {
    const action = diffSync(sync, observed(localDir(5), mirrorDir(6, false), { added: ['n'], unverified: ['a', 'b', 'c', 'd'], removed: ['extra'] }), plan)!;
    expect(action.action).toBe('push');
    expect(action.reason).toContain('no manifest');
    expect(action.changes).toContainEqual({ field: 'manifest', before: null, after: 'written' });
    expect(action.changes).toContainEqual({ field: 'files', before: null, after: '1 new, 0 of another size, 4 to compare by content' });
    expect(action.changes).toContainEqual({ field: 'kept', before: null, after: '1 mirror file not in /root/.clawdbot (left as they are)' });
  });

  it('is guarded too', () => {
    const action = diffSync(sync, observed(localDir(1), mirrorDir(20, false), { unverified: ['a'], removed: paths('f', 19) }), plan)!;
    expect(action.action).toBe('conflict');
    expect(action.conflict?.message).toContain('drop them from the manifest');
  });
});

describe('diffSync: conflicts', () => {
  it('a local file where the folder should be', () => {
    const action = diffSync(sync, observed({ state: 'not-dir', found: 'file' }, mirrorDir(1)), plan)!;
    expect(action.action).toBe('conflict');
    expect(action.conflict?.message).toBe('/root/.clawdbot is a file, not a folder');
  });

  it('a mirror that is not a folder', () => {
    expect(diffSync(sync, observed(localDir(1), { state: 'not-dir', found: 'file' }), plan)?.conflict?.message).toContain('the mirror /data/m/clawdbot is a file');
  });

  it('a damaged manifest', () => {
    const action = diffSync(sync, observed(localDir(1), { state: 'invalid-manifest', message: '/data/m/clawdbot/.persist-sync.json: not valid JSON' }), plan)!;
    expect(action.action).toBe('conflict');
    expect(action.conflict?.fix).toContain('or remove both');
  });
});
