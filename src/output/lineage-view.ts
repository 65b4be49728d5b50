// What `persist rollback` and `persist detach` say (text; rollback's JSON is its result as is).
import { formatBytes, plural } from './format.js';

// --- rollback ---

export const ROLLBACK_QUESTION = "Do you want to roll back? Only 'yes' will be accepted: ";

/** The line rollback prints before it asks. */
export function rollbackIntro(address: string, local: string, generation: number, kind: 'sync' | 'bundle'): string {
  const what = kind === 'sync' ? `${local} becomes generation ${generation}'s content; the folder as it is now is kept aside` : `the repo ${local} (refs, work tree, stash) becomes generation ${generation}'s content; the repo as it is now is kept aside`;
  return `${address}: ${what}, the store is not changed.\n`;
}

export interface RollbackDone {
  address: string;
  generation: number;
  /** The store's current generation (null: a bundle written before lineage). */
  current: number | null;
  /** Where the previous local state went (null: there was none). */
  keptAside: string | null;
  /** `3 files, 1.2 KB` or `4 refs at main (abc123)`. */
  content: string;
  notes?: string[];
}

export function rollbackDone(done: RollbackDone): string {
  const lines = [`${done.address}: rolled back to generation ${done.generation} (${done.content}).`];
  if (done.keptAside) lines.push(`What was there before is kept in ${done.keptAside}.`);
  if (done.current !== null) {
    lines.push(
      `The store still holds generation ${done.current} as current${done.generation === done.current ? '' : `; the next apply saves this as generation ${done.current + 1} (parent ${done.current})`}.`,
    );
  }
  for (const note of done.notes ?? []) lines.push(`note: ${note}`);
  return `${lines.join('\n')}\n`;
}

export function syncContent(files: number, bytes: number): string {
  return `${plural(files, 'file')}, ${formatBytes(bytes)}`;
}

export function bundleContent(refs: number, at: string): string {
  return `${plural(refs, 'ref')} at ${at}`;
}

export const ROLLBACK_CANCELLED = 'Rollback cancelled.\n';

// --- detach ---

export const DETACH_QUESTION = "Do you want to detach these links? Only 'yes' will be accepted: ";
export const DETACH_CANCELLED = 'Detach cancelled.\n';

export function detachNothing(address: string, path: string, target: string): string {
  return `${address}: ${path} is not a link to ${target}; nothing to detach\n`;
}

export function detachIntro(address: string, path: string, target: string): string {
  return `${address}: ${path} becomes a local folder with the content of ${target} (nothing deleted in the bucket)`;
}

export function detachDone(address: string, path: string, copied: { files: number; folders: number; links: number; bytes: number; skipped: string[] }): string {
  const parts = [plural(copied.files, 'file'), ...(copied.folders ? [plural(copied.folders, 'folder')] : []), ...(copied.links ? [plural(copied.links, 'symlink')] : [])];
  const lines = [`${address}: detached: ${path} is a local folder (${parts.join(', ')}, ${formatBytes(copied.bytes)} copied and verified)`];
  if (copied.skipped.length) lines.push(`note: ${address}: not copied (special files): ${copied.skipped.join(', ')}`);
  return `${lines.join('\n')}\n`;
}

export function detachClosing(sections: string[]): string {
  return `Remove ${sections.join(', ')} from the spec, or the next apply adopts the folder back into the mount.\n`;
}
