// A path that cannot be made because something on the way to it is not a folder (a file where a
// parent folder belongs): `mkdir -p` would fail with EEXIST or ENOTDIR. Looked for only when the
// path is missing, so a converged plan pays nothing for it.
import { dirname } from 'node:path';
import type { FileInfo, Host } from './types.js';

/** The nearest existing ancestor of `path` when it is not a folder (symlinks followed), with what it is; null when the path can be made. */
export async function blockingAncestor(host: Host, path: string): Promise<{ path: string; type: FileInfo['type'] } | null> {
  for (let dir = dirname(path); ; dir = dirname(dir)) {
    const info = await host.stat(dir);
    if (info) return info.type === 'dir' ? null : { path: dir, type: info.type };
    if (dirname(dir) === dir) return null;
  }
}
