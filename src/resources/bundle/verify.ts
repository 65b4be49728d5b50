// `persist verify` of a stored bundle: its file against its header (a file, a git bundle signature)
// and the size recorded when it was written; with --hash, its content against the sha256 recorded
// then (generations.ts: `<file>.lineage.json`, written by the update that stored it) and, where the
// store is a folder git can read, against git itself: `git bundle unbundle` into a scratch
// repository inflates every object of the pack and checks its checksum (`git bundle verify` and
// `list-heads` read only the header and pass a bundle whose pack is damaged).
//
// What verify finds damaged is recorded on local disk with the stored file's size and mtime
// (damage.ts), and the next plan writes the bundle again from the repo (`~ bundle.x update
// (repair)`) while the stored file is still that one and no generation record has its sha256
// (generations.ts, bundleFoundDamaged); the repair replaces it without keeping it as a generation,
// as a new generation on top of the one recorded beside it (whatever its size now: BundleUpdate.begin).
import { join } from 'node:path';
import type { Host } from '../../host/types.js';
import type { Store } from '../../store/types.js';
import type { ResolvedBundle } from '../../spec/types.js';
import { currentBundleRecord, metadataKey } from './generations.js';
import { readBundleHeader } from './header.js';
import { makeLocalTemp } from './scratch.js';

export { recordBundleDamage } from './damage.js';
export { bundleFoundDamaged } from './generations.js';

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
