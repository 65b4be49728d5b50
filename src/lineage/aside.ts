// Moving a local folder aside into persist's backups before it is replaced (a restore over files
// this machine never pushed, a rollback): one rename when the backups folder is on the same
// filesystem, else a copy that is checked before the original is removed.
import { basename, join } from 'node:path';
import { backupDir } from '../host/paths.js';
import type { Host } from '../host/types.js';
import { walkFolder } from '../host/walk.js';

function stamp(date: Date): string {
  return date.toISOString().replace(/[-:]/g, '').replace(/\.\d+Z$/, 'Z');
}

/** `<workspace>/.persist-backups/<address>-<name>-<UTC stamp>` (a counter added when taken). */
export async function asidePath(host: Host, workspace: string, address: string, local: string): Promise<string> {
  const base = join(backupDir(workspace), `${address}-${basename(local)}-${stamp(host.now())}`);
  let candidate = base;
  for (let n = 2; await host.lstat(candidate); n++) candidate = `${base}-${n}`;
  return candidate;
}

async function copyTree(host: Host, from: string, to: string): Promise<void> {
  const walk = await walkFolder(host, from, () => false);
  await host.mkdir(to, { mode: 0o700 });
  for (const [path, file] of Object.entries(walk.files)) {
    const target = join(to, path);
    await host.mkdir(join(target, '..'));
    await host.copyFile(join(from, path), target);
    await host.utimes(target, file.mtimeMs);
  }
  const copied = await walkFolder(host, to, () => false);
  for (const [path, file] of Object.entries(walk.files)) {
    if (copied.files[path]?.size !== file.size) throw new Error(`copy of ${join(from, path)} into ${to} is incomplete`);
  }
}

/** Move `local` (a folder) to a new folder in the backups; returns where it went. */
export async function moveAside(host: Host, workspace: string, address: string, local: string): Promise<string> {
  const target = await asidePath(host, workspace, address, local);
  await host.mkdir(backupDir(workspace), { mode: 0o700 });
  try {
    await host.rename(local, target);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EXDEV') throw error;
    await copyTree(host, local, target);
    await host.remove(local);
  }
  return target;
}
