// The views of `persist status`: one line per resource (`ok` or `!!`, then its facts), or JSON.
import type { Facts } from '../engine/types.js';
import { plural } from './format.js';
import type { Style } from './style.js';

export interface StatusRow {
  address: string;
  ok: boolean;
  /** `ok`, `needs <action>: <reason>` or `conflict: <message>`. */
  state: string;
  facts: Facts;
}

export function statusJson(environment: string, rows: StatusRow[], extra: Record<string, unknown> = {}): string {
  return `${JSON.stringify({ formatVersion: 1, environment, resources: rows, ...extra }, null, 2)}\n`;
}

export function renderStatus(header: string, rows: StatusRow[], style: Style): string {
  const lines = rows.map((row) => {
    const mark = row.ok ? style.green('ok ') : style.yellow('!! ');
    const details = Object.entries(row.facts)
      .filter(([, v]) => v !== null && v !== undefined)
      .map(([k, v]) => `${k}=${String(v)}`)
      .join('  ');
    if (row.ok) return `${mark} ${style.bold(row.address)}  ${details}`;
    return `${mark} ${style.bold(row.address)}  ${row.state}${details ? `\n      ${details}` : ''}`;
  });
  return `${header}\n\n${lines.join('\n')}\n`;
}

/** What taking the apply lock removed (or put back) of the folders killed runs left (host/state-leftovers.ts). */
export function killedRunFoldersRemoved(paths: string[]): string {
  return `Removed ${plural(paths.length, 'folder')} a killed rollback, detach or restore left beside a local folder:\n${paths.map((path) => `  ${path}\n`).join('')}`;
}

/** The folders a killed rollback, detach or bundle restore left beside a local folder (the original is intact). */
export function killedRunFolders(paths: string[]): string {
  return `Left by a killed rollback, detach or restore (the folder it was replacing is intact):\n${paths.map((path) => `  ${path}\n`).join('')}`;
}
