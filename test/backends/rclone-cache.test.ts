// rclone's VFS cache read from the outside (real files laid out as rclone 1.60 writes them), and
// what the mount's plan makes of a stopped daemon's leftovers.
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { dirtyItems } from '../../src/backends/rclone-cache.js';
import { RealHost } from '../../src/host/real.js';
import { diffMount, type MountObserved } from '../../src/resources/mount/index.js';
import { testBucket } from './fixtures.js';

const folders: string[] = [];
afterEach(async () => {
  for (const folder of folders.splice(0)) await rm(folder, { recursive: true, force: true });
});

async function item(cache: string, remote: string, key: string, data: string, meta: Record<string, unknown>): Promise<void> {
  for (const [root, content] of [['vfs', data], ['vfsMeta', JSON.stringify(meta)]] as const) {
    const path = join(cache, root, remote, 'bkt', key);
    await mkdir(dirname(path), { recursive: true });
    await writeFile(path, content);
  }
}

describe('dirtyItems', () => {
  it('finds written-not-uploaded files of every remote folder, and tells complete from partly cached', async () => {
    const cache = await mkdtemp(join(tmpdir(), 'persist-rclone-cache-'));
    folders.push(cache);
    await item(cache, 'persist', 'a/b/new.md', 'hello\n', { Size: 6, ModTime: '2026-12-01T10:00:00Z', Rs: [{ Pos: 0, Size: 6 }], Dirty: true });
    await item(cache, 'persist', 'a/clean.md', 'old\n', { Size: 4, Rs: [{ Pos: 0, Size: 4 }], Dirty: false });
    await item(cache, 'persist', 'big.bin', 'abc', { Size: 10, Rs: [{ Pos: 0, Size: 3 }], Dirty: true });
    await item(cache, 'persist{Pm0r5}', 'legacy.md', 'x', { Size: 1, Rs: [{ Pos: 0, Size: 1 }], Dirty: true });
    const items = await dirtyItems(new RealHost(), cache);
    expect(items.map((i) => [i.remote, i.key, i.complete])).toEqual([
      ['persist', 'a/b/new.md', true],
      ['persist', 'big.bin', false],
      ['persist{Pm0r5}', 'legacy.md', true],
    ]);
    expect(items[0]!.modTimeMs).toBe(Date.parse('2026-12-01T10:00:00Z'));
    expect(items[0]!.dataPath).toBe(join(cache, 'vfs', 'persist', 'bkt', 'a/b/new.md'));
  });

  it('is empty for a cache folder that does not exist', async () => {
    expect(await dirtyItems(new RealHost(), join(tmpdir(), 'persist-no-such-cache-folder'))).toEqual([]);
  });
});

describe('the mount plan with leftovers', () => {
  const bucket = testBucket('rclone', 'r2');
  const missing: MountObserved = { expected: { backend: 'rclone', bucket: bucket.name, path: bucket.mount.path }, state: 'missing' };

  it('mounts after uploading what can be uploaded, and says so', () => {
    const decision = diffMount(bucket, { ...missing, leftovers: { uploadable: 3, stranded: [], strandedCount: 0 } });
    expect(decision?.action).toBe('mount');
    expect(decision?.reason).toMatch(/first uploads 3 files a stopped rclone left in its cache/);
  });

  it('stops with a conflict naming each stranded file, where it is and why', () => {
    const stranded = [{ key: 'x.md', size: 10, where: '/state/cache/vfs/persist{Pm0r5}/b/x.md', reason: 'left by rclone under another configuration' }];
    const decision = diffMount(bucket, { ...missing, leftovers: { uploadable: 2, stranded, strandedCount: 1 } });
    expect(decision?.action).toBe('conflict');
    expect(decision?.conflict?.message).toContain('1 file written through an earlier rclone mount never reached bucket');
    expect(decision?.conflict?.message).toContain('/state/cache/vfs/persist{Pm0r5}/b/x.md (10 B): left by rclone under another configuration');
  });
});
