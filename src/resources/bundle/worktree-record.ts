// What the work tree of a bundled repo looked like when its snapshot was made, kept in persist's
// state folder, so that a plan on a converged machine need not build a throwaway snapshot (about
// seven processes) only to find the sha it saved. After a save or a restore, rememberWorktree
// records the work tree right before the snapshot is built and checks that the snapshot holds
// exactly that; plan (recallSnapshot) compares the work tree now with the record. A record is a
// fact ("this work tree makes snapshot S"), so it may be old but never wrong; whatever differs, or
// cannot be checked, means the snapshot is built.
//
// Two depths: every record holds `git status` and a stamp of each path it lists, which plan checks
// with one `git status`; a record of a work tree small enough (MAX_WHOLE_ENTRIES) also holds the
// stamps of the index, of every tracked file and of every folder git looks into for untracked
// files, which plan checks with stats alone, without starting git. What is recorded and why no
// change can slip through: docs/worktree.md.
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { stateDir } from '../../host/paths.js';
import { timestampTickMs } from '../../host/timestamps.js';
import type { FileInfo, Host } from '../../host/types.js';
import { git, splitNul } from './git.js';
import { readRepoRefs } from './refs.js';
import { blobIdOf, repoEnv, statusPaths, worktreeStatus, type WorktreeSnapshot } from './worktree.js';

const FORMAT = 1;
/** A racy file larger than this would be hashed at every plan: such a work tree is not recorded. */
const MAX_HASHED_BYTES = 16 * 1024 * 1024;
/**
 * Up to this many tracked files plus names in the folders walked (about 1,000 files), plan checks
 * the whole work tree with stats instead of starting `git status`; above it, `git status` (which
 * stats on another core) is the cheaper check (bench: 200 files 56 ms of CPU less by stats, 1,000
 * files even, 2,000 files slower; docs/worktree.md).
 */
const MAX_WHOLE_ENTRIES = 2_000;

interface RecordedPath {
  /** type, size, mode, mtime and ctime (see stamp), or `missing`. */
  stamp: string;
  /** The git blob id of its content, for a racy path (checked by hashing it again). */
  blob?: string;
}

/** Beyond what status lists: everything git looks at to find a change, checked without git. */
interface WholeRecord {
  /** The index file and its stamp: git rewrites it on add, rm, commit, checkout, reset, and when status refreshes it. */
  index: { path: string; stamp: string };
  /** Tracked files that status did not list, and every .gitignore and .gitattributes. */
  files: Record<string, RecordedPath>;
  /** Every folder git looks into for untracked files: a name added, removed or renamed in it moves its mtime. */
  dirs: Record<string, string>;
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
  /** The paths the snapshot and status left out (persist's links in the repo; absent: none), sorted. */
  leftOut?: string[];
  whole?: WholeRecord;
}

/** Where git keeps what decides how it reads the work tree. */
interface Layout {
  top: string;
  index: string;
  watched: string[];
}

/** The tracked files, the ignore and attribute files and the folders of a work tree, as seen. */
interface WholeLook {
  index: { path: string; info: FileInfo | null };
  /** Tracked path → its stat and the blob the index holds for it. */
  tracked: Map<string, { info: FileInfo | null; blob: string }>;
  /** .gitignore and .gitattributes files in the folders walked. */
  rules: Map<string, FileInfo>;
  dirs: Map<string, FileInfo>;
}

/** What the work tree looks like now. */
interface Look {
  head: string | null;
  status: string;
  skipped: string[];
  infos: Map<string, FileInfo | null>;
  watched: Record<string, string>;
  whole: WholeLook | null;
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

/**
 * A path whose ctime or mtime lies within the file system's timestamp tick of the recording
 * (`sinceMs`: its start less that tick, host/timestamps.ts), or later, may change again within the
 * tick and look the same: a file's content is then hashed (git's "racily clean" entries), a folder
 * is not trusted.
 */
function isRacy(info: FileInfo, sinceMs: number): boolean {
  return info.ctimeMs === undefined || info.ctimeMs >= sinceMs || info.mtimeMs >= sinceMs;
}

/** The git blob id of a file's content or a symlink's target (sha1 or sha256, as the repo's object ids). */
async function blobId(host: Host, path: string, info: FileInfo, objectIdLength: number): Promise<string> {
  return blobIdOf(info.type === 'symlink' ? Buffer.from(await host.readlink(path)) : await host.readFile(path), objectIdLength);
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

/** Whether each path (relative to `top`) has its recorded stamp, and a racy one its recorded content. */
async function pathsAsRecorded(host: Host, top: string, paths: Record<string, RecordedPath>, objectIdLength: number): Promise<boolean> {
  const checks = Object.entries(paths).map(async ([path, recorded]) => {
    const file = join(top, path);
    const info = await host.lstat(file);
    if (stamp(info) !== recorded.stamp) return false;
    return recorded.blob === undefined || (info !== null && (await blobId(host, file, info, objectIdLength)) === recorded.blob);
  });
  return (await Promise.all(checks)).every(Boolean);
}

/** The paths status listed and git's configuration files are as recorded. */
async function listedAsRecorded(host: Host, record: WorktreeRecord): Promise<boolean> {
  const watched = await stamps(host, Object.keys(record.watched));
  if (Object.entries(record.watched).some(([path, recorded]) => watched[path] !== recorded)) return false;
  return pathsAsRecorded(host, record.top, record.paths, record.head.length);
}

/** The index, every tracked file and every folder git looks into are as recorded. */
async function wholeAsRecorded(host: Host, record: WorktreeRecord, whole: WholeRecord): Promise<boolean> {
  if (stamp(await host.lstat(whole.index.path)) !== whole.index.stamp) return false;
  const dirs = Object.entries(whole.dirs).map(async ([path, recorded]) => stamp(await host.lstat(path ? join(record.top, path) : record.top)) === recorded);
  if (!(await Promise.all(dirs)).every(Boolean)) return false;
  return pathsAsRecorded(host, record.top, whole.files, record.head.length);
}

/** A record says what the snapshot is with the paths it left out; with others left out it may differ. */
function sameLeftOut(recorded: string[] | undefined, leaveOut: readonly string[]): boolean {
  return JSON.stringify(recorded ?? []) === JSON.stringify([...leaveOut].sort());
}

export type Recalled =
  /** The work tree is as recorded: it makes `snapshot` (null: clean). */
  | { known: true; snapshot: string | null }
  /** Not as recorded (or nothing recorded); `clean`: git status lists nothing; `skipped`: paths it could not read. */
  | { known: false; clean: boolean; skipped: string[] };

/**
 * The snapshot the work tree of `repo` (HEAD at `head`) makes, when it is as this machine last
 * recorded it: by stats alone when the whole work tree was recorded and nothing moved, else with
 * one `git status` (read-only), whose empty output also says "clean" when the record does not help.
 */
export async function recallSnapshot(host: Host, repo: string, head: string, leaveOut: readonly string[] = []): Promise<Recalled> {
  const record = await readRecord(host, repo);
  const usable =
    record !== null && record.head === head && record.env === envKey(host.env()) && sameLeftOut(record.leftOut, leaveOut) && (await listedAsRecorded(host, record));
  if (usable && record.whole && (await wholeAsRecorded(host, record, record.whole))) return { known: true, snapshot: record.snapshot };
  const now = await worktreeStatus(host, repo, leaveOut);
  if (usable && now.skipped.length === 0 && sha256(now.status) === record.status) return { known: true, snapshot: record.snapshot };
  return { known: false, clean: now.status === '', skipped: now.skipped };
}

async function layoutOf(host: Host, repo: string): Promise<Layout> {
  const run = (args: string[]) => host.run('git', ['-C', repo, ...args], { env: repoEnv(host), readOnly: true });
  const paths = await run(['rev-parse', '--path-format=absolute', '--show-toplevel', '--git-dir', '--git-common-dir', '--git-path', 'index']);
  const [top, gitDir, commonDir, index] = paths.stdout.split('\n');
  if (paths.exitCode !== 0 || !top || !gitDir || !commonDir || !index) throw new Error(`git rev-parse in ${repo} named no work tree`);
  // The attribute and exclude files the configuration names (`key\nvalue` entries, NUL-separated).
  const named = await run(['config', '-z', '--path', '--get-regexp', '^core\\.(attributesfile|excludesfile)$']);
  const configured = named.exitCode === 0 ? splitNul(named.stdout).map((entry) => entry.slice(entry.indexOf('\n') + 1)) : [];
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
    ...configured.filter((path) => path !== ''),
  ];
  return { top, index, watched: [...new Set(watched)] };
}

/**
 * The tracked files (with the index's blob of each), the folders git looks into for untracked
 * files (every folder but ignored ones and `.git`) and the ignore and attribute files in them; null
 * when the work tree holds more than MAX_WHOLE_ENTRIES of them, a submodule or a nested repository
 * (whose changes no stat of ours shows), a conflict, or a name that is not UTF-8.
 */
async function wholeLook(host: Host, layout: Layout): Promise<WholeLook | null> {
  const { top } = layout;
  const run = async (args: string[]) => splitNul((await git(host, ['-C', top, ...args], { env: repoEnv(host), readOnly: true })).stdout);
  const [staged, ignoredList] = await Promise.all([run(['ls-files', '-z', '--stage']), run(['ls-files', '-z', '--others', '--ignored', '--exclude-standard', '--directory'])]);
  if (staged.length > MAX_WHOLE_ENTRIES) return null;
  const ignored = new Set(ignoredList);
  const tracked = new Map<string, { info: FileInfo | null; blob: string }>();
  for (const line of staged) {
    const match = /^(\d+) ([0-9a-f]+) (\d)\t(.+)$/s.exec(line);
    if (!match || match[1] === '160000' || match[3] !== '0' || match[4]!.includes('\uFFFD')) return null;
    tracked.set(match[4]!, { info: await host.lstat(join(top, match[4]!)), blob: match[2]! });
  }
  const dirs = new Map<string, FileInfo>();
  const rules = new Map<string, FileInfo>();
  let entries = tracked.size;
  const walk = async (rel: string): Promise<boolean> => {
    const info = await host.lstat(rel ? join(top, rel) : top);
    if (info?.type !== 'dir') return false;
    dirs.set(rel, info);
    for (const name of await host.readdir(rel ? join(top, rel) : top)) {
      if (++entries > MAX_WHOLE_ENTRIES) return false;
      if (name.includes('\uFFFD')) return false; // a name that is not UTF-8: no stat of ours can find it
      if (name === '.git') {
        if (rel === '') continue;
        return false; // a nested repository or submodule inside this folder
      }
      const child = rel ? `${rel}/${name}` : name;
      const childInfo = await host.lstat(join(top, child));
      if (childInfo?.type === 'dir' && !ignored.has(`${child}/`)) {
        if (!(await walk(child))) return false;
      } else if (childInfo && (name === '.gitignore' || name === '.gitattributes')) rules.set(child, childInfo);
    }
    return true;
  };
  if (!(await walk(''))) return null;
  return { index: { path: layout.index, info: await host.lstat(layout.index) }, tracked, rules, dirs };
}

async function look(host: Host, repo: string, layout: Layout, leaveOut: readonly string[]): Promise<Look> {
  const refs = await readRepoRefs(host, repo);
  const { status, skipped } = await worktreeStatus(host, repo, leaveOut);
  const listed = statusPaths(status);
  const infos = new Map(await Promise.all(listed.map(async (path) => [path, await host.lstat(join(layout.top, path))] as const)));
  const watched = await stamps(host, layout.watched);
  const whole = await wholeLook(host, layout).catch(() => null);
  return { head: refs?.head.sha ?? null, status, skipped, infos, watched, whole };
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
 * The whole-tree part of a record, or undefined when some of it cannot be trusted by stats alone: a
 * racy folder or index (a change within the tick would not move its mtime), or a racy tracked file whose
 * content is not the index's blob (it changed meanwhile, or git converts it: filters, line endings).
 */
async function wholeOf(host: Host, top: string, racySinceMs: number, listed: Map<string, FileInfo | null>, whole: WholeLook, objectIdLength: number): Promise<WholeRecord | undefined> {
  if (whole.index.info && isRacy(whole.index.info, racySinceMs)) return undefined;
  const dirs: Record<string, string> = {};
  for (const [path, info] of whole.dirs) {
    if (isRacy(info, racySinceMs)) return undefined;
    dirs[path] = stamp(info);
  }
  const files: Record<string, RecordedPath> = {};
  for (const [path, { info, blob }] of whole.tracked) {
    if (listed.has(path)) continue; // recorded with what status lists
    if (!info || (info.type !== 'file' && info.type !== 'symlink')) return undefined;
    if (!isRacy(info, racySinceMs)) files[path] = { stamp: stamp(info) };
    else if (info.size <= MAX_HASHED_BYTES && (await blobId(host, join(top, path), info, objectIdLength)) === blob) files[path] = { stamp: stamp(info), blob };
    else return undefined;
  }
  for (const [path, info] of whole.rules) {
    if (listed.has(path) || files[path]) continue;
    if (!isRacy(info, racySinceMs)) files[path] = { stamp: stamp(info) };
    else if (info.type === 'file' && info.size <= MAX_HASHED_BYTES) files[path] = { stamp: stamp(info), blob: await blobId(host, join(top, path), info, objectIdLength) };
    else return undefined;
  }
  return { index: { path: whole.index.path, stamp: stamp(whole.index.info) }, files, dirs };
}

/**
 * The record of a work tree seen (`before`) right before `snapshot` was built from it, or null when
 * it cannot be vouched for: git could not read something, a listed path is a folder (a submodule),
 * or the snapshot does not hold exactly what was seen (a path that came, went or changed while it
 * was built). Why comparing the snapshot with what was seen is enough: docs/worktree.md.
 */
async function recordOf(
  host: Host,
  repo: string,
  layout: Layout,
  startedMs: number,
  before: Look,
  snapshot: WorktreeSnapshot,
  hashAll: boolean,
  leaveOut: readonly string[],
): Promise<WorktreeRecord | null> {
  const head = snapshot.head;
  if (!head || before.head !== head) return null;
  // A file left at its last saved version (unsettled) is not as the snapshot holds it.
  if (snapshot.skipped.length || snapshot.unsettled.length || before.skipped.length) return null;
  if (before.status.includes('\uFFFD')) return null; // names that are not UTF-8 cannot be stat'ed from here
  const entries = await changedEntries(host, layout.top, head, snapshot.tree);
  if (entries.size !== before.infos.size) return null;
  const racySinceMs = startedMs - (await timestampTickMs(host, layout.top, [...before.infos.values()].filter((info) => info !== null)));
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
    const racy = isRacy(info, racySinceMs);
    if (!racy && !hashAll) {
      paths[path] = { stamp: stamp(info) };
      continue;
    }
    if (info.size > MAX_HASHED_BYTES) return null;
    const blob = await blobId(host, join(layout.top, path), info, head.length);
    if (blob !== entry.sha) return null;
    paths[path] = racy ? { stamp: stamp(info), blob } : { stamp: stamp(info) };
  }
  const whole = before.whole ? await wholeOf(host, layout.top, racySinceMs, before.infos, before.whole, head.length) : undefined;
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
    ...(leaveOut.length ? { leftOut: [...leaveOut].sort() } : {}),
    ...(whole ? { whole } : {}),
  };
}

/**
 * Record the work tree of `repo` with the snapshot `snapshot` gives (best effort: a record that
 * cannot be made is removed, which only costs the next plans a snapshot of their own). `from`:
 * `worktree` when the snapshot is built from the work tree right after it is looked at (a save);
 * `restored` when the work tree was made from it (a restore): then every path status lists is
 * compared with the snapshot by content, since the snapshot was not read from it. `leaveOut`: the
 * paths the snapshot left out (worktree.ts), left out of the status too and kept in the record.
 */
export async function rememberWorktree(
  host: Host,
  repo: string,
  snapshotOf: () => Promise<WorktreeSnapshot>,
  from: 'worktree' | 'restored',
  leaveOut: readonly string[] = [],
): Promise<WorktreeSnapshot> {
  const startedMs = host.now().getTime();
  const before = await layoutOf(host, repo)
    .then(async (layout) => ({ layout, look: await look(host, repo, layout, leaveOut) }))
    .catch(() => null);
  const snapshot = await snapshotOf();
  const file = recordFile(host, repo);
  try {
    const record = before ? await recordOf(host, repo, before.layout, startedMs, before.look, snapshot, from === 'restored', leaveOut) : null;
    if (!record) throw new Error('not recorded');
    await host.mkdir(join(file, '..'), { mode: 0o700 });
    await host.writeFileAtomic(file, JSON.stringify(record), { mode: 0o600 });
  } catch {
    await host.remove(file).catch(() => undefined);
  }
  return snapshot;
}
