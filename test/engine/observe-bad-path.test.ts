// A path that a resource reads answers with a file system error (a symbolic link loop, a folder
// the user may not read, an I/O error): on the in-memory host every read at or under a "bad" path
// throws the system error with its `path`, as Node's fs does. Plan and apply must make that
// resource a conflict naming the path and the trouble in words, with a fix, and go on with every
// other resource; a bucket whose mount cannot be looked into stops the resources in it (never a
// crash, never a write); a failure found only at the re-check right before an action fails that
// action alone, with the same words. An error that names no path stays an internal error.
import { describe, expect, it } from 'vitest';
import { computePlan } from '../../src/commands/common.js';
import { executePlan, type ApplyView } from '../../src/engine/apply.js';
import { PathError } from '../../src/errors.js';
import { MemoryHost } from '../../src/host/memory.js';
import type { HostPath } from '../../src/host/types.js';
import { readOnlyHost } from '../../src/host/wrappers.js';
import { PATH_TROUBLE } from '../../src/output/format.js';
import type { ResolvedEnvironment } from '../../src/spec/types.js';

const DATA = '/data/bucket';
const OTHER = '/data/other';
const READS = ['lstat', 'stat', 'readdir', 'readdirNames', 'readFile', 'readHead', 'readlink', 'hashFile'] as const;
const OPTIONS = { allowShrink: false };

function environment(): ResolvedEnvironment {
  const sync = (name: string, from: string, bucket: string, root: string) => ({ name, bucket, from, relTo: name, to: `${root}/${name}`, delete: true, exclude: [], maxDeleteRatio: 0.5 });
  return {
    specFile: '/spec/persist.yaml',
    specHash: '0'.repeat(64),
    environment: 'test',
    workspace: '/root/ws',
    buckets: {
      data: { key: 'data', name: 'bucket-data', pathStyle: true, provider: 'other', mount: { backend: 'local', path: DATA, options: {} } },
      other: { key: 'other', name: 'bucket-other', pathStyle: true, provider: 'other', mount: { backend: 'local', path: OTHER, options: {} } },
    },
    links: { m: { name: 'm', bucket: 'data', path: '/root/ws/m', relTarget: 'ws/m', target: `${DATA}/ws/m` } },
    bundles: {},
    syncs: { good: sync('good', '/root/good', 'other', OTHER), loop: sync('loop', '/root/loop', 'other', OTHER), inbad: sync('inbad', '/root/inbad', 'data', DATA) },
    files: {},
  };
}

/** A machine where every read at or under a path of `bad` (set it when wanted) throws its code, with the path, as Node's fs does. */
function machine(): MemoryHost & { bad: Map<string, { code: string; withPath?: boolean }> } {
  const host = new MemoryHost();
  host.addDir(DATA).addDir(OTHER).addDir('/root/ws').addFile('/root/good/a.txt', 'a\n').addFile('/root/loop/x.txt', 'x\n').addFile('/root/inbad/i.txt', 'i\n');
  const bad = new Map<string, { code: string; withPath?: boolean }>();
  for (const method of READS) {
    const original = (host[method] as (path: HostPath, ...rest: unknown[]) => Promise<unknown>).bind(host);
    (host as unknown as Record<string, unknown>)[method] = async (path: HostPath, ...rest: unknown[]) => {
      for (const [prefix, { code, withPath = true }] of bad) {
        const p = String(path);
        if (p === prefix || p.startsWith(`${prefix}/`)) {
          throw Object.assign(new Error(`${code}: ${method} '${p}'`), { code, syscall: method, ...(withPath ? { path: p } : {}) });
        }
      }
      return original(path, ...rest);
    };
  }
  return Object.assign(host, { bad });
}

function quietView(): ApplyView {
  return {
    async run(tasks) {
      for (const task of tasks) await task.run(() => undefined);
    },
  };
}

const lines = (actions: { address: string; action: string }[]) => actions.map((a) => `${a.address} ${a.action}`).sort();

describe('a path that answers with a file system error while it is observed', () => {
  it('makes only its own resource a conflict naming the path and the trouble in words, with a fix; the others are planned', async () => {
    const host = machine();
    host.bad.set('/root/loop', { code: 'ELOOP' });
    const planned = await computePlan(readOnlyHost(host), environment(), OPTIONS, []);
    const loop = planned.actions.find((a) => a.address === 'sync.loop');
    expect(loop?.action).toBe('conflict');
    expect(loop?.conflict?.message).toBe('cannot be looked into: /root/loop: too many levels of symbolic links, as when a link on the way leads back to itself (ELOOP)');
    expect(loop?.conflict?.fix).toMatch(/^Make every symbolic link on the way to \/root\/loop lead to a real file or folder/);
    const unobserved = planned.observation.resources.find((r) => r.address === 'sync.loop')?.unobserved;
    expect(unobserved).toBeInstanceOf(PathError);
    expect(unobserved).toMatchObject({ path: '/root/loop', code: 'ELOOP', transient: false });
    // The healthy sync in the same bucket, and everything else, is planned as ever.
    expect(lines(planned.actions)).toEqual(['link.m create', 'sync.good push', 'sync.inbad push', 'sync.loop conflict']);
  });

  it.each([
    ['EACCES', 'permission denied', /^Let the user persist runs as read \/root\/ws\/m and search every folder above it/],
    ['EPERM', 'operation not permitted', /^Let the user persist runs as read \/root\/ws\/m/],
    ['EIO', 'input/output error, the disk or file system under it failed', /^Check the disk or file system holding \/root\/ws\/m \(dmesg/],
    ['ENOTDIR', 'a part of the path is not a folder', /^Make each part of \/root\/ws\/m above its last name a folder/],
  ])('says %s in words (a workspace the user may not read: the link in it)', async (code, words, fix) => {
    const host = machine();
    host.bad.set('/root/ws', { code });
    const planned = await computePlan(readOnlyHost(host), environment(), OPTIONS, []);
    const link = planned.actions.find((a) => a.address === 'link.m');
    expect(link?.conflict?.message).toBe(`cannot be looked into: /root/ws/m: ${words} (${code})`);
    expect(link?.conflict?.fix).toMatch(fix);
    expect(planned.actions.filter((a) => a.conflict).map((a) => a.address)).toEqual(['link.m']);
  });

  it('stops every resource of a bucket whose mount path cannot be read, with the mount\'s words, and nothing of the other bucket', async () => {
    const host = machine();
    host.bad.set(DATA, { code: 'EACCES' });
    const planned = await computePlan(readOnlyHost(host), environment(), OPTIONS, []);
    const mount = planned.actions.find((a) => a.address === 'mount.data');
    expect(mount?.conflict?.message).toBe(`cannot be looked into: ${DATA}: permission denied (EACCES)`);
    for (const address of ['sync.inbad', 'link.m']) {
      const action = planned.actions.find((a) => a.address === address);
      expect(action?.conflict?.message, address).toBe(`cannot be looked into while mount.data cannot: ${DATA}: permission denied (EACCES)`);
      expect(action?.conflict?.fix).toBe(mount?.conflict?.fix);
    }
    expect(planned.observation.mountReady.data).toBe(false);
    expect(lines(planned.actions)).toEqual(['link.m conflict', 'mount.data conflict', 'sync.good push', 'sync.inbad conflict', 'sync.loop push']);

    // apply: the other bucket's actions run; nothing is written in the bad one.
    const report = await executePlan(planned.actions, { host, env: environment(), options: OPTIONS, view: quietView(), signal: new AbortController().signal });
    expect(report.results.get('mount.data')).toMatchObject({ status: 'failed', message: expect.stringContaining(`refused: cannot be looked into: ${DATA}: permission denied (EACCES). Let the user`) });
    for (const address of ['sync.inbad', 'link.m']) expect(report.results.get(address)).toMatchObject({ status: 'skipped', message: 'skipped: it depends on mount.data, which did not apply' });
    for (const address of ['sync.good', 'sync.loop']) expect(report.results.get(address)?.status, address).toBe('applied');
    expect(await host.lstat('/root/ws/m')).toBeNull();
    host.bad.clear();
    expect(await host.readdir(DATA)).toEqual([]);
  });

  it('fails only the action whose re-check meets the bad path (after the plan), with the same words', async () => {
    const host = machine();
    const env = environment();
    const planned = await computePlan(readOnlyHost(host), env, OPTIONS, []);
    expect(planned.actions.filter((a) => a.conflict)).toEqual([]);
    host.bad.set('/root/loop', { code: 'EACCES' });
    const report = await executePlan(planned.actions, { host, env, options: OPTIONS, view: quietView(), signal: new AbortController().signal });
    expect(report.results.get('sync.loop')).toMatchObject({ status: 'failed', message: expect.stringMatching(/^refused: cannot be looked into: \/root\/loop: permission denied \(EACCES\)\. Let the user persist runs as read \/root\/loop/) });
    expect(report.results.get('sync.loop')?.transient).toBeUndefined();
    expect(report).toMatchObject({ applied: 3, failed: 1, skipped: 0 });
  });

  it('fails an action whose mount cannot be looked into at the re-check with the mount\'s words, writing nothing', async () => {
    const host = machine();
    const env = environment();
    // Converged first, so that the plan below holds only the push of new files.
    const first = await computePlan(readOnlyHost(host), env, OPTIONS, []);
    await executePlan(first.actions, { host, env, options: OPTIONS, view: quietView(), signal: new AbortController().signal });
    await host.writeFile('/root/inbad/new.txt', 'new\n');
    const planned = await computePlan(readOnlyHost(host), env, OPTIONS, []);
    expect(lines(planned.actions)).toEqual(['sync.inbad push']);
    host.bad.set(DATA, { code: 'ELOOP' });
    const report = await executePlan(planned.actions, { host, env, options: OPTIONS, view: quietView(), signal: new AbortController().signal });
    expect(report.results.get('sync.inbad')).toMatchObject({ status: 'failed', message: expect.stringMatching(/^refused: cannot be looked into while mount\.data cannot: \/data\/bucket: too many levels of symbolic links/) });
    host.bad.clear();
    expect(await host.lstat(`${DATA}/inbad/new.txt`)).toBeNull();
  });

  it('fails the verification of an action whose path turns bad after it, with the words and the fix', async () => {
    const host = machine();
    const env = environment();
    const planned = await computePlan(readOnlyHost(host), env, OPTIONS, []);
    const pushes = planned.actions.filter((a) => a.address === 'sync.loop');
    const view: ApplyView = {
      async run(tasks) {
        for (const task of tasks) await task.run(() => undefined);
        host.bad.set('/root/loop', { code: 'EACCES' });
      },
    };
    const report = await executePlan(pushes, { host, env, options: OPTIONS, view, signal: new AbortController().signal });
    expect(report.results.get('sync.loop')).toMatchObject({
      status: 'failed',
      message: expect.stringMatching(/^verification failed: cannot be looked into: \/root\/loop: permission denied \(EACCES\)\. Let the user persist runs as read \/root\/loop/),
    });
  });

  it('says a path that went away while it was read (ENOENT thrown) is passing: the same action may pass soon', async () => {
    const host = machine();
    const env = environment();
    const planned = await computePlan(readOnlyHost(host), env, OPTIONS, []);
    host.bad.set('/root/loop', { code: 'ENOENT' });
    const replanned = await computePlan(readOnlyHost(host), env, OPTIONS, []);
    expect(replanned.observation.resources.find((r) => r.address === 'sync.loop')?.unobserved).toMatchObject({ transient: true, code: 'ENOENT' });
    const report = await executePlan(planned.actions, { host, env, options: OPTIONS, view: quietView(), signal: new AbortController().signal });
    expect(report.results.get('sync.loop')).toMatchObject({ status: 'failed', transient: true });
  });

  it('still throws an error that names no path (persist\'s own trouble, not a path\'s)', async () => {
    const host = machine();
    host.bad.set('/root/loop', { code: 'ELOOP', withPath: false });
    await expect(computePlan(readOnlyHost(host), environment(), OPTIONS, [])).rejects.toMatchObject({ code: 'ELOOP' });
  });

  it('has words and a fix for every code it turns into a conflict', () => {
    for (const [code, trouble] of Object.entries(PATH_TROUBLE)) {
      expect(trouble.words, code).toMatch(/^[a-z]/);
      expect(trouble.fix('/x/y'), code).toMatch(/^[A-Z].*\.$/);
    }
  });
});
