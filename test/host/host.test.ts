import { mkdtemp, rm, writeFile, symlink, mkdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { MemoryHost } from '../../src/host/memory.js';
import { RealHost } from '../../src/host/real.js';
import { readOnlyHost, recordingHost } from '../../src/host/wrappers.js';
import { ReadOnlyViolation } from '../../src/host/types.js';

describe('RealHost', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'persist-host-'));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('reports missing paths as null and symlinks as symlinks', async () => {
    const host = new RealHost();
    await writeFile(join(dir, 'a'), 'hello');
    await symlink(join(dir, 'a'), join(dir, 'link'));
    await symlink(join(dir, 'nowhere'), join(dir, 'dangling'));
    expect(await host.lstat(join(dir, 'missing'))).toBeNull();
    expect((await host.lstat(join(dir, 'link')))?.type).toBe('symlink');
    expect((await host.stat(join(dir, 'link')))?.type).toBe('file');
    expect(await host.stat(join(dir, 'dangling'))).toBeNull();
    expect(await host.hashFile(join(dir, 'a'))).toBe('2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824');
    expect((await host.readHead(join(dir, 'a'), 2)).toString()).toBe('he');
  });

  it('probes a directory and a missing path', async () => {
    const host = new RealHost();
    await mkdir(join(dir, 'd'));
    await writeFile(join(dir, 'd', 'x'), '');
    expect(await host.probe(join(dir, 'd'), 5000)).toEqual({ state: 'ok', entries: 1 });
    expect(await host.probe(join(dir, 'nope'), 5000)).toEqual({ state: 'missing' });
  });

  it('writes atomically with a mode and leaves no temporary file', async () => {
    const host = new RealHost();
    const target = join(dir, 'f');
    await host.writeFileAtomic(target, 'secret', { mode: 0o600 });
    expect((await host.lstat(target))?.mode).toBe(0o600);
    expect(await host.readdir(dir)).toEqual(['f']);
  });

  it('runs a command without a shell and reports a missing one as 127', async () => {
    const host = new RealHost();
    const ok = await host.run('sh', ['-c', 'echo "$X"; exit 3'], { env: { X: 'from-env', PATH: process.env.PATH } });
    expect(ok).toMatchObject({ exitCode: 3, stdout: 'from-env\n' });
    expect((await host.run('persist-no-such-command', [])).exitCode).toBe(127);
  });
});

describe('wrappers', () => {
  it('read-only host refuses writes and non-read-only commands but allows reads', async () => {
    const memory = new MemoryHost().addFile('/w/a', 'x');
    const host = readOnlyHost(memory);
    expect((await host.lstat('/w/a'))?.type).toBe('file');
    await expect(host.writeFile('/w/b', 'y')).rejects.toBeInstanceOf(ReadOnlyViolation);
    await expect(host.remove('/w/a')).rejects.toBeInstanceOf(ReadOnlyViolation);
    await expect(host.run('git', ['gc'])).rejects.toBeInstanceOf(ReadOnlyViolation);
    memory.runHandler = () => ({ exitCode: 0, stdout: 'ok', stderr: '', timedOut: false });
    await expect(host.run('git', ['cat-file', '-e', 'abc'], { readOnly: true })).resolves.toMatchObject({ stdout: 'ok' });
    expect(memory.nodes.has('/w/b')).toBe(false);
  });

  it('recording host passes writes through and lists them', async () => {
    const memory = new MemoryHost().addDir('/w');
    const host = recordingHost(memory);
    await host.writeFile('/w/b', 'y');
    await host.symlink('/w/b', '/w/l');
    expect(host.writes).toEqual([
      { method: 'writeFile', path: '/w/b' },
      { method: 'symlink', path: '/w/l' },
    ]);
    expect((await memory.readFile('/w/l')).toString()).toBe('y');
  });
});

describe('MemoryHost', () => {
  it('follows symlinks for stat and readdir, not for lstat', async () => {
    const host = new MemoryHost().addFile('/mnt/b/workspace/memory/note.md', 'n').addSymlink('/ws/memory', '/mnt/b/workspace/memory');
    expect((await host.lstat('/ws/memory'))?.type).toBe('symlink');
    expect((await host.stat('/ws/memory'))?.type).toBe('dir');
    expect(await host.readdir('/ws/memory')).toEqual(['note.md']);
    expect(await host.readlink('/ws/memory')).toBe('/mnt/b/workspace/memory');
  });

  it('renames whole trees and refuses to rename over a non-empty directory', async () => {
    const host = new MemoryHost().addFile('/a/x/1', '1').addFile('/b/y', 'y');
    await expect(host.rename('/a/x', '/b')).rejects.toMatchObject({ code: 'ENOTEMPTY' });
    await host.rename('/a/x', '/c');
    expect(await host.readdir('/c')).toEqual(['1']);
    expect(await host.lstat('/a/x')).toBeNull();
  });
});
