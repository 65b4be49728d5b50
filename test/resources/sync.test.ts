// sync.<name> on real folders: a `local` bucket in a temporary directory, the real host.
import { randomBytes } from 'node:crypto';
import { chmod, link, mkdir, readdir, readFile, rm, stat, symlink, truncate, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { beforeEach, describe, expect, it } from 'vitest';
import type { PlannedAction } from '../../src/engine/types.js';
import { ActionError } from '../../src/errors.js';
import { RealHost } from '../../src/host/real.js';
import { readOnlyHost, recordingHost } from '../../src/host/wrappers.js';
import { syncModule } from '../../src/resources/sync/index.js';
import type { ResolvedSync } from '../../src/spec/types.js';
import { MANIFEST_NAME, readManifest, SHARD_DIR_NAME } from '../../src/resources/sync/manifest.js';
import { applyContext, environment, snapshot } from './sync-helpers.js';
import { MountedStore } from '../../src/store/mounted.js';
import { applyPlanned, observing } from '../helpers/resources.js';
import { folderPerTestWithState } from '../helpers/temp.js';

const host = new RealHost();
let root: string;
let local: string;
let mount: string;
let mirror: string;

function makeSync(overrides: Partial<ResolvedSync> = {}): ResolvedSync {
  return { name: 'clawdbot', bucket: 'data', from: local, relTo: 'clawdbot', to: mirror, delete: true, exclude: [], maxDeleteRatio: 0.5, ...overrides };
}

/** plan for one sync: observe through a read-only host (any write would throw), then diff. */
async function plan(sync: ResolvedSync, options = { allowShrink: false }, mountReady = true): Promise<PlannedAction | null> {
  const env = environment(mount, { syncs: { [sync.name]: sync } });
  const observed = (await syncModule.observe(sync, observing({ host: readOnlyHost(host), env, mountReady: { data: mountReady } }))).state;
  const decided = syncModule.diff(sync, JSON.parse(JSON.stringify(observed)), options); // observed is JSON-safe
  return decided ? { ...decided, dependsOn: [] } : null;
}

async function apply(sync: ResolvedSync, action: PlannedAction, options = { allowShrink: false }, signal?: AbortSignal) {
  const recorder = recordingHost(host);
  const env = environment(mount, { syncs: { [sync.name]: sync } });
  const outcome = await applyPlanned(action, applyContext(recorder, env, options, signal));
  return { outcome, writes: recorder.writes };
}

async function planAndApply(sync: ResolvedSync, options = { allowShrink: false }) {
  const action = await plan(sync, options);
  if (!action) throw new Error('expected an action');
  return { action, ...(await apply(sync, action, options)) };
}

async function put(base: string, rel: string, content: string | Buffer, mode = 0o644, mtimeMs?: number): Promise<void> {
  const path = join(base, rel);
  await mkdir(join(path, '..'), { recursive: true });
  await writeFile(path, content);
  await chmod(path, mode);
  if (mtimeMs !== undefined) await utimes(path, mtimeMs / 1000, mtimeMs / 1000);
}

const testFolder = folderPerTestWithState('persist-sync-');

beforeEach(async () => {
  root = testFolder();
  local = join(root, 'local', '.clawdbot');
  mount = join(root, 'mount');
  mirror = join(mount, 'clawdbot');
  await mkdir(mount, { recursive: true });
});

describe('sync push', () => {
  it('first push copies every file, writes the manifest, and the next plan is empty', async () => {
    const sync = makeSync();
    await put(local, 'a.txt', 'alpha', 0o600, 1_700_000_000_000);
    await put(local, 'sub/deep/b.bin', randomBytes(5000));
    const { action, outcome } = await planAndApply(sync);
    expect(action).toMatchObject({ action: 'push', phase: 'push' });
    expect(outcome.summary).toMatch(/^copied 2 files \(/);
    expect(await readFile(join(mirror, 'a.txt'), 'utf8')).toBe('alpha');
    expect((await readFile(join(mirror, 'sub/deep/b.bin'))).equals(await readFile(join(local, 'sub/deep/b.bin')))).toBe(true);
    const manifest = (await readManifest(new MountedStore(host, mirror), ''))!;
    expect(Object.keys(manifest.files).sort()).toEqual(['a.txt', 'sub/deep/b.bin']);
    expect(manifest.files['a.txt']).toMatchObject({ size: 5, mode: 0o600, mtimeMs: 1_700_000_000_000 });
    // the mode is kept on the mirror side where the file system allows (a local bucket does); the
    // mtime is the manifest's (a small file is written whole from the one stable read of it)
    expect((await stat(join(mirror, 'a.txt'))).mode & 0o777).toBe(0o600);
    expect(await plan(sync)).toBeNull();
  });

  it('copies only the changed files: a changed one through a temporary name, a new one in place', async () => {
    const sync = makeSync();
    for (let i = 0; i < 10; i++) await put(local, `f${i}.txt`, `content ${i}`);
    await planAndApply(sync);
    const before = await snapshot(mirror);

    await put(local, 'f3.txt', 'changed content');
    await put(local, 'new.txt', 'new');
    const { action, writes } = await planAndApply(sync);
    expect(action.changes).toContainEqual({ field: 'changes', before: null, after: '1 added, 1 changed' });

    const after = await snapshot(mirror);
    for (let i = 0; i < 10; i++) {
      if (i === 3) continue;
      expect(after[`f${i}.txt`]).toEqual(before[`f${i}.txt`]); // same inode, mtime, content: untouched
    }
    expect(after['f3.txt']!.ino).not.toBe(before['f3.txt']!.ino);
    expect(await readFile(join(mirror, 'f3.txt'), 'utf8')).toBe('changed content');
    const mirrorWrites = writes.filter((w) => w.path.startsWith(mirror) && w.method !== 'mkdir');
    // Temporary names end in a random suffix (unique across machines sharing the bucket).
    const touchedNames = new Set(mirrorWrites.map((w) => w.path.slice(mirror.length + 1).replace(/\.persist-tmp-[0-9a-f]{12}$/, '.persist-tmp-*')));
    // The files (each written whole: a temporary name, fsync, rename), the manifest's one shard (11
    // files) and its root; and the history: generation 1's version of the changed file, of the
    // shard and of the root, and generation 2's record (nothing else: in proportion to what changed).
    const kept = `${SHARD_DIR_NAME}/generations/1`;
    expect([...touchedNames].sort()).toEqual(
      [
        'f3.txt', 'new.txt', `${SHARD_DIR_NAME}/0-of-1.json`, MANIFEST_NAME,
        `${kept}/files/f3.txt`, `${kept}/files/.f3.txt.persist-tmp-*`, `${kept}/shards/0-of-1.json`, `${kept}/shards/.0-of-1.json.persist-tmp-*`,
        `${kept}/root.json`, `${kept}/.root.json.persist-tmp-*`, `${SHARD_DIR_NAME}/generations/2.json`,
      ].sort(),
    );
    expect(await readFile(join(mirror, kept, 'files/f3.txt'), 'utf8')).toBe('content 3');
    // A file the manifest lists is replaced whole (a reader sees the old one or the new one), before
    // the manifest; a new one, under a key nothing names yet, is written in place (no rename: on
    // s3fs 5 requests, not 14). The two are copied in parallel.
    expect(mirrorWrites.filter((w) => w.method === 'writeFileAtomic').map((w) => w.path)[0]).toBe(join(mirror, 'f3.txt'));
    expect(mirrorWrites.filter((w) => w.path === join(mirror, 'new.txt')).map((w) => w.method)).toEqual(['writeFile']);
    expect(await readdir(mirror)).not.toContainEqual(expect.stringContaining('persist-tmp'));
  });

  it('a push of nothing writes nothing: mirror and manifest byte- and mtime-identical', async () => {
    const sync = makeSync();
    await put(local, 'a.db', randomBytes(1000));
    await put(local, 'b/c.txt', 'c');
    await planAndApply(sync);
    const mirrorBefore = await snapshot(mirror);
    const localBefore = await snapshot(local);
    expect(await plan(sync)).toBeNull();
    // Even an apply of a stale push re-checks first and then writes nothing at all.
    const stale: PlannedAction = { address: 'sync.clawdbot', kind: 'sync', action: 'push', phase: 'push', reason: 'stale', changes: [], dependsOn: [] };
    const { outcome, writes } = await apply(sync, stale);
    expect(outcome.summary).toBe('already as the spec wants it (nothing to do)');
    expect(writes).toEqual([]);
    expect(await snapshot(mirror)).toEqual(mirrorBefore);
    expect(await snapshot(local)).toEqual(localBefore);
  });

  it('a file touched without a content change needs no push', async () => {
    const sync = makeSync();
    await put(local, 'a.txt', 'same', 0o644, 1_600_000_000_000);
    await planAndApply(sync);
    await utimes(join(local, 'a.txt'), 1_700_000_000, 1_700_000_000);
    expect(await plan(sync)).toBeNull();
    // A mode change is a change
    await chmod(join(local, 'a.txt'), 0o600);
    const action = (await plan(sync))!;
    expect(action.changes).toContainEqual({ field: 'changes', before: null, after: '1 changed' });
    await apply(sync, action);
    expect((await readManifest(new MountedStore(host, mirror), ''))!.files['a.txt']).toMatchObject({ mode: 0o600, mtimeMs: 1_700_000_000_000 });
    expect(await plan(sync)).toBeNull();
  });

  it('deletes files removed locally when delete is true, and prunes emptied folders', async () => {
    const sync = makeSync();
    for (let i = 0; i < 4; i++) await put(local, `keep${i}`, `k${i}`);
    await put(local, 'old/gone.txt', 'bye');
    await planAndApply(sync);
    await rm(join(local, 'old'), { recursive: true });
    const { action, outcome } = await planAndApply(sync);
    expect(action.changes).toContainEqual({ field: 'changes', before: null, after: '1 deleted' });
    expect(outcome.summary).toContain('deleted 1');
    expect((await readdir(mirror)).sort()).toEqual([SHARD_DIR_NAME, MANIFEST_NAME, 'keep0', 'keep1', 'keep2', 'keep3']);
    expect(await plan(sync)).toBeNull();
  });

  it('delete: false never deletes: removed files stay in the mirror and leave the manifest', async () => {
    const sync = makeSync({ delete: false });
    for (let i = 0; i < 5; i++) await put(local, `f${i}`, `v${i}`);
    await planAndApply(sync);
    await rm(join(local, 'f0'));
    await rm(join(local, 'f1'));
    const { action } = await planAndApply(sync);
    expect(action.changes).toContainEqual({ field: 'changes', before: null, after: '2 removed locally (kept in the mirror)' });
    expect((await readdir(mirror)).sort()).toEqual([SHARD_DIR_NAME, MANIFEST_NAME, 'f0', 'f1', 'f2', 'f3', 'f4']);
    expect(Object.keys((await readManifest(new MountedStore(host, mirror), ''))!.files).sort()).toEqual(['f2', 'f3', 'f4']);
    expect(await plan(sync)).toBeNull();
    // A restore gives back the folder as it was last pushed.
    await rm(local, { recursive: true });
    await planAndApply(sync);
    expect((await readdir(local)).sort()).toEqual(['f2', 'f3', 'f4']);
  });

  it('honours excludes (basename at any depth, and paths with /)', async () => {
    const sync = makeSync({ exclude: ['*.lock', 'cache/**', '*.tmp'] });
    await put(local, 'db.sqlite', 'db');
    await put(local, 'db.lock', 'lock');
    await put(local, 'deep/x.tmp', 'tmp');
    await put(local, 'cache/big/blob', 'cache');
    await put(local, 'sub/cache/kept', 'not top-level cache');
    await planAndApply(sync);
    expect(Object.keys((await readManifest(new MountedStore(host, mirror), ''))!.files).sort()).toEqual(['db.sqlite', 'sub/cache/kept']);
    expect(await readdir(mirror)).not.toContain('db.lock');
    await put(local, 'db.lock', 'lock changed');
    await put(local, 'cache/new', 'n');
    expect(await plan(sync)).toBeNull();
  });

  it('skips symlinks with a warning', async () => {
    const sync = makeSync();
    await put(local, 'real.txt', 'r');
    await symlink('/etc/hostname', join(local, 'link'));
    const { action } = await planAndApply(sync);
    expect(action.warnings).toEqual(['1 symlink or special file not synced (only regular files are): link']);
    expect((await readdir(mirror)).sort()).toEqual([SHARD_DIR_NAME, MANIFEST_NAME, 'real.txt']);
  });

  it('a file with a database header that is no database is reported, never byte-copied (nor its WAL)', async () => {
    const sync = makeSync();
    // The header's fields are a database's (page size 4096...): a file with only the magic is an ordinary file.
    const db = Buffer.concat([Buffer.from('SQLite format 3\0'), Buffer.from([0x10, 0, 1, 1, 0, 64, 32, 32]), randomBytes(3 * 1024 * 1024)]);
    const wal = Buffer.concat([Buffer.from([0x37, 0x7f, 0x06, 0x82]), randomBytes(64 * 1024)]);
    await put(local, 'state.db', db, 0o600);
    await put(local, 'state.db-wal', wal, 0o600);
    await put(local, 'other.txt', 'o');
    const { outcome } = await planAndApply(sync);
    expect(outcome.notes?.join('\n')).toMatch(/1 SQLite database not pushed: state\.db: .*(not a readable database|failed its integrity check)/);
    expect((await readdir(mirror)).sort()).toEqual([SHARD_DIR_NAME, MANIFEST_NAME, 'other.txt']);
  });
});

describe('sync restore', () => {
  it('restores byte-identical with modes and mtimes, writes nothing to the mirror, then plans nothing', async () => {
    const sync = makeSync();
    await put(local, 'secret.env', 'K=V', 0o600, 1_650_000_000_123);
    await put(local, 'bin/run.sh', '#!/bin/sh\necho hi\n', 0o755, 1_660_000_000_456);
    await put(local, 'data/blob', randomBytes(20_000), 0o640, 1_670_000_000_789);
    await planAndApply(sync);
    const original = await snapshot(local);
    const mirrorBefore = await snapshot(mirror);
    await rm(local, { recursive: true });

    const { action, writes, outcome } = await planAndApply(sync);
    expect(action).toMatchObject({ action: 'restore', phase: 'restore' });
    expect(outcome.summary).toMatch(/^restored 3 files/);
    const restored = await snapshot(local);
    for (const [path, file] of Object.entries(original)) {
      expect(restored[path]).toMatchObject({ sha256: file.sha256, mode: file.mode, size: file.size });
      expect(Math.abs(restored[path]!.mtimeMs - file.mtimeMs)).toBeLessThan(1);
    }
    expect(Object.keys(restored).sort()).toEqual(Object.keys(original).sort()); // marker removed, no temporaries
    expect(writes.filter((w) => w.path.startsWith(mount))).toEqual([]);
    expect(await snapshot(mirror)).toEqual(mirrorBefore);

    expect(await plan(sync)).toBeNull();
    const env = environment(mount, { syncs: { [sync.name]: sync } });
    const ctx = observing({ host: readOnlyHost(host), env, mountReady: { data: true } });
    const status = await syncModule.facts(sync, (await syncModule.observe(sync, ctx)).state, ctx);
    expect(status.files).toBe(3);
    expect(status.lastPush).toBe((await readManifest(new MountedStore(host, mirror), ''))!.pushedAt);
    expect(Date.parse(String(status.lastRestore))).toBeGreaterThan(Date.now() - 60_000);
  });

  it('the lineage record of a restore holds the digest a walk of the folder reads (from stats taken as files were written)', async () => {
    const sync = makeSync();
    for (let i = 0; i < 40; i++) await put(local, `d${i % 4}/f${i}`, `file ${i}`, i % 3 === 0 ? 0o600 : 0o644, 1_650_000_000_000 + i * 1_001.7);
    await put(local, 'holes', Buffer.alloc(0));
    await truncate(join(local, 'holes'), 4 * 1024 * 1024); // a sparse file: restored through a copy of its own
    await link(join(local, 'd0/f0'), join(local, 'd1/second-name')); // a hard link: linked at the end, not downloaded
    await planAndApply(sync);
    await rm(local, { recursive: true });

    const { action } = await planAndApply(sync);
    expect(action.action).toBe('restore');
    expect(await stat(join(local, 'd1/second-name'))).toMatchObject({ nlink: 2 });
    const env = environment(mount, { syncs: { [sync.name]: sync } });
    const observe = async () => (await syncModule.observe(sync, observing({ host: readOnlyHost(host), env, mountReady: { data: true } }))).state.lineage;
    expect(await observe()).toMatchObject({ unchangedSinceSeen: true });
    expect(await plan(sync)).toBeNull();
    await utimes(join(local, 'd2/f2'), 1_700_000_000, 1_700_000_000);
    expect(await observe()).toMatchObject({ unchangedSinceSeen: false });
  });

  it('restores into an existing folder that holds only excluded files, leaving them', async () => {
    const sync = makeSync({ exclude: ['*.lock'] });
    await put(local, 'a', 'A');
    await planAndApply(sync);
    await rm(local, { recursive: true });
    await put(local, 'app.lock', 'held');
    const { action } = await planAndApply(sync);
    expect(action.action).toBe('restore');
    expect((await readdir(local)).sort()).toEqual(['a', 'app.lock']);
  });

  it('an interrupted restore is resumed, never pushed as a partial folder', async () => {
    const sync = makeSync();
    const names = Array.from({ length: 60 }, (_, i) => `f${i}`);
    for (const name of names) await put(local, name, `v${name}`);
    await planAndApply(sync);
    await rm(local, { recursive: true });

    const controller = new AbortController();
    const action = (await plan(sync))!;
    const recorder = recordingHost(host);
    const ctx = applyContext(recorder, environment(mount, { syncs: { clawdbot: sync } }), { allowShrink: false }, controller.signal);
    const realReport = ctx.report;
    ctx.report = (m) => {
      realReport(m);
      if (ctx.reports.length === 3) controller.abort();
    };
    await expect(applyPlanned(action, ctx)).rejects.toThrow(/interrupted; .* resumes the restore/);
    // Files are restored a few at a time (3 through a mount): those already under way when the
    // abort came finish, no new one starts.
    const partial = (await readdir(local)).filter((n) => !n.startsWith('.'));
    expect(partial.length).toBeGreaterThanOrEqual(3);
    expect(partial.length).toBeLessThanOrEqual(3 + 2);

    // A few of 60 present: a push would delete the rest (> ratio) but even with --allow-shrink it is a restore.
    const next = (await plan(sync, { allowShrink: true }))!;
    expect(next.action).toBe('restore');
    const { outcome } = await apply(sync, next, { allowShrink: true });
    expect(outcome.summary).toMatch(new RegExp(`^restored ${60 - partial.length} files`)); // the ones done are kept
    expect((await readdir(local)).sort()).toEqual([...names].sort());
    expect(await plan(sync)).toBeNull();
  });

  it("resuming an interrupted restore keeps aside what the agent wrote over the mirror's files, keeps its new files, and overwrites nothing", async () => {
    const sync = makeSync();
    const names = Array.from({ length: 60 }, (_, i) => `f${String(i).padStart(2, '0')}`);
    for (const name of names) await put(local, name, `v${name}`);
    await planAndApply(sync);
    await rm(local, { recursive: true });
    const env = { ...environment(mount, { syncs: { clawdbot: sync } }), workspace: join(root, 'ws') };
    const controller = new AbortController();
    const ctx = applyContext(host, env, { allowShrink: false }, controller.signal);
    const realReport = ctx.report;
    ctx.report = (m) => {
      realReport(m);
      if (ctx.reports.length === 3) controller.abort();
    };
    await expect(applyPlanned((await plan(sync))!, ctx)).rejects.toThrow(/resumes the restore/);
    const restored = (await readdir(local)).filter((n) => !n.startsWith('.')).sort();
    // The agent starts meanwhile: it edits a restored file, writes one the restore has not reached, and a new one.
    await put(local, restored[0]!, 'agent edit');
    await put(local, 'f59', 'agent wrote this first');
    await put(local, 'notes.md', 'agent note');

    const next = (await plan(sync))!;
    expect(next.action).toBe('restore');
    expect(next.changes).toEqual(expect.arrayContaining([
      { field: 'local', before: '2 files differ from the mirror', after: 'kept aside in the backups' },
      { field: 'local', before: '1 file not in the mirror', after: 'kept (the next push saves them)' },
    ]));
    const outcome = await applyPlanned(next, applyContext(host, env, { allowShrink: false }));
    expect(outcome.followedBy).toBe('push');
    expect(outcome.notes?.join('\n')).toMatch(/2 local files that differed from the mirror were kept aside in .*\.persist-backups.*: f\d\d, f59/);
    for (const name of names) expect(await readFile(join(local, name), 'utf8')).toBe(`v${name}`);
    expect(await readFile(join(local, 'notes.md'), 'utf8')).toBe('agent note');
    const [aside] = await readdir(join(root, 'ws', '.persist-backups'));
    expect(await readFile(join(root, 'ws', '.persist-backups', aside!, restored[0]!), 'utf8')).toBe('agent edit');
    expect(await readFile(join(root, 'ws', '.persist-backups', aside!, 'f59'), 'utf8')).toBe('agent wrote this first');
    // The agent's new file is the next push's.
    const push = (await plan(sync))!;
    expect(push.action).toBe('push');
    await apply(sync, push);
    expect(await readFile(join(mirror, 'notes.md'), 'utf8')).toBe('agent note');
    expect(await plan(sync)).toBeNull();
  });

  it('a mirror file that differs from its manifest is restored as found and pushed back next time', async () => {
    const sync = makeSync();
    await put(local, 'a', 'original');
    await planAndApply(sync);
    await put(mirror, 'a', 'edited in the bucket');
    await rm(local, { recursive: true });
    const { outcome } = await planAndApply(sync);
    expect(outcome.notes?.[0]).toContain('differed from its manifest');
    expect(await readFile(join(local, 'a'), 'utf8')).toBe('edited in the bucket');
    const next = (await plan(sync))!;
    expect(next.action).toBe('push');
    await apply(sync, next);
    expect(await plan(sync)).toBeNull();
  });
});

describe('the guard against overwriting a good mirror', () => {
  async function fiftyFileMirror(sync: ResolvedSync): Promise<void> {
    for (let i = 0; i < 50; i++) await put(local, `memory/${i}.md`, `note ${i}`);
    await put(local, 'config.json', '{"good": true}');
    await planAndApply(sync);
    await rm(local, { recursive: true });
  }

  it('a fresh container with one template file gets a conflict, never a wipe', async () => {
    const sync = makeSync();
    await fiftyFileMirror(sync);
    await put(local, 'config.json', '{"template": true}');
    const mirrorBefore = await snapshot(mirror);
    const action = (await plan(sync))!;
    expect(action.action).toBe('conflict');
    expect(action.conflict?.overrideFlag).toBe('--allow-shrink');
    // Applying the stale push anyway re-checks and refuses.
    const push: PlannedAction = { ...action, action: 'push', phase: 'push' };
    await expect(apply(sync, push)).rejects.toBeInstanceOf(ActionError);
    expect(await snapshot(mirror)).toEqual(mirrorBefore);
  });

  it('the same with delete: false: the good config.json is not replaced', async () => {
    const sync = makeSync({ delete: false });
    await fiftyFileMirror(sync);
    await put(local, 'config.json', '{"template": true}');
    expect((await plan(sync))!.action).toBe('conflict');
  });

  it('with --allow-shrink the push goes ahead and deletes', async () => {
    const sync = makeSync();
    await fiftyFileMirror(sync);
    await put(local, 'config.json', '{"template": true}');
    const { action, outcome } = await planAndApply(sync, { allowShrink: true });
    expect(action.action).toBe('push');
    expect(outcome.summary).toContain('deleted 50');
    expect((await readdir(mirror)).sort()).toEqual([SHARD_DIR_NAME, MANIFEST_NAME, 'config.json']);
  });

  it('local missing and mirror empty: nothing to do, nothing written', async () => {
    const sync = makeSync();
    expect(await plan(sync)).toBeNull();
    await mkdir(mirror);
    expect(await plan(sync)).toBeNull();
    await mkdir(local, { recursive: true });
    expect(await plan(sync)).toBeNull();
  });

  it('refuses to touch a bucket whose mount is not there', async () => {
    const sync = makeSync();
    await put(local, 'a', 'A');
    const action = (await plan(sync))!;
    const env = environment(mount, { syncs: { clawdbot: sync }, backend: 's3fs' });
    await expect(applyPlanned(action, applyContext(host, env))).rejects.toThrow(`mount.data is not mounted; nothing written into ${mount}`);
    await expect(stat(mirror)).rejects.toThrow(/ENOENT/);
  });
});

describe('mirror states', () => {
  it('an unready mount is not looked into: restore or push decided after the mount', async () => {
    const sync = makeSync();
    expect((await plan(sync, { allowShrink: false }, false))!.action).toBe('restore');
    await put(local, 'a', 'A');
    const action = (await plan(sync, { allowShrink: false }, false))!;
    expect(action.action).toBe('push');
    expect(action.reason).toContain('once mount.data is up');
    // apply re-checks against the real mirror
    await apply(sync, action);
    expect(await readFile(join(mirror, 'a'), 'utf8')).toBe('A');
  });

  it('a folder synced here before adopts the mirror when its manifest is gone: copies only what differs, deletes nothing, writes a manifest', async () => {
    const sync = makeSync();
    // Synced with this mirror once; then the manifest was removed (as a damaged manifest's fix
    // says) and the mirror filled by hand. A folder never synced here would be restored instead.
    await put(local, 'seed.txt', 'seed');
    await planAndApply(sync);
    await rm(mirror, { recursive: true });
    await rm(join(local, 'seed.txt'));
    await put(mirror, 'same.txt', 'same', 0o644, 1_600_000_000_000);
    await put(mirror, 'samesize.txt', 'AAAA');
    await put(mirror, 'other.txt', 'short');
    await put(mirror, 'extra.txt', 'only in the mirror');
    await put(local, 'same.txt', 'same');
    await put(local, 'samesize.txt', 'BBBB');
    await put(local, 'other.txt', 'longer content');
    await put(local, 'new.txt', 'new');
    const before = await snapshot(mirror);
    const { action, outcome } = await planAndApply(sync);
    expect(action.reason).toContain('no manifest');
    expect(outcome.summary).toMatch(/^copied 3 files/);
    const after = await snapshot(mirror);
    expect(after['same.txt']).toEqual(before['same.txt']);
    expect(after['extra.txt']).toEqual(before['extra.txt']);
    expect(await readFile(join(mirror, 'samesize.txt'), 'utf8')).toBe('BBBB');
    expect(Object.keys((await readManifest(new MountedStore(host, mirror), ''))!.files).sort()).toEqual(['new.txt', 'other.txt', 'same.txt', 'samesize.txt']);
    expect(await plan(sync)).toBeNull();
  });

  it('restores a mirror made by hand and writes its manifest once', async () => {
    const sync = makeSync();
    await put(mirror, 'x/y.txt', 'y', 0o640, 1_650_000_000_000);
    const { action } = await planAndApply(sync);
    expect(action.action).toBe('restore');
    expect(await readFile(join(local, 'x/y.txt'), 'utf8')).toBe('y');
    expect((await stat(join(local, 'x/y.txt'))).mode & 0o777).toBe(0o640);
    expect((await readManifest(new MountedStore(host, mirror), ''))!.files['x/y.txt']).toMatchObject({ size: 1, mode: 0o640, mtimeMs: 1_650_000_000_000 });
    expect(await plan(sync)).toBeNull();
  });

  it('a damaged manifest is a conflict, not an error', async () => {
    const sync = makeSync();
    await put(local, 'a', 'A');
    await put(mirror, MANIFEST_NAME, 'not json');
    const action = (await plan(sync))!;
    expect(action.action).toBe('conflict');
    expect(action.conflict?.message).toContain(join(mirror, MANIFEST_NAME));
  });
});

describe('failures while applying', () => {
  it('a local file that vanishes during a push is reported as vanished, not stored; the push of the rest succeeds', async () => {
    const sync = makeSync();
    await put(local, 'a', 'A');
    await planAndApply(sync);
    await put(local, 'b', 'B');
    await put(local, 'c', 'C');
    const action = (await plan(sync))!;
    // `b` disappears between the re-check and its copy.
    const recorder = recordingHost(host);
    const ctx = applyContext(recorder, environment(mount, { syncs: { clawdbot: sync } }));
    const hostWithHook = Object.assign(Object.create(null) as object, recorder, {
      readFile: async (path: string) => {
        if (path === join(local, 'b')) await rm(path);
        return recorder.readFile(path);
      },
    }) as typeof recorder;
    const outcome = await applyPlanned(action, { ...ctx, host: hostWithHook });
    expect(outcome.summary).toBe('copied 1 file (1 B)');
    expect(outcome.notes).toContain('1 file vanished during the push (not stored; the next push takes what is there then): b');
    expect((await readdir(mirror)).filter((n) => n.includes('persist-tmp'))).toEqual([]);
    expect((await readdir(mirror)).sort()).toEqual([SHARD_DIR_NAME, MANIFEST_NAME, 'a', 'c']);
    expect(await plan(sync)).toBeNull(); // `b` is gone locally: nothing left to push
  });

});
