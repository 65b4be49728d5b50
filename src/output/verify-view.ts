// The view of `persist verify`: per sync and bundle, what was checked and what is missing or damaged.
import { formatDuration, plural } from './format.js';
import type { Style } from './style.js';

export interface VerifyRow {
  address: string;
  checked: number;
  problems: { path: string; problem: string }[];
  /** Why nothing could be checked (mount not ready, no manifest...), when so. */
  note?: string;
  /** What verify found missing or damaged was recorded: the next plan repairs it. */
  repair?: boolean;
  /** Another machine held the bucket's lease when verify stopped waiting (`its lease is held by ...`): it may be pushing what mismatches. */
  maybePushing?: string;
  /** Kept generations found damaged (null: one whose record cannot be read): they cannot be rolled back to. */
  damagedGenerations?: (number | null)[];
}

/** Said (on standard error) when verify waits for an apply of this machine. */
export function verifyLockWait(ms: number): string {
  return `persist: an apply (or watch round, shutdown) of this machine is running; verify waits up to ${formatDuration(ms)} for it to finish, so as not to check a push half done\n`;
}

export function renderVerify(title: string, rows: VerifyRow[], style: Style, hash: boolean): string {
  const lines = [title, ''];
  for (const row of rows) {
    const ok = row.problems.length === 0 && !row.note;
    const what = row.note ?? `${plural(row.checked, 'stored file')} checked (${hash ? 'size and content' : 'size'})`;
    // Counted by path: one bundle can be damaged two ways (its size, and git cannot read it).
    const damaged = new Set(row.problems.map((problem) => problem.path)).size;
    lines.push(`${ok ? style.green('ok  ') : style.red('FAIL')} ${row.address}: ${what}${damaged ? `, ${damaged} missing or damaged` : ''}`);
    for (const problem of row.problems.slice(0, 50)) lines.push(`     ${problem.path}: ${problem.problem}`);
    if (row.problems.length > 50) lines.push(`     ... and ${row.problems.length - 50} more`);
    if (row.damagedGenerations?.length) lines.push(`     ${describeGenerations(row.damagedGenerations)} cannot be rolled back to: what the store kept of ${row.damagedGenerations.length === 1 ? 'it' : 'them'} is damaged (an earlier generation cannot be repaired; newer ones are not affected)`);
    if (row.maybePushing) lines.push(`     ${row.maybePushing}: that machine may still be pushing, and a push replaces files before its manifest; run verify again once it is done`);
  }
  const bad = rows.filter((row) => row.problems.length > 0 || row.note).length;
  lines.push('', bad === 0 ? `Verified: everything stored matches its manifest or header.` : `${plural(bad, 'resource')} with problems; ${nextStep(rows)}`);
  return `${lines.join('\n')}\n`;
}

function describeGenerations(generations: (number | null)[]): string {
  const numbers = [...new Set(generations.filter((g): g is number => g !== null))].sort((a, b) => a - b);
  const unknown = generations.some((g) => g === null);
  const named = numbers.length === 0 ? '' : `${numbers.length === 1 ? 'generation' : 'generations'} ${numbers.join(', ')}`;
  return [named, unknown ? 'the generation whose record cannot be read' : ''].filter(Boolean).join(' and ');
}

/** What happens next: a repair only where verify recorded damage for one. */
function nextStep(rows: VerifyRow[]): string {
  const repairs = rows.filter((row) => row.repair);
  if (repairs.length === 0) return 'nothing was recorded for repair (verify records only what it finds missing or damaged).';
  const syncs = repairs.some((row) => row.address.startsWith('sync.'));
  const bundles = repairs.some((row) => row.address.startsWith('bundle.'));
  const what = [syncs ? 'pushes the missing or damaged sync files again' : '', bundles ? 'writes the damaged bundles again' : ''].filter(Boolean).join(' and ');
  return `the next apply ${what} (plan shows "repair": ${repairs.map((row) => row.address).join(', ')}).`;
}

export function verifyJson(environment: string, rows: VerifyRow[]): string {
  const ok = rows.every((row) => row.problems.length === 0 && !row.note);
  return `${JSON.stringify({ formatVersion: 1, environment, ok, resources: rows }, null, 2)}\n`;
}
