// What a killed run leaves in the state folder: the temporaries of its atomic writes
// (`.<name>.persist-tmp-<pid>-<8 hex>`, real.ts writeFileAtomic) beside the state files it was
// replacing (sync state, lineage records, manifest shards, the spec cache). Removed by the next run
// that holds the apply lock, where their pid is not a live process: a lock-free command (plan
// writes the spec cache) may be writing one right now, and its pid is alive. Folders with their own
// rules are not walked: `mounts` (backends' caches), `tmp` and `stage` (bundle/scratch.ts,
// sync/push-run.ts).
//
// And the folders a killed rollback, detach or bundle restore was building beside the local folder
// it replaces (`<folder>.persist-rollback-<pid>-<8 hex>`, `<folder>.persist-detach-<pid>-<8 hex>`,
// a restored repo's `.<repo>.persist-restore-<pid>-<8 hex>`, and the
// link set aside during detach's swap, `<folder>.persist-detach-link-<pid>-<8 hex>`). They lie in
// the workspace, which the lock does not know: before making one, the run names it in a marker
// `building/<pid>-<8 hex>.json` in the state folder (markBuilding), removed with the folder. The next
// run that takes the lock (apply, rollback, detach, clean, ...) removes what the markers of dead
// pids name, the marker last; only paths whose name carries the marker's pid are touched. A link
// set aside whose own path is missing (killed between the swap's two renames) is put back instead.
import { randomBytes } from 'node:crypto';
import { basename, dirname, join } from 'node:path';
import type { Host } from './types.js';

const ATOMIC_TEMP = /^\..+\.persist-tmp-(\d+)-[0-9a-f]{8}$/s;
const OWN_RULES = new Set(['mounts', 'tmp', 'stage', 'building']);
const BUILDING = 'building';
const MARKER = /^(\d+)-[0-9a-f]{8}\.json$/;
/** A path a rollback or detach builds beside a local folder; group 1 the kind, group 2 its pid. */
const BUILT_PATH = /\.persist-(rollback|detach|detach-link|restore)-(\d+)-[0-9a-f]{8}$/s;

/** `<path>.persist-<kind>-<pid>-<8 hex>`: a fresh name for what this run builds beside `path`. */
export function buildingPath(host: Host, path: string, kind: 'rollback' | 'detach' | 'detach-link' | 'restore'): string {
  return `${path}.persist-${kind}-${host.pid()}-${randomBytes(4).toString('hex')}`;
}

/**
 * Name `paths` (made by buildingPath) in a marker in the state folder before they are made, so
 * that the next run holding the lock removes them if this process dies first. Returns the
 * function that drops the marker: call it after the paths are gone (or renamed into place).
 */
export async function markBuilding(host: Host, stateFolder: string, paths: string[]): Promise<() => Promise<void>> {
  const folder = join(stateFolder, BUILDING);
  await host.mkdir(folder, { mode: 0o700 });
  const marker = join(folder, `${host.pid()}-${randomBytes(4).toString('hex')}.json`);
  await host.writeFileAtomic(marker, `${JSON.stringify({ pid: host.pid(), paths })}\n`, { mode: 0o600 });
  return () => host.remove(marker);
}

interface DeadMarker {
  marker: string;
  pid: number;
  /** The paths it names that carry its pid and are there. */
  paths: { path: string; kind: string; original: string; info: NonNullable<Awaited<ReturnType<Host['lstat']>>> }[];
}

/** The markers of dead runs in `stateFolder`, each with the paths it names that are still there. Never throws. */
async function deadMarkers(host: Host, stateFolder: string): Promise<DeadMarker[]> {
  const found: DeadMarker[] = [];
  const folder = join(stateFolder, BUILDING);
  for (const name of await host.readdir(folder).catch(() => [] as string[])) {
    const pid = Number(MARKER.exec(name)?.[1] ?? NaN);
    if (!Number.isSafeInteger(pid) || pid <= 0 || pid === host.pid() || host.processAlive(pid)) continue;
    const marker = join(folder, name);
    try {
      const parsed = JSON.parse((await host.readFile(marker)).toString('utf8')) as { paths?: unknown };
      const named = Array.isArray(parsed.paths) ? parsed.paths.filter((p): p is string => typeof p === 'string') : [];
      const paths: DeadMarker['paths'] = [];
      for (const path of named) {
        const match = BUILT_PATH.exec(basename(path));
        if (!match || Number(match[2]) !== pid) continue; // not a name this marker's run made: never touched
        const info = await host.lstat(path);
        if (info) paths.push({ path, kind: match[1]!, original: join(dirname(path), basename(path).slice(0, match.index)), info });
      }
      found.push({ marker, pid, paths });
    } catch {
      // An unreadable marker: left for a person (it names the path).
    }
  }
  return found;
}

/**
 * What killed rollbacks and detaches left beside local folders (their markers' pids are dead),
 * without changing anything: for a command that shows leftovers (status, clean) without the lock.
 */
export async function deadBuildings(host: Host, stateFolder: string): Promise<string[]> {
  return (await deadMarkers(host, stateFolder)).flatMap((marker) => marker.paths.map((entry) => entry.path));
}

/** Remove what dead runs' markers name (see the top of this file); returns the paths removed or put back. Never throws. Call holding the lock. */
export async function removeDeadBuildings(host: Host, stateFolder: string): Promise<string[]> {
  const removed: string[] = [];
  for (const { marker, paths } of await deadMarkers(host, stateFolder)) {
    try {
      for (const { path, kind, original, info } of paths) {
        if (kind === 'detach-link' && info.type === 'symlink' && !(await host.lstat(original))) await host.rename(path, original);
        else await host.remove(path);
        removed.push(path);
      }
      await host.remove(marker);
    } catch {
      // A path not ours to remove: left, with its marker naming it.
    }
  }
  return removed;
}

/** The state folder's files lie at most this deep (lineage/env/<environment>/<address>.json). */
const MAX_DEPTH = 3;

/** Remove dead runs' temporaries under `stateFolder` (and what their building markers name); returns the paths removed. Never throws. */
export async function removeDeadTemporaries(host: Host, stateFolder: string): Promise<string[]> {
  const removed: string[] = await removeDeadBuildings(host, stateFolder);
  const visit = async (dir: string, depth: number): Promise<void> => {
    const names = await host.readdir(dir).catch(() => [] as string[]);
    for (const name of names) {
      const path = join(dir, name);
      const pid = Number(ATOMIC_TEMP.exec(name)?.[1] ?? NaN);
      if (Number.isSafeInteger(pid) && pid > 0) {
        if (pid === host.pid() || host.processAlive(pid)) continue;
        if ((await host.lstat(path))?.type !== 'file') continue;
        await host.remove(path).then(
          () => removed.push(path),
          () => undefined, // gone meanwhile, or not ours to remove
        );
      } else if (depth < MAX_DEPTH && !(depth === 0 && OWN_RULES.has(name)) && (await host.lstat(path))?.type === 'dir') {
        await visit(path, depth + 1);
      }
    }
  };
  await visit(stateFolder, 0);
  return removed;
}
