// Pieces of the hostile-path end-to-end tests (sqlite-fuse, kill-under-watch): sqlite3 run
// asynchronously (the loopback S3 server answers from this process's event loop, so nothing here
// may block it while a FUSE daemon is waiting for an answer), a busy WAL writer, the bucket's lease
// part of a spec, and the "whole container" kill.
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { pidsWithArg } from '../helpers/e2e.js';
import { waitFor, type FuseBackend } from './flow-helpers.js';

const execFileAsync = promisify(execFile);

/** One sqlite3 query (`-batch`, 10 s busy timeout), its output trimmed. */
export async function sql(db: string, query: string): Promise<string> {
  const { stdout } = await execFileAsync('sqlite3', ['-init', '/dev/null', '-batch', '-cmd', '.timeout 10000', db, query], { encoding: 'utf8', timeout: 60_000 });
  return stdout.trim();
}

/**
 * The lease part of a bucket (`lease: { ttl: ... }`) when this build's schema knows it, else
 * nothing. A machine's lease outlives a killed container: the next container's apply waits for it
 * to expire (`--lock-timeout`), so a short time to live keeps the tests short. Until mounted
 * buckets take the lease (and the schema has `lease`), there is nothing to wait for.
 */
export function leaseYaml(ttl: string, indent: string): string[] {
  const schema = JSON.parse(readFileSync(fileURLToPath(new URL('../../schemas/persist.schema.json', import.meta.url)), 'utf8')) as {
    $defs?: Record<string, { properties?: Record<string, unknown> }>;
  };
  return schema.$defs?.bucketBody?.properties?.lease ? [`${indent}lease:`, `${indent}  ttl: ${ttl}`] : [];
}

/**
 * A sqlite3 process committing small transactions every few milliseconds into a WAL database
 * (1,500 rows of `seedBytes` first, then two rows of `rowBytes` every 3 ms).
 */
export function startWalWriter(db: string, children: ChildProcess[], { seedBytes = 3000, rowBytes = 2000 } = {}): { stop(): Promise<void> } {
  const child = spawn('sqlite3', ['-init', '/dev/null', '-batch', db], { stdio: ['pipe', 'ignore', 'inherit'] });
  children.push(child);
  child.stdin!.on('error', () => undefined); // killed by the test's cleanup
  child.stdin!.write('.timeout 10000\nPRAGMA journal_mode=WAL;\nCREATE TABLE IF NOT EXISTS t(id INTEGER PRIMARY KEY, v BLOB);\n');
  child.stdin!.write(`BEGIN;${`INSERT INTO t(v) VALUES (randomblob(${seedBytes}));`.repeat(1500)}COMMIT;\n`);
  const timer = setInterval(() => child.stdin!.write(`INSERT INTO t(v) VALUES (randomblob(${rowBytes}));\nINSERT INTO t(v) VALUES (randomblob(500));\n`), 3);
  return {
    stop: async () => {
      clearInterval(timer);
      child.stdin!.end();
      if (child.exitCode === null && child.signalCode === null) await new Promise((resolve) => child.once('exit', resolve));
    },
  };
}

/** Whether a process is still there (a zombie counts as gone). */
function alive(pid: number): boolean {
  try {
    return !/^\S+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return false;
  }
}

/**
 * SIGKILL, all at once, the process groups of `groups` (children started with `detached: true`)
 * and the FUSE daemon serving `mountPoint`; wait (bounded) until they are gone; then let the dead
 * mount point go with a lazy unmount (no clean unmount: the daemon is dead, its cache lost).
 * Fails when any process naming the mount point is left. Returns the daemons' pids.
 */
export async function killContainer(groups: number[], backend: FuseBackend, mountPoint: string): Promise<number[]> {
  const daemons = pidsWithArg(backend, mountPoint);
  for (const pid of groups) {
    try {
      process.kill(-pid, 'SIGKILL');
    } catch {
      // the group is gone already
    }
  }
  for (const pid of daemons) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // gone already
    }
  }
  await waitFor('the container processes to die', () => [...groups, ...daemons].every((pid) => !alive(pid)) && pidsWithArg(backend, mountPoint).length === 0, 20_000);
  await execFileAsync('fusermount', ['-u', '-z', mountPoint], { timeout: 20_000 }).catch(() => undefined);
  const survivors = processesNaming(mountPoint);
  if (survivors.length) throw new Error(`processes of the killed container still run: ${survivors.join('; ')}`);
  return daemons;
}

/** `pid argv` of every process whose command line names `path` (any program). */
export function processesNaming(path: string): string[] {
  const found: string[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const argv = readFileSync(`/proc/${name}/cmdline`, 'utf8').split('\0');
      if (argv.some((arg) => arg.includes(path)) && alive(Number(name))) found.push(`${name} ${argv.join(' ').trim()}`);
    } catch {
      // exited meanwhile
    }
  }
  return found;
}
