// Sparse files in a sync: the walk marks a file with holes (tree.ts), the manifest records it, and
// a restore leaves its zero blocks as holes, so it costs its data on disk, not its size. A store
// that is a folder on local disk (the `local` backend) keeps the holes itself (the copies in and
// out skip zero blocks: host/sparse.ts); an object store holds every byte, so a file downloaded
// from it is rewritten sparse here. docs/names.md has the details.
import { isSparse } from '../../host/sparse.js';
import type { Host } from '../../host/types.js';
import { tempPathFor } from '../../store/temp-name.js';
import type { ManifestEntry } from './manifest.js';

/** After a restored file was written: a file the manifest marks sparse gets its holes back. */
export async function restoreHoles(host: Host, target: string, entry: Pick<ManifestEntry, 'sparse' | 'mode' | 'mtimeMs'>): Promise<void> {
  if (!entry.sparse) return;
  const info = await host.lstat(target);
  if (!info || info.type !== 'file' || isSparse(info)) return;
  const temp = tempPathFor(target);
  try {
    await host.copyFile(target, temp, { sparse: true });
    await host.chmod(temp, entry.mode);
    await host.utimes(temp, entry.mtimeMs);
    await host.rename(temp, target);
  } finally {
    await host.remove(temp);
  }
}

