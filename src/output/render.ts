// User-facing text of plan and apply, in one place.
import diff from 'fast-diff';
import { SENSITIVE_TEXT } from '../spec/sensitive.js';
import { SYMBOLS, summarize, type PlanSummary } from '../engine/plan.js';
import type { Change, FileFate, FileList, PlannedAction } from '../engine/types.js';
import { plural, showPath } from './format.js';
import type { Style } from './style.js';

export const NO_CHANGES = 'No changes. The machine matches the spec.';

export function summaryLine(summary: PlanSummary): string {
  return `Plan: ${summary.add} to add, ${summary.change} to change, ${summary.replace} to replace, ${summary.restore} to restore.`;
}

function shown(value: string | null, sensitive: boolean | undefined): string {
  if (sensitive) return SENSITIVE_TEXT;
  return value === null ? '(none)' : value;
}

/** `before → after`, with the changed characters highlighted (removed red, added green). */
export function renderChange(change: Change, style: Style): string {
  const before = shown(change.before, change.sensitive);
  const after = shown(change.after, change.sensitive);
  if (change.sensitive || change.before === null || change.after === null) {
    return `${change.field}: ${style.red(before)} → ${style.green(after)}`;
  }
  let left = '';
  let right = '';
  for (const [op, text] of diff(before, after)) {
    if (op === diff.EQUAL) {
      left += text;
      right += text;
    } else if (op === diff.DELETE) left += style.red(style.bold(text));
    else right += style.green(style.bold(text));
  }
  return `${change.field}: ${left} → ${right}`;
}

function symbolStyle(action: PlannedAction, style: Style): (text: string) => string {
  switch (SYMBOLS[action.action]) {
    case '+':
      return style.green;
    case '-/+':
      return style.red;
    case '<=':
      return style.cyan;
    case '!':
      return (t) => style.red(style.bold(t));
    default:
      return style.yellow;
  }
}

export function renderAction(action: PlannedAction, index: number, style: Style): string {
  const symbol = symbolStyle(action, style)(SYMBOLS[action.action]);
  const lines = [`${index}. ${symbol} ${style.bold(action.address)}  ${action.action}${action.note ? ` (${action.note})` : ''}`, `   ${action.reason}`];
  for (const change of action.changes) lines.push(`     ${renderChange(change, style)}`);
  if (action.conflict) {
    // Resources often use the conflict's message as the reason: say it once.
    if (action.conflict.message !== action.reason) lines.push(`   ${style.red('conflict:')} ${action.conflict.message}`);
    lines.push(`   ${style.bold('fix:')} ${action.conflict.fix}`);
  }
  for (const warning of action.warnings ?? []) lines.push(`   ${style.yellow('warning:')} ${warning}`);
  for (const list of action.files ?? []) lines.push(...renderFileList(list));
  return lines.join('\n');
}

/** How many names of each file list plan prints; --json lists them all. */
export const FILES_SHOWN = 10;

const FATE_HEADINGS: Record<FileFate, (count: number) => string> = {
  restore: (n) => `restores ${plural(n, 'file')}`,
  add: (n) => `pushes ${plural(n, 'new file')}`,
  change: (n) => `pushes ${plural(n, 'changed file')}`,
  delete: (n) => `deletes ${plural(n, 'file')} from the mirror`,
  keep: (n) => `keeps ${plural(n, 'file')} removed locally in the mirror`,
  compare: (n) => `compares ${plural(n, 'file')} by content (pushed where they differ)`,
};

function renderFileList(list: FileList): string[] {
  const shown = list.paths.slice(0, FILES_SHOWN).map((path) => `       ${showPath(path)}`);
  const more = list.paths.length - shown.length;
  return [`     ${FATE_HEADINGS[list.fate](list.paths.length)}:`, ...shown, ...(more > 0 ? [`       and ${more} more`] : [])];
}

/** The whole plan: numbered actions, then the summary line (or "No changes"). */
export function renderPlan(actions: PlannedAction[], style: Style, header?: string): string {
  if (actions.length === 0) return `${header ? `${header}\n\n` : ''}${NO_CHANGES}\n`;
  const parts = actions.map((action, i) => renderAction(action, i + 1, style));
  const summary = summarize(actions);
  let text = `${header ? `${header}\n\n` : ''}${parts.join('\n\n')}\n\n${summaryLine(summary)}\n`;
  if (summary.conflict > 0) {
    const overrides = [...new Set(actions.map((a) => a.conflict?.overrideFlag).filter(Boolean))];
    text += style.red(`${plural(summary.conflict, 'conflict')} must be resolved first`) +
      (overrides.length ? ` (or pass ${overrides.join(', ')} where it applies)` : '') + '.\n';
  }
  return text;
}

export function applySummaryLine(applied: number, failed: number, skipped: number): string {
  return `Apply complete: ${applied} applied, ${failed} failed, ${skipped} skipped.`;
}

/** The `--json` document of a plan (formatVersion 1; the README's "JSON documents"). */
export function planJson(environment: string, actions: PlannedAction[], extra: Record<string, unknown> = {}) {
  const summary = summarize(actions);
  return {
    formatVersion: 1,
    environment,
    actions: actions.map((action, i) => ({
      index: i + 1,
      address: action.address,
      action: action.action,
      reason: action.reason,
      before: Object.fromEntries(action.changes.map((c) => [c.field, c.sensitive ? SENSITIVE_TEXT : c.before])),
      after: Object.fromEntries(action.changes.map((c) => [c.field, c.sensitive ? SENSITIVE_TEXT : c.after])),
      ...(action.conflict ? { conflict: action.conflict } : {}),
      ...(action.warnings?.length ? { warnings: action.warnings } : {}),
      ...(action.files?.length ? { files: Object.fromEntries(action.files.map((list) => [list.fate, list.paths])) } : {}),
      dependsOn: action.dependsOn,
    })),
    summary: { add: summary.add, change: summary.change, replace: summary.replace, restore: summary.restore, conflicts: summary.conflict },
    ...extra,
  };
}
