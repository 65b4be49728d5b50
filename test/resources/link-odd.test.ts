// Adopt with odd contents and a folder that changes while it is copied (issue 12): names that are
// not UTF-8, hard links, sparse files, relative symlinks, files written during the copy. Real
// folders, a `local` bucket; the engine's own re-check and the module, as apply runs them.
import { createHash } from 'node:crypto';
import * as fs from 'node:fs/promises';
import { join } from 'node:path';
import { beforeEach, describe, expect, it } from 'vitest';
import type { ActionContext } from '../../src/engine/apply.js';
import type { ApplyOutcome } from '../../src/engine/types.js';
import { backupDir } from '../../src/host/paths.js';
import { fsPath, pathString } from '../../src/host/names.js';
import { RealHost } from '../../src/host/real.js';
import type { Host, HostPath } from '../../src/host/types.js';
import { readOnlyHost } from '../../src/host/wrappers.js';
import { diffLink, observeLink } from '../../src/resources/link/index.js';
import type { ResolvedLink } from '../../src/spec/types.js';
import { applyPlanned } from '../helpers/resources.js';
import { linkContext, linkFolders, linkIn } from './link-helpers.js';

const realHost = new RealHost();
let root: string;
let workspace: string;
let mount: string;

const linkNamed = (name: string): ResolvedLink => linkIn(workspace, mount, name);
const context = (link: ResolvedLink, host: Host): ActionContext => linkContext(workspace, mount, link, host);

async function plan(link: ResolvedLink) {
  return diffLink(link, await observeLink(link, { host: readOnlyHost(realHost), mountReady: { data: true } }));
}

async function adopt(link: ResolvedLink, host: Host = realHost): Promise<ApplyOutcome> {
  const planned = await plan(link);
  expect(planned?.action).toBe('adopt');
  const outcome = await applyPlanned({ ...planned!, dependsOn: [] }, context(link, host));
  expect(await fs.readlink(link.path)).toBe(link.target);
  expect(await plan(link)).toBeNull();
  return outcome;
}

/** The real host with a hook before and after chosen calls (an agent writing meanwhile, a mount refusing something). */
class HookedHost extends RealHost {
  before: Partial<Record<'copyFile' | 'rename' | 'link', (a: string, b: string) => Promise<void>>> = {};
  after: Partial<Record<'copyFile', (a: string, b: string) => Promise<void>>> = {};
  override async copyFile(from: HostPath, to: HostPath, options?: { sparse?: boolean }): Promise<void> {
    await this.before.copyFile?.(pathString(from), pathString(to));
    await super.copyFile(from, to, options);
    await this.after.copyFile?.(pathString(from), pathString(to));
  }
  override async rename(from: HostPath, to: HostPath): Promise<void> {
    await this.before.rename?.(pathString(from), pathString(to));
    return super.rename(from, to);
  }
  override async link(existing: HostPath, path: HostPath): Promise<void> {
    await this.before.link?.(pathString(existing), pathString(path));
    return super.link(existing, path);
  }
}

async function write(path: string | Buffer, content: string | Buffer): Promise<void> {
  await fs.mkdir(fsPath(join(pathString(path), '..')), { recursive: true });
  await fs.writeFile(path, content);
}

async function allNames(dir: string): Promise<string[]> {
  return (await fs.readdir(dir, { recursive: true })).map(String).sort();
}

const folders = linkFolders('persist-link-odd-');
beforeEach(() => {
  ({ root, workspace, mount } = folders);
});

describe('adopt of a folder that changes during the copy', () => {
  it('a file rewritten during the copy is copied again: the link shows the newest version, no conflict copy', async () => {
    const link = linkNamed('memory');
    await write(join(link.path, 'notes.md'), 'version 1');
    await write(join(link.path, 'other.md'), 'other');
    const host = new HookedHost();
    let writes = 0;
    host.after.copyFile = async (from) => {
      // The agent saves notes.md right after persist copied it (once).
      if (from === join(link.path, 'notes.md') && writes++ === 0) await fs.writeFile(from, 'version 2, written during the copy');
    };
    const outcome = await adopt(link, host);
    expect(await fs.readFile(join(link.path, 'notes.md'), 'utf8')).toBe('version 2, written during the copy');
    expect((await allNames(link.target)).filter((name) => name.includes('persist-conflict'))).toEqual([]);
    expect(outcome.notes?.join('\n')).toContain('1 file changed during the adopt and was copied again: the link shows the newest version (notes.md)');
  });

  it('a write that lands between the last copy and the move aside reaches the mount through the verifying pass', async () => {
    const link = linkNamed('memory');
    await write(join(link.path, 'notes.md'), 'version 1');
    const host = new HookedHost();
    host.before.rename = async (from) => {
      if (from === link.path) await fs.writeFile(join(link.path, 'notes.md'), 'version 2, just before the move');
    };
    await adopt(link, host);
    expect(await fs.readFile(join(link.path, 'notes.md'), 'utf8')).toBe('version 2, just before the move');
    expect((await allNames(link.target)).filter((name) => name.includes('persist-conflict'))).toEqual([]);
  });

  it('killed before the move aside, then the file changes: the resumed adopt copies the newer version over its own copy', async () => {
    const link = linkNamed('memory');
    await write(join(link.path, 'notes.md'), 'version 1');
    await write(join(link.path, 'other.md'), 'other');
    const host = new HookedHost();
    host.before.rename = async (from) => {
      if (from === link.path) throw Object.assign(new Error('killed'), { code: 'EINTR' });
    };
    const planned = await plan(link);
    await expect(applyPlanned({ ...planned!, dependsOn: [] }, context(link, host))).rejects.toThrow(/killed/);
    expect(await fs.readFile(join(link.target, 'notes.md'), 'utf8')).toBe('version 1');
    await fs.writeFile(join(link.path, 'notes.md'), 'version 2, after the kill');
    expect((await plan(link))?.reason).toContain('resume an interrupted adopt');
    await adopt(link);
    expect(await fs.readFile(join(link.path, 'notes.md'), 'utf8')).toBe('version 2, after the kill');
    expect((await allNames(link.target)).filter((name) => name.includes('persist-conflict'))).toEqual([]);
  });

  it('a file created during the copy is in the mount before the original is moved aside', async () => {
    const link = linkNamed('memory');
    await write(join(link.path, 'a/one.md'), 'one');
    await write(join(link.path, 'b.md'), 'b');
    const host = new HookedHost();
    let created = false;
    host.after.copyFile = async (from) => {
      if (!created && from === join(link.path, 'b.md')) {
        created = true;
        await write(join(link.path, 'late.md'), 'written while the folder was copied');
      }
    };
    let movedAside = false;
    host.before.rename = async (from) => {
      if (from === link.path) {
        movedAside = true;
        expect(await fs.readFile(join(link.target, 'late.md'), 'utf8')).toBe('written while the folder was copied');
      }
    };
    await adopt(link, host);
    expect(movedAside).toBe(true);
    expect(await fs.readFile(join(link.path, 'late.md'), 'utf8')).toBe('written while the folder was copied');
  });

  it('a different file that was in the mount before stays; the local one is a conflict copy beside it', async () => {
    const link = linkNamed('memory');
    await write(join(link.target, 'notes.md'), 'the bucket had this');
    await write(join(link.path, 'notes.md'), 'local');
    const outcome = await adopt(link);
    expect(await fs.readFile(join(link.path, 'notes.md'), 'utf8')).toBe('the bucket had this');
    const conflicts = (await allNames(link.target)).filter((name) => name.includes('persist-conflict'));
    expect(conflicts).toHaveLength(1);
    expect(await fs.readFile(join(link.target, conflicts[0]!), 'utf8')).toBe('local');
    expect(outcome.notes?.join('\n')).toContain('differs from the mount');
  });

  it("a user's file named like a conflict copy is not taken for persist's", async () => {
    const link = linkNamed('memory');
    await write(join(link.target, 'notes.md'), 'the bucket had this');
    await write(join(link.target, 'notes.md.persist-conflict-mine'), 'local');
    await write(join(link.path, 'notes.md'), 'local');
    await adopt(link);
    const conflicts = (await allNames(link.target)).filter((name) => /persist-conflict-\d{8}T\d{6}Z$/.test(name));
    expect(conflicts).toHaveLength(1);
    expect(await fs.readFile(join(link.target, 'notes.md.persist-conflict-mine'), 'utf8')).toBe('local');
  });
});

describe('adopt of odd contents', () => {
  it('a name that is not UTF-8 reaches the mount under its escaped key, reported; the rest keeps its names', async () => {
    const link = linkNamed('memory');
    const latin1 = Buffer.concat([Buffer.from(`${link.path}/caf`), Buffer.from([0xe9]), Buffer.from('.md')]);
    await write(latin1, 'latin-1 name');
    await write(Buffer.concat([Buffer.from(`${link.path}/d`), Buffer.from([0xff]), Buffer.from('/inner.md')]), 'inside');
    await write(join(link.path, 'plain.md'), 'plain');
    const outcome = await adopt(link);
    expect(await fs.readFile(join(link.path, '%persist%caf%E9.md'), 'utf8')).toBe('latin-1 name');
    expect(await fs.readFile(join(link.path, '%persist%d%FF', 'inner.md'), 'utf8')).toBe('inside');
    expect(await fs.readFile(join(link.path, 'plain.md'), 'utf8')).toBe('plain');
    expect(outcome.notes?.join('\n')).toContain(`${link.path}/caf\\xE9.md is not a UTF-8 name, which a bucket cannot hold: it is in the mount as ${link.target}/%persist%caf%E9.md`);
    const [backup] = await fs.readdir(backupDir(workspace));
    expect(await fs.readFile(Buffer.concat([Buffer.from(`${backupDir(workspace)}/${backup}/caf`), Buffer.from([0xe9]), Buffer.from('.md')]), 'utf8')).toBe('latin-1 name');
  });

  it('hard links stay links where the mount keeps them (the bytes once); elsewhere each name gets a copy, reported', async () => {
    const link = linkNamed('memory');
    await write(join(link.path, 'a.md'), 'shared bytes');
    await fs.link(join(link.path, 'a.md'), join(link.path, 'b.md'));
    await fs.mkdir(join(link.path, 'sub'));
    await fs.link(join(link.path, 'a.md'), join(link.path, 'sub', 'c.md'));
    await adopt(link);
    const [a, b, c] = await Promise.all(['a.md', 'b.md', 'sub/c.md'].map((name) => fs.stat(join(link.target, name))));
    expect(b!.ino).toBe(a!.ino);
    expect(c!.ino).toBe(a!.ino);

    const other = linkNamed('logs');
    await write(join(other.path, 'x.log'), 'x');
    await fs.link(join(other.path, 'x.log'), join(other.path, 'y.log'));
    const host = new HookedHost();
    host.before.link = async (_, path) => {
      if (path.startsWith(mount)) throw Object.assign(new Error(`ENOTSUP: operation not supported, link '${path}'`), { code: 'ENOTSUP' });
    };
    const outcome = await adopt(other, host);
    expect(await fs.readFile(join(other.target, 'y.log'), 'utf8')).toBe('x');
    expect((await fs.stat(join(other.target, 'y.log'))).ino).not.toBe((await fs.stat(join(other.target, 'x.log'))).ino);
    expect(outcome.notes?.join('\n')).toContain('1 hard link could not be kept as links in the mount (the bucket stores none): each name holds its own copy: y.log');
  });

  it('a sparse file stays sparse in a mount that can hold holes', async () => {
    const link = linkNamed('data');
    await fs.mkdir(link.path);
    const handle = await fs.open(join(link.path, 'disk.img'), 'w');
    await handle.write(Buffer.from('start'), 0, 5, 0);
    await handle.write(Buffer.from('end'), 0, 3, 16 * 1024 * 1024 - 3);
    await handle.close();
    await adopt(link);
    const stored = await fs.stat(join(link.target, 'disk.img'));
    expect(stored.size).toBe(16 * 1024 * 1024);
    expect(stored.blocks * 512).toBeLessThan(1024 * 1024);
    const data = await fs.readFile(join(link.path, 'disk.img'));
    expect(createHash('sha256').update(data).digest('hex')).toBe(createHash('sha256').update(Buffer.concat([Buffer.from('start'), Buffer.alloc(16 * 1024 * 1024 - 8), Buffer.from('end')])).digest('hex'));
  });

  it('relative symlinks inside the folder keep working through the link; one leading outside is made absolute, reported', async () => {
    const link = linkNamed('memory');
    await write(join(link.path, '2024', 'day.md'), 'a day');
    await fs.symlink('2024/day.md', join(link.path, 'today'));
    await fs.symlink('../day.md', join(link.path, '2024', 'up')); // inside too: 2024/../day.md does not exist, dangling as before
    await write(join(workspace, 'config', 'settings.json'), '{"a":1}');
    await fs.symlink('../config/settings.json', join(link.path, 'settings'));
    const outcome = await adopt(link);
    expect(await fs.readFile(join(link.path, 'today'), 'utf8')).toBe('a day');
    expect(await fs.readlink(join(link.target, 'today'))).toBe('2024/day.md');
    expect(await fs.readlink(join(link.target, '2024', 'up'))).toBe('../day.md');
    expect(await fs.readFile(join(link.path, 'settings'), 'utf8')).toBe('{"a":1}');
    expect(await fs.readlink(join(link.target, 'settings'))).toBe(join(workspace, 'config', 'settings.json'));
    expect(outcome.notes?.join('\n')).toContain(`the relative symlink ${join(link.path, 'settings')} points outside the folder: it is stored as an absolute link to ${join(workspace, 'config', 'settings.json')}`);
  });

  it("a user's symlink named like persist's temporary link survives a relink", async () => {
    const link = linkNamed('memory');
    await fs.mkdir(link.target, { recursive: true });
    await fs.symlink(join(root, 'elsewhere'), link.path);
    await fs.symlink('/my/own/target', join(workspace, '.memory.persist-link-tmp'));
    const planned = await plan(link);
    expect(planned?.action).toBe('relink');
    await applyPlanned({ ...planned!, dependsOn: [] }, context(link, realHost));
    expect(await fs.readlink(link.path)).toBe(link.target);
    expect(await fs.readlink(join(workspace, '.memory.persist-link-tmp'))).toBe('/my/own/target');
  });
});
