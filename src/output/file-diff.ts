// `plan --diff`: a unified diff of each changed text file a sync push would send, mirror (before)
// against local (after). Never for a file over 64 KiB or a binary one (a NUL byte, or bytes that
// are not UTF-8), and only for syncs: a `files:` resource (credentials, mode 0600) is never shown.
import type { PlannedAction } from '../engine/types.js';
import { formatBytes } from './format.js';

/** Files larger than this are not diffed. */
export const DIFF_MAX_BYTES = 64 * 1024;
const CONTEXT = 3;

/** Reads one side of a changed file: its size first (so a big file is never read), then its bytes. */
export interface DiffSide {
  size(): Promise<number | null>;
  read(): Promise<Buffer>;
}

export interface DiffSource {
  /** The sync's two sides of `path` (relative to the synced folder), or null when the action is not a sync push. */
  sides(action: PlannedAction, path: string): { mirror: DiffSide; local: DiffSide; mirrorName: string; localName: string } | null;
}

function isText(bytes: Buffer): boolean {
  if (bytes.includes(0)) return false;
  try {
    new TextDecoder('utf-8', { fatal: true }).decode(bytes);
    return true;
  } catch {
    return false;
  }
}

function splitLines(text: string): string[] {
  if (text === '') return [];
  const lines = text.split('\n');
  if (lines.at(-1) === '') lines.pop();
  return lines;
}

type Op = { kind: ' ' | '-' | '+'; line: string };

/** Line operations turning `a` into `b` (longest common subsequence; files are at most 64 KiB). */
function lineOps(a: string[], b: string[]): Op[] {
  // Trim the common head and tail first: most edits are small.
  let start = 0;
  while (start < a.length && start < b.length && a[start] === b[start]) start++;
  let endA = a.length;
  let endB = b.length;
  while (endA > start && endB > start && a[endA - 1] === b[endB - 1]) (endA--, endB--);
  const midA = a.slice(start, endA);
  const midB = b.slice(start, endB);
  const n = midA.length;
  const m = midB.length;
  const lcs = Array.from({ length: n + 1 }, () => new Uint32Array(m + 1));
  for (let i = n - 1; i >= 0; i--) for (let j = m - 1; j >= 0; j--) lcs[i]![j] = midA[i] === midB[j] ? lcs[i + 1]![j + 1]! + 1 : Math.max(lcs[i + 1]![j]!, lcs[i]![j + 1]!);
  const ops: Op[] = a.slice(0, start).map((line) => ({ kind: ' ', line }));
  let i = 0;
  let j = 0;
  while (i < n || j < m) {
    if (i < n && j < m && midA[i] === midB[j]) (ops.push({ kind: ' ', line: midA[i]! }), i++, j++);
    else if (i < n && (j === m || lcs[i + 1]![j]! >= lcs[i]![j + 1]!)) ops.push({ kind: '-', line: midA[i++]! });
    else ops.push({ kind: '+', line: midB[j++]! });
  }
  for (const line of a.slice(endA)) ops.push({ kind: ' ', line });
  return ops;
}

/** A unified diff (`---`/`+++` headers, `@@` hunks with 3 lines of context); '' when equal. */
export function unifiedDiff(aName: string, bName: string, aText: string, bText: string): string {
  const ops = lineOps(splitLines(aText), splitLines(bText));
  const changed = ops.map((op, index) => (op.kind === ' ' ? -1 : index)).filter((index) => index >= 0);
  if (changed.length === 0) return '';
  const out = [`--- ${aName}`, `+++ ${bName}`];
  let h = 0;
  while (h < changed.length) {
    let from = Math.max(0, changed[h]! - CONTEXT);
    let to = Math.min(ops.length, changed[h]! + CONTEXT + 1);
    while (h + 1 < changed.length && changed[h + 1]! - CONTEXT <= to) to = Math.min(ops.length, changed[++h]! + CONTEXT + 1);
    h++;
    let aLine = 1;
    let bLine = 1;
    for (const op of ops.slice(0, from)) (op.kind !== '+' && aLine++, op.kind !== '-' && bLine++);
    const hunk = ops.slice(from, to);
    const aCount = hunk.filter((op) => op.kind !== '+').length;
    const bCount = hunk.filter((op) => op.kind !== '-').length;
    out.push(`@@ -${aCount === 0 ? aLine - 1 : aLine},${aCount} +${bCount === 0 ? bLine - 1 : bLine},${bCount} @@`);
    for (const op of hunk) out.push(`${op.kind}${op.line}`);
    from = to;
  }
  const noNewline = (text: string) => text !== '' && !text.endsWith('\n');
  if (noNewline(aText) || noNewline(bText)) out.push('\\ (a file does not end with a newline)');
  return `${out.join('\n')}\n`;
}

/** The diffs of every changed file of every sync push in the plan, as text for `plan --diff`. */
export async function renderPlanDiffs(actions: PlannedAction[], source: DiffSource): Promise<string> {
  const parts: string[] = [];
  for (const action of actions) {
    if (action.kind !== 'sync' || action.action !== 'push') continue;
    const changed = action.files?.find((list) => list.fate === 'change')?.paths ?? [];
    for (const path of changed) {
      const sides = source.sides(action, path);
      if (!sides) continue;
      const [mirrorSize, localSize] = await Promise.all([sides.mirror.size(), sides.local.size()]);
      const biggest = Math.max(mirrorSize ?? 0, localSize ?? 0);
      if (biggest > DIFF_MAX_BYTES) {
        parts.push(`${action.address}: ${path}: not shown (${formatBytes(biggest)}, over ${formatBytes(DIFF_MAX_BYTES)})\n`);
        continue;
      }
      const [before, after] = await Promise.all([mirrorSize === null ? Buffer.alloc(0) : sides.mirror.read(), localSize === null ? Buffer.alloc(0) : sides.local.read()]);
      if (!isText(before) || !isText(after)) {
        parts.push(`${action.address}: ${path}: not shown (binary)\n`);
        continue;
      }
      parts.push(unifiedDiff(sides.mirrorName, sides.localName, before.toString('utf8'), after.toString('utf8')));
    }
  }
  return parts.length ? `\n${parts.join('\n')}` : '';
}
