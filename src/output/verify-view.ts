// The view of `persist verify`: per sync and bundle, what was checked and what is missing or damaged.
import { plural } from './format.js';
import type { Style } from './style.js';

export interface VerifyRow {
  address: string;
  checked: number;
  problems: { path: string; problem: string }[];
  /** Why nothing could be checked (mount not ready, no manifest...), when so. */
  note?: string;
}

export function renderVerify(title: string, rows: VerifyRow[], style: Style, hash: boolean): string {
  const lines = [title, ''];
  for (const row of rows) {
    const ok = row.problems.length === 0 && !row.note;
    const what = row.note ?? `${plural(row.checked, 'stored file')} checked (${hash ? 'size and content' : 'size'})`;
    lines.push(`${ok ? style.green('ok  ') : style.red('FAIL')} ${row.address}: ${what}${row.problems.length ? `, ${row.problems.length} missing or damaged` : ''}`);
    for (const problem of row.problems.slice(0, 50)) lines.push(`     ${problem.path}: ${problem.problem}`);
    if (row.problems.length > 50) lines.push(`     ... and ${row.problems.length - 50} more`);
  }
  const bad = rows.filter((row) => row.problems.length > 0 || row.note).length;
  lines.push('', bad === 0 ? `Verified: everything stored matches its manifest or header.` : `${plural(bad, 'resource')} with problems; the next apply pushes the missing or damaged sync files again (plan shows "repair").`);
  return `${lines.join('\n')}\n`;
}

export function verifyJson(environment: string, rows: VerifyRow[]): string {
  const ok = rows.every((row) => row.problems.length === 0 && !row.note);
  return `${JSON.stringify({ formatVersion: 1, environment, ok, resources: rows }, null, 2)}\n`;
}
