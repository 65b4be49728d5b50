// bundle.<name> against real git, real folders and the real host.
import { existsSync, lstatSync, mkdirSync, readFileSync, readdirSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { PlannedAction, PlanOptions } from '../../src/engine/types.js';
import { ActionError } from '../../src/errors.js';
import { readBundleHeader } from '../../src/resources/bundle/header.js';
import { RealHost } from '../../src/host/real.js';
import { FINE_TICK_MS, timestampTickMs } from '../../src/host/timestamps.js';
import type { Host } from '../../src/host/types.js';
import { readOnlyHost, recordingHost } from '../../src/host/wrappers.js';
import { bundleModule } from '../../src/resources/bundle/index.js';
import type { ResolvedBundle, ResolvedEnvironment, ResolvedLink } from '../../src/spec/types.js';
import { commit, forEachRef, git, initRepo, tempDir, write } from '../git/helpers.js';
import { applyPlanned, observing } from '../helpers/resources.js';

const realHost = new RealHost();
let dir: { path: string; cleanup: () => void };
let mount: string;
let bundle: ResolvedBundle;

beforeEach(() => {
  dir = tempDir('persist-bundle-');
  mount = join(dir.path, 'mount');
  mkdirSync(mount);
  bundle = { name: 'clawd', bucket: 'data', repo: join(dir.path, 'clawd'), relFile: 'workspace/clawd.bundle', file: join(mount, 'workspace/clawd.bundle'), keep: 2 };
});
afterEach(() => dir.cleanup());

function environment(links: Record<string, ResolvedLink> = {}): ResolvedEnvironment {
  const data = { key: 'data', name: 'test-data', pathStyle: true, provider: 'other' as const, mount: { backend: 'local' as const, path: mount, options: {} } };
  return { specFile: join(dir.path, 'persist.yaml'), specHash: '0', environment: 'test', workspace: dir.path, buckets: { data }, links, bundles: { clawd: bundle }, syncs: {}, files: {} };
}

async function plan(options: PlanOptions = { allowShrink: false }, ready = true, host: Host = readOnlyHost(realHost), links?: Record<string, ResolvedLink>) {
  const observed = (await bundleModule.observe(bundle, observing({ host, env: environment(links), mountReady: { data: ready } }))).state;
  const decision = bundleModule.diff(bundle, observed, options);
  return { observed, action: decision ? ({ ...decision, dependsOn: [] } as PlannedAction) : null };
}

async function apply(action: PlannedAction, options: PlanOptions = { allowShrink: false }, host: Host = realHost) {
  return applyPlanned(action, { host, env: environment(), options, report: () => {}, signal: new AbortController().signal });
}

/** Plan and apply whatever is planned; fails when nothing is. */
async function converge(options?: PlanOptions) {
  const { action } = await plan(options);
  expect(action).not.toBeNull();
  return { action: action!, outcome: await apply(action!, options) };
}

async function bundleRefs(file: string): Promise<Record<string, string>> {
  return Object.fromEntries((await readBundleHeader(realHost, file)).refs.map((r) => [r.name, r.sha]));
}

function sampleRepo(): string {
  initRepo(bundle.repo, { 'README.md': 'hello\n', 'src/main.txt': 'main\n' });
  git(bundle.repo, 'branch', 'feature');
  git(bundle.repo, 'tag', '-a', 'v1', '-m', 'v1');
  return bundle.repo;
}

describe('bundle update', () => {
  it('creates the bundle, then plans nothing; observing writes nothing', async () => {
    sampleRepo();
    const { action, outcome } = await converge();
    expect(action).toMatchObject({ action: 'update', phase: 'push' });
    expect(outcome.summary).toMatch(/^wrote workspace\/clawd\.bundle \(3 refs, \d+ bytes\)$/);
    expect(await bundleRefs(bundle.file)).toEqual({ HEAD: git(bundle.repo, 'rev-parse', 'HEAD'), ...forEachRef(bundle.repo) });
    git(bundle.repo, 'bundle', 'verify', '-q', bundle.file);
    expect(readdirSync(join(mount, 'workspace')).filter((name) => !name.endsWith('.lineage.json'))).toEqual(['clawd.bundle']); // no temp left behind

    const again = await plan(); // readOnlyHost: any write would throw
    expect(again.action).toBeNull();
    expect(again.observed.bundle).toMatchObject({ state: 'present', objectFormat: 'sha1' });
  });

  it('rotates earlier generations with keep=2 and keeps every one a complete bundle', async () => {
    sampleRepo();
    const heads: string[] = [];
    for (let i = 0; i < 4; i++) {
      if (i > 0) commit(bundle.repo, { 'n.txt': `${i}\n` }, `change ${i}`);
      heads.push(git(bundle.repo, 'rev-parse', 'HEAD'));
      await converge();
    }
    expect(readdirSync(join(mount, 'workspace')).filter((name) => !name.endsWith('.lineage.json'))).toEqual(['clawd.bundle', 'clawd.bundle.1', 'clawd.bundle.2']);
    // Each generation has its lineage record beside it: the current one is the newest.
    const records = [0, 1, 2].map((n) => JSON.parse(readFileSync(join(mount, 'workspace', n === 0 ? 'clawd.bundle.lineage.json' : `clawd.bundle.${n}.lineage.json`), 'utf8')) as { generation: number });
    expect(records.map((r) => r.generation)).toEqual([records[0]!.generation, records[0]!.generation - 1, records[0]!.generation - 2]);
    expect((await bundleRefs(bundle.file)).HEAD).toBe(heads[3]);
    expect((await bundleRefs(`${bundle.file}.1`)).HEAD).toBe(heads[2]);
    expect((await bundleRefs(`${bundle.file}.2`)).HEAD).toBe(heads[1]);
    for (const name of ['clawd.bundle', 'clawd.bundle.1', 'clawd.bundle.2']) git(bundle.repo, 'bundle', 'verify', '-q', join(mount, 'workspace', name));
    expect((await plan()).observed.generations).toEqual([1, 2]);
  });

  it('keeps no generation with keep=0', async () => {
    bundle.keep = 0;
    sampleRepo();
    await converge();
    commit(bundle.repo, { 'n.txt': 'x\n' }, 'more');
    await converge();
    expect(readdirSync(join(mount, 'workspace')).filter((name) => !name.endsWith('.lineage.json'))).toEqual(['clawd.bundle']);
  });

  it('writes nothing when applied with nothing to do', async () => {
    sampleRepo();
    const { action } = await converge();
    const recording = recordingHost(realHost);
    expect(await apply(action, undefined, recording)).toEqual({ summary: 'already as the spec wants it (nothing to do)' });
    expect(recording.writes).toEqual([]);
  });

  it('leaves the previous bundle intact and no temp file when a step fails', async () => {
    sampleRepo();
    await converge();
    const before = readFileSync(bundle.file);
    commit(bundle.repo, { 'big.txt': 'new content\n' }, 'next');
    const { action } = await plan();

    // 1. The rename into place fails (a mount that gives up mid-way).
    const failing: Host = Object.assign(Object.create(realHost) as Host, {
      rename: async (from: string, to: string) => {
        if (to === bundle.file) throw new Error('EIO: simulated mount failure');
        return realHost.rename(from, to);
      },
    });
    await expect(apply(action!, undefined, failing)).rejects.toThrow('EIO: simulated mount failure');
    expect(readFileSync(bundle.file).equals(before)).toBe(true);
    expect(readdirSync(join(mount, 'workspace')).filter((name) => !name.endsWith('.lineage.json')).filter((n) => n.includes('persist-tmp'))).toEqual([]);

    // 2. git cannot pack the repo (an object went missing).
    const blob = git(bundle.repo, 'rev-parse', 'HEAD:big.txt');
    rmSync(join(bundle.repo, '.git/objects', blob.slice(0, 2), blob.slice(2)));
    // (Removed from the work tree too: the work-tree snapshot would otherwise write the object back.)
    rmSync(join(bundle.repo, 'big.txt'));
    await expect(apply(action!)).rejects.toThrow(ActionError);
    await expect(apply(action!)).rejects.toThrow(/git .*bundle create .* failed \(exit \d+\): .+/);
    expect(readFileSync(bundle.file).equals(before)).toBe(true);
    expect(readdirSync(join(mount, 'workspace')).filter((name) => !name.endsWith('.lineage.json')).filter((n) => n.includes('persist-tmp'))).toEqual([]);
  });

  it('keeps the current bundle in place when the rotation fails half-way', async () => {
    sampleRepo();
    await converge();
    commit(bundle.repo, { 'n.txt': '1\n' }, 'one');
    await converge();
    const current = readFileSync(bundle.file);
    commit(bundle.repo, { 'n.txt': '2\n' }, 'two');
    const { action } = await plan();
    const failing: Host = Object.assign(Object.create(realHost) as Host, {
      copyFile: async (from: string, to: string) => {
        if (from === bundle.file) throw new Error('ENOSPC: simulated full bucket');
        return realHost.copyFile(from, to);
      },
    });
    await expect(apply(action!, undefined, failing)).rejects.toThrow('ENOSPC');
    expect(readFileSync(bundle.file).equals(current)).toBe(true);
    expect(readdirSync(join(mount, 'workspace')).filter((name) => !name.endsWith('.lineage.json'))).toEqual(['clawd.bundle', 'clawd.bundle.2']);
    await converge(); // the next apply completes the rotation
    expect(readdirSync(join(mount, 'workspace')).filter((name) => !name.endsWith('.lineage.json'))).toEqual(['clawd.bundle', 'clawd.bundle.1', 'clawd.bundle.2']);
    expect(readFileSync(`${bundle.file}.1`).equals(current)).toBe(true);
  });

  it('runs no git process (stats alone) or one (status) when the bundle already matches and the work tree is clean', async () => {
    sampleRepo();
    // Saved once the repo's last write is older than the timestamp tick: its work tree is then
    // recorded whole, and checked by stats alone where times keep nanoseconds (else by git status).
    await new Promise((resolve) => setTimeout(resolve, 2 * FINE_TICK_MS));
    const byStats = (await timestampTickMs(realHost, bundle.repo)) === FINE_TICK_MS;
    await converge();
    const commands: string[] = [];
    const counting: Host = Object.assign(Object.create(realHost) as Host, {
      run: async (command: string, args: string[], options?: object) => {
        commands.push(`${command} ${args.join(' ')}`);
        return realHost.run(command, args, options);
      },
    });
    const subcommand = (c: string) => c.split(' ').find((word) => /^[a-z][a-z-]+$/.test(word) && word !== 'git');
    expect((await plan(undefined, true, readOnlyHost(counting))).action).toBeNull();
    expect(commands.map(subcommand)).toEqual(byStats ? [] : ['status']);
    commands.length = 0;
    commit(bundle.repo, { 'n.txt': 'x\n' }, 'more');
    git(bundle.repo, 'branch', '-f', 'feature', 'HEAD'); // no ref of the repo is at the bundled commit now
    expect((await plan(undefined, true, readOnlyHost(counting))).action?.action).toBe('update');
    expect(commands.map(subcommand)).toEqual(['status', 'cat-file', 'rev-list']);
  });

  it('re-checks after the mount when the mount side was unknown at plan time', async () => {
    sampleRepo();
    const { action } = await plan(undefined, false);
    expect(action).toMatchObject({ action: 'update' });
    expect(action!.reason).toContain('re-checked');
    expect((await apply(action!)).summary).toMatch(/^wrote /);
    expect((await plan()).action).toBeNull();
  });

  it('warns when a link inside the repo is tracked by it', async () => {
    sampleRepo();
    commit(bundle.repo, { 'memory/notes.md': 'n\n' }, 'tracked memory');
    const link: ResolvedLink = { name: 'memory', bucket: 'data', path: join(bundle.repo, 'memory'), relTarget: 'workspace/memory', target: join(mount, 'workspace/memory') };
    const other: ResolvedLink = { name: 'logs', bucket: 'data', path: join(bundle.repo, 'logs'), relTarget: 'workspace/logs', target: join(mount, 'workspace/logs') };
    const { action, observed } = await plan(undefined, true, undefined, { memory: link, logs: other });
    expect(observed.trackedLinks).toEqual([join(bundle.repo, 'memory')]);
    expect(action?.warnings).toEqual([expect.stringContaining(`${join(bundle.repo, 'memory')} is linked into the mount but tracked by the repo`)]);
  });
});

describe('history the repo does not contain', () => {
  it('is a conflict when the repo was re-initialised; --allow-shrink saves it and keeps the old bundle as .1', async () => {
    sampleRepo();
    await converge();
    const saved = await bundleRefs(bundle.file);
    rmSync(bundle.repo, { recursive: true });
    initRepo(bundle.repo, { 'other.txt': 'a different history\n' });

    const { action, observed } = await plan();
    expect(observed.lost.map((l) => l.ref).sort()).toEqual(['HEAD', 'refs/heads/feature', 'refs/heads/main', 'refs/tags/v1']);
    expect(action).toMatchObject({ action: 'conflict', conflict: { overrideFlag: '--allow-shrink' } });
    await expect(apply({ ...action!, action: 'update' })).rejects.toThrow(/holds commits that .* does not contain/);
    expect(await bundleRefs(bundle.file)).toEqual(saved);

    const shrink = { allowShrink: true };
    const { action: forced } = await plan(shrink);
    expect(forced).toMatchObject({ action: 'update' });
    await apply(forced!, shrink);
    expect(await bundleRefs(`${bundle.file}.1`)).toEqual(saved);
    expect((await bundleRefs(bundle.file)).HEAD).toBe(git(bundle.repo, 'rev-parse', 'HEAD'));
  });

  it('is a conflict when the repo is behind the bundle, but not when a merged branch was deleted', async () => {
    sampleRepo();
    const first = git(bundle.repo, 'rev-parse', 'HEAD');
    commit(bundle.repo, { 'b.txt': 'b\n' }, 'second');
    await converge();
    git(bundle.repo, 'reset', '-q', '--hard', first); // the commit still exists, but no ref reaches it
    const behind = await plan();
    expect(behind.action?.action).toBe('conflict');
    expect(behind.observed.lost.map((l) => l.ref).sort()).toEqual(['HEAD', 'refs/heads/main']);

    git(bundle.repo, 'reset', '-q', '--hard', 'ORIG_HEAD');
    git(bundle.repo, 'branch', '-D', 'feature'); // its commit is in main's history
    const deleted = await plan();
    expect(deleted.observed.lost).toEqual([]);
    expect(deleted.action).toMatchObject({ action: 'update', changes: [{ field: 'refs/heads/feature', after: null }] });
  });
});

describe('bundle restore', () => {
  async function savedThenRemoved(): Promise<{ head: string; refs: Record<string, string> }> {
    sampleRepo();
    commit(bundle.repo, { 'docs/guide.md': 'guide\n' }, 'docs');
    await converge();
    const saved = { head: git(bundle.repo, 'rev-parse', 'HEAD'), refs: forEachRef(bundle.repo) };
    rmSync(bundle.repo, { recursive: true });
    return saved;
  }

  it('round trip: repo → update → delete → restore → no changes, same HEAD and branches', async () => {
    bundle.remote = 'https://example.invalid/clawd.git';
    const saved = await savedThenRemoved();
    const { action, outcome } = await converge();
    expect(action).toMatchObject({ action: 'restore', phase: 'restore' });
    expect(outcome.summary).toBe(`restored 3 refs at main (${saved.head.slice(0, 12)}), checked out 3 files`);
    expect(git(bundle.repo, 'rev-parse', 'HEAD')).toBe(saved.head);
    expect(git(bundle.repo, 'symbolic-ref', 'HEAD')).toBe('refs/heads/main');
    expect(forEachRef(bundle.repo)).toEqual(saved.refs);
    expect(git(bundle.repo, 'status', '--porcelain')).toBe('');
    expect(readFileSync(join(bundle.repo, 'docs/guide.md'), 'utf8')).toBe('guide\n');
    expect(git(bundle.repo, 'remote', 'get-url', 'origin')).toBe('https://example.invalid/clawd.git');
    expect(readdirSync(dir.path).filter((n) => n.includes('persist-restore'))).toEqual([]);
    expect((await plan()).action).toBeNull();
  });

  it('restores into an empty folder', async () => {
    const saved = await savedThenRemoved();
    mkdirSync(bundle.repo);
    await converge();
    expect(git(bundle.repo, 'rev-parse', 'HEAD')).toBe(saved.head);
    expect(git(bundle.repo, 'status', '--porcelain')).toBe('');
    expect((await plan()).action).toBeNull();
  });

  it('restores into a folder that already has files without clobbering them', async () => {
    const saved = await savedThenRemoved();
    write(join(bundle.repo, 'notes-by-agent.txt'), 'untracked\n');
    write(join(bundle.repo, 'README.md'), 'edited before the restore\n');
    mkdirSync(join(mount, 'workspace/docs'), { recursive: true });
    symlinkSync(join(mount, 'workspace/docs'), join(bundle.repo, 'docs')); // a link made earlier

    const { action, outcome } = await converge();
    expect(action?.reason).toContain('has no .git (its 3 existing entries are kept)');
    expect(readFileSync(join(bundle.repo, 'notes-by-agent.txt'), 'utf8')).toBe('untracked\n');
    expect(readFileSync(join(bundle.repo, 'README.md'), 'utf8')).toBe('edited before the restore\n');
    expect(readFileSync(join(bundle.repo, 'src/main.txt'), 'utf8')).toBe('main\n');
    expect(lstatSync(join(bundle.repo, 'docs')).isSymbolicLink()).toBe(true);
    expect(readdirSync(join(mount, 'workspace/docs'))).toEqual([]); // nothing written through the link
    expect(outcome.notes).toEqual([
      'kept 1 existing file(s) that differ from the bundle: README.md (git status shows them as modified)',
      'not checked out, a symlink or file lies on their path: docs/guide.md',
    ]);
    expect(git(bundle.repo, 'rev-parse', 'HEAD')).toBe(saved.head);
    expect(forEachRef(bundle.repo)).toEqual(saved.refs);
    expect(git(bundle.repo, 'status', '--porcelain', '--', 'README.md', 'notes-by-agent.txt')).toBe(' M README.md\n?? notes-by-agent.txt');
    // The agent's files are uncommitted work now: the next update saves them.
    expect((await plan()).action).toMatchObject({ action: 'update', changes: [{ field: 'work tree', before: 'as committed', after: expect.stringMatching(/\(1 modified, 2 added, 1 deleted since HEAD\)$/) }] });
  });

  it('restores into a repository without commits', async () => {
    const saved = await savedThenRemoved();
    initRepo(bundle.repo);
    const { action } = await converge();
    expect(action?.reason).toContain('has no commits yet');
    expect(forEachRef(bundle.repo)).toEqual(saved.refs);
    expect(git(bundle.repo, 'status', '--porcelain')).toBe('');
    expect((await plan()).action).toBeNull();
  });

  it('restores a detached HEAD as detached', async () => {
    sampleRepo();
    const first = git(bundle.repo, 'rev-parse', 'HEAD');
    commit(bundle.repo, { 'b.txt': 'b\n' }, 'second');
    git(bundle.repo, 'checkout', '-q', '--detach', first);
    git(bundle.repo, 'branch', '-f', 'feature', 'main'); // no branch at the detached commit
    await converge();
    rmSync(bundle.repo, { recursive: true });
    const { outcome } = await converge();
    expect(outcome.summary).toContain(`at detached ${first.slice(0, 12)}`);
    expect(git(bundle.repo, 'rev-parse', 'HEAD')).toBe(first);
    expect((await plan()).action).toBeNull();
  });

  it('plans a restore decided after the mount, and does nothing when no bundle exists', async () => {
    const { action } = await plan(undefined, false);
    expect(action).toMatchObject({ action: 'restore' });
    expect(action!.reason).toContain('decided after the mount');
    const recording = recordingHost(realHost);
    expect((await apply(action!, undefined, recording)).summary).toBe('already as the spec wants it (nothing to do)');
    expect(recording.writes).toEqual([]);
    expect(existsSync(bundle.repo)).toBe(false);
  });

  it('refuses to restore over a repo that gained commits since the plan', async () => {
    await savedThenRemoved();
    const { action } = await plan();
    initRepo(bundle.repo, { 'x.txt': 'x\n' });
    await expect(apply(action!)).rejects.toThrow(ActionError);
    expect(existsSync(join(bundle.repo, 'README.md'))).toBe(false);
    renameSync(bundle.repo, `${bundle.repo}.aside`);
    expect((await converge()).action.action).toBe('restore');
  });
});


describe('a shallow repo', () => {
  it('saves only the boundary commits it holds (a .git/shallow line gc left behind is not one), and converges', async () => {
    const origin = initRepo(join(dir.path, 'origin'), { 'a.txt': 'one\n' });
    commit(origin, { 'a.txt': 'two\n' }, 'second');
    git(dir.path, 'clone', '-q', '--depth', '1', `file://${origin}`, bundle.repo);
    const boundary = git(bundle.repo, 'rev-parse', 'HEAD');
    const stale = 'f'.repeat(40);
    writeFileSync(join(bundle.repo, '.git', 'shallow'), `${boundary}\n${stale}\n`);
    const { observed } = await plan();
    expect(observed.repo).toMatchObject({ state: 'git', shallow: [boundary] });
    await converge();
    expect(await bundleRefs(bundle.file)).toEqual({ HEAD: boundary, 'refs/heads/main': boundary, [`refs/persist/shallow/${boundary}`]: boundary });
    expect((await plan()).action).toBeNull();
  });
});
