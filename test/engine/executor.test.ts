// The executor on the in-memory host: the single re-check right before each action, the refusal
// to write under a bare mount point, dependencies, changed-since-the-plan, unattended-only runs
// and interruption. Real resource modules, no disk, no processes.
import { describe, expect, it } from 'vitest';
import { executePlan, type ActionResult, type ApplyView } from '../../src/engine/apply.js';
import { observeEnvironment } from '../../src/engine/observe.js';
import { assemblePlan } from '../../src/engine/plan.js';
import type { PlannedAction } from '../../src/engine/types.js';
import { MemoryHost } from '../../src/host/memory.js';
import { readOnlyHost } from '../../src/host/wrappers.js';
import { Sensitive } from '../../src/spec/sensitive.js';
import type { ResolvedBucket, ResolvedEnvironment, ResolvedLink } from '../../src/spec/types.js';

const FUSE_PATH = '/data/moltbot';
const LOCAL_PATH = '/data/local';

function bucket(key: string, backend: 's3fs' | 'local', path: string): ResolvedBucket {
  return { key, name: `bucket-${key}`, pathStyle: true, provider: 'other', mount: { backend, path, options: {} } };
}

function link(name: string, bucketKey: string, mountPath: string): ResolvedLink {
  const relTarget = `workspace/${name}`;
  return { name, bucket: bucketKey, path: `/root/clawd/${name}`, relTarget, target: `${mountPath}/${relTarget}` };
}

function environment(): ResolvedEnvironment {
  const keys = { accessKeyId: new Sensitive('AKIDEXAMPLE'), secretAccessKey: new Sensitive('not-a-real-secret') };
  return {
    specFile: '/spec/persist.yaml',
    specHash: '0'.repeat(64),
    environment: 'test',
    workspace: '/root/clawd',
    buckets: { data: { ...bucket('data', 's3fs', FUSE_PATH), credentials: keys, endpoint: 'http://127.0.0.1:9' }, scratch: bucket('scratch', 'local', LOCAL_PATH) },
    links: { memory: link('memory', 'data', FUSE_PATH), logs: link('logs', 'data', FUSE_PATH), notes: link('notes', 'scratch', LOCAL_PATH) },
    bundles: {},
    syncs: {},
    files: {},
  };
}

/** A host with the s3fs bucket mounted and healthy, and the local bucket's folder present. */
function machine(): MemoryHost {
  const host = new MemoryHost();
  host.addDir(FUSE_PATH).addDir(LOCAL_PATH).addDir('/root/clawd');
  host.mountTable = [
    { mountId: 40, parentId: 1, mountPoint: FUSE_PATH, root: '/', fsType: 'fuse.s3fs', source: 'bucket-data', options: 'rw', superOptions: 'rw' },
  ];
  return host;
}

async function plan(host: MemoryHost, env: ResolvedEnvironment): Promise<PlannedAction[]> {
  const observation = await observeEnvironment(readOnlyHost(host), env, { allowShrink: false });
  return assemblePlan(observation.resources.flatMap((r) => (r.diff ? [r.diff] : [])), observation.refs);
}

/** A view that runs the tasks and keeps each result by title. */
function recordingView(): ApplyView & { results: Map<string, ActionResult> } {
  const results = new Map<string, ActionResult>();
  return {
    results,
    async run(tasks) {
      for (const task of tasks) results.set(task.title, await task.run(() => undefined));
    },
  };
}

async function execute(host: MemoryHost, env: ResolvedEnvironment, actions: PlannedAction[], extra: { signal?: AbortSignal; unattendedOnly?: boolean } = {}) {
  return executePlan(actions, { host, env, options: { allowShrink: false }, view: recordingView(), signal: extra.signal ?? new AbortController().signal, unattendedOnly: extra.unattendedOnly });
}

function pathsUnder(host: MemoryHost, prefix: string): string[] {
  return [...host.nodes.keys()].filter((path) => path.startsWith(`${prefix}/`)).sort();
}

describe('executor', () => {
  it('applies a plan and then plans nothing', async () => {
    const host = machine();
    const env = environment();
    const actions = await plan(host, env);
    expect(actions.map((a) => `${a.address} ${a.action}`)).toEqual(['link.memory create', 'link.logs create', 'link.notes create']);
    const report = await execute(host, env, actions);
    expect(report).toMatchObject({ applied: 3, failed: 0, skipped: 0 });
    expect(await host.readlink('/root/clawd/memory')).toBe(`${FUSE_PATH}/workspace/memory`);
    expect(await plan(host, env)).toEqual([]);
  });

  it('refuses every action on a bucket whose mount went away between plan and apply, and writes nothing under the bare mount point', async () => {
    const host = machine();
    const env = environment();
    const actions = await plan(host, env);
    host.mountTable = []; // the s3fs daemon is gone: /data/moltbot is an empty local folder now

    const report = await execute(host, env, actions);
    expect(report).toMatchObject({ applied: 1, failed: 2, skipped: 0 });
    for (const address of ['link.memory', 'link.logs']) {
      expect(report.results.get(address)).toMatchObject({ status: 'failed', message: `mount.data is not mounted; nothing written into ${FUSE_PATH}` });
      expect(await host.lstat(`/root/clawd/${address.slice('link.'.length)}`)).toBeNull();
    }
    expect(pathsUnder(host, FUSE_PATH)).toEqual([]);
    // The local bucket's link is independent of the vanished mount and goes ahead.
    expect(report.results.get('link.notes')?.status).toBe('applied');
  });

  it('stops an action whose mount goes away while it writes, before any write lands in the bare mount point', async () => {
    const host = machine();
    const env = environment();
    for (let i = 0; i < 5; i++) host.addFile(`/root/clawd/memory/note-${i}.md`, `note ${i}\n`);
    const actions = (await plan(host, env)).filter((a) => a.address === 'link.memory');
    expect(actions[0]?.action).toBe('adopt');
    // The daemon dies right after the first file has been written into the mount. Every write
    // that reaches the host under the mount path after that would land in the bare mount point.
    let vanished = false;
    const bareWrites: string[] = [];
    for (const method of ['writeFile', 'writeFileAtomic', 'copyFile', 'mkdir', 'rename', 'symlink', 'chmod', 'utimes'] as const) {
      const original = (host[method] as (...args: unknown[]) => Promise<void>).bind(host);
      (host as unknown as Record<string, unknown>)[method] = async (...args: unknown[]) => {
        const paths = args.filter((a): a is string => typeof a === 'string' && a.startsWith(`${FUSE_PATH}/`));
        if (vanished && paths.length > 0) bareWrites.push(`${method} ${paths.join(' ')}`);
        await original(...args);
        if (!vanished && paths.length > 0 && (method === 'copyFile' || method === 'writeFile')) {
          vanished = true;
          host.mountTable = [];
        }
      };
    }
    const report = await execute(host, env, actions);
    expect(report.results.get('link.memory')).toMatchObject({ status: 'failed', message: `mount.data went away during the action; stopped before writing into ${FUSE_PATH}` });
    expect(vanished).toBe(true);
    expect(bareWrites).toEqual([]);
    for (let i = 0; i < 5; i++) expect((await host.readFile(`/root/clawd/memory/note-${i}.md`)).toString()).toBe(`note ${i}\n`);
  });

  it('refuses a bucket whose mount is there but dead', async () => {
    const host = machine();
    const env = environment();
    const actions = (await plan(host, env)).filter((a) => a.address === 'link.memory');
    host.probes.set(FUSE_PATH, { state: 'dead', reason: 'Transport endpoint is not connected' });
    const report = await execute(host, env, actions);
    expect(report.results.get('link.memory')).toMatchObject({ status: 'failed', message: `mount.data is not mounted; nothing written into ${FUSE_PATH}` });
    expect(pathsUnder(host, FUSE_PATH)).toEqual([]);
  });

  it('skips the dependents of a failed action, and only those', async () => {
    const host = machine();
    const env = environment();
    host.mountTable = [];
    host.addFile(`${FUSE_PATH}/stray.txt`, 'written while nothing was mounted\n'); // mount.data: a conflict
    const actions = await plan(host, env);
    expect(actions.map((a) => `${a.address} ${a.action}`)).toEqual(['mount.data conflict', 'link.memory create', 'link.logs create', 'link.notes create']);
    const report = await execute(host, env, actions);
    expect(report.results.get('mount.data')?.status).toBe('failed');
    expect(report.results.get('link.memory')).toMatchObject({ status: 'skipped', message: 'skipped: it depends on mount.data, which did not apply' });
    expect(report.results.get('link.notes')?.status).toBe('applied');
  });

  it('lets an action that finds its resource already done block nothing', async () => {
    const host = machine();
    const env = environment();
    const actions = await plan(host, env);
    await host.mkdir(`${FUSE_PATH}/workspace/memory`);
    await host.symlink(`${FUSE_PATH}/workspace/memory`, '/root/clawd/memory');
    const report = await execute(host, env, actions);
    expect(report.results.get('link.memory')).toMatchObject({ status: 'skipped', message: 'already as the spec wants it (nothing to do)' });
    expect(report.results.get('link.logs')?.status).toBe('applied');
  });

  it('refuses a resource that changed since the plan into something else, and leaves it alone', async () => {
    const host = machine();
    const env = environment();
    const actions = (await plan(host, env)).filter((a) => a.address === 'link.memory');
    host.addFile('/root/clawd/memory/new.md', 'written after the plan\n'); // create -> adopt now
    const report = await execute(host, env, actions);
    expect(report.results.get('link.memory')).toMatchObject({ status: 'failed' });
    expect(report.results.get('link.memory')?.message).toMatch(/^link\.memory changed since the plan: it now needs adopt \(.*\), not create; run persist plan again$/);
    expect((await host.readFile('/root/clawd/memory/new.md')).toString()).toBe('written after the plan\n');
    expect(pathsUnder(host, FUSE_PATH)).toEqual([]);
  });

  it('decides afresh what was predicted before its mount, once the mount in the same run made it ready', async () => {
    const host = machine();
    const env = environment();
    host.mountTable = [];
    host.runHandler = (command, args) => {
      // A stand-in s3fs that mounts at once.
      if (command === 's3fs') {
        host.mountTable = [{ mountId: 41, parentId: 1, mountPoint: args[1]!, root: '/', fsType: 'fuse.s3fs', source: args[0]!, options: 'rw', superOptions: 'rw' }];
        return { exitCode: 0, stdout: '', stderr: '', timedOut: false };
      }
      return { exitCode: 127, stdout: '', stderr: `${command}: not found`, timedOut: false };
    };
    host.addDir(`${FUSE_PATH}`);
    const actions = (await plan(host, env)).filter((a) => a.address !== 'link.notes');
    expect(actions.map((a) => `${a.address} ${a.action}`)).toEqual(['mount.data mount', 'link.memory create', 'link.logs create']);
    const report = await execute(host, env, actions);
    expect(report.results.get('mount.data')?.status).toBe('applied');
    expect(report.results.get('link.memory')?.status).toBe('applied');
    expect(pathsUnder(host, FUSE_PATH).filter((p) => !p.includes('.persist-probe-'))).toEqual([`${FUSE_PATH}/workspace`, `${FUSE_PATH}/workspace/logs`, `${FUSE_PATH}/workspace/memory`]);
  });

  it('under watch (unattended only) leaves a decision that is no longer safe to a person', async () => {
    const host = machine();
    const env = environment();
    await host.mkdir(`${FUSE_PATH}/workspace/memory`);
    await host.symlink('/tmp', '/root/clawd/memory'); // relink: never unattended
    const actions = (await plan(host, env)).filter((a) => a.address === 'link.memory');
    expect(actions[0]?.action).toBe('relink');
    const report = await execute(host, env, actions, { unattendedOnly: true });
    expect(report.results.get('link.memory')?.status).toBe('skipped');
    expect(report.results.get('link.memory')?.message).toMatch(/^needs a person/);
    expect(await host.readlink('/root/clawd/memory')).toBe('/tmp');
  });

  it('starts nothing once interrupted', async () => {
    const host = machine();
    const env = environment();
    const actions = await plan(host, env);
    const controller = new AbortController();
    controller.abort();
    const report = await execute(host, env, actions, { signal: controller.signal });
    expect(report).toMatchObject({ applied: 0, failed: 0, skipped: 3 });
    expect(await host.lstat('/root/clawd/memory')).toBeNull();
  });
});
