// Hard links and sparse files in a sync (issue 12): the names of one file are restored as links
// (the bytes stored once), a file with holes comes back with its holes (and a `local` bucket keeps
// them too). Real folders, the real executor, a `local` bucket or the strict S3 server.
import { createHash } from 'node:crypto';
import { link, mkdir, open, readdir, readFile, rm, stat, writeFile, copyFile, rename } from 'node:fs/promises';
import { join } from 'node:path';
import { beforeEach, describe, expect, it } from 'vitest';
import { executePlan, type ActionResult } from '../../src/engine/apply.js';
import type { PlannedAction } from '../../src/engine/types.js';
import { RealHost } from '../../src/host/real.js';
import { readOnlyHost } from '../../src/host/wrappers.js';
import { syncModule } from '../../src/resources/sync/index.js';
import { readManifest } from '../../src/resources/sync/manifest.js';
import { verifyMirror } from '../../src/resources/sync/verify.js';
import { Sensitive } from '../../src/spec/sensitive.js';
import type { ResolvedEnvironment, ResolvedSync } from '../../src/spec/types.js';
import { MountedStore } from '../../src/store/mounted.js';
import { observing } from '../helpers/resources.js';
import { S3RVER_ACCESS_KEY, S3RVER_SECRET_KEY, startStrictS3Server } from '../helpers/s3server.js';
import { environment } from '../resources/sync-helpers.js';
import { folderPerTestWithState } from '../helpers/temp.js';

const host = new RealHost();
const MiB = 1024 * 1024;
let root: string;
let local: string;
let mount: string;
let envOf = (sync: ResolvedSync): ResolvedEnvironment => environment(mount, { syncs: { [sync.name]: sync } });

const testFolder = folderPerTestWithState('persist-shapes-');

beforeEach(async () => {
  root = testFolder();
  local = join(root, 'local');
  mount = join(root, 'mount');
  await mkdir(local, { recursive: true });
  await mkdir(mount, { recursive: true });
});

const sync: ResolvedSync = { name: 'state', bucket: 'data', from: '', relTo: 'state', to: '', delete: true, exclude: [], maxDeleteRatio: 0.5 };
const made = () => ({ ...sync, from: local, to: join(mount, 'state') });

async function plan(s: ResolvedSync): Promise<PlannedAction | null> {
  const observed = (await syncModule.observe(s, observing({ host: readOnlyHost(host), env: envOf(s), mountReady: { data: true } }))).state;
  const decided = syncModule.diff(s, JSON.parse(JSON.stringify(observed)), { allowShrink: false });
  return decided ? { ...decided, dependsOn: [] } : null;
}

async function applyAll(s: ResolvedSync): Promise<ActionResult> {
  const action = await plan(s);
  if (!action) throw new Error('expected an action');
  const view = { run: async (tasks: { run(report: (line: string) => void): Promise<ActionResult> }[]) => void (await Promise.all(tasks.map((t) => t.run(() => undefined)))) };
  const report = await executePlan([action], { host, env: envOf(s), options: { allowShrink: false }, view, signal: new AbortController().signal });
  const result = report.results.get(action.address)!;
  expect(result.status, result.message).toBe('applied');
  return result;
}

async function inode(path: string): Promise<number> {
  return (await stat(path)).ino;
}

/** A 24 MiB file holding 3 short runs of data, the rest holes. */
async function writeSparse(path: string): Promise<Buffer> {
  const handle = await open(path, 'w');
  await handle.write(Buffer.from('head'), 0, 4, 0);
  await handle.write(Buffer.alloc(10_000, 9), 0, 10_000, 9 * MiB);
  await handle.write(Buffer.from('tail'), 0, 4, 24 * MiB - 4);
  await handle.close();
  return readFile(path);
}

const sha = (data: Buffer) => createHash('sha256').update(data).digest('hex');

describe('hard links in a sync', () => {
  it('stores the bytes once, restores the names as links, and plans nothing afterwards', async () => {
    const s = made();
    await writeFile(join(local, 'a.txt'), 'shared bytes');
    await link(join(local, 'a.txt'), join(local, 'b.txt'));
    await mkdir(join(local, 'sub'));
    await link(join(local, 'a.txt'), join(local, 'sub', 'c.txt'));
    await writeFile(join(local, 'd.txt'), 'shared bytes'); // same bytes, another file
    await applyAll(s);
    expect(await plan(s)).toBeNull();
    expect((await readdir(join(mount, 'state'))).filter((name) => !name.startsWith('.persist-')).sort()).toEqual(['a.txt', 'd.txt']);
    const manifest = (await readManifest(new MountedStore(host, mount), 'state'))!;
    expect(manifest.files['b.txt']?.link).toBe('a.txt');
    expect(manifest.files['sub/c.txt']?.link).toBe('a.txt');
    expect(manifest.files['d.txt']?.link).toBeUndefined();
    expect((await verifyMirror(new MountedStore(host, mount), s, manifest, true)).problems).toEqual([]);

    await rm(local, { recursive: true });
    await applyAll(s);
    const a = await inode(join(local, 'a.txt'));
    expect(await inode(join(local, 'b.txt'))).toBe(a);
    expect(await inode(join(local, 'sub', 'c.txt'))).toBe(a);
    expect(await inode(join(local, 'd.txt'))).not.toBe(a);
    expect(await readFile(join(local, 'sub', 'c.txt'), 'utf8')).toBe('shared bytes');
    expect(await plan(s)).toBeNull();
  });

  it('a name that stops being a link is pushed as a file of its own, and restored as one', async () => {
    const s = made();
    await writeFile(join(local, 'a.txt'), 'shared');
    await link(join(local, 'a.txt'), join(local, 'b.txt'));
    await writeFile(join(local, 'x.txt'), 'x');
    await applyAll(s);
    // Same bytes, same mtime, but its own file now.
    await copyFile(join(local, 'b.txt'), join(local, 'b.new'));
    const { mtime } = await stat(join(local, 'b.txt'));
    await rename(join(local, 'b.new'), join(local, 'b.txt'));
    const { utimes } = await import('node:fs/promises');
    await utimes(join(local, 'b.txt'), mtime, mtime);
    expect((await plan(s))?.action).toBe('push');
    await applyAll(s);
    expect(await readFile(join(mount, 'state', 'b.txt'), 'utf8')).toBe('shared');
    expect(await plan(s)).toBeNull();
    await rm(local, { recursive: true });
    await applyAll(s);
    expect(await inode(join(local, 'b.txt'))).not.toBe(await inode(join(local, 'a.txt')));
  });
});

describe('sparse files in a sync', () => {
  it('a local bucket keeps the holes; the restore brings them back', async () => {
    const s = made();
    const data = await writeSparse(join(local, 'disk.img'));
    await writeFile(join(local, 'small.txt'), 'small');
    await applyAll(s);
    const stored = await stat(join(mount, 'state', 'disk.img'));
    expect(stored.size).toBe(24 * MiB);
    expect(stored.blocks * 512).toBeLessThan(MiB); // its data, not its size
    expect((await readManifest(new MountedStore(host, mount), 'state'))!.files['disk.img']?.sparse).toBe(true);
    expect(await plan(s)).toBeNull();
    await rm(local, { recursive: true });
    await applyAll(s);
    const restored = await stat(join(local, 'disk.img'));
    expect(restored.size).toBe(24 * MiB);
    expect(restored.blocks * 512).toBeLessThan(MiB);
    expect(sha(await readFile(join(local, 'disk.img')))).toBe(sha(data));
    expect(await plan(s)).toBeNull();
  });

  it('through the S3 API (every byte stored) the restore still gives back a sparse file', async () => {
    const server = await startStrictS3Server(['shapes']);
    const plain = envOf;
    try {
      envOf = (s) => {
        const env = environment(mount, { syncs: { [s.name]: s } });
        const credentials = { accessKeyId: new Sensitive(S3RVER_ACCESS_KEY), secretAccessKey: new Sensitive(S3RVER_SECRET_KEY) };
        env.buckets.data = { key: 'data', name: 'shapes', endpoint: server.endpoint, region: 'us-east-1', pathStyle: true, provider: 'other', credentials };
        return env;
      };
      const s = made();
      const data = await writeSparse(join(local, 'disk.img'));
      await writeFile(join(local, 'a'), 'shared');
      await link(join(local, 'a'), join(local, 'b'));
      await applyAll(s);
      expect((await server.listObjects('shapes')).filter((key) => key === 'state/a' || key === 'state/b')).toEqual(['state/a']);
      await rm(local, { recursive: true });
      await applyAll(s);
      const restored = await stat(join(local, 'disk.img'));
      expect(restored.blocks * 512).toBeLessThan(MiB);
      expect(sha(await readFile(join(local, 'disk.img')))).toBe(sha(data));
      expect(await inode(join(local, 'b'))).toBe(await inode(join(local, 'a')));
      expect(await plan(s)).toBeNull();
    } finally {
      envOf = plain;
      await server.stop();
    }
  });
});
