// Names are bytes (issue 12): a name that is not UTF-8, and a user's file named like persist's own
// (`.persist-sync.json`, temporaries, conflict copies), are pushed and restored like any file. Keys
// in the store are valid UTF-8 and never look like persist's own (sync/names.ts, docs/names.md).
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdir, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { beforeEach, describe, expect, it } from 'vitest';
import { executePlan, type ActionResult } from '../../src/engine/apply.js';
import type { PlannedAction } from '../../src/engine/types.js';
import { bytesOfName, nameFromBytes } from '../../src/host/names.js';
import { RealHost } from '../../src/host/real.js';
import type { Host } from '../../src/host/types.js';
import { readOnlyHost } from '../../src/host/wrappers.js';
import { syncModule } from '../../src/resources/sync/index.js';
import { readManifest } from '../../src/resources/sync/manifest.js';
import { ESCAPE_MARK, keyName, nameOfKey, pathOfKey, relativeKey } from '../../src/store/key-names.js';
import { Sensitive } from '../../src/spec/sensitive.js';
import type { ResolvedEnvironment, ResolvedSync } from '../../src/spec/types.js';
import { MountedStore } from '../../src/store/mounted.js';
import { observing } from '../helpers/resources.js';
import { environment } from '../resources/sync-helpers.js';
import { S3RVER_ACCESS_KEY, S3RVER_SECRET_KEY, startStrictS3Server } from '../helpers/s3server.js';
import { folderPerTestWithState } from '../helpers/temp.js';

const raw = (...parts: (string | number[] | Buffer)[]): Buffer => Buffer.concat(parts.map((part) => (Buffer.isBuffer(part) ? part : typeof part === 'string' ? Buffer.from(part) : Buffer.from(part))));

describe('keys of names', () => {
  it('a plain name is its own key; the others are escaped, valid UTF-8, and come back exactly', () => {
    expect(keyName('notes.md')).toBe('notes.md');
    expect(keyName('héllo 😀.md')).toBe('héllo 😀.md');
    const latin1 = nameFromBytes(raw('caf', [0xe9], '.txt'));
    expect(keyName(latin1)).toBe('%persist%caf%E9.txt');
    expect(keyName('.persist-sync.json')).toBe('%persist%%2Epersist-sync.json');
    expect(keyName('a.md.persist-conflict-20260101T000000Z')).toBe('%persist%a.md%2Epersist-conflict-20260101T000000Z');
    expect(keyName('%persist%caf%E9.txt')).toBe('%persist%%25persist%25caf%25E9.txt');
    for (const name of [latin1, '.persist-sync.json', '%persist%caf%E9.txt', 'notes.md', '100%.txt', nameFromBytes(raw([0xff, 0xfe, 0x25]))]) {
      const key = keyName(name);
      expect(Buffer.from(key, 'utf8').toString('utf8')).toBe(key); // valid UTF-8
      expect(key.includes('.persist-')).toBe(false);
      expect(nameOfKey(key)).toBe(name);
    }
    expect(pathOfKey(relativeKey(`a/${latin1}/.persist-sync/b`))).toBe(`a/${latin1}/.persist-sync/b`);
  });

  it('no two names share a key, whatever their bytes', () => {
    const keys = new Map<string, string>();
    const names = new Set<string>();
    for (let i = 0; i < 4000; i++) {
      const bytes = Buffer.from(Array.from({ length: 1 + (i % 9) }, (_, j) => [0x25, 0x2e, 0x70, 0xe9, 0xff, 0x41, 0xc3, 0xa9][(i * 7 + j * 13 + (i >> 3)) % 8]!));
      names.add(nameFromBytes(bytes));
    }
    for (const name of [...names, ESCAPE_MARK, `${ESCAPE_MARK}x`, '%25', '.persist-', '%2Epersist-']) {
      const key = keyName(name);
      expect(keys.get(key) ?? name).toBe(name);
      keys.set(key, name);
      expect(nameOfKey(key)).toBe(name);
    }
  });

  it('a name whose escaped form would pass NAME_MAX gets a fixed-length key', () => {
    const long = nameFromBytes(Buffer.alloc(250, 0xe9));
    const key = keyName(long);
    expect(key).toMatch(/^%persist%#[0-9a-f]{64}$/);
    expect(keyName(nameFromBytes(Buffer.alloc(250, 0xea)))).not.toBe(key);
  });
});

const realHost = new RealHost();
let root: string;
let local: string;
let mount: string;

const testFolder = folderPerTestWithState('persist-names-');

beforeEach(async () => {
  root = testFolder();
  local = join(root, 'local');
  mount = join(root, 'mount');
  await mkdir(local, { recursive: true });
  await mkdir(mount, { recursive: true });
});

function makeSync(): ResolvedSync {
  return { name: 'state', bucket: 'data', from: local, relTo: 'state', to: join(mount, 'state'), delete: true, exclude: [], maxDeleteRatio: 0.5 };
}

/** The environment of the tests: a `local` bucket, unless a test points it at an S3 API. */
let envOf = (sync: ResolvedSync): ResolvedEnvironment => environment(mount, { syncs: { [sync.name]: sync } });

async function plan(sync: ResolvedSync, host: Host = realHost): Promise<PlannedAction | null> {
  const env = envOf(sync);
  const observed = (await syncModule.observe(sync, observing({ host: readOnlyHost(host), env, mountReady: { data: true } }))).state;
  const decided = syncModule.diff(sync, JSON.parse(JSON.stringify(observed)), { allowShrink: false });
  return decided ? { ...decided, dependsOn: [] } : null;
}

async function applyAll(sync: ResolvedSync, host: Host = realHost): Promise<ActionResult> {
  const action = await plan(sync, host);
  if (!action) throw new Error('expected an action');
  const env = envOf(sync);
  const view = { run: async (tasks: { run(report: (line: string) => void): Promise<ActionResult> }[]) => void (await Promise.all(tasks.map((t) => t.run(() => undefined)))) };
  const report = await executePlan([action], { host, env, options: { allowShrink: false }, view, signal: new AbortController().signal });
  return report.results.get(action.address)!;
}

/** Every file under `dir`: hex of its path's bytes -> sha256 of its content. */
async function tree(dir: Buffer, prefix: Buffer = Buffer.alloc(0)): Promise<Record<string, string>> {
  const result: Record<string, string> = {};
  for (const entry of await readdir(dir, { withFileTypes: true, encoding: 'buffer' })) {
    const name = entry.name as unknown as Buffer;
    const path: Buffer = Buffer.concat([dir, Buffer.from('/'), name]);
    const rel: Buffer = prefix.length ? Buffer.concat([prefix, Buffer.from('/'), name]) : name;
    if (entry.isDirectory()) Object.assign(result, await tree(path, rel));
    else result[rel.toString('hex')] = createHash('sha256').update(await readFile(path)).digest('hex');
  }
  return result;
}

/** Names that are not UTF-8, and names of persist's own, as a user may have them. */
async function writeOddNames(dir: string): Promise<void> {
  const base = Buffer.from(`${dir}/`);
  await writeFile(raw(base, 'caf', [0xe9], '.txt'), 'latin-1 name');
  await mkdir(raw(base, 'dir', [0xff]));
  await writeFile(raw(base, 'dir', [0xff], '/inner', [0xfe, 0xc3]), 'inside a folder whose name is not UTF-8');
  await writeFile(raw(base, '%persist%caf%E9.txt'), 'a real name that looks like an escaped one');
  await writeFile(join(dir, '.persist-sync.json'), 'my own file, not a manifest');
  await writeFile(join(dir, '.persist-sync-folders.json'), '{"version": 1, "folders": {"x": 448}}');
  await mkdir(join(dir, '.persist-sync'));
  await writeFile(join(dir, '.persist-sync', '0-of-1.json'), 'not a shard');
  await writeFile(join(dir, '.notes.persist-tmp-draft'), 'a draft');
  await writeFile(join(dir, '.notes.persist-tmp-0123456789ab'), 'exactly like a temporary');
  await writeFile(join(dir, 'a.md.persist-conflict-20260101T000000Z'), 'kept by hand');
  await writeFile(join(dir, 'plain.md'), 'plain');
}

describe('a sync with odd names (local bucket)', () => {
  it('pushes and restores every name byte for byte; keys are valid UTF-8; the manifest records the real names', async () => {
    const sync = makeSync();
    await writeOddNames(local);
    await rm(join(local, '.notes.persist-tmp-0123456789ab')); // exactly persist's form: left out as a leftover (see below)
    const before = await tree(Buffer.from(local));
    const pushed = await applyAll(sync);
    expect(pushed.status, pushed.message).toBe('applied');
    expect(pushed.notes.join('\n')).not.toMatch(/UTF-8|skipped/);
    expect(await plan(sync)).toBeNull();

    // The mirror: every key valid UTF-8; a user's look-alikes are escaped, so persist's own files are its own.
    const keys = Object.keys(await tree(Buffer.from(join(mount, 'state')))).map((hex) => Buffer.from(hex, 'hex'));
    for (const key of keys) expect(Buffer.from(key.toString('utf8')).equals(key)).toBe(true);
    const names = keys.map((key) => key.toString('utf8'));
    expect(names).toContain('%persist%caf%E9.txt');
    expect(names).toContain('%persist%dir%FF/%persist%inner%FE%C3');
    expect(names).toContain('%persist%%2Epersist-sync.json');
    expect(names).toContain('%persist%%2Epersist-sync/0-of-1.json');
    expect(names).toContain('%persist%%25persist%25caf%25E9.txt');
    expect(names).toContain('.persist-sync.json'); // the real manifest
    const manifest = (await readManifest(new MountedStore(realHost, mount), 'state'))!;
    expect(Object.keys(manifest.files).map((path) => bytesOfName(path).toString('hex')).sort()).toEqual(Object.keys(before).sort());
    expect(await readFile(join(mount, 'state', '.persist-sync.json'), 'utf8')).toContain('"version":2');

    await rm(local, { recursive: true });
    const restored = await applyAll(sync);
    expect(restored.status, restored.message).toBe('applied');
    expect(await tree(Buffer.from(local))).toEqual(before);
    expect(await plan(sync)).toBeNull();
  });

  it('a change to a file whose name is not UTF-8 is pushed, and its removal deleted', async () => {
    const sync = makeSync();
    const name = raw(`${local}/`, 'caf', [0xe9]);
    await writeFile(name, 'one');
    await writeFile(join(local, 'other'), 'other');
    await writeFile(join(local, 'third'), 'third');
    await applyAll(sync);
    await writeFile(name, 'two, longer');
    expect((await plan(sync))?.action).toBe('push');
    await applyAll(sync);
    expect(await readFile(join(mount, 'state', '%persist%caf%E9'), 'utf8')).toBe('two, longer');
    await rm(name);
    await applyAll(sync);
    expect(await readdir(join(mount, 'state'))).not.toContain('%persist%caf%E9');
    expect(await plan(sync)).toBeNull();
  });

  it('a SQLite database under a name that is not UTF-8 is pushed as a snapshot and restored sound', async () => {
    const sync = makeSync();
    execFileSync('sqlite3', [join(local, 'plain.db'), 'PRAGMA journal_mode=WAL; CREATE TABLE t(v); INSERT INTO t VALUES (42);']);
    await rename(join(local, 'plain.db'), raw(`${local}/caf`, [0xe9], '.db'));
    await writeFile(join(local, 'other'), 'other');
    const pushed = await applyAll(sync);
    expect(pushed.notes.join('\n')).not.toMatch(/not pushed/);
    expect(await plan(sync)).toBeNull();
    await rm(local, { recursive: true });
    await applyAll(sync);
    await rename(raw(`${local}/caf`, [0xe9], '.db'), join(local, 'back.db'));
    expect(execFileSync('sqlite3', [join(local, 'back.db'), 'PRAGMA integrity_check; SELECT v FROM t;'], { encoding: 'utf8' })).toBe('ok\n42\n');
  });

  it('a mirror pushed before names were escaped still restores a file whose name contains .persist-', async () => {
    const sync = makeSync();
    await writeFile(join(local, 'a'), 'a');
    await writeFile(join(local, 'b.persist-old'), 'legacy');
    await applyAll(sync);
    // As an earlier persist stored it: under the name itself.
    await writeFile(join(mount, 'state', 'b.persist-old'), 'legacy');
    await rm(join(mount, 'state', '%persist%b%2Epersist-old'));
    await rm(local, { recursive: true });
    const restored = await applyAll(sync);
    expect(restored.status, restored.message).toBe('applied');
    expect(await readFile(join(local, 'b.persist-old'), 'utf8')).toBe('legacy');
  });
});

describe('a sync with odd names through the S3 API (strict server)', () => {
  it('pushes and restores every name byte for byte, every key valid UTF-8', async () => {
    const server = await startStrictS3Server(['names']);
    const plain = envOf;
    try {
      envOf = (sync) => {
        const env = environment(mount, { syncs: { [sync.name]: sync } });
        const credentials = { accessKeyId: new Sensitive(S3RVER_ACCESS_KEY), secretAccessKey: new Sensitive(S3RVER_SECRET_KEY) };
        env.buckets.data = { key: 'data', name: 'names', endpoint: server.endpoint, region: 'us-east-1', pathStyle: true, provider: 'other', credentials, prefix: 'env/' };
        return env;
      };
      const sync = makeSync();
      await writeOddNames(local);
      await rm(join(local, '.notes.persist-tmp-0123456789ab'));
      const before = await tree(Buffer.from(local));
      const pushed = await applyAll(sync);
      expect(pushed.status, pushed.message).toBe('applied');
      expect(await plan(sync)).toBeNull();
      const keys = await server.listObjects('names');
      expect(keys).toContain('env/state/%persist%caf%E9.txt');
      expect(keys).toContain('env/state/%persist%%2Epersist-sync.json');
      for (const key of keys) expect(key).not.toContain('\uFFFD');
      await rm(local, { recursive: true });
      const restored = await applyAll(sync);
      expect(restored.status, restored.message).toBe('applied');
      expect(await tree(Buffer.from(local))).toEqual(before);
      expect(await plan(sync)).toBeNull();
    } finally {
      envOf = plain;
      await server.stop();
    }
  });
});
