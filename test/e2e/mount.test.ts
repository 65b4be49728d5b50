// Real FUSE mounts (s3fs, rclone) of buckets served by s3rver on loopback, driven through the
// mount resource and the real host.
import { mkdir, readFile, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, expect, it } from 'vitest';
import type { PlannedAction } from '../../src/engine/types.js';
import { mountAt } from '../../src/host/mountinfo.js';
import { RealHost } from '../../src/host/real.js';
import { diffMount, mountReady, observeMount } from '../../src/resources/mount/index.js';
import { Sensitive } from '../../src/spec/sensitive.js';
import type { MountedBucket } from '../../src/spec/types.js';
import { describeE2E, MountSandbox, pidsWithArg } from '../helpers/e2e.js';
import { S3RVER_ACCESS_KEY, S3RVER_SECRET_KEY, startS3Server, type S3TestServer } from '../helpers/s3server.js';
import type { ActionContext } from '../../src/engine/apply.js';
import { applyPlanned } from '../helpers/resources.js';

/** The real host, with persist's state (runtime folders) in a test folder. */
class TestHost extends RealHost {
  constructor(private readonly stateDir: string) {
    super();
  }
  override env(): Record<string, string | undefined> {
    return { ...process.env, PERSIST_STATE_DIR: this.stateDir };
  }
}

for (const backendName of ['s3fs', 'rclone'] as const) {
  describeE2E(`mount resource with ${backendName} against s3rver`, [backendName], () => {
    let server: S3TestServer;
    let sandbox: MountSandbox;
    let host: TestHost;
    let root: string;

    beforeAll(async () => {
      server = await startS3Server(['alpha', 'beta']);
    });
    afterAll(async () => {
      await server?.stop();
    });
    afterEach(async () => {
      await sandbox.cleanup();
    });

    async function setUp(): Promise<void> {
      sandbox = new MountSandbox();
      root = await sandbox.tempDir(`persist-e2e-${backendName}-`);
      host = new TestHost(join(root, 'state'));
    }

    function bucket(name: string, overrides: Partial<MountedBucket> = {}, keys = [S3RVER_ACCESS_KEY, S3RVER_SECRET_KEY]): MountedBucket {
      return {
        key: 'data',
        name,
        endpoint: server.endpoint,
        region: 'us-east-1',
        pathStyle: true,
        provider: 'other',
        credentials: { accessKeyId: new Sensitive(keys[0]!), secretAccessKey: new Sensitive(keys[1]!) },
        prefix: '',
        mount: { backend: backendName, path: join(root, 'mnt'), options: {} },
        ...overrides,
      };
    }

    function applyContext(target: MountedBucket): ActionContext {
      return {
        host,
        env: { specFile: join(root, 'persist.yaml'), specHash: '0', environment: 'test', workspace: root, buckets: { data: target }, links: {}, bundles: {}, syncs: {}, files: {} },
        options: { allowShrink: false },
        report: () => undefined,
        signal: new AbortController().signal,
      };
    }

    async function planAndApply(target: MountedBucket): Promise<PlannedAction> {
      const planned = diffMount(target, await observeMount(target, host));
      expect(planned).not.toBeNull();
      const action = { ...planned!, dependsOn: [] };
      await applyPlanned(action, applyContext(target));
      return action;
    }

    async function waitForObject(bucketName: string, key: string, timeoutMs = 20_000, expected?: string): Promise<Buffer | null> {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        // s3rver writes its object file while it receives it: a read can catch it half written.
        const object = await server.getObject(bucketName, key);
        if ((object && (expected === undefined || object.toString() === expected)) || Date.now() > deadline) return object;
        await new Promise((resolve) => setTimeout(resolve, 200));
      }
    }

    it('mounts, reports healthy, writes through to the server, and observing sends no writes', async () => {
      await setUp();
      const target = bucket('alpha');
      const absent = await observeMount(target, host);
      expect(absent.state).toBe('missing');
      expect(diffMount(target, absent)?.action).toBe('mount');

      const started = Date.now();
      await planAndApply(target);
      const mountMs = Date.now() - started;
      expect(mountMs).toBeLessThan(20_000);

      const entry = mountAt(await host.mounts(), target.mount.path);
      expect(entry?.fsType).toBe(`fuse.${backendName}`);
      expect(entry?.source).toBe('alpha');
      // The probe's sentinel object is gone again.
      expect((await server.listObjects('alpha')).filter((key) => key.startsWith('.persist-probe-'))).toEqual([]);

      server.resetCounts();
      const content = `hello from ${backendName}\n`;
      await writeFile(join(target.mount.path, 'note.txt'), content);
      expect((await waitForObject('alpha', 'note.txt', 20_000, content))?.toString()).toBe(content);
      expect(server.writeCount()).toBeGreaterThan(0); // the counter does see writes

      // Let rclone's write-back settle, then prove that observing writes nothing.
      await new Promise((resolve) => setTimeout(resolve, backendName === 'rclone' ? 1_000 : 200));
      server.resetCounts();
      const healthy = await observeMount(target, host);
      await observeMount(target, host);
      expect(server.writeCount()).toBe(0);
      expect(healthy).toMatchObject({ state: 'mounted', matches: true, alive: true, backend: backendName });
      expect(mountReady(healthy)).toBe(true);
      expect(diffMount(target, healthy)).toBeNull();

      // A second apply of the same action is a no-op.
      const again = await applyPlanned({ ...diffMount(target, absent)!, dependsOn: [] }, applyContext(target));
      expect(again.summary).toBe('already as the spec wants it (nothing to do)');
    });

    it('sees a killed daemon as dead and heals it with a remount', async () => {
      await setUp();
      const target = bucket('alpha');
      await planAndApply(target);
      await writeFile(join(target.mount.path, 'kept.txt'), 'kept\n');
      expect(await waitForObject('alpha', 'kept.txt')).not.toBeNull();
      await new Promise((resolve) => setTimeout(resolve, backendName === 'rclone' ? 1_000 : 0));

      const pids = pidsWithArg(backendName, target.mount.path);
      expect(pids.length).toBe(1);
      process.kill(pids[0]!, 'SIGKILL');
      await new Promise((resolve) => setTimeout(resolve, 300));

      const dead = await observeMount(target, host);
      expect(dead).toMatchObject({ state: 'mounted', matches: true, alive: false });
      expect(mountReady(dead)).toBe(false);
      const planned = diffMount(target, dead);
      expect(planned?.action).toBe('remount');

      await applyPlanned({ ...planned!, dependsOn: [] }, applyContext(target));
      const healed = await observeMount(target, host);
      expect(healed).toMatchObject({ state: 'mounted', matches: true, alive: true });
      expect(await readFile(join(target.mount.path, 'kept.txt'), 'utf8')).toBe('kept\n');
    });

    it('replaces another bucket mounted at the path without touching either bucket', async () => {
      await setUp();
      await server.createBucket('gamma');
      const wrong = bucket('beta');
      await planAndApply(wrong);
      await writeFile(join(wrong.mount.path, 'beta-file.txt'), 'beta\n');
      expect(await waitForObject('beta', 'beta-file.txt')).not.toBeNull();
      const betaBefore = await server.listObjects('beta');

      const target = bucket('gamma');
      const observed = await observeMount(target, host);
      expect(observed).toMatchObject({ state: 'mounted', source: 'beta', matches: false, backend: backendName });
      const planned = diffMount(target, observed);
      expect(planned?.action).toBe('replace');
      expect(planned?.changes).toEqual([
        { field: 'backend', before: backendName, after: backendName },
        { field: 'bucket', before: 'beta', after: 'gamma' },
      ]);
      await applyPlanned({ ...planned!, dependsOn: [] }, applyContext(target));

      const entry = mountAt(await host.mounts(), target.mount.path);
      expect(entry?.source).toBe('gamma');
      expect(diffMount(target, await observeMount(target, host))).toBeNull();
      expect(await readdir(target.mount.path)).toEqual([]);
      expect(await server.listObjects('beta')).toEqual(betaBefore);
      expect((await server.getObject('beta', 'beta-file.txt'))?.toString()).toBe('beta\n');
      expect(await server.listObjects('gamma')).toEqual([]);
    });

    for (const failure of ['bad keys', 'missing bucket'] as const) {
      it(`fails within seconds with the daemon's reason on ${failure}, leaving nothing behind`, async () => {
        await setUp();
        const target =
          failure === 'bad keys' ? bucket('alpha', {}, ['NOTAKEY', 'NOTASECRET']) : bucket('no-such-bucket');
        const planned = diffMount(target, await observeMount(target, host));
        expect(planned?.action).toBe('mount');
        const started = Date.now();
        const error = await applyPlanned({ ...planned!, dependsOn: [] }, applyContext(target)).then(
          () => null,
          (caught: unknown) => caught as Error,
        );
        const elapsed = Date.now() - started;
        expect(error?.name).toBe('ActionError');
        expect(error?.message).toContain(`mounting ${target.name} at ${target.mount.path} with ${backendName} failed`);
        if (backendName === 's3fs') {
          expect(error?.message).toMatch(failure === 'bad keys' ? /invalid credentials/ : /bucket or key not found/);
        } else {
          // rclone would mount anyway; its driver lists the bucket first.
          expect(error?.message).toMatch(failure === 'bad keys' ? /cannot list bucket alpha.*InvalidAccessKeyId/ : /cannot list bucket no-such-bucket.*directory not found/);
        }
        expect(error?.message).not.toContain('NOTASECRET');
        expect(elapsed).toBeLessThan(25_000);
        expect(mountAt(await host.mounts(), target.mount.path)).toBeUndefined();
        // The mount point it created is gone again; so is the passwd file.
        expect(await host.lstat(target.mount.path)).toBeNull();
        const runtime = await readdir(join(root, 'state', 'mounts'));
        for (const dir of runtime) {
          expect(await readdir(join(root, 'state', 'mounts', dir))).not.toContain('passwd-s3fs');
        }
      });
    }

    it('refuses to mount over a non-empty directory and leaves it as it was', async () => {
      await setUp();
      const target = bucket('alpha');
      await mkdir(target.mount.path);
      await writeFile(join(target.mount.path, 'local-only.txt'), 'precious\n');
      const observed = await observeMount(target, host);
      expect(observed).toMatchObject({ state: 'dir', entries: 1, sample: ['local-only.txt'] });
      const planned = diffMount(target, observed);
      expect(planned?.action).toBe('conflict');
      expect(planned?.conflict?.message).toContain('local-only.txt');
      // Even asked to mount, apply re-checks and refuses.
      await expect(
        applyPlanned({ ...planned!, action: 'mount', dependsOn: [] }, applyContext(target)),
      ).rejects.toThrow(/non-empty|would hide/);
      expect(mountAt(await host.mounts(), target.mount.path)).toBeUndefined();
      expect(await readFile(join(target.mount.path, 'local-only.txt'), 'utf8')).toBe('precious\n');
    });
  });
}
