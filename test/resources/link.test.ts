// link.<name> on real folders: every action and conflict, then re-observe + diff gives nothing.
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs/promises';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { PlannedAction } from '../../src/engine/types.js';
import { backupDir } from '../../src/host/paths.js';
import { RealHost } from '../../src/host/real.js';
import { readOnlyHost } from '../../src/host/wrappers.js';
import { journalPath } from '../../src/resources/link/adopt.js';
import { diffLink, linkModule, observeLink } from '../../src/resources/link/index.js';
import type { Host } from '../../src/host/types.js';
import type { ResolvedEnvironment, ResolvedLink } from '../../src/spec/types.js';
import type { ActionContext } from '../../src/engine/apply.js';
import { applyPlanned } from '../helpers/resources.js';

const host = new RealHost();
let root: string;
let workspace: string;
let mount: string;

function linkNamed(name: string, relTarget = `workspace/${name}`, mountPath = mount): ResolvedLink {
  return { name, bucket: 'data', path: join(workspace, name), relTarget, target: join(mountPath, relTarget) };
}

/** What the engine hands the link: an environment with its \`local\` bucket at the mount. */
function linkContext(link: ResolvedLink, through: Host = host, report: (message: string) => void = () => {}): ActionContext {
  const data = { key: 'data', name: 'test-data', pathStyle: true, provider: 'other' as const, mount: { backend: 'local' as const, path: link.target.slice(0, -link.relTarget.length - 1), options: {} } };
  const env: ResolvedEnvironment = { specFile: join(workspace, 'persist.yaml'), specHash: '0', environment: 'test', workspace, buckets: { data }, links: { [link.name]: link }, bundles: {}, syncs: {}, files: {} };
  return { host: through, env, options: { allowShrink: false }, report, signal: new AbortController().signal };
}

async function plan(link: ResolvedLink) {
  // Observation goes through the read-only host, as in `persist plan`: any write would throw.
  const observed = await observeLink(link, { host: readOnlyHost(host), mountReady: { data: true } });
  return diffLink(link, observed);
}

async function apply(link: ResolvedLink) {
  const planned = await plan(link);
  expect(planned).not.toBeNull();
  const action: PlannedAction = { ...planned!, dependsOn: [] };
  const reports: string[] = [];
  const outcome = await applyPlanned(action, linkContext(link, host, (m) => reports.push(m)));
  return { planned: planned!, outcome, reports };
}

async function expectLinked(link: ResolvedLink): Promise<void> {
  expect(await fs.readlink(link.path)).toBe(link.target);
  expect((await fs.stat(link.target)).isDirectory()).toBe(true);
  expect(await plan(link)).toBeNull();
}

async function write(path: string, content: string | Buffer, mode?: number): Promise<void> {
  await fs.mkdir(join(path, '..'), { recursive: true });
  await fs.writeFile(path, content);
  if (mode !== undefined) await fs.chmod(path, mode);
}

async function sha(path: string): Promise<string> {
  return createHash('sha256').update(await fs.readFile(path)).digest('hex');
}

beforeEach(async () => {
  root = await fs.mkdtemp(join(tmpdir(), 'persist-link-'));
  workspace = join(root, 'ws');
  mount = join(root, 'mnt-development');
  await fs.mkdir(workspace);
  await fs.mkdir(mount);
});

afterEach(async () => {
  await fs.rm(root, { recursive: true, force: true });
});

describe('link.<name> create', () => {
  it('creates the target directory and an absolute symlink', async () => {
    const link = linkNamed('memory');
    const { planned, outcome } = await apply(link);
    expect(planned.action).toBe('create');
    expect(planned.reason).toContain('nor does its target directory');
    expect(outcome.summary).toBe('created the link');
    await expectLinked(link);
  });

  it('replaces an empty directory by the link and keeps nothing behind', async () => {
    const link = linkNamed('logs');
    await fs.mkdir(link.path);
    const { planned } = await apply(link);
    expect(planned.action).toBe('create');
    expect(planned.reason).toContain('empty directory');
    await expectLinked(link);
    expect(await fs.readdir(backupDir(workspace))).toEqual([]);
  });

  it('creates a missing target directory behind a correct link', async () => {
    const link = linkNamed('skills');
    await fs.symlink(link.target, link.path);
    const { planned } = await apply(link);
    expect(planned).toMatchObject({ action: 'create', reason: 'target directory missing in the mount' });
    await expectLinked(link);
  });

  it('is a conflict naming the file that stands where a parent folder belongs (before: a create that failed with EEXIST)', async () => {
    await fs.writeFile(join(workspace, 'agent'), 'a file, not a folder');
    const link = { ...linkNamed('memory'), path: join(workspace, 'agent', 'deep', 'memory') };
    expect(await plan(link)).toMatchObject({
      action: 'conflict',
      reason: `${join(workspace, 'agent')} is a file, not a folder: the link ${link.path} cannot be made inside it`,
    });
    expect(await fs.readFile(join(workspace, 'agent'), 'utf8')).toBe('a file, not a folder');
  });

  it("behind a correct link into a `local` bucket whose folder was lost: the target is known missing before the mount remakes the folder, so one apply converges", async () => {
    const link = linkNamed('notes');
    await fs.symlink(link.target, link.path);
    await fs.rm(mount, { recursive: true });
    const env = linkContext(link).env;
    const before = diffLink(link, await observeLink(link, { host: readOnlyHost(host), mountReady: { data: false }, env }));
    expect(before).toMatchObject({ action: 'create', reason: 'target directory missing in the mount' });
    // A FUSE bucket that is not mounted yet: unknown, looked for by the re-check after the mount (test/e2e/mount-emptied.test.ts).
    const fuse = { ...env, buckets: { data: { ...env.buckets.data!, mount: { backend: 's3fs' as const, path: mount, options: {} } } } };
    expect(diffLink(link, await observeLink(link, { host: readOnlyHost(host), mountReady: { data: false }, env: fuse }))).toMatchObject({ action: 'create', changes: [] });
  });

  it('refuses to act when the path changed since the plan', async () => {
    const link = linkNamed('memory');
    const planned = (await plan(link))!;
    await write(join(link.path, 'new.md'), 'written after the plan');
    await expect(
      applyPlanned({ ...planned, dependsOn: [] }, linkContext(link)),
    ).rejects.toThrow(/changed since the plan: it now needs adopt/);
    expect(await fs.readFile(join(link.path, 'new.md'), 'utf8')).toBe('written after the plan');
  });
});

describe('link.<name> relink', () => {
  it("points a link at this environment's mount without touching the other one", async () => {
    const otherMount = join(root, 'mnt-production');
    const link = linkNamed('memory');
    const old = join(otherMount, 'workspace/memory');
    await write(join(old, 'prod.md'), 'production data');
    await fs.symlink(old, link.path);

    const { planned, outcome } = await apply(link);
    expect(planned.action).toBe('relink');
    expect(planned.changes).toEqual([{ field: 'target', before: old, after: link.target }]);
    expect(outcome.summary).toBe(`relinked from ${old}`);
    await expectLinked(link);
    // Nothing copied across environments, nothing removed from the other one.
    expect(await fs.readdir(link.target)).toEqual([]);
    expect(await fs.readFile(join(old, 'prod.md'), 'utf8')).toBe('production data');
    expect((await fs.readdir(workspace)).sort()).toEqual(['memory']);
  });

  it('makes a relative link absolute', async () => {
    const link = linkNamed('memory');
    await fs.mkdir(link.target, { recursive: true });
    await fs.symlink(join('..', 'mnt-development', 'workspace', 'memory'), link.path);
    const { planned } = await apply(link);
    expect(planned).toMatchObject({ action: 'relink', reason: 'the link is relative; it is made absolute' });
    await expectLinked(link);
  });
});

describe('link.<name> adopt', () => {
  it('adopts a directory into an empty mount, keeps a backup and links it', async () => {
    const link = linkNamed('memory');
    await write(join(link.path, 'notes.md'), '# notes\n');
    await write(join(link.path, 'deep/er/file.txt'), 'nested');
    const { planned, outcome } = await apply(link);
    expect(planned.action).toBe('adopt');
    expect(planned.reason).toContain('directory with 2 entries');
    expect(outcome.summary).toBe('adopted 2 files (14 B), 0 conflicts');
    await expectLinked(link);
    expect(await fs.readFile(join(link.path, 'notes.md'), 'utf8')).toBe('# notes\n');
    expect(await fs.readFile(join(link.target, 'deep/er/file.txt'), 'utf8')).toBe('nested');

    const backups = await fs.readdir(backupDir(workspace));
    expect(backups).toHaveLength(1);
    expect(backups[0]).toMatch(/^memory-\d{8}T\d{6}Z$/);
    expect(await fs.readFile(join(backupDir(workspace), backups[0]!, 'notes.md'), 'utf8')).toBe('# notes\n');
    await expect(fs.access(journalPath(link))).rejects.toThrow();
    expect(outcome.notes).toContain(`the original directory is kept at ${join(backupDir(workspace), backups[0]!)}`);
  });

  it('merges with data already in the mount; a differing file keeps the mount copy and gets a conflict copy', async () => {
    const link = linkNamed('memory');
    await write(join(link.path, 'same.md'), 'same on both sides');
    await write(join(link.path, 'differs.md'), 'local version');
    await write(join(link.path, 'only-local.md'), 'local only');
    await write(join(link.target, 'same.md'), 'same on both sides');
    await write(join(link.target, 'differs.md'), 'mount version');
    await write(join(link.target, 'only-mount.md'), 'mount only');

    const { outcome } = await apply(link);
    await expectLinked(link);
    const names = await fs.readdir(link.target);
    const conflictName = names.find((n) => n.startsWith('differs.md.persist-conflict-'));
    expect(conflictName).toMatch(/^differs\.md\.persist-conflict-\d{8}T\d{6}Z$/);
    expect(names.sort()).toEqual(['differs.md', conflictName, 'only-local.md', 'only-mount.md', 'same.md'].sort());
    expect(await fs.readFile(join(link.target, 'differs.md'), 'utf8')).toBe('mount version');
    expect(await fs.readFile(join(link.target, conflictName!), 'utf8')).toBe('local version');
    expect(await fs.readFile(join(link.target, 'only-mount.md'), 'utf8')).toBe('mount only');
    expect(outcome.summary).toContain('1 conflict');
    expect(outcome.notes).toContain(
      `${join(link.path, 'differs.md')} differs from the mount's copy: the mount's is kept, the local one is at ${join(link.target, conflictName!)}`,
    );
  });

  it('refuses to adopt while a process has a file or its working directory inside the folder, naming it', async () => {
    const link = linkNamed('logs');
    await write(join(link.path, 'agent.log'), 'line 1\n');
    const { spawn } = await import('node:child_process');
    // One process holds the log open for appending, another sits in the folder.
    const writer = spawn('sh', ['-c', 'exec 3>>agent.log; exec sleep 30'], { cwd: link.path, stdio: 'ignore' });
    try {
      await new Promise((r) => setTimeout(r, 300));
      const planned = await plan(link);
      expect(planned?.action).toBe('conflict');
      expect(planned?.conflict?.message).toMatch(new RegExp(`pid ${writer.pid} \\((sh|sleep)\\) has ${link.path.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}`));
    } finally {
      writer.kill('SIGKILL');
      await new Promise((r) => writer.once('exit', r));
    }
    expect((await plan(link))?.action).toBe('adopt');
  });

  it('a template file present at every boot adds one conflict copy, not one per adopt', async () => {
    const link = linkNamed('memory');
    await write(join(link.target, 'SOUL.md'), 'the agent wrote this');
    for (let boot = 0; boot < 3; boot++) {
      // A new container: the template is written before persist runs, the link is not there yet.
      await fs.rm(link.path, { recursive: true, force: true });
      await write(join(link.path, 'SOUL.md'), 'template');
      await apply(link);
      await expectLinked(link);
      await new Promise((r) => setTimeout(r, 1100)); // the next adopt gets another time stamp
    }
    const conflicts = (await fs.readdir(link.target)).filter((n) => n.startsWith('SOUL.md.persist-conflict-'));
    expect(conflicts).toHaveLength(1);
    expect(await fs.readFile(join(link.target, 'SOUL.md'), 'utf8')).toBe('the agent wrote this');
  });

  it('keeps nested and empty directories, file modes, mtimes, symlinks and a large file', async () => {
    const link = linkNamed('config');
    const big = Buffer.alloc(5 * 1024 * 1024 + 3);
    for (let i = 0; i < big.length; i += 4096) big[i] = i % 251;
    await write(join(link.path, 'a/b/c/deep.txt'), 'deep');
    await write(join(link.path, 'secret.env'), 'KEY=1', 0o600);
    await write(join(link.path, 'run.sh'), '#!/bin/sh\n', 0o755);
    await write(join(link.path, 'big.bin'), big);
    await fs.mkdir(join(link.path, 'empty/inner'), { recursive: true });
    await fs.mkdir(join(link.path, 'locked'), { mode: 0o500 });
    await fs.chmod(join(link.path, 'locked'), 0o500);
    await fs.symlink('a/b/c/deep.txt', join(link.path, 'shortcut'));
    await fs.symlink('/nowhere/at/all', join(link.path, 'dangling'));
    const old = new Date('2020-05-05T05:05:05Z');
    await fs.utimes(join(link.path, 'secret.env'), old, old);

    await apply(link);
    await expectLinked(link);
    const t = link.target;
    expect(await fs.readFile(join(t, 'a/b/c/deep.txt'), 'utf8')).toBe('deep');
    expect((await fs.stat(join(t, 'secret.env'))).mode & 0o777).toBe(0o600);
    expect((await fs.stat(join(t, 'secret.env'))).mtime.toISOString()).toBe(old.toISOString());
    expect((await fs.stat(join(t, 'run.sh'))).mode & 0o777).toBe(0o755);
    expect((await fs.stat(join(t, 'locked'))).mode & 0o777).toBe(0o500);
    expect(await sha(join(t, 'big.bin'))).toBe(createHash('sha256').update(big).digest('hex'));
    expect(await fs.readdir(join(t, 'empty'))).toEqual(['inner']);
    expect(await fs.readlink(join(t, 'shortcut'))).toBe('a/b/c/deep.txt');
    expect(await fs.readlink(join(t, 'dangling'))).toBe('/nowhere/at/all');
    expect(await fs.readFile(join(link.path, 'shortcut'), 'utf8')).toBe('deep');
    // No temporary files left in the mount.
    const all = await fs.readdir(t, { recursive: true });
    expect(all.filter((n) => String(n).includes('persist-partial'))).toEqual([]);
  });

  it('notes special files that cannot go into a bucket; they stay in the backup', async () => {
    const link = linkNamed('memory');
    await write(join(link.path, 'keep.md'), 'kept');
    execFileSync('mkfifo', [join(link.path, 'pipe')]);
    const { outcome } = await apply(link);
    await expectLinked(link);
    const backups = await fs.readdir(backupDir(workspace));
    expect(outcome.notes!.some((n) => n.includes(`${join(link.path, 'pipe')} was not copied into the mount`))).toBe(true);
    expect((await fs.lstat(join(backupDir(workspace), backups[0]!, 'pipe'))).isFIFO()).toBe(true);
  });

  it('on a backend without symlinks or modes (rclone, goofys) it notes what stays only in the backup', async () => {
    // The real host, refusing what those backends refuse inside the mount.
    class LimitedMountHost extends RealHost {
      override async symlink(target: string, path: string): Promise<void> {
        if (path.startsWith(mount)) throw Object.assign(new Error(`EIO: i/o error, symlink '${path}'`), { code: 'EIO' });
        return super.symlink(target, path);
      }
      override async chmod(path: string, mode: number): Promise<void> {
        if (path.startsWith(mount)) throw Object.assign(new Error(`EPERM: operation not permitted, chmod '${path}'`), { code: 'EPERM' });
        return super.chmod(path, mode);
      }
    }
    const limited = new LimitedMountHost();
    const link = linkNamed('memory');
    await write(join(link.path, 'a.md'), 'a');
    await fs.symlink('a.md', join(link.path, 'latest'));
    const planned = (await plan(link))!;
    const outcome = await applyPlanned({ ...planned, dependsOn: [] }, linkContext(link, limited));
    await expectLinked(link);
    expect(await fs.readFile(join(link.target, 'a.md'), 'utf8')).toBe('a');
    const [backup] = await fs.readdir(backupDir(workspace));
    expect(outcome.notes).toEqual(
      expect.arrayContaining([
        expect.stringMatching(new RegExp(`^${join(link.path, 'latest')} was not copied into the mount \\(symlink not supported in the mount \\(EIO`)),
        expect.stringMatching(/^file modes could not be set in the mount \(EPERM/),
      ]),
    );
    expect(await fs.readlink(join(backupDir(workspace), backup!, 'latest'))).toBe('a.md');
  });

  it('resumes from every state an interrupted adopt can leave', async () => {
    const link = linkNamed('memory');
    await write(join(link.path, 'x/one.md'), 'one');
    await write(join(link.path, 'two.md'), 'two');

    // Killed after the commit rename, before the link: the path is missing, the backup holds the data.
    // We simulate it by running the first steps by hand: journal + rename, with the mount only half copied.
    const { adoptDirectory } = await import('../../src/resources/link/adopt.js');
    const controller = new AbortController();
    controller.abort();
    await expect(adoptDirectory(host, link, { report: () => {}, signal: controller.signal })).rejects.toThrow(/interrupted; nothing is lost/);
    const journal = JSON.parse(await fs.readFile(journalPath(link), 'utf8')) as { backup: string; token: string };
    await fs.mkdir(join(link.target, 'x'), { recursive: true });
    await fs.writeFile(join(link.target, 'x', `.one.md.persist-partial-${journal.token}`), 'o'); // a partial copy
    await fs.rename(link.path, journal.backup);

    let planned = await plan(link);
    expect(planned).toMatchObject({ action: 'adopt', reason: `resume an interrupted adopt of ${link.path} (original kept at ${journal.backup})` });
    const { outcome } = await apply(link);
    expect(outcome.summary).toBe('adopted 2 files (6 B), 0 conflicts (resumed)');
    await expectLinked(link);
    expect(await fs.readdir(join(link.target, 'x'))).toEqual(['one.md']);
    expect(await fs.readFile(join(link.path, 'x/one.md'), 'utf8')).toBe('one');

    // Killed after the link, before the journal is removed: plan must not say "no changes".
    await fs.writeFile(journalPath(link), JSON.stringify({ ...journal, version: 1, link: link.path, target: link.target, stamp: '20260101T000000Z', startedAt: 'x' }));
    planned = await plan(link);
    expect(planned?.action).toBe('adopt');
    expect(planned?.reason).toContain('finish an interrupted adopt');
    await apply(link);
    await expectLinked(link);
    await expect(fs.access(journalPath(link))).rejects.toThrow();
  });

  it('adopts a directory re-created at the path while a resumed adopt was pending, with a second backup', async () => {
    const link = linkNamed('memory');
    await write(join(link.path, 'first.md'), 'first');
    const { adoptDirectory } = await import('../../src/resources/link/adopt.js');
    const controller = new AbortController();
    controller.abort();
    await expect(adoptDirectory(host, link, { report: () => {}, signal: controller.signal })).rejects.toThrow();
    const journal = JSON.parse(await fs.readFile(journalPath(link), 'utf8')) as { backup: string };
    await fs.rename(link.path, journal.backup);
    await write(join(link.path, 'second.md'), 'second'); // the agent started again meanwhile

    const { outcome } = await apply(link);
    await expectLinked(link);
    expect((await fs.readdir(link.target)).sort()).toEqual(['first.md', 'second.md']);
    expect(await fs.readdir(backupDir(workspace))).toHaveLength(2);
    expect(outcome.summary).toMatch(/adopted 1 file .*; then adopted 1 file/);
  });
});

describe('link.<name> conflicts', () => {
  it('refuses a regular file at the link path and leaves it alone', async () => {
    const link = linkNamed('memory');
    await write(link.path, 'a file');
    const planned = await plan(link);
    expect(planned).toMatchObject({
      action: 'conflict',
      conflict: { message: `${link.path} is a regular file (6 bytes) where the link belongs` },
    });
    expect(planned!.conflict!.fix).toContain('move it away');
    await expect(
      applyPlanned({ ...planned!, dependsOn: [] }, linkContext(link)),
    ).rejects.toThrow(/is a regular file/);
    expect(await fs.readFile(link.path, 'utf8')).toBe('a file');
  });

  it('refuses a FIFO and a socket', async () => {
    const fifo = linkNamed('pipe');
    execFileSync('mkfifo', [fifo.path]);
    expect((await plan(fifo))?.conflict?.message).toBe(`${fifo.path} is neither a directory nor a symlink (a socket, FIFO or device) where the link belongs`);

    const sock = linkNamed('sock');
    const server: Server = createServer();
    await new Promise<void>((resolve) => server.listen(sock.path, resolve));
    try {
      expect((await plan(sock))?.action).toBe('conflict');
    } finally {
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  });

  it('refuses when the target in the mount is a file', async () => {
    const link = linkNamed('memory');
    await write(link.target, 'not a dir');
    expect((await plan(link))?.conflict?.message).toBe(`${link.target} in the mount is not a directory`);
  });

  it('refuses an unreadable journal', async () => {
    const link = linkNamed('memory');
    await write(journalPath(link), '{"version":1,"link":"x","target":"y","backup":"/etc","stamp":"1","token":"a","startedAt":"s"}');
    const planned = await plan(link);
    expect(planned?.conflict?.message).toContain(`"backup" /etc is not in ${backupDir(workspace)}`);
  });
});

describe('linkModule', () => {
  it('lists the links of an environment and their bucket', () => {
    const link = linkNamed('memory');
    const env = { links: { memory: link } } as unknown as Parameters<typeof linkModule.resources>[0];
    expect(linkModule.kind).toBe('link');
    expect(linkModule.resources(env)).toEqual({ memory: link });
    expect(linkModule.needsBucket(link)).toBe('data');
  });
});
