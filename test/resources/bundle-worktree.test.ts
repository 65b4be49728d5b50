// bundle.<name> saves the uncommitted work too (work tree snapshot, stash, notes, custom refs),
// driven the way the engine drives it, with real git in temp folders and a `local` bucket.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, readdirSync, renameSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { PlannedAction, PlanOptions } from '../../src/engine/types.js';
import { readBundleHeader } from '../../src/resources/bundle/header.js';
import { RealHost } from '../../src/host/real.js';
import type { Host } from '../../src/host/types.js';
import { readOnlyHost } from '../../src/host/wrappers.js';
import { bundleModule } from '../../src/resources/bundle/index.js';
import type { ResolvedBundle, ResolvedEnvironment } from '../../src/spec/types.js';
import { git, initRepo, tempDir, write } from '../git/helpers.js';
import { applyPlanned, observing } from '../helpers/resources.js';

let dir: { path: string; cleanup: () => void };
let mount: string;
let scratch: string;
let bundle: ResolvedBundle;
let host: Host;

beforeEach(() => {
  dir = tempDir('persist-bundle-wt-');
  mount = join(dir.path, 'mount');
  scratch = join(dir.path, 'tmp');
  mkdirSync(mount);
  mkdirSync(scratch);
  bundle = { name: 'clawd', bucket: 'data', repo: join(dir.path, 'clawd'), relFile: 'workspace/clawd.bundle', file: join(mount, 'workspace/clawd.bundle'), keep: 2 };
  // persist's temp folders go into a folder of the test's own, checked empty after each step.
  const real = new RealHost();
  host = Object.assign(Object.create(real) as Host, { env: () => ({ ...process.env, TMPDIR: scratch }) });
});
afterEach(() => dir.cleanup());

function environment(): ResolvedEnvironment {
  const data = { key: 'data', name: 'test-data', pathStyle: true, provider: 'other' as const, mount: { backend: 'local' as const, path: mount, options: {} } };
  return { specFile: join(dir.path, 'persist.yaml'), specHash: '0', environment: 'test', workspace: dir.path, buckets: { data }, links: {}, bundles: { clawd: bundle }, syncs: {}, files: {} };
}

async function plan(options: PlanOptions = { allowShrink: false }) {
  const observed = (await bundleModule.observe(bundle, observing({ host: readOnlyHost(host), env: environment(), mountReady: { data: true } }))).state;
  const decision = bundleModule.diff(bundle, observed, options);
  expect(readdirSync(scratch)).toEqual([]); // no scratch folder left behind
  return { observed, action: decision ? ({ ...decision, dependsOn: [] } as PlannedAction) : null };
}

async function converge(options: PlanOptions = { allowShrink: false }) {
  const { action } = await plan(options);
  expect(action).not.toBeNull();
  const outcome = await applyPlanned(action!, { host, env: environment(), options, report: () => {}, signal: new AbortController().signal });
  expect(readdirSync(scratch)).toEqual([]);
  return { action: action!, outcome };
}

async function bundleRefs(): Promise<Record<string, string>> {
  return Object.fromEntries((await readBundleHeader(host, bundle.file)).refs.map((r) => [r.name, r.sha]));
}

/** What a save must not change in the saving repo: HEAD, the index's bytes, refs (but persist's), stash, reflogs. */
function untouchable(repo: string): Record<string, string> {
  const logs = join(repo, '.git/logs');
  return {
    head: readFileSync(join(repo, '.git/HEAD'), 'utf8'),
    index: readFileSync(join(repo, '.git/index')).toString('hex'),
    refs: git(repo, 'for-each-ref', '--format=%(objectname) %(refname)').split('\n').filter((line) => !line.endsWith(' refs/persist/worktree')).join('\n'),
    stash: git(repo, 'stash', 'list', '--format=%H %gs'),
    reflogs: execFileSync('find', [logs, '-type', 'f'], { encoding: 'utf8' })
      .split('\n')
      .filter(Boolean)
      .sort()
      .map((file) => `${file}\n${readFileSync(file, 'utf8')}`)
      .join('\n'),
    status: git(repo, 'status', '--porcelain=v1', '--untracked-files=all'),
  };
}

function sampleRepo(): string {
  initRepo(bundle.repo, { 'SOUL.md': 'soul v1\n', 'MEMORY.md': 'memory v1\n', 'src/main.txt': 'main\n', 'gone.txt': 'deleted later\n', '.gitignore': '*.log\n' });
  git(bundle.repo, 'tag', '-a', 'v1', '-m', 'v1');
  return bundle.repo;
}

/** Edits of every kind: unstaged, staged, staged then edited again, untracked, deleted, ignored, and a persist backup. */
function editEverything(repo: string): void {
  write(join(repo, 'SOUL.md'), 'soul v2 (unstaged)\n');
  write(join(repo, 'MEMORY.md'), 'memory v2 (staged)\n');
  git(repo, 'add', 'MEMORY.md');
  write(join(repo, 'src/main.txt'), 'main v2 (staged)\n');
  git(repo, 'add', 'src/main.txt');
  write(join(repo, 'src/main.txt'), 'main v3 (staged, then edited again)\n');
  write(join(repo, 'notes/new.md'), 'untracked\n');
  rmSync(join(repo, 'gone.txt'));
  write(join(repo, 'debug.log'), 'ignored: never saved\n');
  write(join(repo, '.persist-backups/20260101/SOUL.md'), 'a backup: never saved\n');
}

/** Path → content of a work tree, without .git. */
function contents(root: string, prefix = ''): Record<string, string> {
  const out: Record<string, string> = {};
  for (const name of readdirSync(join(root, prefix))) {
    if (!prefix && name === '.git') continue;
    const rel = prefix ? `${prefix}/${name}` : name;
    if (existsSync(join(root, rel)) && readdirSync(join(root, prefix), { withFileTypes: true }).find((e) => e.name === name)!.isDirectory()) Object.assign(out, contents(root, rel));
    else out[rel] = readFileSync(join(root, rel), 'utf8');
  }
  return out;
}

describe('bundle work tree', () => {
  it('saves modified, staged and untracked files, the stash, notes and custom refs without touching the repo; a new container gets them back', async () => {
    const repo = sampleRepo();
    await converge();
    expect((await plan()).action).toBeNull();

    write(join(repo, 'stashed.txt'), 'in the stash\n');
    git(repo, 'add', 'stashed.txt');
    git(repo, 'stash', 'push', '-q', '-m', 'older stash');
    write(join(repo, 'SOUL.md'), 'stashed soul\n');
    git(repo, 'stash', 'push', '-q', '-m', 'newer stash');
    git(repo, 'notes', 'add', '-m', 'a note on HEAD', 'HEAD');
    git(repo, 'update-ref', 'refs/custom/marker', 'HEAD');
    git(repo, 'update-ref', 'refs/remotes/origin/main', 'HEAD'); // remote-tracking: not bundled
    editEverything(repo);
    const before = untouchable(repo);
    // Plan snapshots the dirty work tree with throwaway objects: no file of .git is added or changed
    // (git may only "freshen" the mtime of an object that exists already, as any `git add` does).
    const gitFiles = () => execFileSync('find', [join(repo, '.git'), '-printf', '%p %s %m\\n'], { encoding: 'utf8' }).split('\n').sort().join('\n');
    const gitBefore = gitFiles();
    expect((await plan()).action?.action).toBe('update');
    expect(gitFiles()).toBe(gitBefore);
    expect(untouchable(repo)).toEqual(before);

    const { action, outcome } = await converge();
    expect(action).toMatchObject({ action: 'update', reason: expect.stringContaining("refs differ") });
    const treeLine = action.changes.find((c) => c.field === 'work tree');
    expect(treeLine).toEqual({ field: 'work tree', before: 'as committed', after: expect.stringMatching(/^snapshot [0-9a-f]{12} \(3 modified, 1 added, 1 deleted since HEAD\)$/) });
    expect(action.changes.map((c) => c.field)).toEqual(expect.arrayContaining(['refs/custom/marker', 'refs/notes/commits', 'refs/persist/stash/0', 'refs/persist/stash/1']));
    expect(outcome.summary).toMatch(/^wrote workspace\/clawd\.bundle \(4 refs, 2 stash entries and the uncommitted work, \d+ bytes/);

    // The saving repo: HEAD, index bytes, refs, stash and reflogs as they were; only persist's ref is new.
    expect(untouchable(repo)).toEqual(before);
    const snapshot = git(repo, 'rev-parse', 'refs/persist/worktree');
    const saved = await bundleRefs();
    expect(saved['refs/persist/worktree']).toBe(snapshot);
    expect(saved['refs/persist/stash/0']).toBe(git(repo, 'rev-parse', 'stash@{0}'));
    expect(saved['refs/persist/stash/1']).toBe(git(repo, 'rev-parse', 'stash@{1}'));
    expect(saved['refs/notes/commits']).toBe(git(repo, 'rev-parse', 'refs/notes/commits'));
    expect(saved['refs/custom/marker']).toBe(git(repo, 'rev-parse', 'HEAD'));
    expect(Object.keys(saved).filter((name) => name.startsWith('refs/remotes/') || name === 'refs/stash')).toEqual([]);
    const savedPaths = git(repo, 'ls-tree', '-r', '--name-only', snapshot).split('\n');
    expect(savedPaths).not.toContain('debug.log');
    expect(savedPaths.filter((path) => path.includes('.persist-backups'))).toEqual([]);
    expect(readFileSync(join(repo, '.git/info/exclude'), 'utf8').split('\n')).toContain('.persist-backups/');

    // Converged: No changes. One more edit: an update again, counted against the saved snapshot.
    expect((await plan()).action).toBeNull();
    write(join(repo, 'notes/new.md'), 'untracked, edited again\n');
    const again = await plan();
    expect(again.action).toMatchObject({
      action: 'update',
      reason: expect.stringContaining('uncommitted work differs from the snapshot'),
      changes: [{ field: 'work tree', before: `snapshot ${snapshot.slice(0, 12)}`, after: expect.stringMatching(/\(1 modified since the saved snapshot\)$/) }],
    });
    await converge();
    expect((await plan()).action).toBeNull();
    const expected = contents(repo);
    delete expected['debug.log'];
    delete expected['.persist-backups/20260101/SOUL.md'];
    const stashList = git(repo, 'stash', 'list', '--format=%H %gs');

    // A new container: the repo is gone; restore it from the bundle.
    renameSync(repo, `${repo}.old-container`);
    const restored = await converge();
    expect(restored.action.action).toBe('restore');
    expect(restored.outcome.summary).toMatch(/brought back 2 stash entries and the uncommitted work$/);
    expect(contents(repo)).toEqual(expected);
    expect(existsSync(join(repo, 'debug.log'))).toBe(false);
    expect(existsSync(join(repo, '.persist-backups'))).toBe(false);
    expect(git(repo, 'status', '--porcelain=v1', '--untracked-files=all').split('\n').sort()).toEqual([' D gone.txt', ' M MEMORY.md', ' M SOUL.md', ' M src/main.txt', '?? notes/new.md']);
    expect(git(repo, 'diff', '--cached', '--name-only')).toBe(''); // the index is as committed
    expect(git(repo, 'stash', 'list', '--format=%H %gs')).toBe(stashList);
    expect(git(repo, 'stash', 'list')).toMatch(/stash@\{0\}: On main: newer stash\nstash@\{1\}: On main: older stash/);
    expect(git(repo, 'notes', 'show', 'HEAD')).toBe('a note on HEAD');
    expect(git(repo, 'rev-parse', 'refs/custom/marker')).toBe(git(repo, 'rev-parse', 'HEAD'));
    expect(git(repo, 'stash', 'show', '-p', 'stash@{1}')).toContain('+in the stash');
    expect((await plan()).action).toBeNull();
  });

  it('a restore that cannot bring the work tree back keeps it: a note says how, and the next plan never drops it', async () => {
    const repo = sampleRepo();
    write(join(repo, 'SOUL.md'), 'uncommitted soul\n');
    await converge();
    const snapshot = (await bundleRefs())['refs/persist/worktree']!;
    rmSync(repo, { recursive: true });
    write(join(repo, 'SOUL.md'), 'written by the agent before the restore\n');
    const { outcome } = await converge();
    expect(outcome.summary).not.toContain('the uncommitted work');
    expect(outcome.notes).toEqual(expect.arrayContaining([expect.stringContaining(`the uncommitted work saved in the bundle was not brought back`)]));
    expect(readFileSync(join(repo, 'SOUL.md'), 'utf8')).toBe('written by the agent before the restore\n');
    expect(git(repo, 'show', `${snapshot}:SOUL.md`)).toBe('uncommitted soul'); // its objects are in the repo
    const { action } = await plan();
    expect(action).toMatchObject({ action: 'conflict' });
    expect(action!.reason).toContain('refs/persist/worktree');
  });

  it('a clean work tree needs no snapshot: a stale one in the bundle is cleared', async () => {
    const repo = sampleRepo();
    write(join(repo, 'SOUL.md'), 'edited\n');
    await converge();
    const snapshot = (await bundleRefs())['refs/persist/worktree'];
    expect(snapshot).toBeDefined();
    git(repo, 'checkout', '-q', '--', 'SOUL.md');
    const { action } = await converge();
    expect(action.changes).toEqual([{ field: 'work tree', before: `snapshot ${snapshot!.slice(0, 12)}`, after: 'as committed (the snapshot is removed)' }]);
    expect((await bundleRefs())['refs/persist/worktree']).toBeUndefined();
    expect(() => git(repo, 'rev-parse', '--verify', '-q', 'refs/persist/worktree')).toThrow();
    expect((await plan()).action).toBeNull();
  });

  it('is a conflict to replace uncommitted work or stash entries this repo never had; a dropped stash is not', async () => {
    const repo = sampleRepo();
    write(join(repo, 'stashed.txt'), 'stash\n');
    git(repo, 'add', 'stashed.txt');
    git(repo, 'stash', 'push', '-q');
    write(join(repo, 'SOUL.md'), 'uncommitted on machine A\n');
    await converge();
    const saved = await bundleRefs();

    // Machine B: the same commits (a clone from elsewhere), none of A's stash or uncommitted work.
    renameSync(repo, `${repo}.a`);
    git(dir.path, 'clone', '-q', '--no-local', `${repo}.a`, repo); // only reachable objects
    git(repo, 'update-ref', '-d', 'refs/remotes/origin/main');
    const { action, observed } = await plan();
    expect(observed.lost.map((l) => l.ref).sort()).toEqual(['refs/persist/stash/0', 'refs/persist/worktree']);
    expect(action).toMatchObject({ action: 'conflict', conflict: { overrideFlag: '--allow-shrink' } });
    expect(await bundleRefs()).toEqual(saved);

    // Back on machine A, the stash entry dropped there: an update, not a conflict.
    rmSync(repo, { recursive: true });
    renameSync(`${repo}.a`, repo);
    git(repo, 'stash', 'drop', '-q');
    const dropped = await plan();
    expect(dropped.observed.lost).toEqual([]);
    expect(dropped.action).toMatchObject({ action: 'update', changes: [{ field: 'refs/persist/stash/0', after: null }] });
  });
});
