// The local copy of a manifest's shards (src/resources/sync/manifest-cache.ts) on real folders:
// a read takes the root from the store and only the shards whose copy is missing or wrong.
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { RealHost } from '../../src/host/real.js';
import { readOnlyHost } from '../../src/host/wrappers.js';
import { ShardCache } from '../../src/resources/sync/manifest-cache.js';
import { MANIFEST_NAME, readManifest, SHARD_DIR_NAME, writeManifest, type ManifestEntry } from '../../src/resources/sync/manifest.js';
import { MountedStore } from '../../src/store/mounted.js';
import type { Store } from '../../src/store/types.js';

const host = new RealHost();
let root: string;
let mirror: string;
let cacheDir: string;

function entries(count: number, sha = 'a'): Record<string, ManifestEntry> {
  const files: Record<string, ManifestEntry> = {};
  for (let i = 0; i < count; i++) files[`notes/${i}.md`] = { size: i, mtimeMs: 1_700_000_000_000 + i, sha256: sha.repeat(64), mode: 0o644 };
  return files;
}

/** The store, counting the keys it reads. */
function counting(store: Store): Store & { reads: string[] } {
  const reads: string[] = [];
  return new Proxy(store, {
    get(target, name, receiver) {
      if (name === 'reads') return reads;
      const value = Reflect.get(target, name, receiver) as unknown;
      if (name === 'read' && typeof value === 'function') return (key: string) => (reads.push(key), (value as (k: string) => Promise<Buffer>).call(target, key));
      return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(target) : value;
    },
  }) as Store & { reads: string[] };
}

/** A fresh cache object (as a new process has: nothing parsed in memory), over the same folder. */
const freshCache = (through = host) => new ShardCache(through, cacheDir);
const shardReads = (reads: string[]) => reads.filter((key) => key.startsWith(`${SHARD_DIR_NAME}/`));

beforeEach(async () => {
  root = await mkdtemp(join(tmpdir(), 'persist-manifest-cache-'));
  mirror = join(root, 'mirror');
  cacheDir = join(root, 'state', 'manifests', 'x');
});
afterEach(async () => {
  await rm(root, { recursive: true, force: true });
});

describe('the local copy of a manifest', () => {
  it('a read after this machine wrote the manifest takes only the root from the store', async () => {
    await writeManifest(new MountedStore(host, mirror), '', entries(900), '2026-01-01T00:00:00.000Z', null, freshCache());
    expect((await readdir(cacheDir)).filter((name) => name.endsWith('.json'))).toHaveLength(8);
    const store = counting(new MountedStore(host, mirror));
    const manifest = (await readManifest(store, '', freshCache()))!;
    expect(Object.keys(manifest.files)).toHaveLength(900);
    expect(store.reads).toEqual([MANIFEST_NAME]);
  });

  it('another machine rewrote one shard: only that shard is read, and its entries are the store\'s', async () => {
    await writeManifest(new MountedStore(host, mirror), '', entries(900), '2026-01-01T00:00:00.000Z', null, freshCache());
    const changed = entries(900);
    changed['notes/5.md'] = { ...changed['notes/5.md']!, sha256: 'b'.repeat(64) };
    const previous = await readManifest(new MountedStore(host, mirror), '');
    await writeManifest(new MountedStore(host, mirror), '', changed, '2026-01-02T00:00:00.000Z', previous); // no cache: another machine
    const store = counting(new MountedStore(host, mirror));
    const manifest = (await readManifest(store, '', freshCache()))!;
    expect(shardReads(store.reads)).toHaveLength(1);
    expect(manifest.files['notes/5.md']!.sha256).toBe('b'.repeat(64));
    expect(manifest.pushedAt).toBe('2026-01-02T00:00:00.000Z');
  });

  it('a damaged copy (a write a crash cut short) is never used: that shard is read from the store, and the copy written again', async () => {
    await writeManifest(new MountedStore(host, mirror), '', entries(900), '2026-01-01T00:00:00.000Z', null, freshCache());
    const [name] = (await readdir(cacheDir)).filter((n) => n.endsWith('.json'));
    const whole = await readFile(join(cacheDir, name!));
    await writeFile(join(cacheDir, name!), whole.subarray(0, whole.length >> 1));
    const store = counting(new MountedStore(host, mirror));
    const manifest = (await readManifest(store, '', freshCache()))!;
    expect(shardReads(store.reads)).toHaveLength(1);
    expect(manifest).toEqual(await readManifest(new MountedStore(host, mirror), ''));
    expect(await readFile(join(cacheDir, name!))).toEqual(whole);
    const next = counting(new MountedStore(host, mirror));
    await readManifest(next, '', freshCache());
    expect(next.reads).toEqual([MANIFEST_NAME]);
  });

  it('while a push of this machine is between its shards and its root, every shard is read from the store', async () => {
    await writeManifest(new MountedStore(host, mirror), '', entries(900), '2026-01-01T00:00:00.000Z', null, freshCache());
    await freshCache().beginPush();
    const store = counting(new MountedStore(host, mirror));
    await readManifest(store, '', freshCache());
    expect(shardReads(store.reads)).toHaveLength(8);
  });

  it('a read-only read (plan) keeps nothing on disk; a writable read in the same process saves what it parsed', async () => {
    await writeManifest(new MountedStore(host, mirror), '', entries(900), '2026-01-01T00:00:00.000Z'); // no cache
    const shared = new Map();
    await readManifest(new MountedStore(host, mirror), '', new ShardCache(readOnlyHost(host), cacheDir, shared));
    expect(await readdir(cacheDir).catch(() => [])).toEqual([]);
    const store = counting(new MountedStore(host, mirror));
    await readManifest(store, '', new ShardCache(host, cacheDir, shared));
    expect(shardReads(store.reads)).toEqual([]); // parsed already
    expect((await readdir(cacheDir)).filter((n) => n.endsWith('.json'))).toHaveLength(8);
  });
});
