// A folder to adopt that holds what persist cannot read (mode 000, as a user other than root sees
// it): the plan names it as a conflict with the fix, apply refuses before it writes anything, and
// a file that becomes unreadable during the copy stops the adopt with one clear line; nothing is
// lost and the folder stays where it is.
import * as fs from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeEach, expect, it } from 'vitest';
import type { ActionContext } from '../../src/engine/apply.js';
import { RealHost } from '../../src/host/real.js';
import type { Host, HostPath } from '../../src/host/types.js';
import { readOnlyHost } from '../../src/host/wrappers.js';
import { pathString } from '../../src/host/names.js';
import { adoptDirectory, journalPath } from '../../src/resources/link/adopt.js';
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

/** Real permission bits, honoured as a non-root user would see them (these tests may run as root; as in test/sync/trust.test.ts). */
function permissionsHost(hooks: { afterCopy?: (from: string) => Promise<void> } = {}): Host {
  const denied = async (path: HostPath, needs: 'r' | 'x'): Promise<void> => {
    if (process.getuid?.() !== 0) return; // the kernel does it
    const info = await realHost.lstat(path);
    if (info && (info.mode & (needs === 'r' ? 0o444 : 0o111)) === 0) throw Object.assign(new Error(`EACCES: permission denied, open '${pathString(path)}'`), { code: 'EACCES' });
  };
  return Object.assign(Object.create(realHost) as RealHost, {
    readdir: async (path: HostPath) => (await denied(path, 'r'), realHost.readdir(path)),
    readdirNames: async (path: HostPath) => (await denied(path, 'r'), realHost.readdirNames(path)),
    readFile: async (path: HostPath) => (await denied(path, 'r'), realHost.readFile(path)),
    readHead: async (path: HostPath, bytes: number) => (await denied(path, 'r'), realHost.readHead(path, bytes)),
    hashFile: async (path: HostPath) => (await denied(path, 'r'), realHost.hashFile(path)),
    copyFile: async (from: HostPath, to: HostPath, options?: { sparse?: boolean }) => {
      await denied(from, 'r');
      await realHost.copyFile(from, to, options);
      await hooks.afterCopy?.(pathString(from));
    },
  });
}

async function plan(link: ResolvedLink, host: Host) {
  return diffLink(link, await observeLink(link, { host: readOnlyHost(host), mountReady: { data: true } }));
}

async function tree(dir: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const name of (await fs.readdir(dir, { recursive: true })).map(String).sort()) {
    const stats = await fs.lstat(join(dir, name));
    out[name] = stats.isFile() ? await fs.readFile(join(dir, name), 'utf8') : stats.isDirectory() ? '(dir)' : '(other)';
  }
  return out;
}

const folders = linkFolders('persist-link-unreadable-');
beforeEach(() => {
  ({ root, workspace, mount } = folders);
});

afterEach(async () => {
  await fs.chmod(join(root, 'ws', 'notes', 'private'), 0o755).catch(() => undefined);
});

async function folderWithUnreadable(link: ResolvedLink): Promise<void> {
  await fs.mkdir(join(link.path, 'private'), { recursive: true });
  await fs.writeFile(join(link.path, 'ok.md'), 'ok');
  await fs.writeFile(join(link.path, 'secret.md'), 'mine only', { mode: 0o600 });
  await fs.writeFile(join(link.path, 'zero'), 'unreadable');
  await fs.chmod(join(link.path, 'zero'), 0o000);
  await fs.writeFile(join(link.path, 'private', 'inside.md'), 'inside');
  await fs.chmod(join(link.path, 'private'), 0o000);
}

it('the plan names what cannot be read as a conflict with the fix; a readable 0600 file is not named', async () => {
  const link = linkNamed('notes');
  await folderWithUnreadable(link);
  const planned = await plan(link, permissionsHost());
  expect(planned?.action).toBe('conflict');
  expect(planned?.conflict?.message).toBe(`${link.path} cannot be adopted: it holds 2 entries persist cannot read: private/ (EACCES), zero (EACCES)`);
  expect(planned?.conflict?.fix).toMatch(/^make them readable by the user persist runs as \(chmod u\+r.*\) or move them out of .*notes, then run persist apply again$/);
  // Made readable: an adopt again.
  await fs.chmod(join(link.path, 'zero'), 0o644);
  await fs.chmod(join(link.path, 'private'), 0o755);
  expect((await plan(link, permissionsHost()))?.action).toBe('adopt');
});

it('apply without a fresh plan refuses in one line naming the file, before writing anything; the folder stays', async () => {
  const link = linkNamed('notes');
  await fs.mkdir(link.path);
  await fs.writeFile(join(link.path, 'ok.md'), 'ok');
  await fs.writeFile(join(link.path, 'zero'), 'unreadable');
  await fs.chmod(join(link.path, 'zero'), 0o000);
  const before = await tree(link.path);
  const error = (await adoptDirectory(permissionsHost(), link, { report: () => {} }).catch((e: unknown) => e)) as Error;
  expect(error.message).toBe(
    `cannot adopt ${link.path}: it holds 1 entry persist cannot read: zero (EACCES); make it readable by the user persist runs as (chmod u+r, or a+r for another user's file; a folder also needs x) or move it out of ${link.path}, then run persist apply again; nothing was moved, the folder is left as it is`,
  );
  expect(error.message).not.toContain('\n');
  expect((await fs.lstat(link.path)).isDirectory()).toBe(true);
  expect(await tree(link.path)).toEqual(before);
  await expect(fs.access(journalPath(link))).rejects.toThrow(); // nothing started
  await expect(fs.access(link.target)).rejects.toThrow();
});

it('a file that becomes unreadable during the copy stops the adopt with a clear line, the folder in place; once readable the adopt finishes', async () => {
  const link = linkNamed('notes');
  await fs.mkdir(join(link.path, 'b'), { recursive: true });
  await fs.writeFile(join(link.path, 'a.md'), 'a');
  await fs.writeFile(join(link.path, 'b', 'later.md'), 'later');
  let closed = false;
  const host = permissionsHost({
    afterCopy: async (from) => {
      // Someone takes the read permission away once the copy is under way.
      if (!closed && from === join(link.path, 'a.md')) {
        closed = true;
        await fs.chmod(join(link.path, 'b', 'later.md'), 0o000);
      }
    },
  });
  const planned = await plan(link, host);
  expect(planned?.action).toBe('adopt');
  const error = (await applyPlanned({ ...planned!, dependsOn: [] }, context(link, host)).catch((e: unknown) => e)) as Error;
  expect(error.message).toBe(
    `cannot adopt ${link.path}: persist cannot read ${join(link.path, 'b', 'later.md')} (EACCES); make it readable by the user persist runs as (chmod u+r, or a+r for another user's file; a folder also needs x) or move it out of ${link.path}, then run persist apply again; nothing was moved, the folder is left as it is`,
  );
  expect(error.message).not.toMatch(/copyfile|\n/);
  expect((await fs.lstat(link.path)).isDirectory()).toBe(true);
  expect(await fs.readFile(join(link.path, 'a.md'), 'utf8')).toBe('a');
  // The next plan names it; made readable again, the adopt resumes and finishes.
  expect((await plan(link, host))?.conflict?.message).toContain('b/later.md (EACCES)');
  await fs.chmod(join(link.path, 'b', 'later.md'), 0o644);
  const resumed = await plan(link, host);
  expect(resumed?.reason).toContain('resume an interrupted adopt');
  await applyPlanned({ ...resumed!, dependsOn: [] }, context(link, host));
  expect(await fs.readlink(link.path)).toBe(link.target);
  expect(await fs.readFile(join(link.path, 'b', 'later.md'), 'utf8')).toBe('later');
  expect(await plan(link, host)).toBeNull();
});
