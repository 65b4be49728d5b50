// Observation on the in-memory host when a FUSE daemon dies while the machine is looked at: its
// mount's own observation found it alive, then every read under the mount point fails with
// ENOTCONN (what the kernel answers once the daemon is gone). Plan and apply must turn that into
// a passing conflict per resource (shutdown tries those again, and its next plan remounts), never
// an internal error; and an action whose re-check finds the mount dead fails as passing too.
import { describe, expect, it } from 'vitest';
import { computePlan } from '../../src/commands/common.js';
import { executePlan, type ActionResult, type ApplyView } from '../../src/engine/apply.js';
import { MemoryHost } from '../../src/host/memory.js';
import type { HostPath } from '../../src/host/types.js';
import { readOnlyHost } from '../../src/host/wrappers.js';
import type { ResolvedEnvironment } from '../../src/spec/types.js';

const FUSE_PATH = '/data/moltbot';
const LOCAL_PATH = '/data/local';
const READS = ['lstat', 'stat', 'readdir', 'readdirNames', 'readFile', 'readHead', 'readlink'] as const;

function environment(): ResolvedEnvironment {
  const link = (name: string, bucket: string, mount: string) => ({ name, bucket, path: `/root/clawd/${name}`, relTarget: `workspace/${name}`, target: `${mount}/workspace/${name}` });
  return {
    specFile: '/spec/persist.yaml',
    specHash: '0'.repeat(64),
    environment: 'test',
    workspace: '/root/clawd',
    buckets: {
      data: { key: 'data', name: 'bucket-data', pathStyle: true, provider: 'other', mount: { backend: 's3fs', path: FUSE_PATH, options: {} } },
      scratch: { key: 'scratch', name: 'bucket-scratch', pathStyle: true, provider: 'other', mount: { backend: 'local', path: LOCAL_PATH, options: {} } },
    },
    links: { memory: link('memory', 'data', FUSE_PATH), notes: link('notes', 'scratch', LOCAL_PATH) },
    bundles: {},
    syncs: { state: { name: 'state', bucket: 'data', from: '/root/state', relTo: 'state', to: `${FUSE_PATH}/state`, delete: true, exclude: [], maxDeleteRatio: 0.5 } },
    files: {},
  };
}

/**
 * A machine with the s3fs bucket mounted and healthy, whose daemon dies (`die`) when told: from
 * then on every read under the mount point fails with `code`, as a dead FUSE mount answers.
 */
function machine(code = 'ENOTCONN'): MemoryHost & { die(): void } {
  const host = new MemoryHost();
  host.addDir(`${FUSE_PATH}/workspace/memory`).addDir(`${FUSE_PATH}/state`).addDir(LOCAL_PATH).addDir('/root/clawd').addFile('/root/state/a.txt', 'a\n');
  host.addSymlink('/root/clawd/memory', `${FUSE_PATH}/workspace/memory`);
  host.mountTable = [{ mountId: 40, parentId: 1, mountPoint: FUSE_PATH, root: '/', fsType: 'fuse.s3fs', source: 'bucket-data', options: 'rw', superOptions: 'rw' }];
  let dead = false;
  for (const method of READS) {
    const original = (host[method] as (path: HostPath, ...rest: unknown[]) => Promise<unknown>).bind(host);
    (host as unknown as Record<string, unknown>)[method] = async (path: HostPath, ...rest: unknown[]) => {
      if (dead && (String(path) === FUSE_PATH || String(path).startsWith(`${FUSE_PATH}/`))) {
        throw Object.assign(new Error(`${code}: socket is not connected, ${method} '${String(path)}'`), { code });
      }
      return original(path, ...rest);
    };
  }
  return Object.assign(host, { die: () => void (dead = true) });
}

/** The daemon dies right after the mount's own observation (its probe) found it alive. */
function dieAfterTheProbe(host: MemoryHost & { die(): void }): void {
  const probe = host.probe.bind(host);
  host.probe = async (path: string) => {
    const answer = await probe(path);
    if (path === FUSE_PATH) host.die();
    return answer;
  };
}

function recordingView(): ApplyView {
  return {
    async run(tasks) {
      for (const task of tasks) await task.run(() => undefined);
    },
  };
}

describe('a FUSE mount that dies while the machine is observed', () => {
  it('makes each resource in the mount a passing conflict naming the mount (plan does not throw), and the next plan remounts', async () => {
    const host = machine();
    const env = environment();
    dieAfterTheProbe(host);

    const planned = await computePlan(readOnlyHost(host), env, { allowShrink: false }, []);
    const died = `cannot be looked into: the mount at ${FUSE_PATH} (mount.data) died while it was looked at (ENOTCONN: socket is not connected`;
    for (const address of ['link.memory', 'sync.state']) {
      const action = planned.actions.find((a) => a.address === address);
      expect(action, address).toMatchObject({ action: 'conflict', conflict: { fix: 'Run the command again: its plan finds mount.data dead and remounts it.' } });
      expect(action?.conflict?.message).toContain(died);
      expect(planned.observation.resources.find((r) => r.address === address)?.unobserved?.transient).toBe(true);
    }
    // The mount's own observation came before the death; the local bucket's link is untouched by it.
    expect(planned.actions.map((a) => `${a.address} ${a.action}`)).toEqual(['sync.state conflict', 'link.memory conflict', 'link.notes create']);

    // The next plan finds the dead mount (its probe fails) and remounts it; what is in it waits for the remount.
    host.probes.set(FUSE_PATH, { state: 'dead', reason: 'Transport endpoint is not connected' });
    const next = await computePlan(readOnlyHost(host), env, { allowShrink: false }, []);
    expect(next.actions.find((a) => a.address === 'mount.data')?.action).toBe('remount');
    expect(next.actions.filter((a) => a.conflict)).toEqual([]);
  });

  it('does the same for ECONNABORTED (a failed mount tearing down)', async () => {
    const host = machine('ECONNABORTED');
    dieAfterTheProbe(host);
    const planned = await computePlan(readOnlyHost(host), environment(), { allowShrink: false }, []);
    expect(planned.actions.find((a) => a.address === 'link.memory')?.conflict?.message).toMatch(/^cannot be looked into: the mount at \/data\/moltbot \(mount\.data\) died while it was looked at \(ECONNABORTED/);
  });

  it('still throws any other read error in the mount (a bug or a broken disk is not a dead mount)', async () => {
    const host = machine('EIO');
    dieAfterTheProbe(host);
    await expect(computePlan(readOnlyHost(host), environment(), { allowShrink: false }, [])).rejects.toMatchObject({ code: 'EIO' });
  });

  it('fails an action whose re-check finds the mount dying as a passing failure (shutdown tries it again)', async () => {
    const host = machine();
    const env = environment();
    const push = (await computePlan(readOnlyHost(host), env, { allowShrink: false }, [])).actions.filter((a) => a.address === 'sync.state');
    expect(push.map((a) => a.action)).toEqual(['push']);
    dieAfterTheProbe(host);

    const report = await executePlan(push, { host, env, options: { allowShrink: false }, view: recordingView(), signal: new AbortController().signal });
    const result: ActionResult | undefined = report.results.get('sync.state');
    expect(result).toMatchObject({ status: 'failed', transient: true });
    expect(result?.message).toContain(`refused: cannot be looked into: the mount at ${FUSE_PATH} (mount.data) died while it was looked at`);
  });

  it('fails an action whose re-check finds its mount dead (it died after the plan) as a passing failure: the next plan remounts it', async () => {
    const host = machine();
    const env = environment();
    const push = (await computePlan(readOnlyHost(host), env, { allowShrink: false }, [])).actions.filter((a) => a.address === 'sync.state');
    expect(push.map((a) => a.action)).toEqual(['push']);
    host.probes.set(FUSE_PATH, { state: 'dead', reason: 'Transport endpoint is not connected' });
    host.die();

    const report = await executePlan(push, { host, env, options: { allowShrink: false }, view: recordingView(), signal: new AbortController().signal });
    expect(report.results.get('sync.state')).toMatchObject({ status: 'failed', message: `mount.data is not mounted; nothing written into ${FUSE_PATH}`, transient: true });
  });
});
