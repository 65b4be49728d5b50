// Folders of a sync: the manifest lists files only, so a folder's mode (0700 for a private
// folder) would come back as the default, and an empty folder would not come back at all. A small
// side file in the mirror records the mode of every folder whose mode is not 0755, and of every
// empty one (no file below it, no folder in it): `<mirror>/.persist-sync-folders.json`
// `{"version": 1, "folders": {"<relative path>": <mode>}}`. Written by a push when it differs,
// read by observe (one small object) and applied by a restore (deepest folders last; a missing
// one is made).
import { join } from 'node:path';
import { StoreMissing, type Store } from '../../store/types.js';

export const FOLDERS_NAME = '.persist-sync-folders.json';
export const DEFAULT_FOLDER_MODE = 0o755;

export type FolderModes = Record<string, number>;

/** The folders of a walk that the mirror records: those whose mode is not the default, and the empty ones. */
export function recordedFolders(folders: Record<string, number> | undefined, files: Record<string, unknown>, keep: (path: string) => boolean = () => true): FolderModes {
  // A folder is not empty when a file or a folder is in it: every folder of the walk is listed,
  // so each entry's own parent is enough. A walk lists a folder's files together: a parent equal
  // to the one before costs no string (100,000 files: about 5 ms).
  const holding = new Set<string>();
  let last = '';
  const parentOf = (path: string) => {
    const at = path.lastIndexOf('/');
    if (at <= 0 || (at === last.length && path.startsWith(last))) return;
    last = path.slice(0, at);
    holding.add(last);
  };
  for (const path in files) parentOf(path);
  for (const path in folders) parentOf(path);
  const result: FolderModes = {};
  for (const [path, mode] of Object.entries(folders ?? {}).sort(([a], [b]) => (a < b ? -1 : 1))) {
    if ((mode !== DEFAULT_FOLDER_MODE || !holding.has(path)) && keep(path)) result[path] = mode;
  }
  return result;
}

export function sameModes(a: FolderModes, b: FolderModes): boolean {
  const keys = Object.keys(a);
  return keys.length === Object.keys(b).length && keys.every((key) => b[key] === a[key]);
}

/** The recorded modes; an unreadable or malformed file counts as none (it only costs a rewrite). */
export async function readFolderModes(store: Store, mirrorKey: string): Promise<FolderModes> {
  const key = join(mirrorKey, FOLDERS_NAME);
  let text: string;
  try {
    text = (await store.read(key)).toString('utf8');
  } catch (error) {
    // Read first: one request, there or not. A store that cannot say why the read failed is asked
    // with a stat, which throws when the store cannot be reached.
    if (!(error instanceof StoreMissing)) await store.stat(key);
    return {};
  }
  try {
    const data = JSON.parse(text) as { folders?: unknown };
    const result: FolderModes = {};
    if (typeof data.folders === 'object' && data.folders !== null) {
      for (const [path, mode] of Object.entries(data.folders as Record<string, unknown>)) {
        const safe = path !== '' && !path.startsWith('/') && path.split('/').every((part) => part !== '' && part !== '.' && part !== '..');
        if (safe && Number.isInteger(mode) && (mode as number) >= 0 && (mode as number) <= 0o7777) result[path] = mode as number;
      }
    }
    return result;
  } catch {
    return {};
  }
}

export async function writeFolderModes(store: Store, mirrorKey: string, modes: FolderModes): Promise<void> {
  await store.write(join(mirrorKey, FOLDERS_NAME), `${JSON.stringify({ version: 1, folders: modes })}\n`, { mode: 0o644 });
}
