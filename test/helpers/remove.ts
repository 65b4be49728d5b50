// Removing a test's temporary folder safely: never one with a mount inside (rm would go into the
// mount and delete a bucket's content). No vitest import: the global setup uses it too.
import { readFileSync, rmSync } from 'node:fs';

export function mountsInside(folder: string): string[] {
  try {
    return readFileSync('/proc/self/mountinfo', 'utf8')
      .split('\n')
      .map((line) => line.split(' ')[4]?.replace(/\\040/g, ' '))
      .filter((path): path is string => path !== undefined && (path === folder || path.startsWith(`${folder}/`)));
  } catch {
    return [];
  }
}

/** Removes `folder` unless something is mounted inside it; returns whether it did. */
export function removeFolder(folder: string): boolean {
  const mounted = mountsInside(folder);
  if (mounted.length) {
    console.error(`test cleanup: not removing ${folder}: still mounted inside: ${mounted.join(', ')}`);
    return false;
  }
  rmSync(folder, { recursive: true, force: true });
  return true;
}

