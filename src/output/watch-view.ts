// What `persist watch` logs: one stamped line per event, each round ending with one line that says
// what it saved (or that nothing changed).
import type { VerifyRow } from './verify-view.js';
import { plural } from './format.js';

/** `[2024-01-02T03:04:05.000Z round 7] ` */
export function watchStamp(now: Date, round: number): string {
  return `[${now.toISOString()} round ${round}] `;
}

export const WATCH_NO_CHANGES = 'no changes';
export const WATCH_STOPPED = 'stopped';

export function watchDrift(plan: string): string {
  return `drift:\n${plan}`;
}

export function watchNeedsPerson(actions: string[]): string {
  return `needs a person (not applied): ${actions.join(', ')}`;
}

export function watchUnreachable(causes: string[]): string {
  return `not looked into this round (the store did not answer; tried again next round): ${causes.join('; ')}`;
}

export function watchBackingOff(waiting: { address: string; failures: number; nextRound: number }[]): string {
  return `backing off after failures: ${waiting.map((w) => `${w.address} (failed ${plural(w.failures, 'time')} in a row; next try in round ${w.nextRound})`).join(', ')}`;
}

export function watchApplied(applied: number, failed: number, skipped: number, saved: string[], failedActions: string[]): string {
  return `applied ${applied}, failed ${failed}, skipped ${skipped}${saved.length ? `: ${saved.join(', ')}` : ''}${failedActions.length ? `; failed: ${failedActions.join(', ')}` : ''}`;
}

export function watchError(message: string): string {
  return `error: ${message}`;
}

/** The size check of every `every` rounds (verify without --hash). */
export function watchVerified(rows: VerifyRow[], every: number): string {
  const checked = rows.reduce((sum, row) => sum + row.checked, 0);
  const problems = rows.flatMap((row) => row.problems.map((p) => `${row.address} ${p.path} (${p.problem})`));
  const head = `size check (every ${plural(every, 'round')}): ${plural(checked, 'stored file')} checked`;
  if (problems.length === 0) return `${head}, all as their manifests say`;
  const shown = problems.slice(0, 10).join(', ');
  return `${head}; ${plural(problems.length, 'missing or damaged file')}: ${shown}${problems.length > 10 ? ` and ${problems.length - 10} more` : ''}; this round pushes them again`;
}
