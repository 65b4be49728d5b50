// Shared set-up for the link tests: a link `<workspace>/<name>` into a `local` bucket at `mount`.
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach } from 'vitest';
import type { ActionContext } from '../../src/engine/apply.js';
import type { Host } from '../../src/host/types.js';
import type { ResolvedEnvironment, ResolvedLink } from '../../src/spec/types.js';

export function linkIn(workspace: string, mount: string, name: string): ResolvedLink {
  const relTarget = `workspace/${name}`;
  return { name, bucket: 'data', path: join(workspace, name), relTarget, target: join(mount, relTarget) };
}

/** An action context for `link` alone, its bucket the `local` one at `mount`. */
export function linkContext(workspace: string, mount: string, link: ResolvedLink, host: Host): ActionContext {
  const data = { key: 'data', name: 'test-data', pathStyle: true, provider: 'other' as const, mount: { backend: 'local' as const, path: mount, options: {} } };
  const env: ResolvedEnvironment = { specFile: join(workspace, 'persist.yaml'), specHash: '0', environment: 'test', workspace, buckets: { data }, links: { [link.name]: link }, bundles: {}, syncs: {}, files: {} };
  return { host, env, options: { allowShrink: false }, report: () => undefined, signal: new AbortController().signal };
}

/**
 * For each test of the file: a new folder with an empty workspace `ws` and bucket `mnt` in it,
 * removed after the test (after the file's own afterEach hooks). Read the current test's paths
 * from the object returned.
 */
export function linkFolders(prefix: string): { root: string; workspace: string; mount: string } {
  const folders = { root: '', workspace: '', mount: '' };
  beforeEach(() => {
    folders.root = mkdtempSync(join(tmpdir(), prefix));
    folders.workspace = join(folders.root, 'ws');
    folders.mount = join(folders.root, 'mnt');
    mkdirSync(folders.workspace);
    mkdirSync(folders.mount);
  });
  afterEach(() => rmSync(folders.root, { recursive: true, force: true }));
  return folders;
}
