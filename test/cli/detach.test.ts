// `persist detach`: a linked folder becomes a local folder again, copied from the mount and
// verified; nothing in the bucket is deleted.
import { chmodSync, lstatSync, mkdirSync, readFileSync, readlinkSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { converge, makeFixture, snapshotTree } from './helpers.js';

describe('persist detach', () => {
  it('replaces the link with a local copy of the mount folder, leaves the bucket as it was', async () => {
    const f = makeFixture({ links: ['memory', 'logs'] });
    await converge(f);
    mkdirSync(join(f.link('memory'), 'deep'), { recursive: true });
    writeFileSync(join(f.link('memory'), 'note.md'), 'remember\n');
    writeFileSync(join(f.link('memory'), 'deep', 'x.bin'), Buffer.from([0, 1, 2, 255]), { mode: 0o600 });
    const bucket = snapshotTree(f.bucket);

    const refused = await f.run(['detach', '--target', 'link.memory']);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/--auto-approve/);
    expect(lstatSync(f.link('memory')).isSymbolicLink()).toBe(true);

    const done = await f.run(['detach', '--target', 'link.memory', '--auto-approve']);
    expect(done.code).toBe(0);
    expect(done.stdout).toMatch(/link\.memory: detached: .* \(2 files, .* copied and verified\)/);
    expect(lstatSync(f.link('memory')).isDirectory()).toBe(true);
    expect(readFileSync(join(f.link('memory'), 'note.md'), 'utf8')).toBe('remember\n');
    expect(readFileSync(join(f.link('memory'), 'deep', 'x.bin'))).toEqual(Buffer.from([0, 1, 2, 255]));
    expect(statSync(join(f.link('memory'), 'deep', 'x.bin')).mode & 0o777).toBe(0o600);
    expect(snapshotTree(f.bucket)).toEqual(bucket);
    // The other link is untouched, and detaching again is a no-op.
    expect(lstatSync(f.link('logs')).isSymbolicLink()).toBe(true);
    const again = await f.run(['detach', '--target', 'link.memory', '--auto-approve']);
    expect(again.code).toBe(0);
    expect(again.stdout).toMatch(/nothing to detach/);
  }, 60_000);

  it('keeps empty folders, folder modes and symlinks of the mount folder', async () => {
    const f = makeFixture({ links: ['memory'] });
    await converge(f);
    const memory = f.link('memory');
    mkdirSync(join(memory, 'empty'));
    mkdirSync(join(memory, 'private', 'inner'), { recursive: true });
    writeFileSync(join(memory, 'private', 'inner', 'secret.txt'), 's\n');
    symlinkSync('private/inner/secret.txt', join(memory, 'shortcut'));
    chmodSync(join(memory, 'private'), 0o700);
    chmodSync(join(memory, 'empty'), 0o750);

    const done = await f.run(['detach', '--target', 'link.memory', '--auto-approve']);
    expect(done.code).toBe(0);
    expect(lstatSync(memory).isDirectory()).toBe(true);
    expect(statSync(join(memory, 'empty')).isDirectory()).toBe(true);
    expect(statSync(join(memory, 'empty')).mode & 0o777).toBe(0o750);
    expect(statSync(join(memory, 'private')).mode & 0o777).toBe(0o700);
    expect(readlinkSync(join(memory, 'shortcut'))).toBe('private/inner/secret.txt');
    expect(readFileSync(join(memory, 'shortcut'), 'utf8')).toBe('s\n');
    expect(done.stdout).toMatch(/\(1 file, 3 folders, 1 symlink, .* copied and verified\)/);
  }, 60_000);

  it('an unknown target is an error naming the known links', async () => {
    const f = makeFixture({ links: ['memory'] });
    const result = await f.run(['detach', '--target', 'link.nope']);
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(/link\.nope: no link of that name .*known: link\.memory/);
  });
});
