// Transfers of a sync through the S3 API (a bucket without a mount), through the CLI on the strict
// loopback server: files move many at a time, a cold restore is one GET per file, a push is one
// PUT per file with no read-back; a file that only grew sends only its tail (bytes counted at the
// server); and the hostile paths: one file failing in the middle of a parallel push, the process
// killed (SIGKILL) in the middle of a push and of a restore, each followed by a clean run that
// converges byte for byte.
import { createHash, randomBytes } from 'node:crypto';
import { appendFile, mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { releaseLease } from '../../src/engine/lease.js';
import { loadEnvironment } from '../../src/spec/index.js';
import { ApiStore } from '../../src/store/api.js';
import { readManifest } from '../../src/resources/sync/manifest.js';
import { e2eRig } from '../helpers/e2e.js';
import { startStrictS3Server, type StrictS3TestServer } from '../helpers/s3server.js';
import { apiBucketYaml, applyKilledWhen, GOOD_KEYS, Machine, manifest } from './flow-helpers.js';

const MiB = 1024 * 1024;

function spec(server: StrictS3TestServer, bucket: string): string {
  return [
    'version: 1',
    'buckets:',
    '  data:',
    apiBucketYaml(server, bucket),
    'syncs:',
    '  notes: { from: ./notes, to: notes, delete: true }',
    '',
  ].join('\n');
}

const processEnv = { E2E_S3_KEY: GOOD_KEYS.accessKeyId, E2E_S3_SECRET: GOOD_KEYS.secretAccessKey };
const sha256 = (data: Buffer) => createHash('sha256').update(data).digest('hex');

async function machine(rig: { sandbox: { tempDir(prefix: string): Promise<string> } }, server: StrictS3TestServer, bucket: string, name: string): Promise<Machine> {
  const made = new Machine(await rig.sandbox.tempDir(`persist-transfers-${name}-`));
  await writeFile(made.spec, spec(server, bucket));
  await mkdir(join(made.root, 'notes'), { recursive: true });
  return made;
}

async function writeNotes(m: Machine, count: number): Promise<void> {
  for (let i = 0; i < count; i++) {
    await mkdir(join(m.root, 'notes', `d${i % 10}`), { recursive: true });
    await writeFile(join(m.root, 'notes', `d${i % 10}`, `n${i}.md`), randomBytes(500 + ((i * 7919) % 4000)));
  }
}

/** The machine's lease goes (as `persist shutdown` does), so that another container may apply at once. */
async function release(m: Machine): Promise<void> {
  await releaseLease(m.host(), await loadEnvironment({ file: m.spec, processEnv }));
}

async function storeOf(m: Machine): Promise<ApiStore> {
  const env = await loadEnvironment({ file: m.spec, processEnv });
  return new ApiStore(m.host(), env.buckets.data!);
}

async function tempLeftovers(folder: string): Promise<string[]> {
  return (await readdir(folder, { recursive: true })).filter((path) => path.includes('.persist-tmp-'));
}

describe('transfers of a sync through the S3 API', () => {
  const rig = e2eRig(() => startStrictS3Server());

  it('a first save is one PUT per file and no HEAD per file; a cold restore one GET per file; byte for byte', { timeout: 180_000 }, async () => {
    const bucket = 'transfers-counts';
    await rig.server.createBucket(bucket);
    const a = await machine(rig, rig.server, bucket, 'a');
    await writeNotes(a, 400);
    rig.server.resetCounts();
    const saved = await a.persist(['apply', '--auto-approve']);
    expect(saved.code, saved.output).toBe(0);
    const up = rig.server.stats().requests;
    // 400 files, a few shards, the root, lineage's record and the lease: nothing per file but its PUT.
    expect(up.PUT).toBeGreaterThanOrEqual(400);
    expect(up.PUT).toBeLessThan(440);
    expect(up.HEAD ?? 0).toBeLessThan(20);
    await release(a);

    const b = await machine(rig, rig.server, bucket, 'b');
    rig.server.resetCounts();
    const restored = await b.persist(['apply', '--auto-approve']);
    expect(restored.code, restored.output).toBe(0);
    expect(restored.output).toMatch(/restored 400 files/);
    const down = rig.server.stats().requests;
    expect(down.GET).toBeGreaterThanOrEqual(400);
    expect(down.GET).toBeLessThan(440);
    expect(down.HEAD ?? 0).toBeLessThan(20);
    expect(await manifest(join(b.root, 'notes'))).toEqual(await manifest(join(a.root, 'notes')));
    const plan = await b.persist(['plan', '--detailed-exitcode']);
    expect(plan.code, plan.output).toBe(0);
  });

  it('appending 1 KiB to a 100 MiB transcript uploads at most 16 MiB (counted at the server), keeps the old version by a server-side copy, and restores byte for byte', { timeout: 300_000 }, async () => {
    const bucket = 'transfers-append';
    await rig.server.createBucket(bucket);
    const a = await machine(rig, rig.server, bucket, 'a');
    const transcript = join(a.root, 'notes', 'session.jsonl');
    const first = randomBytes(100 * MiB);
    await writeFile(transcript, first);
    const saved = await a.persist(['apply', '--auto-approve']);
    expect(saved.code, saved.output).toBe(0);

    await appendFile(transcript, randomBytes(1024));
    rig.server.resetCounts();
    const pushed = await a.persist(['apply', '--auto-approve']);
    expect(pushed.code, pushed.output).toBe(0);
    expect(pushed.output).toMatch(/copied 1 file \(100\.0 MiB, 96\.0 MiB of it copied within the store\)/);
    const stats = rig.server.stats();
    expect(stats.totalBytesIn).toBeLessThanOrEqual(16 * MiB);
    // The superseded version went into the history by one server-side copy (a PUT with no body).
    const kept = rig.server.requests().filter((r) => r.method === 'PUT' && decodeURIComponent(r.url.split('?')[0]!).endsWith('/notes/.persist-sync/generations/1/files/session.jsonl'));
    expect(kept).toHaveLength(1);
    expect(sha256((await rig.server.getObject(bucket, 'notes/.persist-sync/generations/1/files/session.jsonl'))!)).toBe(sha256(first));
    expect(sha256((await rig.server.getObject(bucket, 'notes/session.jsonl'))!)).toBe(sha256(await readFile(transcript)));
    await release(a);

    // A new container restores it byte for byte, then appends cheaply too (it learnt the object's ETag from its GET).
    const b = await machine(rig, rig.server, bucket, 'b');
    const restored = await b.persist(['apply', '--auto-approve']);
    expect(restored.code, restored.output).toBe(0);
    const copy = join(b.root, 'notes', 'session.jsonl');
    expect(sha256(await readFile(copy))).toBe(sha256(await readFile(transcript)));
    await appendFile(copy, randomBytes(1024));
    rig.server.resetCounts();
    const again = await b.persist(['apply', '--auto-approve']);
    expect(again.code, again.output).toBe(0);
    expect(rig.server.stats().totalBytesIn).toBeLessThanOrEqual(16 * MiB);
    expect(sha256((await rig.server.getObject(bucket, 'notes/session.jsonl'))!)).toBe(sha256(await readFile(copy)));
    await release(b);

    // A grown file whose object changed behind this machine's back (another writer) is uploaded whole, never spliced.
    const other = Buffer.concat([randomBytes(100 * MiB), randomBytes(2048)]);
    await rig.server.putObject(bucket, 'notes/session.jsonl', other);
    await appendFile(copy, randomBytes(1024));
    const forced = await b.persist(['apply', '--auto-approve']);
    expect(forced.code, forced.output).toBe(0);
    expect(sha256((await rig.server.getObject(bucket, 'notes/session.jsonl'))!)).toBe(sha256(await readFile(copy)));
  });

  it('one file failing in the middle of a parallel push: the push fails naming it, every shard lists only stored files, and the next apply converges', { timeout: 180_000 }, async () => {
    const bucket = 'transfers-fault';
    await rig.server.createBucket(bucket);
    const a = await machine(rig, rig.server, bucket, 'a');
    await writeNotes(a, 600);
    expect((await a.persist(['apply', '--auto-approve'])).code).toBe(0);
    // Change a third of the files, in every shard, and add some.
    const notes = join(a.root, 'notes');
    const changed: string[] = [];
    for (let i = 0; i < 600; i += 3) {
      changed.push(`d${i % 10}/n${i}.md`);
      await writeFile(join(notes, `d${i % 10}`, `n${i}.md`), randomBytes(700));
    }
    for (let i = 0; i < 30; i++) await writeFile(join(notes, `added${i}.md`), randomBytes(300));
    // Every attempt (5) of one changed file's PUT fails: that file cannot be stored in this push.
    rig.server.injectFailures({ method: 'PUT', match: (url) => url.split('?')[0]!.endsWith('/notes/d3/n243.md'), count: 5, status: 500, code: 'InternalError' });
    const failed = await a.persist(['apply', '--auto-approve']);
    expect(failed.code).toBe(1);
    expect(failed.output).toContain('n243.md');

    // What the failed push left: the manifest lists only files in the store; a listed file holds
    // its listed bytes, or (a file being replaced, its shard not written yet) its previous ones.
    const store = await storeOf(a);
    const listed = (await readManifest(store, 'notes'))!;
    for (const [path, entry] of Object.entries(listed.files)) {
      const object = await rig.server.getObject(bucket, `notes/${path}`);
      expect(object, path).not.toBeNull();
      if (sha256(object!) !== entry.sha256) expect(changed).toContain(path);
    }

    const fixed = await a.persist(['apply', '--auto-approve']);
    expect(fixed.code, fixed.output).toBe(0);
    expect((await a.persist(['plan', '--detailed-exitcode'])).code).toBe(0);
    await release(a);
    const b = await machine(rig, rig.server, bucket, 'b');
    expect((await b.persist(['apply', '--auto-approve'])).code).toBe(0);
    expect(await manifest(join(b.root, 'notes'))).toEqual(await manifest(notes));
  });

  it('SIGKILL in the middle of a push and of a restore: the next apply converges byte for byte, no temporary file left', { timeout: 300_000 }, async () => {
    const bucket = 'transfers-kill';
    await rig.server.createBucket(bucket);
    const a = await machine(rig, rig.server, bucket, 'a');
    await writeNotes(a, 800);
    await writeFile(join(a.root, 'notes', 'big.bin'), randomBytes(24 * MiB));
    rig.server.resetCounts();
    const push = await applyKilledWhen(a, () => (rig.server.stats().requests.PUT ?? 0) >= 300);
    expect(push.killed).toBe(true);
    const resumed = await a.persist(['apply', '--auto-approve']);
    expect(resumed.code, resumed.output).toBe(0);
    expect((await a.persist(['plan', '--detailed-exitcode'])).code).toBe(0);
    const tree = await manifest(join(a.root, 'notes'));
    await release(a);

    const b = await machine(rig, rig.server, bucket, 'b');
    rig.server.resetCounts();
    const restore = await applyKilledWhen(b, () => (rig.server.stats().requests.GET ?? 0) >= 300);
    expect(restore.killed).toBe(true);
    // Half-restored: never pushed from, resumed by the next apply.
    const plan = await b.persist(['plan']);
    expect(plan.output).toMatch(/restore/);
    const finished = await b.persist(['apply', '--auto-approve']);
    expect(finished.code, finished.output).toBe(0);
    expect(await manifest(join(b.root, 'notes'))).toEqual(tree);
    expect(await tempLeftovers(join(b.root, 'notes'))).toEqual([]);
    expect((await b.persist(['plan', '--detailed-exitcode'])).code).toBe(0);
  });
});
