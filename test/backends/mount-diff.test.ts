import { mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { RealHost } from '../../src/host/real.js';
import { diffMount, mountReady, observeMount, type MountObserved, type MountState } from '../../src/resources/mount/index.js';
import type { BackendName } from '../../src/spec/types.js';
import { testBucket } from './fixtures.js';

function observed(backend: BackendName, state: MountState): MountObserved {
  return { expected: { backend, bucket: 'moltbot-data-dev', path: '/data/moltbot dev' }, ...state };
}

const healthy = { state: 'mounted', mountId: 40, fsType: 'fuse.s3fs', source: 'moltbot-data-dev', backend: 's3fs', matches: true, alive: true } as const;

describe('mount diff (FUSE backend)', () => {
  const bucket = testBucket('s3fs', 'r2');

  it('mounts when the path is missing or an empty directory', () => {
    for (const state of [{ state: 'missing' }, { state: 'dir', entries: 0, sample: [] }] satisfies MountState[]) {
      const action = diffMount(bucket, observed('s3fs', state));
      expect(action).toMatchObject({ address: 'mount.data', kind: 'mount', phase: 'mount', action: 'mount' });
      expect(action?.changes).toEqual([
        { field: 'backend', before: null, after: 's3fs' },
        { field: 'bucket', before: null, after: 'moltbot-data-dev' },
      ]);
    }
  });

  it('does nothing for a healthy mount of this bucket', () => {
    const state = observed('s3fs', healthy);
    expect(diffMount(bucket, state)).toBeNull();
    expect(mountReady(state)).toBe(true);
  });

  it('remounts a dead mount', () => {
    const state = observed('s3fs', { ...healthy, alive: false, deadReason: 'Transport endpoint is not connected' });
    const action = diffMount(bucket, state);
    expect(action?.action).toBe('remount');
    expect(action?.reason).toContain('Transport endpoint is not connected');
    expect(mountReady(state)).toBe(false);
  });

  it('replaces another bucket or another backend, showing both', () => {
    const otherBucket = diffMount(bucket, observed('s3fs', { ...healthy, source: 'moltbot-data-prod', matches: false }));
    expect(otherBucket?.action).toBe('replace');
    expect(otherBucket?.changes).toEqual([
      { field: 'backend', before: 's3fs', after: 's3fs' },
      { field: 'bucket', before: 'moltbot-data-prod', after: 'moltbot-data-dev' },
    ]);
    const otherBackend = diffMount(bucket, observed('s3fs', { ...healthy, fsType: 'fuse.rclone', backend: 'rclone', matches: false, alive: false }));
    expect(otherBackend?.action).toBe('replace');
    expect(otherBackend?.changes[0]).toEqual({ field: 'backend', before: 'rclone', after: 's3fs' });
    expect(otherBackend?.reason).toContain('(dead)');
    expect(mountReady(observed('s3fs', { ...healthy, matches: false }))).toBe(false);
  });

  it('is a conflict for a non-empty local directory, naming some of its entries and how to move them', () => {
    const action = diffMount(bucket, observed('s3fs', { state: 'dir', entries: 7, sample: ['a', 'b', 'c', 'd', 'e'] }));
    expect(action?.action).toBe('conflict');
    expect(action?.conflict?.message).toBe(
      '/data/moltbot dev is a local directory with 7 entries (a, b, c, d, e, ...) and nothing is mounted there; mounting s3fs over it would hide them',
    );
    expect(action?.conflict?.fix).toContain('mv /data/moltbot dev /data/moltbot dev.local');
  });

  it('is a conflict for a file at the mount path, and for a mount persist did not make', () => {
    expect(diffMount(bucket, observed('s3fs', { state: 'not-dir', type: 'file' }))?.conflict?.message).toBe('/data/moltbot dev is a file, not a directory');
    const foreign = diffMount(bucket, observed('s3fs', { ...healthy, fsType: 'fuse.sshfs', source: 'me@host:', backend: null, matches: false }));
    expect(foreign?.action).toBe('conflict');
    expect(foreign?.conflict?.message).toContain('fuse.sshfs mount of me@host: that persist did not make');
  });
});

describe('mount diff (local backend)', () => {
  const bucket = testBucket('local', 'other');

  it('creates a missing directory, accepts an existing one, refuses a file', () => {
    expect(diffMount(bucket, observed('local', { state: 'missing' }))?.action).toBe('mount');
    const dir = observed('local', { state: 'dir', entries: 3, sample: ['x', 'y', 'z'] });
    expect(diffMount(bucket, dir)).toBeNull();
    expect(mountReady(dir)).toBe(true);
    expect(diffMount(bucket, observed('local', { state: 'not-dir', type: 'symlink' }))?.action).toBe('conflict');
    expect(mountReady(observed('local', { state: 'missing' }))).toBe(false);
  });

  it('takes a volume mounted at the path as the directory, but replaces a persist FUSE mount', () => {
    const volume = observed('local', { state: 'mounted', mountId: 41, fsType: 'ext4', source: '/dev/sdb1', backend: null, matches: false, alive: true });
    expect(diffMount(bucket, volume)).toBeNull();
    expect(mountReady(volume)).toBe(true);
    const fuse = observed('local', { ...healthy, matches: false });
    expect(diffMount(bucket, fuse)?.action).toBe('replace');
  });
});

describe('observing an unmounted path (real files)', () => {
  let root: string;
  const host = new RealHost();
  afterEach(async () => {
    await rm(root, { recursive: true, force: true });
  });

  it('tells missing, empty, non-empty and non-directory apart without changing anything', async () => {
    root = await mkdtemp(join(tmpdir(), 'persist-mount-observe-'));
    const at = (path: string) => ({ ...testBucket('s3fs', 'other'), mount: { backend: 's3fs' as const, path, options: {} } });
    expect((await observeMount(at(join(root, 'nope')), host)).state).toBe('missing');
    await mkdir(join(root, 'empty'));
    expect(await observeMount(at(join(root, 'empty')), host)).toMatchObject({ state: 'dir', entries: 0, sample: [] });
    await mkdir(join(root, 'full'));
    await writeFile(join(root, 'full', 'keep.txt'), 'x');
    expect(await observeMount(at(join(root, 'full')), host)).toMatchObject({ state: 'dir', entries: 1, sample: ['keep.txt'] });
    await writeFile(join(root, 'file'), 'x');
    expect(await observeMount(at(join(root, 'file')), host)).toMatchObject({ state: 'not-dir', type: 'file' });
    await symlink(join(root, 'full'), join(root, 'link'));
    expect(await observeMount(at(join(root, 'link')), host)).toMatchObject({ state: 'not-dir', type: 'symlink' });
    expect((await observeMount(at(join(root, 'nope')), host)).state).toBe('missing'); // still not created
  });
});
