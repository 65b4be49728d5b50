// `persist verify` of a stored bundle: its file against its header (a file, a git bundle signature)
// and the size recorded when it was written; with --hash, its content against the sha256 recorded
// then (generations.ts: `<file>.lineage.json`, written by the update that stored it) and, where the
// store is a folder git can read, against git itself: `git bundle unbundle` into a scratch
// repository inflates every object of the pack and checks its checksum (`git bundle verify` and
// `list-heads` read only the header and pass a bundle whose pack is damaged).
//
// What verify finds damaged is recorded on local disk with the stored file's size and mtime, and
// the next plan writes the bundle again from the repo (`~ bundle.x update (repair)`) while the
// stored file is still that one; the repair replaces it without keeping it as a generation.
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { stateDir } from '../../host/paths.js';
import type { Host } from '../../host/types.js';
import type { Store } from '../../store/types.js';
import type { ResolvedBundle } from '../../spec/types.js';
import { currentBundleRecord, metadataKey } from './generations.js';
import { readBundleHeader } from './header.js';
import { makeLocalTemp } from './scratch.js';

export interface BundleProblem {
  path: string;
  problem: string;
}

const SIGNATURES = ['# v2 git bundle\n', '# v3 git bundle\n'];

/** The problems of the bundle stored at `bundle.relFile` (which the caller saw exists); [] when none. */
export async function checkStoredBundle(host: Host, store: Store, bundle: ResolvedBundle, hash: boolean): Promise<BundleProblem[]> {
  const key = bundle.relFile;
  const info = await store.stat(key);
  if (!info) return [{ path: key, problem: 'missing' }];
  if (info.type !== 'file') return [{ path: key, problem: `a ${info.type}, not a bundle file` }];
  const signature = (await store.readHead(key, 16)).toString('latin1');
  if (!SIGNATURES.includes(signature)) return [{ path: key, problem: 'damaged: no git bundle header' }];
  const problems: BundleProblem[] = [];
  const record = await currentBundleRecord(store, bundle);
  const recordedIn = metadataKey(key);
  if (record && record.bytes !== info.size) {
    problems.push({ path: key, problem: `damaged: ${info.size} bytes, not the ${record.bytes} recorded in ${recordedIn} when generation ${record.generation} was written` });
  } else if (hash && record?.sha256) {
    const sha256 = await store.hash(key);
    if (sha256 !== record.sha256) {
      problems.push({ path: key, problem: `damaged: its content (sha256 ${sha256.slice(0, 16)}…) is not what was written as generation ${record.generation} (sha256 ${record.sha256.slice(0, 16)}… in ${recordedIn})` });
    }
  }
  const local = store.localPath(key);
  if (hash && local !== null) {
    let objectFormat: 'sha1' | 'sha256';
    try {
      objectFormat = (await readBundleHeader(store, key, store.where(key))).objectFormat;
    } catch (error) {
      return [...problems, { path: key, problem: `damaged: ${(error as Error).message}` }];
    }
    const unreadable = await gitCannotRead(host, local, objectFormat);
    if (unreadable) problems.push({ path: key, problem: `damaged: git cannot read it (${unreadable})` });
  }
  return problems;
}

/** Unbundle `file` into a scratch repository in persist's state folder; null when git reads all of it, else git's first words. */
async function gitCannotRead(host: Host, file: string, objectFormat: 'sha1' | 'sha256'): Promise<string | null> {
  const scratch = await makeLocalTemp(host, 'verify');
  try {
    const repo = join(scratch, 'check.git');
    const env = { ...host.env(), LC_ALL: 'C', LANGUAGE: undefined };
    const init = await host.run('git', ['init', '-q', '--bare', `--object-format=${objectFormat}`, repo], { env });
    if (init.exitCode !== 0) throw new Error(`git init ${repo} failed (exit ${init.exitCode}): ${init.stderr.trim()}`);
    const read = await host.run('git', ['--git-dir', repo, 'bundle', 'unbundle', file], { env });
    if (read.exitCode === 0) return null;
    const said = read.stderr.trim().split('\n').filter(Boolean).slice(0, 2).join('; ');
    return `git bundle unbundle: exit ${read.exitCode}${said ? `: ${said}` : ''}`;
  } finally {
    await host.remove(scratch);
  }
}

/** `<state>/bundles/damaged-<id>.json`: verify's finding for one stored bundle. */
function damagePath(host: Host, bundle: ResolvedBundle): string {
  const id = createHash('sha256').update(`${bundle.bucket}\0${bundle.file}\0${bundle.relFile}\0${bundle.repo}`).digest('hex').slice(0, 16);
  return join(stateDir(host.env()), 'bundles', `damaged-${id}.json`);
}

/** After verify: the stored file found damaged (its size and mtime), or null when it was found whole. */
export async function recordBundleDamage(host: Host, bundle: ResolvedBundle, damaged: { size: number; mtimeMs: number } | null): Promise<void> {
  const path = damagePath(host, bundle);
  if (!damaged) {
    if (await host.lstat(path)) await host.remove(path);
    return;
  }
  await host.mkdir(join(stateDir(host.env()), 'bundles'), { mode: 0o700 });
  await host.writeFileAtomic(path, `${JSON.stringify({ key: bundle.relFile, size: damaged.size, mtimeMs: damaged.mtimeMs })}\n`, { mode: 0o600 });
}

/** Whether verify found the stored bundle damaged and it is still that file (one lstat when it did not). */
export async function bundleFoundDamaged(host: Host, store: Store, bundle: ResolvedBundle): Promise<boolean> {
  const path = damagePath(host, bundle);
  if (!(await host.lstat(path))) return false;
  try {
    const found = JSON.parse((await host.readFile(path)).toString('utf8')) as { key?: unknown; size?: unknown; mtimeMs?: unknown };
    const info = await store.stat(bundle.relFile);
    return !!info && found.key === bundle.relFile && found.size === info.size && found.mtimeMs === info.mtimeMs;
  } catch {
    return false;
  }
}
