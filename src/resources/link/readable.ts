// What of a folder to adopt persist cannot read (a file or folder of mode 000, another user's
// 0600 file): the adopt copies every file before it moves the folder, so it refuses these up front
// (the plan names them as a conflict, apply refuses before it writes anything) instead of failing
// halfway through the copy with the system's `EACCES ... copyfile` message.
import { join } from 'node:path';
import type { Host } from '../../host/types.js';
import { plural, samplePaths } from '../../output/format.js';

/** Paths (relative to the folder; a folder with a trailing `/`) that cannot be read, with the error code. */
export interface Unreadable {
  /** The first few found, `path (CODE)`. */
  sample: string[];
  count: number;
}

const SAMPLE = 10;
const DENIED = new Set(['EACCES', 'EPERM']);

export function isDenied(error: unknown): string | null {
  const code = (error as NodeJS.ErrnoException | undefined)?.code;
  return code !== undefined && DENIED.has(code) ? code : null;
}

/**
 * Walk `folder` and return what cannot be read, or null when all of it can. A file readable by
 * everyone (mode o+r) is taken as readable without opening it; any other is opened (and closed
 * again, nothing read), as that is the only sure answer for the user persist runs as.
 */
export async function unreadableIn(host: Host, folder: string): Promise<Unreadable | null> {
  const found: Unreadable = { sample: [], count: 0 };
  const note = (rel: string, code: string): void => {
    found.count++;
    if (found.sample.length < SAMPLE) found.sample.push(`${rel} (${code})`);
  };
  const visit = async (dir: string, relDir: string): Promise<void> => {
    let names: string[];
    try {
      names = await host.readdirNames(dir);
    } catch (error) {
      const code = isDenied(error);
      if (code === null) throw error;
      note(relDir ? `${relDir}/` : './', code);
      return;
    }
    for (const name of names) {
      const path = join(dir, name);
      const rel = relDir ? `${relDir}/${name}` : name;
      let info;
      try {
        info = await host.lstat(path);
      } catch (error) {
        const code = isDenied(error);
        if (code === null) throw error;
        note(rel, code);
        continue;
      }
      if (info?.type === 'dir') {
        await visit(path, rel);
      } else if (info?.type === 'file' && (info.mode & 0o004) === 0) {
        try {
          await host.readHead(path, 0);
        } catch (error) {
          const code = isDenied(error);
          if (code !== null) note(rel, code);
          // Anything else (removed meanwhile...) is the copy's to meet.
        }
      }
    }
  };
  await visit(folder, '');
  return found.count === 0 ? null : found;
}

/** `2 entries persist cannot read: a (EACCES), b/ (EACCES)` */
export function describeUnreadable(unreadable: Unreadable): string {
  const more = unreadable.count - unreadable.sample.length;
  const listed = more > 0 ? `${unreadable.sample.join(', ')} and ${more} more` : samplePaths(unreadable.sample, SAMPLE);
  return `${plural(unreadable.count, 'entry', 'entries')} persist cannot read: ${listed}`;
}

/** What to do about them, for a conflict's fix and apply's refusal. */
export function unreadableFix(folder: string, count: number): string {
  const them = count === 1 ? 'it' : 'them';
  return `make ${them} readable by the user persist runs as (chmod u+r, or a+r for another user's file; a folder also needs x) or move ${them} out of ${folder}, then run persist apply again`;
}
