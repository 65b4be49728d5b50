// The local copy of a sync's manifest (src/resources/sync/manifest-cache.ts) through the CLI, on
// the strict loopback S3 server (a bucket without a mount, so every read of the manifest is a GET
// the server counts): a 1-file push reads the manifest's root and none of its shards; after
// another machine pushed, a plan reads the root and the one shard that changed, and decides on
// the other machine's manifest, never on the stale copy; a damaged copy is never used.
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { e2eRig } from '../helpers/e2e.js';
import { startStrictS3Server, type StrictS3TestServer } from '../helpers/s3server.js';
import { releaseLease } from '../../src/engine/lease.js';
import { loadEnvironment } from '../../src/spec/index.js';
import { apiBucketYaml, GOOD_KEYS, Machine } from './flow-helpers.js';

const FILES = 700; // four shards

function spec(server: StrictS3TestServer, bucket: string): string {
  return [
    'version: 1',
    'buckets:',
    '  data:',
    apiBucketYaml(server, bucket),
    'syncs:',
    '  state: { from: ./state, to: state, delete: true }',
    '',
  ].join('\n');
}

/** GETs of the manifest since the last reset: its root, and each shard. */
function manifestReads(server: StrictS3TestServer): { roots: number; shards: string[] } {
  const gets = server.requests().filter((r) => r.method === 'GET').map((r) => decodeURIComponent(r.url.split('?')[0]!));
  return {
    roots: gets.filter((url) => url.endsWith('/state/.persist-sync.json')).length,
    shards: gets.filter((url) => /\/state\/\.persist-sync\/\d+-of-\d+\.json$/.test(url)).map((url) => url.slice(url.lastIndexOf('/') + 1)),
  };
}

async function release(machine: Machine): Promise<void> {
  const env = await loadEnvironment({ file: machine.spec, processEnv: { E2E_S3_KEY: GOOD_KEYS.accessKeyId, E2E_S3_SECRET: GOOD_KEYS.secretAccessKey } });
  await releaseLease(machine.host(), env);
}

async function cachedShards(machine: Machine): Promise<string[]> {
  const base = join(machine.stateDir, 'manifests');
  const paths: string[] = [];
  for (const dir of await readdir(base)) for (const name of await readdir(join(base, dir))) if (name.endsWith('.json')) paths.push(join(base, dir, name));
  return paths;
}

describe('the local copy of a sync manifest', () => {
  const rig = e2eRig(() => startStrictS3Server());

  it('a 1-file push reads no shard; after another machine pushed, a plan reads only the changed shard and never trusts a stale or damaged copy', { timeout: 240_000 }, async () => {
    const bucket = 'manifest-cache';
    await rig.server.createBucket(bucket);
    const a = new Machine(await rig.sandbox.tempDir('persist-cache-a-'));
    await mkdir(join(a.state, 'notes'), { recursive: true });
    for (let i = 0; i < FILES; i++) await writeFile(join(a.state, 'notes', `${i}.md`), `note ${i}\n`);
    await writeFile(a.spec, spec(rig.server, bucket));
    const first = await a.persist(['apply', '--auto-approve']);
    expect(first.code, first.output).toBe(0);

    // A 1-file push: the plan's read, the executor's re-check, the push's own check and the
    // verification each read the root; the shards come from the local copy.
    await writeFile(join(a.state, 'notes', '7.md'), 'changed on A\n');
    rig.server.resetCounts();
    const push = await a.persist(['apply', '--auto-approve']);
    expect(push.code, push.output).toBe(0);
    expect(push.output).toMatch(/sync\.state {2}push: copied 1 file/);
    expect(manifestReads(rig.server).shards).toEqual([]);
    expect(manifestReads(rig.server).roots).toBeGreaterThan(0);
    await release(a);

    // Machine B restores, changes one file and pushes.
    const b = new Machine(await rig.sandbox.tempDir('persist-cache-b-'));
    await writeFile(b.spec, spec(rig.server, bucket));
    expect((await b.persist(['apply', '--auto-approve'])).code).toBe(0);
    await writeFile(join(b.state, 'notes', '123.md'), 'changed on B\n');
    const pushB = await b.persist(['apply', '--auto-approve']);
    expect(pushB.code, pushB.output).toBe(0);
    // B's copy is complete too: the shards its restore read (first by apply's read-only plan, kept
    // once the re-check could write) and the one its push wrote.
    rig.server.resetCounts();
    expect((await b.persist(['plan', '--detailed-exitcode'])).code).toBe(0);
    expect(manifestReads(rig.server).shards).toEqual([]);
    await release(b);

    // A's copy is stale: the root names another hash for the shard B rewrote. A's plan reads that
    // one shard and sees B's generation (A is unchanged since its push: a restore of B's).
    rig.server.resetCounts();
    const plan = await a.persist(['plan']);
    expect(plan.code, plan.output).toBe(0);
    expect(plan.output).toMatch(/<= sync\.state {2}restore/);
    expect(plan.output).toContain('generation: 2 → 3');
    expect(manifestReads(rig.server).shards).toHaveLength(1);

    // Damaged copies (same names, other bytes) are never used: every shard is read again, same plan.
    for (const path of await cachedShards(a)) await writeFile(path, '{"version":2,"files":{}}\n');
    rig.server.resetCounts();
    const again = await a.persist(['plan']);
    expect(again.output).toBe(plan.output);
    expect(manifestReads(rig.server).shards).toHaveLength(4);

    // A takes B's push: the file B changed, byte for byte.
    const restore = await a.persist(['apply', '--auto-approve']);
    expect(restore.code, restore.output).toBe(0);
    expect(await readFile(join(a.state, 'notes', '123.md'), 'utf8')).toBe('changed on B\n');
    expect(await readFile(join(a.state, 'notes', '7.md'), 'utf8')).toBe('changed on A\n');
    expect((await a.persist(['plan', '--detailed-exitcode'])).code).toBe(0);
  });
});
