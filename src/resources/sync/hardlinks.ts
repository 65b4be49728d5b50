// Hard links in a synced folder: the names of one file (same device and inode) are found by the
// walk (tree.ts: every name after the first carries `linkOf`, the first name). A push stores the
// bytes once, under the first name; each other name's manifest entry says `link: <first name>`
// and has no object of its own. A restore writes the first name, then links the others to it;
// where a link cannot be made, the name gets a copy of the bytes. A name that stops being a link
// (or becomes one) is a change, so the manifest never describes a grouping the folder lost.
import { join } from 'node:path';
import type { Host } from '../../host/types.js';
import type { ResolvedSync } from '../../spec/types.js';
import type { Store } from '../../store/types.js';
import type { ManifestEntry } from './manifest.js';
import { storedKey } from './names.js';
import type { TreeFile } from './tree.js';

/** Whether a file's hard-link grouping or its holes differ from what the manifest recorded: pushed again (the bytes only when they changed). */
export function shapeChanged(file: TreeFile | undefined, entry: ManifestEntry | undefined): boolean {
  if (!file || !entry) return false;
  return (file.linkOf ?? null) !== (entry.link ?? null) || (file.sparse === true) !== (entry.sparse === true);
}

/** The manifest entry of a later name of a hard-linked file: its own hash (it has the first name's bytes), no upload. */
export async function linkedEntry(host: Host, sync: ResolvedSync, path: string, file: TreeFile): Promise<ManifestEntry | null> {
  let sha256: string;
  try {
    sha256 = await host.hashFile(join(sync.from, path));
  } catch {
    return null; // gone or unreadable since the walk: the next push sees it again
  }
  const entry: ManifestEntry = { size: file.size, mtimeMs: file.mtimeMs, sha256, mode: file.mode, link: file.linkOf! };
  if (file.sparse) entry.sparse = true;
  return entry;
}

/** After the restore of every file: each later name linked to its first one (a copy where no link can be made). */
export async function restoreHardLinks(host: Host, sync: ResolvedSync, store: Store, links: [string, ManifestEntry][]): Promise<void> {
  for (const [path, entry] of links) {
    const first = join(sync.from, entry.link!);
    const target = join(sync.from, path);
    const [firstInfo, existing] = await Promise.all([host.lstat(first), host.lstat(target)]);
    if (existing && firstInfo && existing.ino === firstInfo.ino && existing.dev === firstInfo.dev) continue; // a resumed restore linked it already
    if (existing) await host.remove(target);
    await host.mkdir(join(target, '..'));
    if (firstInfo?.type === 'file') {
      try {
        await host.link(first, target);
        continue;
      } catch {
        // another file system under the folder, or no links allowed: a copy below
      }
    }
    const key = await storedKey(store, sync, entry.link!);
    // Without the first name's bytes in the mirror (reported as missing by the restore) there is nothing to copy.
    if (await store.stat(key)) await store.download(key, target, { mode: entry.mode, mtimeMs: entry.mtimeMs });
  }
}
