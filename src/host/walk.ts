// Walking a folder through the Host: regular files, recursively; symlinks and special files are
// reported, not followed; excluded paths (and whole excluded folders) are left out. Names are read
// exactly (`readdirNames`), so a name that is not UTF-8 is walked too (host/names.ts).
import { join } from 'node:path';
import type { FileInfo, Host } from './types.js';

export interface WalkedFile {
  size: number;
  mtimeMs: number;
  mode: number;
}

export interface Walk {
  /** Relative path → file, in sorted walk order. */
  files: Record<string, WalkedFile>;
  /** Relative paths of symlinks and special files that were left out. */
  skipped: string[];
}

export async function walkFolder(host: Host, root: string, isExcluded: (relativePath: string) => boolean): Promise<Walk> {
  const walk: Walk = { files: {}, skipped: [] };
  const visit = async (dir: string, prefix: string): Promise<void> => {
    for (const name of await host.readdirNames(dir)) {
      const relativePath = prefix ? `${prefix}/${name}` : name;
      if (isExcluded(relativePath)) continue;
      const info: FileInfo | null = await host.lstat(join(dir, name));
      if (!info) continue; // removed while walking
      if (info.type === 'file') walk.files[relativePath] = { size: info.size, mtimeMs: info.mtimeMs, mode: info.mode };
      else if (info.type === 'dir') await visit(join(dir, name), relativePath);
      else walk.skipped.push(relativePath);
    }
  };
  await visit(root, '');
  return walk;
}
