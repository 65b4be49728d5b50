// A bundle update while the agent commits (found by test/e2e/kill-under-watch.test.ts): the
// executor observes the repo right before the action, and the agent may commit between that
// observation and the work-tree snapshot the update builds. The bundle must then still hold a
// state that existed: the snapshot's parent is the HEAD it records, so a new container gets the
// new commit as HEAD and the uncommitted work on top of it.
import { mkdirSync, readFileSync, renameSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeEach, expect, it } from 'vitest';
import { executePlan, type ApplyView } from '../../src/engine/apply.js';
import type { PlannedAction } from '../../src/engine/types.js';
import { readBundleHeader } from '../../src/resources/bundle/header.js';
import { RealHost } from '../../src/host/real.js';
import { readOnlyHost } from '../../src/host/wrappers.js';
import { bundleModule } from '../../src/resources/bundle/index.js';
import type { ResolvedBundle, ResolvedEnvironment } from '../../src/spec/types.js';
import { storesFor } from '../../src/store/index.js';
import { commit, git, initRepo, tempDir, write } from '../git/helpers.js';
import { applyPlanned, observing } from '../helpers/resources.js';

let dir: { path: string; cleanup: () => void };
let bundle: ResolvedBundle;
let env: ResolvedEnvironment;
const host = new RealHost();

beforeEach(() => {
  dir = tempDir('persist-bundle-race-');
  const mount = join(dir.path, 'mount');
  mkdirSync(mount);
  bundle = { name: 'ws', bucket: 'data', repo: join(dir.path, 'ws'), relFile: 'workspace/ws.bundle', file: join(mount, 'workspace/ws.bundle'), keep: 2 };
  const data = { key: 'data', name: 'test-data', pathStyle: true, provider: 'other' as const, mount: { backend: 'local' as const, path: mount, options: {} } };
  env = { specFile: join(dir.path, 'persist.yaml'), specHash: '0', environment: 'test', workspace: dir.path, buckets: { data }, links: {}, bundles: { ws: bundle }, syncs: {}, files: {} };
  process.env.PERSIST_STATE_DIR = join(dir.path, 'state');
});
afterEach(() => {
  delete process.env.PERSIST_STATE_DIR;
  dir.cleanup();
});

async function observe() {
  return bundleModule.observe(bundle, observing({ host: readOnlyHost(host), env, mountReady: { data: true } }));
}

const context = () => ({ host, env, options: { allowShrink: false }, store: storesFor(env, host), report: () => {}, signal: new AbortController().signal });

it('the agent commits between the observation and the snapshot: the snapshot is made on the HEAD the bundle records, with the files as they are', async () => {
  initRepo(bundle.repo, { 'SOUL.md': 'soul 0\n', 'diary.md': 'entry 0\n' });
  write(join(bundle.repo, 'SOUL.md'), 'soul 1 (not committed)\n');
  const first = await observe();
  const decided = bundleModule.diff(bundle, first.state, { allowShrink: false });
  await applyPlanned({ ...decided!, dependsOn: [] } as PlannedAction, context());

  // The next save is observed, then the agent commits and edits before the update runs.
  write(join(bundle.repo, 'SOUL.md'), 'soul 2 (not committed)\n');
  const observedHead = git(bundle.repo, 'rev-parse', 'HEAD');
  const seen = await observe();
  const decision = bundleModule.diff(bundle, seen.state, { allowShrink: false });
  expect(decision?.action).toBe('update');
  const committed = commit(bundle.repo, { 'diary.md': 'entry 0\nentry 1\n' }, 'agent commit 1');
  write(join(bundle.repo, 'SOUL.md'), 'soul 3 (not committed)\n');
  write(join(bundle.repo, 'draft.md'), 'draft 3 (untracked)\n');
  await bundleModule.apply(bundle, decision!, seen, context());

  const refs = Object.fromEntries((await readBundleHeader(host, bundle.file)).refs.map((ref) => [ref.name, ref.sha]));
  const snapshot = refs['refs/persist/worktree']!;
  expect(snapshot).toBeDefined();
  expect(refs.HEAD).toBe(observedHead);
  expect(git(bundle.repo, 'rev-parse', `${snapshot}^`), 'the snapshot was made on the HEAD the bundle records').toBe(refs.HEAD);

  // A new container: HEAD as observed, every file as the agent left it (the new commit's change
  // shows as uncommitted; the commit itself is the next update's).
  renameSync(bundle.repo, join(dir.path, 'old-ws'));
  const fresh = await observe();
  const restore = bundleModule.diff(bundle, fresh.state, { allowShrink: false });
  expect(restore?.action).toBe('restore');
  const outcome = await applyPlanned({ ...restore!, dependsOn: [] } as PlannedAction, context());
  expect(outcome.summary).toMatch(/brought back the uncommitted work/);
  expect(git(bundle.repo, 'rev-parse', 'HEAD')).toBe(observedHead);
  expect(readFileSync(join(bundle.repo, 'SOUL.md'), 'utf8')).toBe('soul 3 (not committed)\n');
  expect(readFileSync(join(bundle.repo, 'draft.md'), 'utf8')).toBe('draft 3 (untracked)\n');
  expect(readFileSync(join(bundle.repo, 'diary.md'), 'utf8')).toBe('entry 0\nentry 1\n');
  expect(committed).not.toBe(observedHead);
});

it('a reset between the observation and the save: the bundle still holds every commit it held', async () => {
  initRepo(bundle.repo, { 'SOUL.md': 'soul 0\n' });
  const kept = commit(bundle.repo, { 'SOUL.md': 'soul 1\n' }, 'second');
  await applyPlanned({ ...bundleModule.diff(bundle, (await observe()).state, { allowShrink: false })!, dependsOn: [] } as PlannedAction, context());

  write(join(bundle.repo, 'SOUL.md'), 'soul 2 (not committed)\n');
  const seen = await observe();
  const decision = bundleModule.diff(bundle, seen.state, { allowShrink: false });
  expect(decision?.action).toBe('update');
  git(bundle.repo, 'reset', '-q', '--hard', 'HEAD~1');
  await bundleModule.apply(bundle, decision!, seen, context());
  const refs = Object.fromEntries((await readBundleHeader(host, bundle.file)).refs.map((ref) => [ref.name, ref.sha]));
  expect(refs['refs/heads/main']).toBe(kept);
  expect(git(bundle.repo, 'rev-parse', `${refs['refs/persist/worktree']}^`)).toBe(kept);
});

it('the agent edits again right after the update (before the executor verifies it): the update stands, with a note, and the next one takes the edit', async () => {
  initRepo(bundle.repo, { 'SOUL.md': 'soul 0\n' });
  write(join(bundle.repo, 'SOUL.md'), 'soul 1 (not committed)\n');
  const decided = bundleModule.diff(bundle, (await observe()).state, { allowShrink: false });
  const action = { ...decided!, dependsOn: [] } as PlannedAction;
  // A view that runs the action, then lets the agent write before the executor's verification.
  const view: ApplyView = {
    run: async (tasks) => {
      for (const task of tasks) await task.run(() => undefined);
      write(join(bundle.repo, 'SOUL.md'), 'soul 2 (not committed)\n');
    },
  };
  const report = await executePlan([action], { host, env, options: { allowShrink: false }, view, signal: new AbortController().signal });
  const result = report.results.get(action.address)!;
  expect(result.status, result.message).toBe('applied');
  expect(result.notes.join('\n')).toMatch(/changed again since it was read .*the next update takes the newer state/);
  const next = bundleModule.diff(bundle, (await observe()).state, { allowShrink: false });
  expect(next?.action).toBe('update');
});
