// A sync saves a state that existed (issue 12): a live SQLite database under a busy writer, files
// rewritten during a push, racily-clean rewrites, odd contents. Real folders, real sqlite3, the
// real executor (its verification included), a `local` bucket.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmod, mkdir, readdir, readFile, rm, stat, truncate, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { executePlan, type ActionResult } from '../../src/engine/apply.js';
import { computePlan } from '../../src/commands/common.js';
import type { PlannedAction } from '../../src/engine/types.js';
import { RealHost } from '../../src/host/real.js';
import { deviceName } from '../../src/host/timestamps.js';
import type { Host } from '../../src/host/types.js';
import { readOnlyHost } from '../../src/host/wrappers.js';
import { syncModule } from '../../src/resources/sync/index.js';
import { readManifest } from '../../src/resources/sync/manifest.js';
import { writeTrustState } from '../../src/resources/sync/trust-state.js';
import { recordDamaged, verifyMirror } from '../../src/resources/sync/verify.js';
import type { ResolvedSync } from '../../src/spec/types.js';
import { MountedStore } from '../../src/store/mounted.js';
import { observing } from '../helpers/resources.js';
import { environment } from '../resources/sync-helpers.js';
import { folderPerTestWithState } from '../helpers/temp.js';

const realHost = new RealHost();
let root: string;
let local: string;
let mount: string;
const children: ChildProcess[] = [];

function makeSync(overrides: Partial<ResolvedSync> = {}): ResolvedSync {
  return { name: 'state', bucket: 'data', from: local, relTo: 'state', to: join(mount, 'state'), delete: true, exclude: [], maxDeleteRatio: 0.5, ...overrides };
}

async function plan(sync: ResolvedSync, host: Host = realHost): Promise<PlannedAction | null> {
  const env = environment(mount, { syncs: { [sync.name]: sync } });
  const observed = (await syncModule.observe(sync, observing({ host: readOnlyHost(host), env, mountReady: { data: true } }))).state;
  const decided = syncModule.diff(sync, JSON.parse(JSON.stringify(observed)), { allowShrink: false });
  return decided ? { ...decided, dependsOn: [] } : null;
}

/** plan, then the real executor (re-observation, the action, its verification). */
async function applyAll(sync: ResolvedSync, host: Host = realHost): Promise<{ action: PlannedAction; result: ActionResult }> {
  const action = await plan(sync, host);
  if (!action) throw new Error('expected an action');
  const env = environment(mount, { syncs: { [sync.name]: sync } });
  const view = { run: async (tasks: { run(report: (line: string) => void): Promise<ActionResult> }[]) => void (await Promise.all(tasks.map((t) => t.run(() => undefined)))) };
  const report = await executePlan([action], { host, env, options: { allowShrink: false }, view, signal: new AbortController().signal });
  return { action, result: report.results.get(action.address)! };
}

function sql(db: string, query: string): string {
  return execFileSync('sqlite3', ['-init', '/dev/null', '-batch', '-cmd', '.timeout 10000', db, query], { encoding: 'utf8' }).trim();
}

function sha256(data: Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}

const testFolder = folderPerTestWithState('persist-trust-');

beforeEach(async () => {
  root = testFolder();
  local = join(root, 'local');
  mount = join(root, 'mount');
  await mkdir(local, { recursive: true });
  await mkdir(mount, { recursive: true });
});

afterEach(async () => {
  for (const child of children.splice(0)) child.kill('SIGKILL');
  await chmodAll(root);
});

async function chmodAll(dir: string): Promise<void> {
  await chmod(dir, 0o755).catch(() => undefined);
  for (const entry of await readdir(dir, { withFileTypes: true }).catch(() => [])) {
    if (entry.isDirectory()) await chmodAll(join(dir, entry.name));
  }
}

/** A sqlite3 process committing small transactions every few milliseconds, fed through its stdin. */
function startWriter(db: string): { stop(): Promise<void> } {
  const child = spawn('sqlite3', ['-init', '/dev/null', '-batch', db], { stdio: ['pipe', 'ignore', 'inherit'] });
  children.push(child);
  child.stdin!.on('error', () => undefined); // killed by the test's cleanup
  child.stdin!.write('.timeout 10000\nPRAGMA journal_mode=WAL;\nCREATE TABLE IF NOT EXISTS t(id INTEGER PRIMARY KEY, v BLOB);\n');
  child.stdin!.write(`BEGIN;${'INSERT INTO t(v) VALUES (randomblob(3000));'.repeat(1500)}COMMIT;\n`);
  const timer = setInterval(() => child.stdin!.write('INSERT INTO t(v) VALUES (randomblob(2000));\nINSERT INTO t(v) VALUES (randomblob(500));\n'), 3);
  return {
    stop: async () => {
      clearInterval(timer);
      child.stdin!.end();
      await new Promise((resolve) => child.once('exit', resolve));
    },
  };
}

describe('SQLite in a sync', () => {
  it('a WAL database under a busy writer, pushed 12 times during writes: 12 of 12 restores are sound and hold every transaction committed before the push', async () => {
    const db = join(local, 'memory.sqlite');
    const writer = startWriter(db);
    const rows = () => {
      try {
        return Number(sql(db, 'SELECT count(*) FROM t'));
      } catch {
        return 0; // not created yet
      }
    };
    while (rows() < 1500) await new Promise((r) => setTimeout(r, 20));
    const sync = makeSync();
    const restoreDir = join(root, 'restored');
    const restoreSync = makeSync({ name: 'back', from: restoreDir });
    const sound: number[] = [];
    for (let round = 1; round <= 12; round++) {
      const committed = Number(sql(db, 'SELECT max(id) FROM t'));
      const { action, result } = await applyAll(sync);
      expect(action.action).toBe('push');
      expect(result.status, result.message).toBe('applied');
      // The mirror never holds a sidecar; the manifest's hash is that of the bytes stored.
      const mirrorNames = await readdir(join(mount, 'state'));
      expect(mirrorNames.filter((n) => /-(wal|shm|journal)$/.test(n))).toEqual([]);
      const manifest = (await readManifest(new MountedStore(realHost, mount), 'state'))!;
      expect(Object.keys(manifest.files)).toEqual(['memory.sqlite']);
      expect(manifest.files['memory.sqlite']!.sha256).toBe(sha256(await readFile(join(mount, 'state', 'memory.sqlite'))));

      await rm(restoreDir, { recursive: true, force: true });
      const restored = await applyAll(restoreSync);
      expect(restored.action.action).toBe('restore');
      expect(restored.result.status, restored.result.message).toBe('applied');
      const copy = join(restoreDir, 'memory.sqlite');
      expect(sql(copy, 'PRAGMA integrity_check')).toBe('ok');
      expect(Number(sql(copy, `SELECT count(*) FROM t WHERE id <= ${committed}`))).toBe(committed);
      expect(sql(copy, 'PRAGMA journal_mode')).toBe('wal');
      sound.push(round);
    }
    expect(sound).toHaveLength(12);
    await writer.stop();
    // After the writer stopped: one more push takes the final state, then the plan is clean.
    const final = Number(sql(db, 'SELECT max(id) FROM t'));
    const { result } = await applyAll(sync);
    expect(result.status).toBe('applied');
    expect(await plan(sync)).toBeNull();
    await rm(restoreDir, { recursive: true, force: true });
    await applyAll(restoreSync);
    expect(Number(sql(join(restoreDir, 'memory.sqlite'), 'SELECT max(id) FROM t'))).toBe(final);
  }, 120_000);

  it('a commit that moves only the -wal (mtime of the main file unchanged) is a change', async () => {
    const db = join(local, 'a.db');
    sql(db, 'PRAGMA journal_mode=WAL; PRAGMA wal_autocheckpoint=0; CREATE TABLE t(x); INSERT INTO t VALUES (1);');
    const sync = makeSync();
    await applyAll(sync);
    expect(await plan(sync)).toBeNull();
    const before = await stat(db);
    // Keep a reader open so the last connection's close does not checkpoint the WAL into the main file.
    sql(db, 'PRAGMA wal_autocheckpoint=0; INSERT INTO t VALUES (2);');
    await utimes(db, before.atime, before.mtime);
    const action = await plan(sync);
    expect(action?.action).toBe('push');
    await applyAll(sync);
    await rm(local, { recursive: true });
    await applyAll(sync);
    expect(sql(db, 'SELECT group_concat(x) FROM t')).toBe('1,2');
  });

  it('a resumed restore that finds the database already restored records it as restored: the next plan has nothing to push', async () => {
    const db = join(local, 'a.db');
    sql(db, 'CREATE TABLE t(x); INSERT INTO t VALUES (7);');
    for (let i = 0; i < 5; i++) await writeFile(join(local, `n${i}.md`), `note ${i}`);
    const sync = makeSync();
    await applyAll(sync);
    await rm(local, { recursive: true });
    await applyAll(sync);
    // As a restore killed after the database was written leaves it: the rest missing, the marker on, no change token recorded.
    for (let i = 2; i < 5; i++) await rm(join(local, `n${i}.md`));
    await writeTrustState(realHost, sync, { restoring: 'test: an interrupted restore' });
    const { action, result } = await applyAll(sync);
    expect(action.action).toBe('restore');
    expect(result.status, result.message).toBe('applied');
    expect(await plan(sync)).toBeNull();
  });

  it('a restore puts the database in place and removes stale sidecars beside it', async () => {
    const db = join(local, 'a.db');
    sql(db, 'PRAGMA journal_mode=WAL; CREATE TABLE t(x); INSERT INTO t VALUES (42);');
    const sync = makeSync();
    await applyAll(sync);
    // A half-restored folder holding a stale -wal and -journal of another state.
    await rm(local, { recursive: true });
    await mkdir(local);
    await writeFile(`${db}-wal`, Buffer.alloc(4096, 7));
    await writeFile(`${db}-journal`, Buffer.alloc(512, 9));
    await writeTrustState(realHost, sync, { restoring: 'test: an interrupted restore' });
    const { action, result } = await applyAll(sync);
    expect(action.action).toBe('restore');
    expect(result.status, result.message).toBe('applied');
    expect((await readdir(local)).sort()).toEqual(['a.db']);
    expect(sql(db, 'PRAGMA integrity_check')).toBe('ok');
    expect(sql(db, 'SELECT x FROM t')).toBe('42');
  });

  it('plan warns and the push reports the database when sqlite3 is missing; nothing is byte-copied', async () => {
    sql(join(local, 'a.db'), 'CREATE TABLE t(x); INSERT INTO t VALUES (1);');
    await writeFile(join(local, 'note.md'), 'n');
    const sync = makeSync();
    const noSqlite = Object.assign(Object.create(realHost) as RealHost, {
      env: () => ({ ...process.env, PATH: '/nonexistent' }),
      run: (command: string, args: string[], options: Parameters<Host['run']>[2]) => realHost.run(command, args, { ...options, env: { ...process.env, PATH: '/nonexistent' } }),
    });
    const action = (await plan(sync, noSqlite))!;
    expect(action.warnings?.join('\n')).toMatch(/1 SQLite database found but sqlite3 is not installed/);
    const { result } = await applyAll(sync, noSqlite);
    expect(result.notes.join('\n')).toMatch(/SQLite database not pushed: a\.db: sqlite3 is not installed/);
    expect(await readdir(join(mount, 'state'))).not.toContain('a.db');
  });
});

describe('stable reads', () => {
  it('a JSON file rewritten by truncate+write during pushes is never stored torn; each push succeeds', async () => {
    const file = join(local, 'state.json');
    const body = (n: number) => JSON.stringify({ n, items: Array.from({ length: 4000 }, (_, i) => ({ i, text: `item ${i} of round ${n}` })) });
    await writeFile(file, body(0));
    // A separate process rewriting the file in place (O_TRUNC, then the write): bursts a few
    // milliseconds apart, a quieter moment now and then (as an agent saving its state would).
    const script = `const fs=require('fs');let n=1;const body=${body.toString()};for(;;){fs.writeFileSync(${JSON.stringify(file)},body(n++));Atomics.wait(new Int32Array(new SharedArrayBuffer(4)),0,0,n%5===0?400:2);}`;
    const child = spawn(process.execPath, ['-e', script], { stdio: 'ignore' });
    children.push(child);
    const sync = makeSync();
    let stored = 0;
    let moved = 0;
    for (let round = 0; round < 10; round++) {
      await new Promise((r) => setTimeout(r, 70));
      const action = await plan(sync);
      if (!action) continue;
      const { result } = await applyAll(sync);
      expect(result.status, result.message).toBe('applied');
      if (/moved during the push/.test(result.message)) moved += 1;
      const manifest = await readManifest(new MountedStore(realHost, mount), 'state');
      const entry = manifest?.files['state.json'];
      if (!entry) continue;
      const data = await readFile(join(mount, 'state', 'state.json'));
      expect(sha256(data)).toBe(entry.sha256);
      let parsed = true;
      try { JSON.parse(data.toString('utf8')); } catch { parsed = false; }
      if (!parsed) console.log('TORN', round, data.length, JSON.stringify(entry), result.message, data.subarray(0, 40).toString(), '...', data.subarray(-40).toString());
      expect(parsed).toBe(true);
      stored += 1;
    }
    child.kill('SIGKILL');
    expect(stored).toBeGreaterThan(0);
    console.log(`truncate+write under push: ${stored} of 10 pushes stored a whole JSON, ${moved} said files moved during the push`);
  }, 60_000);

  it('a file emptied just before its first push is read again once it stayed so: a writer that truncated it and writes next is not stored empty', async () => {
    const file = join(local, 'state.json');
    await writeFile(file, '{"v":1}');
    await new Promise((r) => setTimeout(r, 50)); // the truncate lands on a later tick than the file's birth
    await truncate(file, 0); // as a writer inside open(O_TRUNC) leaves it: empty, no descriptor to see yet
    const writer = new Promise((r) => setTimeout(r, 1000)).then(() => writeFile(file, '{"v":2}'));
    const { result } = await applyAll(makeSync());
    await writer;
    expect(result.status, result.message).toBe('applied');
    expect(await readFile(join(mount, 'state', 'state.json'), 'utf8')).toBe('{"v":2}');
    expect(result.message).toMatch(/moved during the push/);
  });

  it('a file created empty is pushed at once where the file system gives birth times; without them it is read again once quiet', async () => {
    const sync = makeSync();
    await writeFile(join(local, 'keep'), 'k');
    await applyAll(sync);
    await writeFile(join(local, '.gitkeep'), '');
    expect((await stat(join(local, '.gitkeep'))).birthtimeMs).toBeGreaterThan(0); // ext4, tmpfs, overlayfs on either
    const pushed = await applyAll(sync);
    expect(pushed.result.message).not.toMatch(/moved during the push/);
    await writeFile(join(local, '.keep2'), '');
    const noBirth = Object.assign(Object.create(realHost) as RealHost, {
      lstat: async (path: string) => {
        const info = await realHost.lstat(path);
        if (info) delete info.birthtimeMs;
        return info;
      },
    });
    const waited = await applyAll(sync, noBirth);
    expect(waited.result.message).toMatch(/moved during the push/);
    const manifest = await readManifest(new MountedStore(realHost, mount), 'state');
    expect([manifest?.files['.gitkeep']?.size, manifest?.files['.keep2']?.size]).toEqual([0, 0]);
  });

  it('a restore that the re-check turns into a push (the agent wrote first) is verified as a push while the agent keeps writing', async () => {
    const sync = makeSync();
    const env = environment(mount, { syncs: { [sync.name]: sync } });
    await rm(mount, { recursive: true }); // the bucket's folder is made by this apply: the sync's action is predicted
    const { actions } = await computePlan(readOnlyHost(realHost), env, { allowShrink: false }, []);
    expect(actions.map((a) => `${a.address} ${a.action}`)).toEqual(['mount.data mount', 'sync.state restore']);
    const view = { run: async (tasks: { run(report: (line: string) => void): Promise<ActionResult> }[]) => { for (const task of tasks) await task.run(() => undefined); } };
    const file = join(local, 'state.json');
    const beforeAction = async (action: PlannedAction) => {
      if (action.address !== 'sync.state') return;
      // The agent starts before the sync's turn, and keeps rewriting its state during the push and after.
      await writeFile(file, '{"n":0}');
      const script = `const fs=require('fs');let n=1;for(;;){fs.writeFileSync(${JSON.stringify(file)},JSON.stringify({n:n++}));Atomics.wait(new Int32Array(new SharedArrayBuffer(4)),0,0,15);}`;
      children.push(spawn(process.execPath, ['-e', script], { stdio: 'ignore' }));
      await new Promise((r) => setTimeout(r, 100));
    };
    const report = await executePlan(actions, { host: realHost, env, options: { allowShrink: false }, view, signal: new AbortController().signal, beforeAction });
    const result = report.results.get('sync.state')!;
    expect(result.status, result.message).toBe('applied');
    expect(result.message).toContain('(re-checked: push instead of restore)');
    // Stored whole, or (a writer that never let it settle, on a busy machine) not stored and said so: never torn.
    const stored = await readFile(join(mount, 'state', 'state.json'), 'utf8').catch(() => null);
    if (stored === null) expect(result.notSaved?.map((entry) => entry.message).join('\n')).toMatch(/state\.json/);
    else expect(JSON.parse(stored)).toHaveProperty('n');
  });

  it('a same-size rewrite within the timestamp tick after a push is pushed (racily clean files are hashed)', async () => {
    const file = join(local, 'a.txt');
    await writeFile(file, 'version 1');
    const soon = new Date(Date.now() + 1000);
    await utimes(file, soon, soon); // written while the push ran, on any file system's tick
    const sync = makeSync();
    await applyAll(sync);
    const before = await stat(file);
    await writeFile(file, 'version 2'); // same size
    await utimes(file, before.atime, before.mtime); // as if within the same tick of a coarse clock
    expect(Math.abs((await stat(file)).mtimeMs - before.mtimeMs)).toBeLessThan(1);
    const action = await plan(sync);
    expect(action?.action).toBe('push');
    await applyAll(sync);
    expect(await readFile(join(mount, 'state', 'a.txt'), 'utf8')).toBe('version 2');
  });

  it('a file written half a second before its push is trusted by its stats on a file system with nanosecond times, hashed on FAT', async () => {
    const file = join(local, 'notes.md');
    await writeFile(file, 'notes\n');
    const earlier = new Date(Date.now() - 500);
    await utimes(file, earlier, earlier);
    const sync = makeSync();
    await applyAll(sync);
    const device = deviceName((await stat(local)).dev)!;
    const hashed: string[] = [];
    const seeing = (fsType: string): Host =>
      Object.assign(Object.create(realHost) as RealHost, {
        mounts: async () => [{ mountId: 1, parentId: 0, device, mountPoint: '/', root: '/', fsType, source: 'test', options: 'rw', superOptions: 'rw' }],
        hashFile: async (path: string) => (hashed.push(path), realHost.hashFile(path)),
      });
    expect(await plan(sync, seeing('ext4'))).toBeNull();
    expect(hashed).toEqual([]);
    // Two seconds is FAT's tick: there the file may have been rewritten in its tick after the push read it.
    expect(await plan(sync, seeing('vfat'))).toBeNull();
    expect(hashed).toEqual([file]);
  });
});

/** Real permission bits, honoured as a non-root user would see them (these tests may run as root). */
function permissionsHost(): Host {
  const denied = async (path: string, needs: 'r' | 'x'): Promise<void> => {
    if (process.getuid?.() !== 0) return; // the kernel does it
    const info = await realHost.lstat(path);
    if (info && (info.mode & (needs === 'r' ? 0o444 : 0o111)) === 0) throw Object.assign(new Error(`EACCES: permission denied, open '${path}'`), { code: 'EACCES' });
  };
  return Object.assign(Object.create(realHost) as RealHost, {
    readdir: async (path: string) => (await denied(path, 'r'), realHost.readdir(path)),
    readdirNames: async (path: string) => (await denied(path, 'r'), realHost.readdirNames(path)),
    readFile: async (path: string) => (await denied(path, 'r'), realHost.readFile(path)),
    readHead: async (path: string, bytes: number) => (await denied(path, 'r'), realHost.readHead(path, bytes)),
    hashFile: async (path: string) => (await denied(path, 'r'), realHost.hashFile(path)),
    copyFile: async (from: string, to: string) => (await denied(from, 'r'), realHost.copyFile(from, to)),
  });
}

describe('odd contents', () => {
  it('a path that turns from a file into a folder and back pushes each time and restores', async () => {
    const sync = makeSync();
    await writeFile(join(local, 'x'), 'a file');
    await writeFile(join(local, 'keep'), 'k');
    await applyAll(sync);
    await rm(join(local, 'x'));
    await mkdir(join(local, 'x'));
    await writeFile(join(local, 'x', 'inner'), 'now a folder');
    const toFolder = (await applyAll(sync)).result;
    expect(toFolder.status, toFolder.message).toBe('applied');
    expect(await readFile(join(mount, 'state', 'x', 'inner'), 'utf8')).toBe('now a folder');
    await rm(join(local, 'x'), { recursive: true });
    await writeFile(join(local, 'x'), 'a file again');
    const toFile = (await applyAll(sync)).result;
    expect(toFile.status, toFile.message).toBe('applied');
    expect(await readFile(join(mount, 'state', 'x'), 'utf8')).toBe('a file again');
    expect(await plan(sync)).toBeNull();
    await rm(local, { recursive: true });
    await applyAll(sync);
    expect(await readFile(join(local, 'x'), 'utf8')).toBe('a file again');
  });

  it('an unreadable file and an unreadable folder are reported once and skipped; the rest is saved; their mirror copies are kept', async () => {
    const host = permissionsHost();
    const sync = makeSync();
    await mkdir(join(local, 'private'));
    await writeFile(join(local, 'private', 'old.txt'), 'kept');
    await writeFile(join(local, 'secret.txt'), 'secret');
    await writeFile(join(local, 'ok.txt'), 'ok');
    await applyAll(sync, host);
    await chmod(join(local, 'private'), 0o000);
    await chmod(join(local, 'secret.txt'), 0o000);
    await writeFile(join(local, 'new.txt'), 'new');
    await writeFile(join(local, 'secret.txt'), 'changed secret');
    const action = (await plan(sync, host))!;
    expect(action.warnings?.join('\n')).toContain('private/ (EACCES)');
    const { result } = await applyAll(sync, host);
    expect(result.status, result.message).toBe('applied');
    expect(result.notes.join('\n')).toMatch(/2 paths cannot be read and are not in the store .*private\/ \(EACCES\), secret\.txt \(EACCES\)/);
    // Left out, not saved: shutdown counts the sync as not saved (not a cause that passes by itself).
    expect(result.notSaved).toEqual([{ message: expect.stringContaining('secret.txt (EACCES)'), transient: false }]);
    const manifest = (await readManifest(new MountedStore(realHost, mount), 'state'))!;
    expect(Object.keys(manifest.files).sort()).toEqual(['new.txt', 'ok.txt', 'private/old.txt', 'secret.txt']);
    expect(await readFile(join(mount, 'state', 'private', 'old.txt'), 'utf8')).toBe('kept'); // not deleted
    expect(await readFile(join(mount, 'state', 'secret.txt'), 'utf8')).toBe('secret'); // the previous one
    // Reported, not a change: the next plan is clean, with the warning.
    expect(await plan(sync, host)).toBeNull();
  });

  it('an unreadable local folder of one sync does not stop another sync', async () => {
    const host = permissionsHost();
    const other = join(root, 'other');
    await mkdir(other);
    await writeFile(join(other, 'a'), 'a');
    await writeFile(join(local, 'b'), 'b');
    await chmod(local, 0o000);
    const broken = makeSync();
    const fine = makeSync({ name: 'fine', from: other, relTo: 'fine', to: join(mount, 'fine') });
    const env = environment(mount, { syncs: { state: broken, fine } });
    const decisions = [];
    for (const sync of [broken, fine]) {
      const observed = (await syncModule.observe(sync, observing({ host: readOnlyHost(host), env, mountReady: { data: true } }))).state;
      decisions.push(syncModule.diff(sync, observed, { allowShrink: false }));
    }
    expect(decisions[0]?.action).toBe('conflict');
    expect(decisions[0]?.conflict?.message).toContain('cannot be read (EACCES)');
    expect(decisions[1]?.action).toBe('push');
  });

  it('folder modes round-trip', async () => {
    const sync = makeSync();
    await mkdir(join(local, 'private', 'deeper'), { recursive: true });
    await writeFile(join(local, 'private', 'deeper', 'k'), 'k');
    await chmod(join(local, 'private'), 0o700);
    await chmod(join(local, 'private', 'deeper'), 0o750);
    await applyAll(sync);
    expect(await plan(sync)).toBeNull();
    await chmod(join(local, 'private', 'deeper'), 0o700);
    expect((await plan(sync))?.reason).toContain('folders in');
    await applyAll(sync);
    await rm(local, { recursive: true });
    await applyAll(sync);
    expect((await stat(join(local, 'private'))).mode & 0o777).toBe(0o700);
    expect((await stat(join(local, 'private', 'deeper'))).mode & 0o777).toBe(0o700);
    expect(await plan(sync)).toBeNull();
  });

  it('empty folders come back: recorded with the folder modes, made by a restore', async () => {
    const sync = makeSync();
    await mkdir(join(local, 'sessions'), { recursive: true });
    await mkdir(join(local, 'cache', 'deep'), { recursive: true });
    await mkdir(join(local, 'private'), { mode: 0o700 });
    await writeFile(join(local, 'a.txt'), 'a');
    await applyAll(sync);
    expect(await plan(sync)).toBeNull();
    await mkdir(join(local, 'inbox'));
    expect((await plan(sync))?.reason).toContain('(their modes, or empty ones)');
    await applyAll(sync);
    await rm(local, { recursive: true });
    await applyAll(sync);
    expect((await readdir(local)).sort()).toEqual(['a.txt', 'cache', 'inbox', 'private', 'sessions']);
    expect(await readdir(join(local, 'cache'))).toEqual(['deep']);
    expect((await stat(join(local, 'private'))).mode & 0o777).toBe(0o700);
    expect(await plan(sync)).toBeNull();
  });

  it("a user's file named like the old restore marker is an ordinary file", async () => {
    const sync = makeSync();
    await writeFile(join(local, '.persist-restore-incomplete'), 'mine');
    await writeFile(join(local, 'a'), 'a');
    expect((await plan(sync))?.action).toBe('push');
    await applyAll(sync);
    expect(await plan(sync)).toBeNull();
    await rm(local, { recursive: true });
    await applyAll(sync);
    expect(await readFile(join(local, '.persist-restore-incomplete'), 'utf8')).toBe('mine');
    expect(await plan(sync)).toBeNull();
  });
});

describe('verify', () => {
  it('finds a removed and a truncated stored file; the next plan pushes them again (repair) and verify passes', async () => {
    const sync = makeSync();
    await writeFile(join(local, 'a.txt'), 'alpha');
    await writeFile(join(local, 'b.txt'), 'bravo bravo');
    await writeFile(join(local, 'c.txt'), 'charlie');
    await applyAll(sync);
    const store = new MountedStore(realHost, mount);
    await rm(join(mount, 'state', 'a.txt'));
    await writeFile(join(mount, 'state', 'b.txt'), 'bra');
    await writeFile(join(mount, 'state', 'c.txt'), 'CHARLIE'); // same size: only --hash sees it
    const manifest = (await readManifest(store, 'state'))!;
    const bySize = await verifyMirror(store, sync, manifest, false);
    expect(bySize.problems).toEqual([
      { path: 'a.txt', problem: 'missing' },
      { path: 'b.txt', problem: 'damaged: 3 bytes, the manifest says 11' },
    ]);
    const byHash = await verifyMirror(store, sync, manifest, true);
    expect(byHash.problems.map((p) => p.path)).toEqual(['a.txt', 'b.txt', 'c.txt']);
    await recordDamaged(realHost, sync, byHash.problems.map((p) => p.path));
    const action = (await plan(sync))!;
    expect(action.action).toBe('push');
    expect(action.reason).toMatch(/^repair: 3 stored files missing or damaged/);
    expect(action.note).toBe('repair');
    const { result } = await applyAll(sync);
    expect(result.status, result.message).toBe('applied');
    expect(await readFile(join(mount, 'state', 'c.txt'), 'utf8')).toBe('charlie');
    expect((await verifyMirror(store, sync, (await readManifest(store, 'state'))!, true)).problems).toEqual([]);
    expect(await plan(sync)).toBeNull();
  });
});

