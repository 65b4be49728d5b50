// The sharded manifest on real folders: what a push writes, the version-1 manifest, and pushes
// interrupted at every write.
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdir, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { beforeEach, describe, expect, it } from 'vitest';
import type { PlannedAction } from '../../src/engine/types.js';
import { RealHost } from '../../src/host/real.js';
import type { Host } from '../../src/host/types.js';
import { readOnlyHost, recordingHost } from '../../src/host/wrappers.js';
import { syncModule } from '../../src/resources/sync/index.js';
import type { ResolvedSync } from '../../src/spec/types.js';
import { MANIFEST_NAME, parseManifestFile, readManifest, SHARD_DIR_NAME, shardFileName, shardOf } from '../../src/resources/sync/manifest.js';
import { applyContext, environment, snapshot, type Snapshot } from './sync-helpers.js';
import { MountedStore } from '../../src/store/mounted.js';
import { applyPlanned, observing } from '../helpers/resources.js';
import { folderPerTestWithState } from '../helpers/temp.js';

const host = new RealHost();
let root: string;
let local: string;
let mount: string;
let mirror: string;

function makeSync(overrides: Partial<ResolvedSync> = {}): ResolvedSync {
  return { name: 'state', bucket: 'data', from: local, relTo: 'state', to: mirror, delete: true, exclude: [], maxDeleteRatio: 0.5, ...overrides };
}

async function plan(sync: ResolvedSync): Promise<PlannedAction | null> {
  const env = environment(mount, { syncs: { [sync.name]: sync } });
  const observed = (await syncModule.observe(sync, observing({ host: readOnlyHost(host), env, mountReady: { data: true } }))).state;
  const decided = syncModule.diff(sync, observed, { allowShrink: false });
  return decided ? { ...decided, dependsOn: [] } : null;
}

async function apply(sync: ResolvedSync, action: PlannedAction, through: Host = host) {
  const env = environment(mount, { syncs: { [sync.name]: sync } });
  return applyPlanned(action, applyContext(through, env));
}

async function planAndApply(sync: ResolvedSync, through: Host = host) {
  const action = await plan(sync);
  if (!action) throw new Error('expected an action');
  return { action, outcome: await apply(sync, action, through) };
}

/** `count` small files spread over a few folders, as an agent's memory folder would be. */
async function writeFiles(dir: string, count: number): Promise<string[]> {
  const paths = Array.from({ length: count }, (_, i) => `notes/${i % 10}/${i}.md`);
  for (let i = 0; i < 10; i++) await mkdir(join(dir, 'notes', String(i)), { recursive: true });
  await Promise.all(paths.map((path, i) => writeFile(join(dir, path), `note ${i}\n${'x'.repeat(1000 + (i % 7) * 300)}\n`)));
  return paths;
}

function sha256(data: Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}

/** Path → sha256 of the snapshot's files (those in `only` when given): one comparison instead of one per file. */
function contentOf(files: Snapshot, only: string[] = Object.keys(files)): Record<string, string | undefined> {
  return Object.fromEntries(only.map((path) => [path, files[path]?.sha256]));
}

/** Every entry of the mirror's manifest names a file the mirror has; returns the paths whose content differs from their entry. */
async function checkManifestTruthful(): Promise<string[]> {
  const manifest = (await readManifest(new MountedStore(host, mirror), ''))!;
  const missing: string[] = [];
  const differing: string[] = [];
  for (const [path, entry] of Object.entries(manifest.files)) {
    const data = await readFile(join(mirror, path)).catch(() => null);
    if (!data) missing.push(path);
    else if (sha256(data) !== entry.sha256) differing.push(path);
  }
  expect(missing, 'listed in the manifest but missing from the mirror').toEqual([]);
  return differing;
}

const testFolder = folderPerTestWithState('persist-sync-shards-');

beforeEach(async () => {
  root = testFolder();
  local = join(root, 'local');
  mount = join(root, 'mount');
  mirror = join(mount, 'state');
  await mkdir(mount, { recursive: true });
});

describe('a push writes in proportion to what changed', () => {
  it('one changed file in a 2,000-file mirror: that file, one shard and the root', async () => {
    const sync = makeSync();
    const paths = await writeFiles(local, 2000);
    await planAndApply(sync);
    expect((await readdir(join(mirror, SHARD_DIR_NAME))).filter((name) => name !== 'generations').length).toBe(16);
    const mirrorBytes = Object.values(await snapshot(mirror)).reduce((sum, file) => sum + file.size, 0);

    const changed = paths[1234]!;
    await writeFile(join(local, changed), 'edited\n'.repeat(400));
    const recorder = recordingHost(host);
    const { action } = await planAndApply(sync, recorder);
    expect(action.changes).toContainEqual({ field: 'changes', before: null, after: '1 changed' });

    const mirrorWrites = recorder.writes.filter((w) => w.path.startsWith(`${mirror}/`));
    const finalPaths = mirrorWrites.filter((w) => w.method === 'rename' || w.method === 'writeFileAtomic').map((w) => w.path.slice(mirror.length + 1));
    const shard = `${SHARD_DIR_NAME}/${shardFileName(shardOf(changed, 16), 16)}`;
    // In this order: generation 1's copy of the file, the file, 1's copy of the shard, the shard,
    // 1's root, generation 2's record, the root. History adds one copy per replaced object.
    const kept = `${SHARD_DIR_NAME}/generations/1`;
    expect(finalPaths).toEqual([`${kept}/files/${changed}`, changed, `${kept}/${shard.replace(`${SHARD_DIR_NAME}/`, 'shards/')}`, shard, `${kept}/root.json`, `${SHARD_DIR_NAME}/generations/2.json`, MANIFEST_NAME]);
    // (MountedStore.copy removes its temporary name afterwards, a no-op when the rename took it.)
    expect(mirrorWrites.filter((w) => w.method === 'remove' && !w.path.includes('.persist-tmp-'))).toEqual([]);

    const sizes = await Promise.all(finalPaths.map(async (path) => (await stat(join(mirror, path))).size));
    const written = sizes.reduce((a, b) => a + b, 0);
    const withoutHistory = [changed, shard, MANIFEST_NAME].map((path) => sizes[finalPaths.indexOf(path)]!).reduce((a, b) => a + b, 0);
    const historyCalls = mirrorWrites.filter((w) => w.path.includes('/generations/')).length;
    console.log(`2,000-file mirror, 1 file changed: host write calls into the mirror ${mirrorWrites.length} with history, ${mirrorWrites.length - historyCalls} of them for the data itself`);
    console.log(`2,000-file mirror, 1 file changed: with history ${finalPaths.length} objects written, ${written} bytes; without history 3 objects, ${withoutHistory} bytes`);
    const rootSize = (await stat(join(mirror, MANIFEST_NAME))).size;
    const shardSize = (await stat(join(mirror, shard))).size;
    console.log(`2,000-file mirror (${(mirrorBytes / 1024).toFixed(0)} KiB): a 1-file push wrote ${written} bytes (root ${rootSize}, shard ${shardSize})`);
    expect(rootSize).toBeLessThan(2000);
    expect(shardSize).toBeLessThan(25_000);
    expect(withoutHistory * 100).toBeLessThan(mirrorBytes);
    expect(written).toBeLessThan(withoutHistory * 2 + 2000); // the history: about one more copy of what changed
    expect(await plan(sync)).toBeNull();
  });
});

describe('a version-1 manifest (written by earlier versions)', () => {
  it('is read as it is, converted by the next push, and restores the same files', async () => {
    const sync = makeSync();
    const paths = await writeFiles(local, 300);
    await planAndApply(sync);
    // Turn the mirror into one written by an earlier version: a single file with every entry.
    const current = (await readManifest(new MountedStore(host, mirror), ''))!;
    await writeFile(join(mirror, MANIFEST_NAME), `${JSON.stringify({ version: 1, files: current.files, pushedAt: current.pushedAt }, null, 1)}\n`);
    await rm(join(mirror, SHARD_DIR_NAME), { recursive: true });
    // ... and this machine as one that ran that version: no lineage records (its sync state says it pushed).
    await rm(join(root, 'state', 'lineage'), { recursive: true });
    await rm(join(root, 'state', 'machine-id'));
    expect((await readManifest(new MountedStore(host, mirror), ''))!.storage).toEqual({ version: 1 });

    // Read: nothing to do, nothing written.
    const before = await snapshot(mirror);
    expect(await plan(sync)).toBeNull();
    expect(await snapshot(mirror)).toEqual(before);

    // The next push writes version 2.
    await writeFile(join(local, paths[7]!), 'changed');
    const { outcome } = await planAndApply(sync);
    expect(outcome.summary).toMatch(/^copied 1 file /);
    expect(parseManifestFile(await readFile(join(mirror, MANIFEST_NAME), 'utf8'), 'root').version).toBe(2);
    const converted = (await readManifest(new MountedStore(host, mirror), ''))!;
    expect(converted.storage).toMatchObject({ version: 2, interrupted: [] });
    expect(Object.keys(converted.files).sort()).toEqual(Object.keys(current.files).sort());
    expect(await plan(sync)).toBeNull();

    const original = await snapshot(local);
    await rm(local, { recursive: true });
    expect((await planAndApply(sync)).action.action).toBe('restore');
    const restored = await snapshot(local);
    expect(contentOf(restored)).toEqual(contentOf(original));
    expect(Object.values(restored).map((file) => file.mode)).toEqual(Object.values(original).map((file) => file.mode));
  });
});

/** Host that passes everything through but fails the write after the first `allowed` ones, as a crash would stop the push there. */
function crashingHost(inner: Host, allowed: number, at?: string): Host & { failedAt: () => string | null } {
  const writeMethods = new Set(['mkdir', 'writeFile', 'writeFileAtomic', 'copyFile', 'symlink', 'rename', 'remove', 'chmod', 'utimes', 'fsync']);
  let writes = 0;
  let failed: string | null = null;
  return new Proxy(inner, {
    get(target, name, receiver) {
      if (name === 'failedAt') return () => failed;
      const value = Reflect.get(target, name, receiver) as unknown;
      if (typeof value !== 'function') return value;
      if (!writeMethods.has(String(name))) return value.bind(target);
      return async (...args: unknown[]) => {
        if (failed !== null) throw new Error('simulated crash: the process is gone');
        if (writes++ >= allowed || `${String(name)} ${String(args[0])}` === at) {
          failed = `${String(name)} ${String(args[0])}`;
          throw new Error(`simulated crash at ${failed}`);
        }
        return (value as (...a: unknown[]) => Promise<unknown>).apply(target, args);
      };
    },
  }) as Host & { failedAt: () => string | null };
}

describe('a first push killed midway (new files are written in place)', () => {
  it('leaves a mirror where only the files its written shards list are trusted: a partial file is never restored, and the next push completes it', async () => {
    const sync = makeSync();
    const paths = await writeFiles(local, 450); // four shards
    const original = await snapshot(local);
    const action = (await plan(sync))!;
    expect(action.action).toBe('push');
    // Crash once the first shard is written and before the root, as a killed container would.
    let allowed = 40;
    for (; ; allowed += 40) {
      await rm(mirror, { recursive: true, force: true });
      await rm(join(root, 'state'), { recursive: true, force: true });
      const error = await apply(sync, action, crashingHost(host, allowed)).then(() => null, (e: unknown) => e as Error);
      expect(error, 'the push should have been cut off before its root').not.toBeNull();
      const shards = (await readdir(join(mirror, SHARD_DIR_NAME)).catch(() => [] as string[])).filter((name) => /^\d+-of-4\.json$/.test(name));
      if (shards.length >= 1 && shards.length < 4) break;
    }
    expect(await readdir(mirror)).not.toContain(MANIFEST_NAME);
    const listedByShards = new Set<string>();
    for (const name of await readdir(join(mirror, SHARD_DIR_NAME))) {
      if (/^\d+-of-4\.json$/.test(name)) for (const path of Object.keys(JSON.parse(await readFile(join(mirror, SHARD_DIR_NAME, name), 'utf8')).files)) listedByShards.add(path);
    }
    // The kill hit a file being written in place: a partial object under a key no shard lists.
    const partial = paths.find((path) => !listedByShards.has(path))!;
    await mkdir(join(mirror, partial, '..'), { recursive: true });
    await writeFile(join(mirror, partial), 'note 1\nxx');

    const templateMirror = join(root, 'template-mirror');
    const templateState = join(root, 'template-state');
    execFileSync('cp', ['-a', mirror, templateMirror]);
    execFileSync('cp', ['-a', join(root, 'state'), templateState]);

    // A new container: only whole files come back, each as it was pushed.
    const localBefore = join(root, 'local-before');
    execFileSync('mv', [local, localBefore]);
    await rm(join(root, 'state'), { recursive: true, force: true });
    const { action: restore } = await planAndApply(sync);
    expect(restore.action).toBe('restore');
    const restored = await snapshot(local);
    expect(Object.keys(restored).sort()).toEqual([...listedByShards].sort());
    expect(contentOf(restored)).toEqual(contentOf(original, [...listedByShards]));

    // The machine that was killed (its folder and state as they were): its next push completes the mirror.
    for (const dir of [local, mirror, join(root, 'state')]) await rm(dir, { recursive: true });
    execFileSync('mv', [localBefore, local]);
    execFileSync('mv', [templateMirror, mirror]);
    execFileSync('mv', [templateState, join(root, 'state')]);
    const { action: retry } = await planAndApply(sync);
    expect(retry.action).toBe('push');
    expect(await plan(sync)).toBeNull();
    expect(await checkManifestTruthful()).toEqual([]);
    expect(await readFile(join(mirror, partial), 'utf8')).toBe(await readFile(join(local, partial), 'utf8'));
    expect(await readdir(join(mirror, SHARD_DIR_NAME))).not.toContain('first-push.json');
  }, 120_000);
});

describe('a push interrupted at any write', () => {
  it('leaves a manifest that lists only files in the mirror, and the next apply repairs it with nothing lost', async () => {
    const sync = makeSync();
    const paths = await writeFiles(local, 220); // two shards
    await planAndApply(sync);
    // Changes in every shard: edits, additions, deletions (below maxDeleteRatio).
    const edited = paths.filter((_, i) => i % 50 === 3);
    const removed = paths.filter((_, i) => i % 60 === 5);
    const added = ['new/a.md', 'new/b.md', 'notes/0/late.md'];
    for (const path of edited) await writeFile(join(local, path), `edited ${path}`);
    for (const path of removed) await rm(join(local, path));
    await mkdir(join(local, 'new'));
    for (const path of added) await writeFile(join(local, path), `added ${path}`);
    expect(new Set([...edited, ...removed, ...added].map((path) => shardOf(path, 2)))).toEqual(new Set([0, 1]));

    const templateMirror = join(root, 'template-mirror');
    execFileSync('cp', ['-a', mirror, templateMirror]);
    // This machine's lineage record goes back with the mirror (it saw generation 1).
    const templateLineage = join(root, 'template-lineage');
    execFileSync('cp', ['-a', join(root, 'state', 'lineage'), templateLineage]);
    const localBefore = await snapshot(local);
    const action = (await plan(sync))!;
    expect(action.changes).toContainEqual({ field: 'changes', before: null, after: `${added.length} added, ${edited.length} changed, ${removed.length} deleted` });

    const crashPoints: string[] = [];
    const rootWrite = `writeFileAtomic ${join(mirror, MANIFEST_NAME)}`;
    /** Push from the template state through `crashing`; false when the push went through. */
    const crashOnce = async (crashing: ReturnType<typeof crashingHost>): Promise<boolean> => {
      await rm(mirror, { recursive: true });
      execFileSync('cp', ['-a', templateMirror, mirror]);
      await rm(join(root, 'state', 'lineage'), { recursive: true });
      execFileSync('cp', ['-a', templateLineage, join(root, 'state', 'lineage')]);
      const error = await apply(sync, action, crashing).then(
        () => null,
        (e: unknown) => e as Error,
      );
      if (!error) return false; // enough writes allowed for the whole push
      expect(error.message).toMatch(/simulated crash/);
      crashPoints.push(crashing.failedAt()!);

      // What the crash left: every listed file is in the mirror; only files being replaced may differ from their entry.
      const differing = await checkManifestTruthful();
      for (const path of differing) expect(edited).toContain(path);
      const next = await plan(sync);
      if (crashing.failedAt() === rootWrite) {
        // Every shard written, the root not: the shards are the truth, the root is finished next.
        expect(next?.reason).toContain('interrupted push');
      }

      // The next apply repairs it: the mirror holds the local folder, the manifest says so exactly.
      if (next) await apply(sync, next);
      expect(await plan(sync)).toBeNull();
      // Truthful entries with the local files' hashes: the mirror holds every local file.
      expect(await checkManifestTruthful()).toEqual([]);
      const manifest = (await readManifest(new MountedStore(host, mirror), ''))!;
      expect(Object.fromEntries(Object.entries(manifest.files).map(([path, entry]) => [path, entry.sha256]))).toEqual(contentOf(localBefore));
      return true;
    };
    for (let allowed = 0; await crashOnce(crashingHost(host, allowed)); allowed++);
    // The copies run in parallel and interleave their writes differently from run to run, so a
    // count may step over the root's write: then it is crashed at by name.
    if (!crashPoints.includes(rootWrite)) expect(await crashOnce(crashingHost(host, Number.POSITIVE_INFINITY, rootWrite))).toBe(true);
    expect(await snapshot(local)).toEqual(localBefore);
    // Every step of the push was interrupted once: copies, both shards, the root, the deletions.
    expect(crashPoints.some((p) => p.startsWith(`writeFileAtomic ${join(mirror, SHARD_DIR_NAME)}`))).toBe(true);
    expect(crashPoints).toContain(rootWrite);
    // Deletions are moves into the history (generation 1 keeps the deleted files).
    expect(crashPoints.some((p) => p.startsWith(`rename ${join(mirror, 'notes')}`))).toBe(true);
    // Each small file is one whole write (read stably into memory, then written): fewer steps than a copy.
    expect(crashPoints.length).toBeGreaterThan(15);
  }, 300_000); // every write of the push is a crash point, the local manifest copy's among them

  it('a restore after an interrupted push gives back every file the manifest lists, as found', async () => {
    const sync = makeSync();
    const paths = await writeFiles(local, 300);
    await planAndApply(sync);
    const edited = paths.filter((_, i) => i % 30 === 1);
    for (const path of edited) await writeFile(join(local, path), `edited ${path}`);
    const action = (await plan(sync))!;
    // Crash half-way through the copies: the container is gone, its local folder with it.
    // (Each replaced file first keeps its previous version in the history: 5 writes of the copy,
    // then 1 of the file; a few files go at once.)
    await expect(apply(sync, action, crashingHost(host, 25))).rejects.toThrow(/simulated crash/);
    const listed = Object.keys((await readManifest(new MountedStore(host, mirror), ''))!.files).sort();
    await rm(local, { recursive: true });

    const { action: restore, outcome } = await planAndApply(sync);
    expect(restore.action).toBe('restore');
    const restored = await snapshot(local);
    expect(Object.keys(restored).sort()).toEqual(listed);
    expect(contentOf(restored)).toEqual(contentOf(await snapshot(mirror), listed));
    // Files replaced before the crash are restored as found, and pushed back (with their entries) next time.
    expect(outcome.notes?.[0]).toMatch(/^\d+ files? in the mirror differed from its manifest and were restored as found/);
    const next = (await plan(sync))!;
    expect(next.action).toBe('push');
    await apply(sync, next);
    expect(await plan(sync)).toBeNull();
    expect(await checkManifestTruthful()).toEqual([]);
  });
});
