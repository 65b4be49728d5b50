// What the stand-in agent of the kill-under-watch test writes (agent-writer.ts), shared with the
// test that checks what came back: every piece is a pure function of its number, so a restored
// file is checked byte for byte without the test having to keep copies.
import { createHash } from 'node:crypto';

/** One line of the agent's journal (outside the container): a write that had completed, and when. */
export interface JournalEntry {
  /** The container the agent ran in (0: set up by the test before the first apply). */
  c: number;
  kind: 'note' | 'log' | 'json' | 'tx' | 'commit' | 'edit';
  /** The iteration that wrote it (tx: the row's id). */
  n: number;
  /** Date.now() once the write had returned (a note closed, a transaction committed). */
  t: number;
  /** tx: the row's tag. */
  tag?: string;
  /** commit: the commit's sha. */
  sha?: string;
}

export const NOTES = 'notes';
export const LOGS = 'logs';
export const LOG_FILE = 'agent.log';
export const JSON_FILE = 'settings.json';
export const DATABASE = 'memory.sqlite';
/** A tracked file the agent edits without committing, an untracked one it rewrites, one it commits. */
export const SOUL = 'SOUL.md';
export const DRAFT = 'draft.md';
export const DIARY = 'diary.md';

export function noteName(n: number): string {
  return `note-${String(n).padStart(5, '0')}.md`;
}

export function noteBody(n: number): string {
  return `# note ${n}\n${'remember this. '.repeat(n % 97)}\n`;
}

export function logLine(n: number): string {
  return `line ${n} ${createHash('sha256').update(String(n)).digest('hex').slice(0, 16)}\n`;
}

/** Sizes vary from one version to the next, so a torn truncate+write shows. */
export function jsonBody(n: number): string {
  return `${JSON.stringify({ n, updated: `iteration ${n}`, items: Array.from({ length: (n * 7) % 53 }, (_, i) => `item ${n}.${i}`) }, null, 2)}\n`;
}

export function soulBody(n: number): string {
  return `# SOUL\nmood after iteration ${n}\n`;
}

export function draftBody(n: number): string {
  return `draft of iteration ${n}\n${'idea '.repeat(n % 31)}\n`;
}

export function diaryLine(n: number): string {
  return `entry ${n}\n`;
}

export function commitMessage(n: number): string {
  return `agent commit ${n}`;
}

export function rowTag(container: number, seq: number): string {
  return `c${container}-${seq}`;
}

export function parseJournal(text: string): JournalEntry[] {
  const entries: JournalEntry[] = [];
  for (const line of text.split('\n')) {
    if (!line) continue;
    try {
      entries.push(JSON.parse(line) as JournalEntry);
    } catch {
      // a line cut by a kill: the write it names had not been journaled
    }
  }
  return entries;
}
