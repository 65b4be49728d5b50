// `persist history`: per sync and bundle, the generations kept in the store (text and JSON).
import { describeMachine } from '../lineage/machine.js';
import type { GenerationRecord } from '../lineage/generation.js';
import { formatBytes, plural } from './format.js';
import type { Style } from './style.js';

export interface HistoryRow {
  address: string;
  /** Where the generations live (for the text view). */
  where: string;
  /** What `files` counts: a sync's files, a bundle's refs. */
  counts: 'file' | 'ref';
  generations: (GenerationRecord & { current: boolean })[];
  /** Set when the store could not be looked into (mount not ready...). */
  problem?: string;
  /** Kept generations whose record cannot be read (generation null: its number is unknown): listed as damaged. */
  damaged?: { generation: number | null; path: string; problem: string }[];
}

export function historyJson(environment: string, rows: HistoryRow[]): string {
  return `${JSON.stringify(
    {
      formatVersion: 1,
      environment,
      resources: rows.map((row) => ({
        address: row.address,
        ...(row.problem ? { problem: row.problem } : {}),
        ...(row.damaged?.length ? { damaged: row.damaged } : {}),
        generations: [...row.generations].reverse().map((g) => ({
          generation: g.generation,
          parent: g.parent,
          time: g.time,
          machine: g.machine,
          host: g.host,
          files: g.files,
          bytes: g.bytes,
          current: g.current,
        })),
      })),
    },
    null,
    2,
  )}\n`;
}

/** Newest first; `*` marks the current generation. */
export function renderHistory(header: string, rows: HistoryRow[], style: Style): string {
  const lines = [header, ''];
  for (const row of rows) {
    lines.push(`${style.bold(row.address)}  ${row.where}`);
    if (row.problem) lines.push(`  ${style.yellow(row.problem)}`);
    else if (row.generations.length === 0 && !row.damaged?.length) lines.push('  no generations yet');
    else {
      const table = [...row.generations].reverse().map((g) => [
        `${g.current ? '*' : ' '} ${g.generation}`,
        g.time,
        describeMachine({ id: g.machine, host: g.host }),
        plural(g.files, row.counts),
        formatBytes(g.bytes),
        g.parent === null ? '' : `parent ${g.parent}`,
      ]);
      const widths = table[0]!.map((_, column) => Math.max(...table.map((cells) => cells[column]!.length)));
      for (const cells of table) lines.push(`  ${cells.map((cell, column) => cell.padEnd(widths[column]!)).join('  ').trimEnd()}`);
    }
    for (const damaged of row.damaged ?? []) {
      lines.push(`  ${style.red('!')} ${damaged.generation ?? '?'}  damaged: ${damaged.path}: ${damaged.problem}; it cannot be rolled back to (persist verify lists what is damaged)`);
    }
    lines.push('');
  }
  lines.push('* current generation. persist rollback ADDRESS --to GENERATION brings one back.');
  return `${lines.join('\n')}\n`;
}
