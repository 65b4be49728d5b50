// `persist detach`: a linked folder becomes a local folder again, copied from the mount and
// verified; nothing in the bucket is deleted.
import { lstatSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
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

  it('an unknown target is an error naming the known links', async () => {
    const f = makeFixture({ links: ['memory'] });
    const result = await f.run(['detach', '--target', 'link.nope']);
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(/link\.nope: no link of that name .*known: link\.memory/);
  });
});
