// What the work tree of a bundled repo looked like when its snapshot was made, kept in persist's
// state folder, so that a plan on a converged machine need not build a throwaway snapshot (about
// seven processes) only to find the sha it saved. After a save or a restore, rememberWorktree
// records the work tree around the snapshot and checks that the snapshot holds exactly that; plan
// (recallSnapshot) compares the work tree now with the record: one `git status` and a stat of each
// path it lists. A record is a fact ("this work tree makes snapshot S"), so it may be old but never
// wrong; whatever differs, or cannot be checked, means the snapshot is built. What is recorded and
// why no change can slip through: docs/worktree.md.
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { stateDir } from '../../host/paths.js';
import type { FileInfo, Host } from '../../host/types.js';
import { git, splitNul } from './git.js';
import { readRepoRefs } from './refs.js';
import { statusPaths, worktreeStatus, type WorktreeSnapshot } from './worktree.js';

const FORMAT = 1;
/**
 * A path whose ctime or mtime lies within this of the recording (or later) may be rewritten within
 * the file system's timestamp tick with the same size and look unchanged: its content is hashed
 * (git's "racily clean" entries). Larger than any tick (1 s on ext3, 2 s on FAT).
 */
const RACY_MS = 3_000;
/** A racy file larger than this would be hashed at every plan: such a work tree is not recorded. */
const MAX_HASHED_BYTES = 16 * 1024 * 1024;

interface RecordedPath {
  /** type, size, mode, mtime and ctime (see stamp), or `missing`. */
  stamp: string;
  /** The git blob id of its content, for a racy path (compared by hashing it again). */
  blob?: string;
}

interface WorktreeRecord {
  format: number;
  repo: string;
  /** The work tree's top folder, which status paths are relative to. */
  top: string;
  head: string;
  /** The snapshot this work tree makes; null: it is clean (equal to HEAD). */
  snapshot: string | null;
  /** sha256 of the `git status` output (worktree.ts, worktreeStatus). */
  status: string;
  /** Every path the status lists. */
  paths: Record<string, RecordedPath>;
  /** git's configuration, attribute and exclude files (their stamps). */
  watched: Record<string, string>;
  /** sha256 of the environment git reads its configuration from. */
  env: string;
}

/** What the work tree looks like now (a half of the record). */
interface Look {
  head: string | null;
  status: string;
  skipped: string[];
  infos: Map<string, FileInfo | null>;
  watched: Record<string, string>;
}

/** Where git keeps what decides how it reads the work tree, and the top folder. */
interface Layout {
  top: string;
  watched: string[];
}

const sha256 = (text: string): string => createHash('sha256').update(text).digest('hex');

function recordFile(host: Host, repo: string): string {
  return join(stateDir(host.env()), 'worktrees', `${sha256(repo).slice(0, 24)}.json`);
}

function stamp(info: FileInfo | null): string {
  return info ? `${info.type} ${info.size} ${info.mode.toString(8)} ${info.mtimeMs} ${info.ctimeMs ?? '?'}` : 'missing';
}

/** The environment variables git takes its configuration (and so attributes and filters) from. */
function envKey(env: Record<string, string | undefined>): string {
  const keys = Object.keys(env).filter((key) => key.startsWith('GIT_') || key === 'HOME' || key === 'XDG_CONFIG_HOME').sort();
  return sha256(JSON.stringify(keys.map((key) => [key, env[key]])));
}

function isRacy(info: FileInfo, sinceMs: number): boolean {
  return info.ctimeMs === undefined || info.ctimeMs > sinceMs - RACY_MS || info.mtimeMs > sinceMs - RACY_MS;
}

/** The git blob id of a file's content or a symlink's target (sha1 or sha256, as the repo's object ids). */
async function blobId(host: Host, path: string, info: FileInfo, objectIdLength: number): Promise<string> {
  const content = info.type === 'symlink' ? Buffer.from(await host.readlink(path)) : await host.readFile(path);
  return createHash(objectIdLength === 64 ? 'sha256' : 'sha1')
    .update(`blob ${content.length}\0`)
    .update(content)
    .digest('hex');
}

async function readRecord(host: Host, repo: string): Promise<WorktreeRecord | null> {
  try {
    const record = JSON.parse((await host.readFile(recordFile(host, repo))).toString('utf8')) as WorktreeRecord;
    return record.format === FORMAT && record.repo === repo ? record : null;
  } catch {
    return null;
  }
}

async function stamps(host: Host, paths: string[]): Promise<Record<string, string>> {
  const entries = await Promise.all(paths.map(async (path) => [path, stamp(await host.lstat(path))] as const));
  return Object.fromEntries(entries);
}

/** Whether every recorded path and configuration file is as recorded. */
async function filesAsRecorded(host: Host, record: WorktreeRecord): Promise<boolean> {
  const watched = await stamps(host, Object.keys(record.watched));
  if (Object.entries(record.watched).some(([path, recorded]) => watched[path] !== recorded)) return false;
  const checks = Object.entries(record.paths).map(async ([path, recorded]) => {
    const file = join(record.top, path);
    const info = await host.lstat(file);
    if (stamp(info) !== recorded.stamp) return false;
    return recorded.blob === undefined || (info !== null && (await blobId(host, file, info, record.head.length)) === recorded.blob);
  });
  return (await Promise.all(checks)).every(Boolean);
}

export type Recalled =
  /** The work tree is as recorded: it makes `snapshot` (null: clean). */
  | { known: true; snapshot: string | null }
  /** Not as recorded (or nothing recorded); `clean`: git status lists nothing; `skipped`: paths it could not read. */
  | { known: false; clean: boolean; skipped: string[] };

/**
 * The snapshot the work tree of `repo` (HEAD at `head`) makes, when it is as this machine last
 * recorded it. Runs `git status` (read-only) in any case: its empty output also says "clean".
 */
export async function recallSnapshot(host: Host, repo: string, head: string): Promise<Recalled> {
  const record = await readRecord(host, repo);
  const usable = record !== null && record.head === head && record.env === envKey(host.env());
  const [now, same] = await Promise.all([worktreeStatus(host, repo), usable ? filesAsRecorded(host, record) : false]);
  if (usable && same && now.skipped.length === 0 && sha256(now.status) === record.status) return { known: true, snapshot: record.snapshot };
  return { known: false, clean: now.status === '', skipped: now.skipped };
}

async function layoutOf(host: Host, repo: string): Promise<Layout> {
  const paths = (await git(host, ['-C', repo, 'rev-parse', '--path-format=absolute', '--show-toplevel', '--git-dir', '--git-common-dir'], { readOnly: true })).stdout.split('\n');
  const [top, gitDir, commonDir] = paths;
  if (!top || !gitDir || !commonDir) throw new Error(`git rev-parse in ${repo} named no work tree`);
  const attributes = await host.run('git', ['-C', repo, 'config', '--path', '--get', 'core.attributesFile'], { readOnly: true });
  const env = host.env();
  const home = env.HOME;
  const xdg = env.XDG_CONFIG_HOME || (home ? join(home, '.config') : undefined);
  const watched = [
    join(commonDir, 'config'),
    join(gitDir, 'config.worktree'),
    join(commonDir, 'info', 'attributes'),
    join(commonDir, 'info', 'exclude'),
    join(commonDir, 'info', 'sparse-checkout'),
    env.GIT_CONFIG_SYSTEM || '/etc/gitconfig',
    '/etc/gitattributes',
    ...(env.GIT_CONFIG_GLOBAL ? [env.GIT_CONFIG_GLOBAL] : [...(home ? [join(home, '.gitconfig')] : []), ...(xdg ? [join(xdg, 'git', 'config')] : [])]),
    ...(xdg ? [join(xdg, 'git', 'attributes'), join(xdg, 'git', 'ignore')] : []),
    ...(attributes.exitCode === 0 && attributes.stdout.trim() ? [attributes.stdout.trim()] : []),
  ];
  return { top, watched: [...new Set(watched)] };
}

async function look(host: Host, repo: string, layout: Layout): Promise<Look> {
  const refs = await readRepoRefs(host, repo);
  const { status, skipped } = await worktreeStatus(host, repo);
  const listed = statusPaths(status);
  const infos = new Map(await Promise.all(listed.map(async (path) => [path, await host.lstat(join(layout.top, path))] as const)));
  return { head: refs?.head.sha ?? null, status, skipped, infos, watched: await stamps(host, layout.watched) };
}

/** What `git diff-tree --raw` says the snapshot holds at each path that differs from HEAD (null: deleted). */
async function changedEntries(host: Host, top: string, head: string, tree: string): Promise<Map<string, { mode: string; sha: string } | null>> {
  const fields = splitNul((await git(host, ['-C', top, 'diff-tree', '-r', '-z', '--no-renames', head, tree], { readOnly: true })).stdout);
  const entries = new Map<string, { mode: string; sha: string } | null>();
  for (let i = 0; i + 1 < fields.length; i += 2) {
    const [, newMode, , newSha, status] = fields[i]!.split(' ');
    entries.set(fields[i + 1]!, status === 'D' || !newMode || !newSha ? null : { mode: newMode, sha: newSha });
  }
  return entries;
}

/**
 * The record of a work tree seen (`before`) right before `snapshot` was built from it, or null when
 * it cannot be vouched for: git could not read something, a listed path is a folder (a submodule),
 * or the snapshot does not hold exactly what was seen (a path that came, went or changed while it
 * was built). Why comparing the snapshot with what was seen is enough: docs/worktree.md.
 */
async function recordOf(host: Host, repo: string, layout: Layout, startedMs: number, before: Look, snapshot: WorktreeSnapshot): Promise<WorktreeRecord | null> {
  const head = snapshot.head;
  if (!head || before.head !== head) return null;
  if (snapshot.skipped.length || before.skipped.length) return null;
  if (before.status.includes('\uFFFD')) return null; // names that are not UTF-8 cannot be stat'ed from here
  const entries = await changedEntries(host, layout.top, head, snapshot.tree);
  if (entries.size !== before.infos.size) return null;
  const untracked = new Set(statusPaths(before.status, '??'));
  const paths: Record<string, RecordedPath> = {};
  for (const [path, info] of before.infos) {
    if (!entries.has(path)) return null;
    const entry = entries.get(path)!;
    if (info === null) {
      if (entry !== null) return null;
      paths[path] = { stamp: 'missing' };
      continue;
    }
    if (entry === null) {
      // On disk but not in the snapshot: only an ignored file that left the index (`git rm
      // --cached`), which status then does not list as untracked; it stays out while status is the same.
      if (untracked.has(path)) return null;
      paths[path] = { stamp: stamp(info) };
      continue;
    }
    const mode = info.type === 'symlink' ? '120000' : info.type === 'file' ? (info.mode & 0o100 ? '100755' : '100644') : null;
    if (mode === null || entry.mode !== mode) return null;
    if (!isRacy(info, startedMs)) {
      paths[path] = { stamp: stamp(info) };
      continue;
    }
    if (info.size > MAX_HASHED_BYTES) return null;
    const blob = await blobId(host, join(layout.top, path), info, head.length);
    if (blob !== entry.sha) return null;
    paths[path] = { stamp: stamp(info), blob };
  }
  return {
    format: FORMAT,
    repo,
    top: layout.top,
    head,
    snapshot: snapshot.clean ? null : snapshot.sha,
    status: sha256(before.status),
    paths,
    watched: before.watched,
    env: envKey(host.env()),
  };
}

/**
 * Build a snapshot with `build` and record the work tree it was made of (best effort: a record
 * that cannot be made is removed, which only costs the next plans a snapshot of their own).
 */
export async function rememberWorktree(host: Host, repo: string, build: () => Promise<WorktreeSnapshot>): Promise<WorktreeSnapshot> {
  const startedMs = host.now().getTime();
  const before = await layoutOf(host, repo)
    .then(async (layout) => ({ layout, look: await look(host, repo, layout) }))
    .catch(() => null);
  const snapshot = await build();
  const file = recordFile(host, repo);
  try {
    const record = before ? await recordOf(host, repo, before.layout, startedMs, before.look, snapshot) : null;
    if (!record) throw new Error('not recorded');
    await host.mkdir(join(file, '..'), { mode: 0o700 });
    await host.writeFileAtomic(file, JSON.stringify(record), { mode: 0o600 });
  } catch {
    await host.remove(file).catch(() => undefined);
  }
  return snapshot;
}
