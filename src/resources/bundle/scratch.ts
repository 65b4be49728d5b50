// A private scratch folder under $TMPDIR that works on the read-only host of plan and status:
// made by `mktemp -d`, filled by git (a temporary index, throwaway objects) or `cp`, and removed by
// `rm -rf`, each run marked `readOnly` because it changes nothing the user owns (the folder is
// persist's own, exists only while `use` runs, and is gone afterwards even when `use` fails).
// This is how `plan` learns a work tree snapshot's id without writing into the repo.
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { ActionError } from '../../errors.js';
import { stateDir } from '../../host/paths.js';
import type { Host } from '../../host/types.js';

/** Tries of a command whose failure `retry` says is worth another (copyIntoScratch: a source replaced meanwhile). */
const ATTEMPTS = 5;

async function run(host: Host, command: string, args: string[], retry?: (stderr: string) => boolean): Promise<string> {
  for (let attempt = 1; ; attempt++) {
    // Messages in English: `retry` reads them.
    const result = await host.run(command, args, { readOnly: true, env: { ...host.env(), LC_ALL: 'C', LANGUAGE: undefined } });
    if (result.exitCode === 0) return result.stdout;
    if (attempt < ATTEMPTS && retry?.(result.stderr)) continue;
    throw new ActionError(`${command} ${args.join(' ')} failed (exit ${result.exitCode}): ${result.stderr.trim()}`);
  }
}

/** Run `use` with a new empty folder (mode 0700) that is removed afterwards. */
export async function withScratchDir<T>(host: Host, prefix: string, use: (dir: string) => Promise<T>): Promise<T> {
  const tmp = (host.env().TMPDIR ?? '/tmp').replace(/\/+$/, '') || '/';
  const dir = (await run(host, 'mktemp', ['-d', `${tmp}/${prefix}XXXXXXXX`])).trim();
  if (!dir.startsWith(`${tmp}/${prefix}`)) throw new ActionError(`mktemp made ${JSON.stringify(dir)}, not a folder under ${tmp}`);
  try {
    return await use(dir);
  } finally {
    await run(host, 'rm', ['-rf', '--', dir]);
  }
}

/**
 * Copy a file into a scratch folder (the caller's promise: `to` lies in one), keeping its mtime:
 * for an index that is what git's racy-clean check compares entries with (an entry changed in the
 * index's own second is rehashed). A copy with a later mtime made a same-size rewrite within that
 * second look unchanged, and the snapshot kept the old content.
 */
export async function copyIntoScratch(host: Host, from: string, to: string): Promise<void> {
  // GNU cp refuses a source that was replaced between its stat and its open ("skipping file ...,
  // as it was replaced while being copied"). git writes every index under a new name and renames it
  // into place, so an agent's git command at that instant failed the snapshot: copy the new one.
  await run(host, 'cp', ['--preserve=timestamps', '--', from, to], (stderr) => stderr.includes('as it was replaced while being copied'));
}

// --- persist's big temporary folders (a bundle's local build), and what killed runs left ---

/** Where a bundle update builds its bundle (hundreds of MB for a big repo): `<state>/tmp`, local disk that only persist uses. */
export function localTempRoot(host: Host): string {
  return join(stateDir(host.env()), 'tmp');
}

/** `persist-<kind>-<pid>-<random>`: the pid of the run that made it, so that a later run tells a dead run's folder from a live one's. */
const OWNED = /^persist-(?:bundle|worktree|verify)-(\d+)-[0-9A-Za-z]+$/;

/** A new private folder (mode 0700) `<state>/tmp/persist-<kind>-<pid>-<random>`; the caller removes it. */
export async function makeLocalTemp(host: Host, kind: 'bundle' | 'verify'): Promise<string> {
  const root = localTempRoot(host);
  await host.mkdir(root, { mode: 0o700 });
  const dir = join(root, `persist-${kind}-${host.pid()}-${randomBytes(6).toString('hex')}`);
  await host.mkdir(dir, { mode: 0o700 });
  return dir;
}

/**
 * Remove the temporary folders of runs that were killed before they cleaned up (kill -9, OOM, a
 * container stopped mid-update): in `<state>/tmp` and `$TMPDIR` (the work tree snapshot's scratch
 * folders), each `persist-<kind>-<pid>-...` whose pid is not a live process. A live pid, this
 * run's included, keeps its folders (a pid reused by another process only delays the removal).
 * Returns the folders removed.
 */
export async function removeLeftovers(host: Host): Promise<string[]> {
  const tmp = (host.env().TMPDIR ?? '/tmp').replace(/\/+$/, '') || '/';
  const removed: string[] = [];
  for (const root of [localTempRoot(host), tmp]) {
    let names: string[];
    try {
      names = await host.readdir(root);
    } catch {
      continue; // no such folder yet, or not readable: nothing of ours to remove
    }
    for (const name of names) {
      const pid = Number(OWNED.exec(name)?.[1] ?? NaN);
      if (!Number.isSafeInteger(pid) || pid <= 0 || pid === host.pid() || host.processAlive(pid)) continue;
      if (root === tmp && !name.startsWith('persist-worktree-')) continue; // $TMPDIR: only the snapshot's scratch folders carry our pid
      const path = join(root, name);
      if ((await host.lstat(path))?.type !== 'dir') continue;
      try {
        await host.remove(path);
        removed.push(path);
      } catch {
        // Another user's, or already gone: not ours to insist on.
      }
    }
  }
  return removed;
}
