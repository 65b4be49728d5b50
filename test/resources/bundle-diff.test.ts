// diff is pure: every observed state in, the planned action (or none) out.
import { describe, expect, it } from 'vitest';
import { diffBundle, type BundleObserved, type RepoObserved } from '../../src/resources/bundle/index.js';
import type { ResolvedBundle } from '../../src/spec/types.js';

const A = 'a'.repeat(40);
const B = 'b'.repeat(40);
const C = 'c'.repeat(40);
const bundle: ResolvedBundle = { name: 'clawd', bucket: 'data', repo: '/root/clawd', relFile: 'workspace/clawd.bundle', file: '/data/m/workspace/clawd.bundle', keep: 2 };
const noShrink = { allowShrink: false };

const repoAt = (refs: Record<string, string>, headSha: string | null = refs['refs/heads/main'] ?? null): RepoObserved => ({
  state: 'git',
  head: { kind: 'symbolic', ref: 'refs/heads/main', sha: headSha },
  refs,
  stash: [],
  worktreeRef: null,
  worktree: headSha ? { state: 'clean' } : null,
});
const present = (refs: Record<string, string>): BundleObserved['bundle'] => ({ state: 'present', size: 100, objectFormat: 'sha1', refs, prerequisites: 0 });
const observed = (repo: RepoObserved, file: BundleObserved['bundle'], extra: Partial<BundleObserved> = {}): BundleObserved => ({
  repo,
  bundle: file,
  generations: [],
  lost: [],
  trackedLinks: [],
  ...extra,
});

describe('diffBundle', () => {
  it('wants nothing when the bundle holds exactly the repo refs and HEAD', () => {
    const refs = { 'refs/heads/main': A, 'refs/tags/v1': B };
    expect(diffBundle(bundle, observed(repoAt(refs), present({ HEAD: A, ...refs })), noShrink)).toBeNull();
  });

  it('updates, showing each differing ref shortened to 12 digits, HEAD first', () => {
    const decision = diffBundle(bundle, observed(repoAt({ 'refs/heads/main': B, 'refs/heads/new': C }), present({ HEAD: A, 'refs/heads/main': A, 'refs/tags/old': A })), noShrink);
    expect(decision).toMatchObject({ address: 'bundle.clawd', kind: 'bundle', action: 'update', phase: 'push' });
    expect(decision?.changes).toEqual([
      { field: 'HEAD', before: A.slice(0, 12), after: B.slice(0, 12) },
      { field: 'refs/heads/main', before: A.slice(0, 12), after: B.slice(0, 12) },
      { field: 'refs/heads/new', before: null, after: C.slice(0, 12) },
      { field: 'refs/tags/old', before: A.slice(0, 12), after: null },
    ]);
  });

  it('creates a missing bundle as an update, and does nothing when there is nothing to save', () => {
    const decision = diffBundle(bundle, observed(repoAt({ 'refs/heads/main': A }), { state: 'missing' }), noShrink);
    expect(decision).toMatchObject({ action: 'update', phase: 'push', reason: 'workspace/clawd.bundle does not exist yet in bucket data: create it' });
    expect(decision?.changes).toEqual([
      { field: 'HEAD', before: null, after: A.slice(0, 12) },
      { field: 'refs/heads/main', before: null, after: A.slice(0, 12) },
    ]);
    for (const repo of [{ state: 'missing' }, { state: 'no-git', entries: 3 }, repoAt({})] as RepoObserved[]) {
      expect(diffBundle(bundle, observed(repo, { state: 'missing' }), noShrink)).toBeNull();
    }
  });

  it('restores when the repo is missing, has no .git, or has no commits yet', () => {
    const file = present({ HEAD: A, 'refs/heads/main': A });
    const cases: [RepoObserved, string][] = [
      [{ state: 'missing' }, '/root/clawd does not exist: restore it from workspace/clawd.bundle'],
      [{ state: 'no-git', entries: 0 }, '/root/clawd has no .git: restore it from workspace/clawd.bundle'],
      [{ state: 'no-git', entries: 2 }, '/root/clawd has no .git (its 2 existing entries are kept): restore it from workspace/clawd.bundle'],
      [repoAt({}), '/root/clawd has no commits yet: restore it from workspace/clawd.bundle'],
    ];
    for (const [repo, reason] of cases) {
      const decision = diffBundle(bundle, observed(repo, file), noShrink);
      expect(decision).toMatchObject({ action: 'restore', phase: 'restore', reason });
      expect(decision?.changes).toEqual([
        { field: 'HEAD', before: null, after: A.slice(0, 12) },
        { field: 'refs/heads/main', before: null, after: A.slice(0, 12) },
      ]);
    }
  });

  it('is a conflict, overridable by --allow-shrink, when the bundle holds commits the repo lacks', () => {
    const state = observed(repoAt({ 'refs/heads/main': B }), present({ HEAD: A, 'refs/heads/main': A }), { lost: [{ ref: 'refs/heads/main', sha: A }] });
    const decision = diffBundle(bundle, state, noShrink);
    expect(decision).toMatchObject({ action: 'conflict', phase: 'push' });
    expect(decision?.conflict?.overrideFlag).toBe('--allow-shrink');
    expect(decision?.conflict?.message).toContain(`refs/heads/main ${A.slice(0, 12)}`);
    expect(decision?.conflict?.fix).toContain('move /root/clawd aside and run persist apply');
    expect(decision?.conflict?.fix).toContain('the current bundle is kept as workspace/clawd.bundle.1');
    expect(decision?.changes).toHaveLength(2);

    const allowed = diffBundle(bundle, state, { allowShrink: true });
    expect(allowed).toMatchObject({ action: 'update', phase: 'push' });
    expect(allowed?.warnings?.[0]).toContain('holds commits that /root/clawd does not contain');
    expect(diffBundle({ ...bundle, keep: 0 }, state, noShrink)?.conflict?.fix).toContain('keep is 0: the current bundle is not kept');
  });

  it('decides after the mount when the mount side is unknown', () => {
    const unknown = { state: 'unknown' } as const;
    expect(diffBundle(bundle, observed({ state: 'missing' }, unknown), noShrink)).toMatchObject({
      action: 'restore',
      phase: 'restore',
      reason: 'the mount of bucket data is not ready yet: whether workspace/clawd.bundle exists to restore /root/clawd from is decided after the mount',
    });
    expect(diffBundle(bundle, observed(repoAt({ 'refs/heads/main': A }), unknown), noShrink)).toMatchObject({
      action: 'update',
      phase: 'push',
      reason: "the mount of bucket data is not ready yet: workspace/clawd.bundle is re-checked against the repo's refs after the mount",
    });
  });

  it('refuses an unreadable bundle, a partial bundle, a repo path that is a file and an unreadable repo', () => {
    const unreadable = { state: 'unreadable', error: 'x: truncated git bundle' } as const;
    const repo = repoAt({ 'refs/heads/main': A });
    const overwrite = diffBundle(bundle, observed(repo, unreadable), noShrink);
    expect(overwrite).toMatchObject({ action: 'conflict', conflict: { overrideFlag: '--allow-shrink' } });
    expect(diffBundle(bundle, observed(repo, unreadable), { allowShrink: true })).toMatchObject({ action: 'update' });

    const cannotRestore = diffBundle(bundle, observed({ state: 'missing' }, unreadable, { generations: [1] }), { allowShrink: true });
    expect(cannotRestore).toMatchObject({ action: 'conflict', phase: 'restore' });
    expect(cannotRestore?.conflict?.fix).toContain('/data/m/workspace/clawd.bundle.1');
    expect(cannotRestore?.conflict?.overrideFlag).toBeUndefined();

    const partial = { ...present({ 'refs/heads/main': A }), prerequisites: 1 } as BundleObserved['bundle'];
    expect(diffBundle(bundle, observed({ state: 'missing' }, partial), noShrink)?.conflict?.message).toContain('is not a full bundle');
    expect(diffBundle(bundle, observed({ state: 'not-dir' }, present({ HEAD: A })), noShrink)?.conflict?.message).toBe('/root/clawd is not a directory');
    expect(diffBundle(bundle, observed({ state: 'unreadable', error: 'bad HEAD' }, present({ HEAD: A })), noShrink)?.conflict?.message).toContain('bad HEAD');
  });

  it('warns when a linked path is tracked by the repo', () => {
    const decision = diffBundle(bundle, observed(repoAt({ 'refs/heads/main': A }), { state: 'missing' }, { trackedLinks: ['/root/clawd/memory'] }), noShrink);
    expect(decision?.warnings).toEqual([expect.stringContaining('/root/clawd/memory is linked into the mount but tracked by the repo')]);
  });
});
