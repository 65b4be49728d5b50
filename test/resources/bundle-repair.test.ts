// The repair of a stored bundle that `persist verify` found damaged, driven the way the engine
// drives the bundle module, on real folders and real git: a damaged file whose size changed is
// written again (before, BundleUpdate.begin matched the file to no record by size and refused it
// on every apply), and the lineage guard stays: another machine's valid bundle that lands between
// this machine's last observation and its update is refused, even when verify's finding (size and
// mtime) happens to name that file.
import { appendFileSync, mkdirSync, readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeEach, expect, it } from 'vitest';
import type { PlannedAction } from '../../src/engine/types.js';
import { RealHost } from '../../src/host/real.js';
import { readOnlyHost } from '../../src/host/wrappers.js';
import { bundleModule } from '../../src/resources/bundle/index.js';
import { recordBundleDamage } from '../../src/resources/bundle/verify.js';
import type { ResolvedBundle, ResolvedEnvironment } from '../../src/spec/types.js';
import { storesFor } from '../../src/store/index.js';
import { commit, git, initRepo, tempDir } from '../git/helpers.js';
import { applyPlanned, observing } from '../helpers/resources.js';

let dir: { path: string; cleanup: () => void };
let mount: string;
const host = new RealHost();

beforeEach(() => {
  dir = tempDir('persist-bundle-repair-');
  mount = join(dir.path, 'mount');
  mkdirSync(mount);
});
afterEach(() => {
  delete process.env.PERSIST_STATE_DIR;
  dir.cleanup();
});

/** One machine: its own repo and state folder, the same bucket and bundle file. */
function machine(name: string) {
  const bundle: ResolvedBundle = { name: 'ws', bucket: 'data', repo: join(dir.path, `ws-${name}`), relFile: 'workspace/ws.bundle', file: join(mount, 'workspace/ws.bundle'), keep: 2 };
  const data = { key: 'data', name: 'test-data', pathStyle: true, provider: 'other' as const, mount: { backend: 'local' as const, path: mount, options: {} } };
  const env: ResolvedEnvironment = { specFile: join(dir.path, 'persist.yaml'), specHash: '0', environment: 'test', workspace: dir.path, buckets: { data }, links: {}, bundles: { ws: bundle }, syncs: {}, files: {} };
  const state = join(dir.path, `state-${name}`);
  const as = <T>(run: () => Promise<T>): Promise<T> => {
    process.env.PERSIST_STATE_DIR = state;
    return run();
  };
  const observe = () => as(() => bundleModule.observe(bundle, observing({ host: readOnlyHost(host), env, mountReady: { data: true } })));
  const context = () => ({ host, env, options: { allowShrink: false }, store: storesFor(env, host), report: () => {}, signal: new AbortController().signal });
  return {
    bundle,
    state,
    observe,
    /** Observe, decide, and apply through the engine's re-check. */
    converge: async () => {
      const seen = await observe();
      const decision = bundleModule.diff(bundle, seen.state, { allowShrink: false });
      if (decision) await as(() => applyPlanned({ ...decision, dependsOn: [] } as PlannedAction, context()));
      return decision;
    },
    /** What `persist verify` records for the stored file as it is now. */
    verifyFoundDamage: () => as(() => recordBundleDamage(host, bundle, statSync(bundle.file))),
    /** The module's apply on an observation made earlier (what a push landing right after the executor's re-check meets). */
    applyOn: (seen: Awaited<ReturnType<typeof observe>>) =>
      as(async () => bundleModule.apply(bundle, bundleModule.diff(bundle, seen.state, { allowShrink: false })!, seen, context())),
  };
}

const recordOf = (file: string) => JSON.parse(readFileSync(`${file}.lineage.json`, 'utf8')) as { generation: number; parent: number | null; machine: string };

it('a damaged bundle with bytes appended is repaired on top of its generation, the damaged file not kept', async () => {
  const a = machine('a');
  initRepo(a.bundle.repo, { 'SOUL.md': 'soul\n' });
  expect((await a.converge())?.action).toBe('update');
  appendFileSync(a.bundle.file, 'junk\n');
  await a.verifyFoundDamage();
  const seen = await a.observe();
  const decision = bundleModule.diff(a.bundle, seen.state, { allowShrink: false });
  expect([decision?.action, decision?.note]).toEqual(['update', 'repair']);
  expect((await a.converge())?.note).toBe('repair');
  expect(recordOf(a.bundle.file)).toMatchObject({ generation: 2, parent: 1 });
  expect(readdirSync(join(mount, 'workspace')).filter((name) => /\.bundle\.\d+$/.test(name))).toEqual([]);
  git(a.bundle.repo, 'bundle', 'verify', '-q', a.bundle.file);
  expect(await a.converge()).toBeNull();
});

it("another machine's valid bundle written after this machine planned its repair is never written over, even when verify's finding names that file", async () => {
  const a = machine('a');
  const b = machine('b');
  initRepo(a.bundle.repo, { 'SOUL.md': 'soul\n' });
  await a.converge(); // generation 1, by a
  expect((await b.converge())?.action).toBe('restore'); // b restores it
  appendFileSync(a.bundle.file, 'junk\n');
  await a.verifyFoundDamage();
  await b.verifyFoundDamage();
  const planned = await a.observe(); // a's repair, planned on generation 1
  expect(planned.state.damaged).toBe(true);

  // b commits and saves over the damaged file: generation 2, a valid bundle.
  commit(b.bundle.repo, { 'b.txt': 'from b\n' }, 'b');
  expect((await b.converge())?.action).toBe('update');
  expect(recordOf(b.bundle.file)).toMatchObject({ generation: 2, parent: 1 });
  const written = readFileSync(b.bundle.file);

  await expect(a.applyOn(planned)).rejects.toThrow(/now holds generation 2, written by .* not generation 1 this update was planned on; nothing was written/);
  // verify's finding made to name b's file (its size and mtime): b's file matches b's record, so it is not damaged.
  const findings = join(a.state, 'bundles');
  const finding = readdirSync(findings).find((name) => name.startsWith('damaged-'))!;
  const info = statSync(b.bundle.file);
  writeFileSync(join(findings, finding), `${JSON.stringify({ key: a.bundle.relFile, size: info.size, mtimeMs: info.mtimeMs })}\n`);
  await expect(a.applyOn(planned)).rejects.toThrow(/now holds generation 2, written by .* not generation 1 this update was planned on; nothing was written/);
  expect((await a.observe()).state.damaged).toBeUndefined();
  expect(readFileSync(b.bundle.file).equals(written)).toBe(true);
  expect(recordOf(b.bundle.file)).toMatchObject({ generation: 2 });
});
