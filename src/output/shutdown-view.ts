// What `persist shutdown` prints: one line per step (so that docker logs show where a stop is),
// then what is in the store and what is not; or one JSON document under --json.
import { formatDuration } from './format.js';
import type { Style } from './style.js';

export interface ShutdownItem {
  /** `sync.state`, `bundle.ws`, `mount.data`. */
  address: string;
  /** saved: in the store; unsaved: not (or not known to be) in the store; unmounted/kept: a mount after the wait. */
  status: 'saved' | 'unsaved' | 'unmounted' | 'kept' | 'failed';
  message: string;
}

export interface ShutdownReport {
  environment: string;
  items: ShutdownItem[];
  elapsedMs: number;
  timeoutMs: number;
  timedOut: boolean;
}

/** Everything asked to be saved is in the store, and every mount went as asked. */
export function shutdownOk(report: ShutdownReport): boolean {
  return !report.timedOut && report.items.every((item) => item.status !== 'unsaved' && item.status !== 'failed');
}

const MARKS: Record<ShutdownItem['status'], string> = { saved: '✔', unmounted: '✔', kept: '•', unsaved: '✖', failed: '✖' };

export function shutdownItemLine(item: ShutdownItem, style: Style): string {
  const mark = item.status === 'unsaved' || item.status === 'failed' ? style.red(MARKS[item.status]) : style.green(MARKS[item.status]);
  return `${mark} ${item.address}: ${item.message}`;
}

export function renderShutdown(report: ShutdownReport): string {
  const unsaved = report.items.filter((item) => item.status === 'unsaved' || item.status === 'failed');
  const lines: string[] = [];
  if (shutdownOk(report)) {
    lines.push(`Shutdown complete in ${formatDuration(report.elapsedMs)}: everything is in the store.`);
  } else {
    const why = report.timedOut ? `timed out after ${formatDuration(report.timeoutMs)}` : `failed after ${formatDuration(report.elapsedMs)}`;
    lines.push(`Shutdown ${why}; not saved: ${unsaved.map((item) => item.address).join(', ') || '(see above)'}`);
    for (const item of unsaved) lines.push(`  ${item.address}: ${item.message}`);
  }
  return `${lines.join('\n')}\n`;
}

export function shutdownJson(report: ShutdownReport): Record<string, unknown> {
  return {
    formatVersion: 1,
    environment: report.environment,
    ok: shutdownOk(report),
    timedOut: report.timedOut,
    elapsedMs: Math.round(report.elapsedMs),
    timeoutMs: report.timeoutMs,
    items: report.items,
    notSaved: report.items.filter((item) => item.status === 'unsaved' || item.status === 'failed').map((item) => item.address),
  };
}
