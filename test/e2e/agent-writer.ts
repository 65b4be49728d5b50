// A stand-in agent for the kill-under-watch test, bundled by it (esbuild) and run as its own
// process until it is SIGKILLed:
//   node agent.mjs JOURNAL WORKSPACE DB_FOLDER CONTAINER
// Each iteration n: a note closed into <workspace>/notes (a link into the mount), a line appended
// to <workspace>/logs/agent.log (a link), settings.json rewritten in place (truncate + write) and a
// transaction committed to a WAL database in DB_FOLDER (a sync), and in the workspace's git repo
// (a bundle) a commit every 4th iteration and uncommitted edits every 3rd. Each write is recorded
// in JOURNAL (outside the container) only once it has returned. Numbering goes on from the journal.
import { spawn } from 'node:child_process';
import { execFileSync } from 'node:child_process';
import { appendFileSync, existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import {
  commitMessage,
  DATABASE,
  diaryLine,
  DIARY,
  DRAFT,
  draftBody,
  JSON_FILE,
  jsonBody,
  LOG_FILE,
  logLine,
  LOGS,
  noteBody,
  noteName,
  NOTES,
  parseJournal,
  rowTag,
  SOUL,
  soulBody,
  type JournalEntry,
} from './agent-content.js';

const [journal, workspace, dbFolder, containerArg] = process.argv.slice(2);
if (!journal || !workspace || !dbFolder || !containerArg) {
  console.error('usage: agent JOURNAL WORKSPACE DB_FOLDER CONTAINER');
  process.exit(2);
}
const container = Number(containerArg);

function record(entry: Omit<JournalEntry, 'c' | 't'>): void {
  appendFileSync(journal!, `${JSON.stringify({ c: container, t: Date.now(), ...entry })}\n`);
}

const GIT_ENV = { ...process.env, GIT_AUTHOR_NAME: 'Agent', GIT_AUTHOR_EMAIL: 'agent@example.test', GIT_COMMITTER_NAME: 'Agent', GIT_COMMITTER_EMAIL: 'agent@example.test' };

/** git in the workspace; retried while another git process (persist's snapshot) holds a lock. */
function git(...args: string[]): string {
  for (let attempt = 0; ; attempt++) {
    try {
      return execFileSync('git', args, { cwd: workspace, env: GIT_ENV, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
    } catch (error) {
      if (attempt >= 50) throw error;
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 100);
    }
  }
}

/** One sqlite3 process for the agent's life; each transaction is known committed once its marker line comes back. */
function openDatabase(path: string): (statements: string) => Promise<string> {
  const child = spawn('sqlite3', ['-init', '/dev/null', '-batch', '-bail', path], { stdio: ['pipe', 'pipe', 'inherit'] });
  child.on('exit', (code, signal) => {
    console.error(`agent: sqlite3 exited (${code ?? signal})`);
    process.exit(3);
  });
  const waiting: ((line: string) => void)[] = [];
  createInterface({ input: child.stdout! }).on('line', (line) => {
    if (line.startsWith('done:')) waiting.shift()?.(line.slice(5));
  });
  child.stdin!.write('.timeout 10000\nPRAGMA journal_mode=WAL;\nCREATE TABLE IF NOT EXISTS t(id INTEGER PRIMARY KEY, tag TEXT NOT NULL, v BLOB NOT NULL);\n');
  return (statements) =>
    new Promise((resolve) => {
      waiting.push(resolve);
      child.stdin!.write(`${statements}\nSELECT 'done:' || last_insert_rowid();\n`);
    });
}

const seen = existsSync(journal) ? parseJournal(readFileSync(journal, 'utf8')) : [];
let n = seen.filter((e) => e.kind !== 'tx').reduce((max, e) => Math.max(max, e.n), 0);
let seq = 0;
const database = openDatabase(join(dbFolder, DATABASE));

for (;;) {
  n += 1;
  writeFileSync(join(workspace, NOTES, noteName(n)), noteBody(n));
  record({ kind: 'note', n });
  appendFileSync(join(workspace, LOGS, LOG_FILE), logLine(n));
  record({ kind: 'log', n });
  writeFileSync(join(dbFolder, JSON_FILE), jsonBody(n));
  record({ kind: 'json', n });
  seq += 1;
  const tag = rowTag(container, seq);
  const id = Number(await database(`BEGIN IMMEDIATE; INSERT INTO t(tag, v) VALUES ('${tag}', randomblob(1500)); COMMIT;`));
  record({ kind: 'tx', n: id, tag });
  if (n % 3 === 0) {
    writeFileSync(join(workspace, SOUL), soulBody(n));
    writeFileSync(join(workspace, DRAFT), draftBody(n));
    record({ kind: 'edit', n });
  }
  if (n % 4 === 0) {
    appendFileSync(join(workspace, DIARY), diaryLine(n));
    git('add', DIARY);
    git('commit', '-q', '-m', commitMessage(n));
    record({ kind: 'commit', n, sha: git('rev-parse', 'HEAD').trim() });
  }
  await new Promise((resolve) => setTimeout(resolve, 60));
}
