// A converged plan of a bundled repo with uncommitted work needs no throwaway snapshot: after a save
// or a restore the work tree is recorded in the state folder (worktree-record.ts), and plan takes
// the saved sha when nothing moved: by stats alone (a small work tree, recorded whole), or by one
// `git status` and a stat of each path it lists. Every test runs at both depths, changes the work
// tree in one way and checks that plan sees it: each would fail if the record were trusted where it
// must not be. Real git, real files, a `local` bucket.
import { appendFileSync, chmodSync, existsSync, mkdirSync, readFileSync, readdirSync, renameSync, rmSync, statSync, symlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { PlannedAction, PlanOptions } from '../../src/engine/types.js';
import { RealHost } from '../../src/host/real.js';
import { deviceName } from '../../src/host/timestamps.js';
import type { Host, RunOptions } from '../../src/host/types.js';
import { readOnlyHost } from '../../src/host/wrappers.js';
import { readBundleHeader } from '../../src/resources/bundle/header.js';
import { bundleModule } from '../../src/resources/bundle/index.js';
import { rememberWorktree } from '../../src/resources/bundle/worktree-record.js';
import { describeSnapshot, snapshotWorktree } from '../../src/resources/bundle/worktree.js';
import type { ResolvedBundle, ResolvedEnvironment, ResolvedLink } from '../../src/spec/types.js';
import { git, initRepo, tempDir, write } from '../git/helpers.js';
import { applyPlanned, observing } from '../helpers/resources.js';

let dir: { path: string; cleanup: () => void };
let mount: string;
let scratch: string;
let state: string;
let bundle: ResolvedBundle;
let host: Host;
let repo: string;
/** The processes plan ran (command and arguments). */
let runs: string[];
/**
 * persist sees the repo's files as changed an hour earlier than they were: as on a real machine,
 * where the files were not all written in the seconds before the save. Otherwise every file would be
 * "racily clean" and hashed, and the stat checks would go untested. These paths instead look changed
 * in the same timestamp tick as the save (a fixed time: a rewrite of the same size looks the same).
 */
let racyPaths: Set<string>;
/** Whether the test runs with the whole work tree recorded (else only what status lists: a big repo). */
let whole: boolean;
/** The environment's links (none unless a test adds one). */
let links: Record<string, ResolvedLink>;
const HOUR = 3_600_000;
const racyTime = Date.now() + HOUR;

beforeEach(() => {
  dir = tempDir('persist-wt-record-');
  mount = join(dir.path, 'mount');
  scratch = join(dir.path, 'tmp');
  state = join(dir.path, 'state');
  mkdirSync(mount);
  mkdirSync(scratch);
  repo = join(dir.path, 'clawd');
  bundle = { name: 'clawd', bucket: 'data', repo, relFile: 'workspace/clawd.bundle', file: join(mount, 'workspace/clawd.bundle'), keep: 2 };
  runs = [];
  racyPaths = new Set();
  links = {};
  const real = new RealHost();
  host = Object.assign(Object.create(real) as Host, {
    env: () => ({ ...process.env, TMPDIR: scratch, PERSIST_STATE_DIR: state }),
    run: (command: string, args: string[], options?: RunOptions) => {
      runs.push([command, ...args].join(' '));
      return real.run(command, args, options);
    },
    lstat: async (path: string) => {
      const info = await real.lstat(path);
      if (!info || (path !== repo && !path.startsWith(`${repo}/`))) return info;
      return racyPaths.has(path) ? { ...info, mtimeMs: racyTime, ctimeMs: racyTime } : { ...info, mtimeMs: info.mtimeMs - HOUR, ctimeMs: info.ctimeMs! - HOUR };
    },
  });
  initRepo(repo, { 'SOUL.md': 'soul v1\n', 'MEMORY.md': 'memory v1\n', 'src/main.txt': 'main\n', '.gitignore': '*.log\n', 'keep.log': 'tracked although ignored\n' });
  // keep.log is tracked although *.log is ignored (added before the rule): git add -f
  git(repo, 'add', '-f', 'keep.log');
  git(repo, 'commit', '-q', '-m', 'keep.log');
});
afterEach(() => dir.cleanup());

function environment(): ResolvedEnvironment {
  const data = { key: 'data', name: 'test-data', pathStyle: true, provider: 'other' as const, mount: { backend: 'local' as const, path: mount, options: {} } };
  return { specFile: join(dir.path, 'persist.yaml'), specHash: '0', environment: 'test', workspace: dir.path, buckets: { data }, links, bundles: { clawd: bundle }, syncs: {}, files: {} };
}

/** Plan the bundle on the read-only host; `runs` says which processes it took. */
async function plan(options: PlanOptions = { allowShrink: false }) {
  runs = [];
  const observed = (await bundleModule.observe(bundle, observing({ host: readOnlyHost(host), env: environment(), mountReady: { data: true } }))).state;
  const decision = bundleModule.diff(bundle, observed, options);
  expect(readdirSync(scratch)).toEqual([]);
  return { observed, action: decision ? ({ ...decision, dependsOn: [] } as PlannedAction) : null, runs: [...runs] };
}

function recordFiles(): string[] {
  const folder = join(state, 'worktrees');
  return existsSync(folder) ? readdirSync(folder).map((name) => join(folder, name)) : [];
}

function recordText(): string {
  return recordFiles()
    .map((file) => readFileSync(file, 'utf8'))
    .join('\n');
}

/** Without `whole`: drop the whole-tree part of the record, as for a work tree too big for it. */
function keepDepth(): void {
  if (whole) return;
  for (const file of recordFiles()) {
    const record = JSON.parse(readFileSync(file, 'utf8')) as { whole?: unknown };
    delete record.whole;
    writeFileSync(file, JSON.stringify(record));
  }
}

async function converge(): Promise<void> {
  const { action } = await plan();
  expect(action).not.toBeNull();
  await applyPlanned(action!, { host, env: environment(), options: { allowShrink: false }, report: () => {}, signal: new AbortController().signal });
  keepDepth();
  expect((await plan()).action).toBeNull();
}

/** Plan took the record: no snapshot; no process at all when the whole work tree is recorded, else one `git status`. */
async function expectRecalled(): Promise<void> {
  const { action, runs: ran } = await plan();
  expect(action).toBeNull();
  if (recordText().includes('"whole":')) expect(ran).toEqual([]);
  else {
    expect(ran).toHaveLength(1);
    expect(ran[0]).toMatch(/^git --no-optional-locks -C \S+ status /);
  }
}

/** The sha a snapshot of the work tree gives now (built from scratch, throwaway objects). */
async function freshSnapshot(): Promise<string | null> {
  const snapshot = await snapshotWorktree(host, repo, { objects: 'temporary' });
  return snapshot.clean ? null : snapshot.sha;
}

/** After a change, plan must show an update whose work tree sha is what a fresh snapshot says. */
async function expectUpdate(field = 'work tree'): Promise<void> {
  const { action, observed } = await plan();
  expect(action?.action).toBe('update');
  expect(action!.changes.map((change) => change.field)).toContain(field);
  const worktree = observed.repo.state === 'git' ? observed.repo.worktree : null;
  const now = worktree?.state === 'dirty' ? worktree.sha : null;
  expect(now).toBe(await freshSnapshot());
  await converge();
  await expectRecalled();
}

/** Uncommitted work of every kind, saved, and a plan that takes the record (the whole work tree's when `recordedWhole`). */
async function savedDirty(recordedWhole = whole): Promise<void> {
  write(join(repo, 'SOUL.md'), 'soul v2\n');
  write(join(repo, 'MEMORY.md'), 'memory v2 (staged)\n');
  git(repo, 'add', 'MEMORY.md');
  write(join(repo, 'notes/today.md'), 'untracked\n');
  write(join(repo, 'debug.log'), 'ignored\n');
  await converge();
  expect(recordText().includes('"whole":')).toBe(recordedWhole);
  await expectRecalled();
}

describe.each([
  ['by stats alone (the whole work tree recorded)', true],
  ['with one git status (only what status lists recorded)', false],
])('the recorded work tree, checked %s', (_depth, wholeDepth) => {
  beforeEach(() => {
    whole = wholeDepth;
  });

  it('lets a converged plan skip the snapshot after a save, and after a restore in a new container', async () => {
    await savedDirty();
    const before = (await readBundleHeader(host, bundle.file)).refs.find((ref) => ref.name === 'refs/persist/worktree')!.sha;
    expect(recordText()).toContain(before);

    renameSync(repo, `${repo}.old`);
    rmSync(state, { recursive: true });
    await converge(); // restores the repo and its work tree, and records it
    expect(readFileSync(join(repo, 'notes/today.md'), 'utf8')).toBe('untracked\n');
    await expectRecalled();
  });

  it('records a clean work tree too', async () => {
    await converge();
    await expectRecalled();
    write(join(repo, 'SOUL.md'), 'edited\n');
    await expectUpdate();
  });

  it('sees an edit of the same size within the timestamp tick (racily clean: hashed)', async () => {
    racyPaths.add(join(repo, 'SOUL.md')); // written in the tick of the save
    await savedDirty();
    // SOUL.md was written just before the save: racy, so its content was hashed into the record.
    expect(recordText()).toMatch(/"SOUL\.md":\{"stamp":"[^"]+","blob":"[0-9a-f]{40}"\}/);
    write(join(repo, 'SOUL.md'), 'soul v3\n'); // same size, and (racyPaths) the same times: only the content tells
    await expectUpdate();
  });

  it('sees a tracked file rewritten within the timestamp tick after it was touched (hashed)', async () => {
    const main = join(repo, 'src/main.txt');
    racyPaths.add(main);
    utimesSync(main, new Date(), new Date()); // touched in the tick of the save, content as committed
    await savedDirty();
    if (whole) expect(recordText()).toMatch(/"src\/main\.txt":\{"stamp":"[^"]+","blob":"[0-9a-f]{40}"\}/);
    write(main, 'MAIN\n'); // same size, and (racyPaths) the same times: only the content tells
    await expectUpdate();
  });

  it('needs no more than git status for a new file in an ignored folder, or a new ignored file', async () => {
    appendFileSync(join(repo, '.gitignore'), 'build/\n');
    write(join(repo, 'build/out.bin'), 'built\n');
    await savedDirty();
    write(join(repo, 'build/more.bin'), 'built again\n');
    await expectRecalled(); // build/ is not even looked at
    write(join(repo, 'new.log'), 'ignored\n');
    const { action, runs: ran } = await plan();
    expect(action).toBeNull();
    expect(ran).toHaveLength(1); // the top folder moved: git status says nothing that matters did
  });

  it('sees an edit of the same size, mtime set back (a stat change only)', async () => {
    write(join(repo, 'SOUL.md'), 'soul v2\n');
    const old = new Date(Date.now() - 60_000);
    utimesSync(join(repo, 'SOUL.md'), old, old);
    await converge();
    write(join(repo, 'SOUL.md'), 'soul v3\n');
    utimesSync(join(repo, 'SOUL.md'), old, old);
    await expectUpdate();
  });

  it('sees a new untracked file in any folder', async () => {
    await savedDirty();
    write(join(repo, 'src/deep/er/new.txt'), 'new\n');
    await expectUpdate();
    write(join(repo, 'notes/another.md'), 'another\n');
    await expectUpdate();
  });

  it('sees a deleted file: tracked and unchanged, and untracked', async () => {
    await savedDirty();
    rmSync(join(repo, 'src/main.txt'));
    await expectUpdate();
    rmSync(join(repo, 'notes/today.md'));
    await expectUpdate();
  });

  it('sees staged changes: a staged edit, a file untracked with git rm --cached, an ignored file added with intent', async () => {
    await savedDirty();
    write(join(repo, 'src/main.txt'), 'main v2\n');
    git(repo, 'add', 'src/main.txt');
    await expectUpdate();
    // keep.log stays on disk but leaves the index: it is ignored, so the snapshot drops it.
    git(repo, 'rm', '-q', '--cached', 'keep.log');
    await expectUpdate();
    // debug.log is ignored; `git add -N -f` makes it tracked: now it is saved.
    git(repo, 'add', '-N', '-f', 'debug.log');
    await expectUpdate();
  });

  it('sees HEAD move (a commit with the same tree) and shows new refs while the work tree stays recalled', async () => {
    await savedDirty();
    // A new commit with HEAD's tree (the staged change stays staged): git status is the same.
    git(repo, 'update-ref', 'HEAD', git(repo, 'commit-tree', 'HEAD^{tree}', '-p', 'HEAD', '-m', 'same tree'));
    await expectUpdate('HEAD');
    git(repo, 'branch', 'side');
    const { action, runs: ran } = await plan();
    expect(action?.changes.map((change) => change.field)).toEqual(['refs/heads/side']);
    expect(ran).toEqual(whole ? [] : [expect.stringMatching(/ status /)]); // the work tree is as recorded: only the ref is new
  });

  it('sees a file become ignored or un-ignored: .gitignore, info/exclude and the global excludes file', async () => {
    await savedDirty();
    appendFileSync(join(repo, '.gitignore'), 'notes/\n');
    await expectUpdate();
    writeFileSync(join(repo, '.gitignore'), '*.log\n');
    await expectUpdate();

    appendFileSync(join(repo, '.git/info/exclude'), 'notes/\n');
    await expectUpdate();
    writeFileSync(join(repo, '.git/info/exclude'), '.persist-backups/\n');
    await expectUpdate();

    const excludes = join(dir.path, 'global-ignore');
    writeFileSync(excludes, '');
    git(repo, 'config', 'core.excludesFile', excludes);
    // The configuration changed: not as recorded any more, so the snapshot is built (and is the same).
    const { action, runs: ran } = await plan();
    expect(action).toBeNull();
    expect(ran.some((run) => / add -A /.test(run))).toBe(true);
    writeFileSync(excludes, 'notes/\n');
    await expectUpdate();
  });

  it('sees a configuration change that changes what git saves (core.autocrlf)', async () => {
    write(join(repo, 'windows.txt'), 'line one\r\nline two\r\n');
    await converge();
    await expectRecalled();
    git(repo, 'config', 'core.autocrlf', 'input'); // the untracked file is now saved with LF endings
    await expectUpdate();
  });

  it('sees a mode change (chmod +x)', async () => {
    await savedDirty();
    chmodSync(join(repo, 'notes/today.md'), 0o755);
    await expectUpdate();
  });

  it('is not trusted when the state folder is gone (a new container): the snapshot is built', async () => {
    await savedDirty();
    rmSync(state, { recursive: true });
    const { action, runs: ran } = await plan();
    // Lineage: the generation is recorded as seen here; the work tree is found as saved.
    expect(action?.action).toBe('restore');
    expect(action?.reason).toMatch(/already holds generation 1 .*: recorded as seen here, nothing else changes$/);
    expect(ran.length).toBeGreaterThan(3);
    expect(ran.some((run) => / add -A /.test(run))).toBe(true);
  });

  it('is not trusted when the repo was replaced by another with the same files', async () => {
    await savedDirty();
    const copy = `${repo}.copy`;
    git(dir.path, 'clone', '-q', repo, copy);
    rmSync(repo, { recursive: true });
    renameSync(copy, repo);
    git(repo, 'update-ref', '-d', 'refs/remotes/origin/main');
    write(join(repo, 'notes/today.md'), 'untracked\n');
    const { runs: ran } = await plan();
    expect(ran.some((run) => / add -A /.test(run))).toBe(true);
  });

  it('records nothing when the work tree moves while the snapshot is built', async () => {
    await converge();
    const file = join(state, 'worktrees');
    write(join(repo, 'SOUL.md'), 'edited\n');
    // A file that exists only while the snapshot is made (the agent writes and deletes it).
    const snapshot = await rememberWorktree(host, repo, async () => {
      write(join(repo, 'fleeting.txt'), 'here and gone\n');
      try {
        return await snapshotWorktree(host, repo, { objects: 'repo' });
      } finally {
        rmSync(join(repo, 'fleeting.txt'));
      }
    }, 'worktree');
    expect(readdirSync(file)).toEqual([]);
    expect(git(repo, 'ls-tree', '-r', '--name-only', snapshot.sha)).toContain('fleeting.txt');

    // A tracked file edited during the snapshot and edited back (same content, new ctime).
    await rememberWorktree(host, repo, async () => {
      write(join(repo, 'MEMORY.md'), 'for a moment\n');
      try {
        return await snapshotWorktree(host, repo, { objects: 'repo' });
      } finally {
        write(join(repo, 'MEMORY.md'), 'memory v1\n');
      }
    }, 'worktree');
    expect(readdirSync(file)).toEqual([]);
  });

  it('after a restore, records the work tree only when its files hold what the snapshot holds', async () => {
    await savedDirty();
    const saved = git(repo, 'rev-parse', 'refs/persist/worktree');
    const folder = join(state, 'worktrees');
    // A work tree said to be restored from the snapshot, but SOUL.md differs (same size, old times).
    write(join(repo, 'SOUL.md'), 'soul v9\n');
    await rememberWorktree(host, repo, () => describeSnapshot(host, repo, saved), 'restored');
    expect(readdirSync(folder)).toEqual([]);
    write(join(repo, 'SOUL.md'), 'soul v2\n');
    await rememberWorktree(host, repo, () => describeSnapshot(host, repo, saved), 'restored');
    expect(recordText()).toContain(saved);
    keepDepth();
    await expectRecalled();
  });

  it('sees a new file in a folder whose name is not UTF-8', async () => {
    const odd = Buffer.concat([Buffer.from(`${repo}/odd-`), Buffer.from([0xff])]);
    mkdirSync(odd);
    writeFileSync(Buffer.concat([odd, Buffer.from('/debug.log')]), 'ignored\n');
    await savedDirty(false); // no stat of ours can find that folder: git status checks it
    writeFileSync(Buffer.concat([odd, Buffer.from('/new.txt')]), 'new\n');
    const { action } = await plan();
    expect(action?.action).toBe('update');
  });

  it("leaves persist's link inside the repo out of the snapshot and the status, and trusts a record only with the same links", async () => {
    // The link as the link resource makes it: `memory` -> <mount>/workspace/memory; `memory/` does not ignore a symlink.
    appendFileSync(join(repo, '.gitignore'), 'memory/\n');
    git(repo, 'commit', '-qam', 'ignore memory/');
    const makeLink = (target: string) => {
      mkdirSync(target, { recursive: true });
      rmSync(join(repo, 'memory'), { force: true });
      symlinkSync(target, join(repo, 'memory'));
    };
    links = { memory: { name: 'memory', bucket: 'data', path: join(repo, 'memory'), relTarget: 'workspace/memory', target: join(mount, 'workspace/memory') } };
    makeLink(links.memory!.target);
    expect(git(repo, 'status', '--porcelain')).toBe('?? memory');
    await converge(); // only the link is untracked: clean, the bundle holds no snapshot
    expect((await readBundleHeader(host, bundle.file)).refs.map((ref) => ref.name)).not.toContain('refs/persist/worktree');
    await expectRecalled();

    await savedDirty();
    expect(recordText()).toContain('"leftOut":["memory"]');
    const saved = (await readBundleHeader(host, bundle.file)).refs.find((ref) => ref.name === 'refs/persist/worktree')!.sha;
    expect(git(repo, 'ls-tree', '-r', '--name-only', saved).split('\n')).not.toContain('memory');

    // Without the link in the environment the record does not hold (it left `memory` out), though
    // nothing moved: the snapshot is built, and now holds the symlink.
    const withLink = links;
    links = {};
    const unlinked = await plan();
    expect(unlinked.runs.some((run) => / add -A /.test(run))).toBe(true);
    expect(unlinked.action?.action).toBe('update');
    links = withLink;
    await expectRecalled();

    // The link pointed at another mount path (a new container's): nothing to save, and no snapshot built.
    makeLink(join(dir.path, 'other-mount/workspace/memory'));
    const relinked = await plan();
    expect(relinked.action).toBeNull();
    expect(relinked.runs.some((run) => / add -A /.test(run))).toBe(false);
  });

  it('sees a listed file turn into a folder', async () => {
    await savedDirty();
    expect(existsSync(join(state, 'worktrees'))).toBe(true);
    const size = statSync(join(repo, 'notes/today.md')).size;
    expect(size).toBeGreaterThan(0);
    rmSync(join(repo, 'notes/today.md'));
    mkdirSync(join(repo, 'notes/today.md')); // a file turned into a folder
    write(join(repo, 'notes/today.md/inside.txt'), 'inside\n');
    await expectUpdate();
  });
});

describe("the timestamp tick of the work tree's file system", () => {
  /** The real host with the repo's real times, its device reported as a file system of type `fsType`. */
  function seeing(fsType: string): Host {
    const real = new RealHost();
    const device = deviceName(statSync(repo).dev)!;
    return Object.assign(Object.create(real) as Host, {
      env: () => ({ ...process.env, TMPDIR: scratch, PERSIST_STATE_DIR: state }),
      run: (command: string, args: string[], options?: RunOptions) => {
        runs.push([command, ...args].join(' '));
        return real.run(command, args, options);
      },
      mounts: async () => [{ mountId: 1, parentId: 0, device, mountPoint: '/', root: '/', fsType, source: 'test', options: 'rw', superOptions: 'rw' }],
    });
  }

  it('trusts the stamps of a work tree saved half a second after it was written where times keep nanoseconds, hashes them on FAT', async () => {
    whole = true;
    host = seeing('ext4');
    write(join(repo, 'SOUL.md'), 'soul v2\n');
    await new Promise((resolve) => setTimeout(resolve, 500));
    await converge();
    expect(recordText()).toContain('"whole":');
    expect(recordText()).not.toContain('"blob":');
    await expectRecalled();

    // FAT keeps times to 2 s: SOUL.md, written half a second before, is racy there (its content hashed).
    host = seeing('vfat');
    write(join(repo, 'SOUL.md'), 'soul v3\n');
    await new Promise((resolve) => setTimeout(resolve, 500));
    await converge();
    expect(recordText()).toMatch(/"SOUL\.md":\{"stamp":"[^"]+","blob":"[0-9a-f]{40}"\}/);
    await expectRecalled();
  });
});
