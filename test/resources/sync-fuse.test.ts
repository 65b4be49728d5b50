// sync.<name> through a real s3fs mount of a real S3 server (s3rver on loopback): what the
// bucket receives on push, that an up-to-date plan and apply send it no write at all, and that a
// restore comes back byte-identical with the manifest's modes and mtimes.
import { execFileSync, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { chmod, mkdir, mkdtemp, readFile, rm, stat, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { PlannedAction } from '../../src/engine/types.js';
import { RealHost } from '../../src/host/real.js';
import { readOnlyHost, recordingHost } from '../../src/host/wrappers.js';
import { syncModule } from '../../src/resources/sync/index.js';
import type { ResolvedSync } from '../../src/spec/types.js';
import { startS3Server, S3RVER_ACCESS_KEY, S3RVER_SECRET_KEY, type S3TestServer } from '../helpers/s3server.js';
import { applyContext, environment } from './sync-helpers.js';
import { applyPlanned, observing } from '../helpers/resources.js';

const BUCKET = 'persist-sync-fuse';
const haveS3fs = existsSync('/dev/fuse') && spawnSync('s3fs', ['--version']).status === 0;
const host = new RealHost();

async function waitForMount(path: string): Promise<void> {
  for (let i = 0; i < 100; i++) {
    if ((await host.mounts()).some((m) => m.mountPoint === path && m.fsType === 'fuse.s3fs')) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`s3fs did not mount ${path}`);
}

describe.skipIf(!haveS3fs)('sync through s3fs', () => {
  let server: S3TestServer;
  let root: string;
  let mount: string;
  let local: string;
  let sync: ResolvedSync;
  let savedStateDir: string | undefined;

  const env = () => environment(mount, { syncs: { clawdbot: sync }, backend: 's3fs', bucketName: BUCKET });
  async function plan(): Promise<PlannedAction | null> {
    const observed = (await syncModule.observe(sync, observing({ host: readOnlyHost(host), env: env(), mountReady: { data: true } }))).state;
    const decided = syncModule.diff(sync, observed, { allowShrink: false });
    return decided ? { ...decided, dependsOn: [] } : null;
  }
  async function apply(action: PlannedAction) {
    return applyPlanned(action, applyContext(recordingHost(host), env()));
  }

  beforeAll(async () => {
    server = await startS3Server([BUCKET]);
    root = await mkdtemp(join(tmpdir(), 'persist-sync-fuse-'));
    mount = join(root, 'mount');
    local = join(root, 'local');
    await mkdir(mount);
    const passwd = join(root, 'passwd');
    await writeFile(passwd, `${S3RVER_ACCESS_KEY}:${S3RVER_SECRET_KEY}`, { mode: 0o600 });
    savedStateDir = process.env.PERSIST_STATE_DIR;
    process.env.PERSIST_STATE_DIR = join(root, 'state');
    // s3rver answers from this process's event loop, so s3fs must run as a daemon (no -f) and
    // the test must not block while it mounts.
    execFileSync('s3fs', [
      BUCKET, mount,
      '-o', `passwd_file=${passwd}`, '-o', `url=${server.endpoint}`, '-o', 'use_path_request_style',
      '-o', 'notsup_compat_dir', '-o', 'enable_noobj_cache', '-o', `fsname=${BUCKET}`, '-o', 'subtype=s3fs',
    ]);
    await waitForMount(mount);
    sync = { name: 'clawdbot', bucket: 'data', from: local, relTo: 'clawdbot', to: join(mount, 'clawdbot'), delete: true, exclude: ['*.lock'], maxDeleteRatio: 0.5 };
  });

  afterAll(async () => {
    if (mount) spawnSync('fusermount', ['-u', mount]);
    if (savedStateDir === undefined) delete process.env.PERSIST_STATE_DIR;
    else process.env.PERSIST_STATE_DIR = savedStateDir;
    await server?.stop();
    if (root) await rm(root, { recursive: true, force: true });
  });

  it('pushes, plans nothing without writing, pushes one change, restores byte-identical', async () => {
    const db = Buffer.concat([Buffer.from('SQLite format 3\0'), randomBytes(1024 * 1024)]);
    await mkdir(join(local, 'memory'), { recursive: true });
    await writeFile(join(local, 'state.db'), db, { mode: 0o600 });
    await chmod(join(local, 'state.db'), 0o600);
    await writeFile(join(local, 'app.lock'), 'held');
    for (let i = 0; i < 10; i++) await writeFile(join(local, 'memory', `${i}.md`), `note ${i}`);
    await utimes(join(local, 'memory', '0.md'), 1_600_000_000.5, 1_600_000_000.5);

    const first = (await plan())!;
    expect(first.action).toBe('push');
    expect((await apply(first)).summary).toMatch(/^copied 11 files/);
    const objects = await server.listObjects(BUCKET);
    expect(objects).toContain('clawdbot/.persist-sync.json');
    expect(objects).not.toContain('clawdbot/app.lock');
    expect(objects.filter((k) => k.includes('persist-tmp'))).toEqual([]);
    expect((await server.getObject(BUCKET, 'clawdbot/state.db'))!.equals(db)).toBe(true);

    // Up to date: plan and a stale apply send no write request to the bucket.
    server.resetCounts();
    expect(await plan()).toBeNull();
    const planRequests = server.requests().length;
    const stale: PlannedAction = { ...first, reason: 'stale' };
    expect((await apply(stale)).summary).toBe('already as the spec wants it (nothing to do)');
    expect(server.writeCount()).toBe(0);
    console.log(`s3fs: an up-to-date plan of a 11-file sync sent ${planRequests} requests, 0 writes`);

    // One changed file: one object rewritten plus the manifest.
    server.resetCounts();
    await writeFile(join(local, 'memory', '3.md'), 'note 3, edited');
    const second = (await plan())!;
    expect(second.changes).toContainEqual({ field: 'changes', before: null, after: '1 changed' });
    await apply(second);
    const puts = server.requests().filter((r) => r.method === 'PUT').map((r) => decodeURIComponent(r.url.split('?')[0]!));
    expect(puts.some((u) => u.includes('memory/3.md'))).toBe(true);
    expect(puts.some((u) => /memory\/[0-24-9]\.md$/.test(u))).toBe(false);
    console.log(`s3fs: pushing 1 changed file sent ${server.writeCount()} write requests: ${server.requests().filter((r) => r.method !== "GET" && r.method !== "HEAD").map((r) => `${r.method} ${decodeURIComponent(r.url)}`).join("; ")}`);

    // Restore into a fresh local folder.
    await rm(local, { recursive: true });
    const restore = (await plan())!;
    expect(restore.action).toBe('restore');
    server.resetCounts();
    await apply(restore);
    expect(server.writeCount()).toBe(0); // a restore with a manifest writes nothing to the bucket
    expect((await readFile(join(local, 'state.db'))).equals(db)).toBe(true);
    expect((await stat(join(local, 'state.db'))).mode & 0o777).toBe(0o600);
    expect(Math.abs((await stat(join(local, 'memory', '0.md'))).mtimeMs - 1_600_000_000_500)).toBeLessThan(1);
    expect(await readFile(join(local, 'memory', '3.md'), 'utf8')).toBe('note 3, edited');
    expect(await plan()).toBeNull();
  });
});
