// Parser for /proc/self/mountinfo:
//   ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTS [optional fields...] - FSTYPE SOURCE SUPEROPTS
// Mount point, root and source are octal-escaped by the kernel (`\040` is a space).
import type { MountEntry } from './types.js';

export function unescapeMountField(field: string): string {
  return field.replace(/\\([0-7]{3})/g, (_, octal: string) => String.fromCharCode(parseInt(octal, 8)));
}

export function parseMountinfo(text: string): MountEntry[] {
  const entries: MountEntry[] = [];
  for (const line of text.split('\n')) {
    if (!line.trim()) continue;
    const fields = line.split(' ');
    const separator = fields.indexOf('-', 6);
    if (separator < 0 || fields.length < separator + 3) continue; // not a mountinfo line
    entries.push({
      mountId: Number(fields[0]),
      parentId: Number(fields[1]),
      device: fields[2] ?? '',
      root: unescapeMountField(fields[3] ?? ''),
      mountPoint: unescapeMountField(fields[4] ?? ''),
      options: fields[5] ?? '',
      fsType: fields[separator + 1] ?? '',
      source: unescapeMountField(fields[separator + 2] ?? ''),
      superOptions: fields[separator + 3] ?? '',
    });
  }
  return entries;
}

/** The entry that is mounted at `path` now (the last one wins when mounts are stacked). */
export function mountAt(entries: MountEntry[], path: string): MountEntry | undefined {
  let found: MountEntry | undefined;
  for (const entry of entries) if (entry.mountPoint === path) found = entry;
  return found;
}
