// Adopt: a real directory where a link belongs becomes a link into the mount, with nothing lost
// even if the process is killed at any moment. A journal on local disk
// (`<backups>/<name>.adopt.json`) is written before anything else and removed last; the steps are:
//
//   1. bulk copy   <workspace>/<name>  -> <mount>/<path>   (merge; identical files skipped), then
//                  catch-up passes for what changed meanwhile, until every entry of the folder is
//                  in the mount (listings compared, names as bytes)
//   2. verify      copy again from the folder, still in place, comparing sha256 of every file on
//                  both sides, then catch-up passes (a stat of every entry) until nothing changed
//   3. swap        the link is made under a temporary name beside the folder first; then, back to
//                  back with nothing in between: rename <workspace>/<name> -> <backups>/<name>-<stamp>
//                  (the commit point) and rename the temporary link -> <workspace>/<name>. The path
//                  is missing for two rename(2) calls, not for the length of a verification.
//   4. settle      a last pass from the backup: what changed in the folder between the last
//                  catch-up and the commit is copied too (the adopt's own copy in the mount is
//                  replaced only while nobody wrote it through the link; else a conflict copy)
//   5. done        remove the journal (the backup stays)
//
// Every step is idempotent, so a resume simply runs them again from the state it finds: the
// original is still in place (before 3) or in the backup (after 3). Nothing is deleted on the way.
// A resume that finds the path missing (killed between the two renames, or a journal of an
// earlier version) verifies from the backup first and links last, as nobody can write through a
// link that is not there yet.
// The journal lists what the target held where the adopt may write when it began: every other
// file there is the adopt's own copy, which a newer version of its file replaces (merge.ts), so
// that the link shows what was written last, also when a write came in during the copy.
import { randomBytes } from 'node:crypto';
import { basename, dirname, join } from 'node:path';
import { backupDir } from '../../host/paths.js';
import type { Host } from '../../host/types.js';
import type { ApplyOutcome } from '../../engine/types.js';
import { ActionError } from '../../errors.js';
import type { ResolvedLink } from '../../spec/types.js';
import { mountRootOf, recordConflictCopy } from './conflict-records.js';
import { entriesBefore, mergeTree, MergeInterrupted, missingFromMount, UnreadableSource, type MergeOptions, type MergeResult } from './merge.js';
import { describeUnreadable, unreadableFix, unreadableIn } from './readable.js';
import { formatBytes, plural, samplePaths, showPath } from '../../output/format.js';

export interface AdoptJournal {
  version: 1;
  /** The link path whose directory is being adopted. */
  link: string;
  /** Where the adopt copies to (informational: a resume copies to the link's current target). */
  target: string;
  /** Where the original directory is (or will be) kept. */
  backup: string;
  /** Compact UTC time stamp of the start, reused for conflict names on every resume. */
  stamp: string;
  /** Names the adopt's temporary files in the mount. */
  token: string;
  startedAt: string;
  /** What the target held where the adopt may write, when it began (relative paths; merge.ts entriesBefore); absent in journals of earlier versions (then nothing counts as the adopt's own). */
  before?: string[];
}

/** How many times a folder that keeps changing is copied again before the adopt gives up (nothing moved, nothing lost). */
const CATCH_UP_PASSES = 3;

/** What observe reports about an adopt journal. */
export type JournalObserved =
  | { state: 'present'; target: string; backup: string; backupExists: boolean; startedAt: string }
  | { state: 'unreadable'; problem: string };

/** The folder holding adopt journals and backups: beside the link, in the workspace. */
export function linkBackupDir(link: ResolvedLink): string {
  return backupDir(dirname(link.path));
}

export function journalPath(link: ResolvedLink): string {
  return join(linkBackupDir(link), `${link.name}.adopt.json`);
}

/** `20260101T120000Z` */
export function compactStamp(date: Date): string {
  return date.toISOString().replace(/[-:]/g, '').replace(/\.\d{3}/, '');
}

function parseJournal(text: string, link: ResolvedLink): AdoptJournal | string {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    return `not valid JSON (${(error as Error).message})`;
  }
  const journal = value as Partial<AdoptJournal>;
  for (const key of ['link', 'target', 'backup', 'stamp', 'token', 'startedAt'] as const) {
    if (typeof journal[key] !== 'string' || journal[key] === '') return `"${key}" is missing`;
  }
  if (journal.version !== 1) return `unknown version ${JSON.stringify(journal.version)}`;
  // The backup must be one of ours: a journal never makes persist read or move anything else.
  if (dirname(journal.backup!) !== linkBackupDir(link) || !basename(journal.backup!).startsWith(`${link.name}-`)) {
    return `"backup" ${journal.backup} is not in ${linkBackupDir(link)}`;
  }
  if (!/^[A-Za-z0-9]+$/.test(journal.token!) || !/^[0-9TZ]+$/.test(journal.stamp!)) return 'malformed "token" or "stamp"';
  if (journal.before !== undefined && !(Array.isArray(journal.before) && journal.before.every((path) => typeof path === 'string'))) return '"before" must list paths';
  return journal as AdoptJournal;
}

export async function readJournal(host: Host, link: ResolvedLink): Promise<AdoptJournal | string | null> {
  const path = journalPath(link);
  const info = await host.lstat(path);
  if (info === null) return null;
  if (info.type !== 'file') return `${path} is not a regular file`;
  return parseJournal((await host.readFile(path)).toString('utf8'), link);
}

export async function observeJournal(host: Host, link: ResolvedLink): Promise<JournalObserved | null> {
  const journal = await readJournal(host, link);
  if (journal === null) return null;
  if (typeof journal === 'string') return { state: 'unreadable', problem: journal };
  const backupExists = (await host.lstat(journal.backup)) !== null;
  return { state: 'present', target: journal.target, backup: journal.backup, backupExists, startedAt: journal.startedAt };
}

async function startJournal(host: Host, link: ResolvedLink): Promise<AdoptJournal> {
  const now = host.now();
  const stamp = compactStamp(now);
  const folder = linkBackupDir(link);
  await host.mkdir(folder, { mode: 0o700 });
  let backup = join(folder, `${link.name}-${stamp}`);
  for (let i = 2; (await host.lstat(backup)) !== null; i++) backup = join(folder, `${link.name}-${stamp}-${i}`);
  const before = await entriesBefore(host, link.path, link.target);
  const journal: AdoptJournal = {
    version: 1,
    link: link.path,
    target: link.target,
    backup,
    stamp,
    token: randomBytes(6).toString('hex'),
    startedAt: now.toISOString(),
    before,
  };
  await host.writeFileAtomic(journalPath(link), `${JSON.stringify(journal, null, 2)}\n`, { mode: 0o600 });
  return journal;
}

export interface AdoptProgress {
  report(message: string): void;
  signal?: AbortSignal;
}

function notesOf(result: MergeResult, link: ResolvedLink, journal: AdoptJournal): string[] {
  const notes: string[] = [];
  const bySource = (a: { source: string }, b: { source: string }) => (a.source < b.source ? -1 : a.source > b.source ? 1 : 0);
  // Files are copied several at a time: sort so that the notes read the same on every run.
  for (const conflict of [...result.conflicts].sort(bySource)) {
    notes.push(`${showPath(join(link.path, conflict.source))} differs from the mount's copy: the mount's is kept, the local one is at ${showPath(join(link.target, conflict.stored))}`);
  }
  for (const skipped of [...result.notCopied].sort(bySource)) {
    notes.push(`${showPath(join(link.path, skipped.source))} was not copied into the mount (${skipped.reason}); it is kept in ${journal.backup}`);
  }
  for (const renamed of [...result.renamed].sort(bySource)) {
    notes.push(`${showPath(join(link.path, renamed.source))} is not a UTF-8 name, which a bucket cannot hold: it is in the mount as ${join(link.target, renamed.stored)} (docs/names.md)`);
  }
  for (const retargeted of [...result.retargeted].sort(bySource)) {
    notes.push(`the relative symlink ${showPath(join(link.path, retargeted.source))} points outside the folder: it is stored as an absolute link to ${showPath(retargeted.target)}`);
  }
  if (result.linksCopied.length > 0) {
    notes.push(`${plural(result.linksCopied.length, 'hard link')} could not be kept as links in the mount (the bucket stores none): each name holds its own copy: ${samplePaths(result.linksCopied)}`);
  }
  notes.push(...result.attributeProblems);
  return notes;
}

/** After a first pass (`result`), copy again what changed or appeared meanwhile, until every entry is in the mount. */
async function copyUntilComplete(host: Host, link: ResolvedLink, first: MergeResult, options: (since: MergeResult) => MergeOptions): Promise<MergeResult> {
  let result = first;
  for (let pass = 1; ; pass++) {
    const again = await mergeTree(host, link.path, link.target, options(result));
    const moved = again.copied;
    result = again;
    const missing = moved === 0 ? await missingFromMount(host, link.path, link.target, result) : [];
    if (moved === 0 && missing.length === 0) return result;
    if (pass >= CATCH_UP_PASSES) {
      const what = missing.length > 0 ? `${plural(missing.length, 'entry', 'entries')} of it ${missing.length === 1 ? 'is' : 'are'} not in the mount: ${samplePaths(missing)}` : `${plural(moved, 'file')} changed again at every pass`;
      throw new ActionError(`${link.path} keeps changing while it is adopted (${what}); nothing was moved, its content so far is copied into ${link.target}: stop what writes there and run apply again`);
    }
  }
}

/**
 * Carry out (or resume) the adopt of `link.path` into `link.target`. Returns after the link is in
 * place and the journal removed. The state is read afresh here: the caller's observation may be old.
 */
export async function adoptDirectory(host: Host, link: ResolvedLink, progress: AdoptProgress): Promise<ApplyOutcome> {
  const existing = await readJournal(host, link);
  if (typeof existing === 'string') {
    throw new ActionError(`${journalPath(link)} is unreadable: ${existing}`);
  }
  const resuming = existing !== null;
  // What cannot be read is refused before anything is written (the plan names it as a conflict;
  // this is for a file that became unreadable since, or an apply without a fresh plan).
  if ((await host.lstat(link.path))?.type === 'dir' && (existing === null || (await host.lstat(existing.backup)) === null)) {
    const unreadable = await unreadableIn(host, link.path);
    if (unreadable) {
      throw new ActionError(`cannot adopt ${link.path}: it holds ${describeUnreadable(unreadable)}; ${unreadableFix(link.path, unreadable.count)}; nothing was moved, the folder is left as it is`);
    }
  }
  const journal = existing ?? (await startJournal(host, link));
  const notes: string[] = [];
  const preexisting = journal.before === undefined ? undefined : new Set(journal.before);
  // Every conflict copy is recorded in the bucket as it is made: `persist clean` removes only those (conflict-records.ts).
  const mountRoot = mountRootOf(link.target, link.relTarget);
  const recordConflict = (destRel: string, file: string) => recordConflictCopy(host, mountRoot, `${link.relTarget}/${destRel}`, file);
  const mergeOptions = (verify: boolean, since?: MergeResult, live?: boolean): MergeOptions => ({
    stamp: journal.stamp,
    token: journal.token,
    verify,
    sweepPartials: (resuming || verify) && since === undefined,
    origin: link.path,
    ...(preexisting && { preexisting }),
    ...(since && { since }),
    ...(live && { live }),
    signal: progress.signal,
    recordConflict,
    progress: (done: number, bytes: number) => progress.report(`${verify ? 'verified' : 'copied'} ${plural(done, 'file')}, ${formatBytes(bytes)}`),
  });

  let temp: string | null = null;
  let committed = false;
  try {
    await host.mkdir(link.target);
    let here = await host.lstat(link.path);
    let backupExists = (await host.lstat(journal.backup)) !== null;

    let bulkAttributeProblems: string[] = [];
    let recopied: string[] = [];
    /** The last pass before the swap: the settling pass looks only at what changed since. */
    let checked: MergeResult | undefined;
    let adoptAgain = false;
    // 1 + 2 + 3: the original is still in place and not yet in the backup.
    if (here?.type === 'dir' && !backupExists) {
      progress.report(`copying ${link.path} into ${link.target}`);
      const copied = await copyUntilComplete(host, link, await mergeTree(host, link.path, link.target, mergeOptions(false)), (since) => mergeOptions(false, since));
      bulkAttributeProblems = copied.attributeProblems;
      recopied = copied.recopied;
      progress.report(`verifying ${link.target} against ${link.path}`);
      temp = await temporaryLink(host, link);
      checked = await copyUntilComplete(host, link, await mergeTree(host, link.path, link.target, mergeOptions(true)), (since) => mergeOptions(true, since));
      progress.report(`moving ${link.path} to ${journal.backup} and linking it`);
      // The swap: no await of anything but the two renames between the folder leaving its path
      // and the link taking it (test/resources/link-swap.test.ts watches the gap). Not one atomic
      // step (that is renameat2's RENAME_EXCHANGE, which Node does not offer): a process reading
      // the path between the two calls finds it missing, and rename(2) would put the link over a
      // regular file created at the path in those microseconds (never over a directory).
      try {
        await host.rename(link.path, journal.backup); // the commit point
      } catch (error) {
        const code = (error as NodeJS.ErrnoException).code;
        const hint = code === 'EXDEV' || code === 'EBUSY' ? ` (${link.path} looks like a mount point of its own; unmount it or move its content out)` : '';
        throw new ActionError(`cannot move ${link.path} to ${journal.backup}: ${(error as Error).message}${hint}; its content is already copied into ${link.target}, nothing is lost`, { cause: error });
      }
      backupExists = committed = true;
      try {
        await host.rename(temp, link.path);
        temp = null;
      } catch {
        // A directory re-created at the path in between (rename(2) puts no symlink over it): left
        // alone, adopted in a fresh round once this one is closed; the link is made then.
      }
    }

    // 4: every file of the backup is in the mount, byte for byte. With the link in place (the
    // swap above, or a resume after it) the mount is in use: nothing written through it is replaced.
    let verified: MergeResult | null = null;
    if (backupExists) {
      here = await host.lstat(link.path);
      const live = here?.type === 'symlink';
      progress.report(`verifying ${link.target} against ${journal.backup}`);
      verified = await mergeTree(host, journal.backup, link.target, mergeOptions(true, checked, live));
      notes.push(...notesOf(verified, link, journal));
      const again = [...new Set([...recopied, ...verified.recopied])].sort();
      if (again.length > 0) notes.push(`${plural(again.length, 'file')} changed during the adopt and ${again.length === 1 ? 'was' : 'were'} copied again: the link shows the newest version (${samplePaths(again)})`);
      for (const problem of bulkAttributeProblems) if (!notes.some((n) => n.startsWith(problem.slice(0, 20)))) notes.push(problem);
      notes.push(`the original directory is kept at ${journal.backup}`);
    }

    // The link (when a resume found the path missing or pointing elsewhere). Something new at the
    // path (the directory re-created meanwhile) is left alone here and adopted in a fresh round
    // after this one is closed.
    here = await host.lstat(link.path);
    if (here === null) {
      await host.mkdir(dirname(link.path));
      await host.symlink(link.target, link.path);
    } else if (here.type === 'symlink') {
      if ((await host.readlink(link.path)) !== link.target) await replaceSymlink(host, link);
    } else if (here.type === 'dir') {
      adoptAgain = true;
    } else {
      throw new ActionError(`${link.path} became a ${here.type === 'file' ? 'regular file' : 'special file'} during the adopt; move it away and run apply again`);
    }
    // The swap's temporary link, left over when it did not take the path (or a run killed before).
    temp ??= join(dirname(link.path), `.${link.name}.persist-link-tmp`);
    const leftover = await host.lstat(temp);
    if (leftover?.type === 'symlink' && (await host.readlink(temp)) === link.target) await host.remove(temp);
    temp = null;

    // 5: done.
    await host.remove(journalPath(link));

    const summary = verified
      ? `adopted ${plural(verified.files, 'file')} (${formatBytes(verified.bytes)}), ${plural(verified.conflicts.length, 'conflict')}${resuming ? ' (resumed)' : ''}`
      : 'linked (the interrupted adopt had nothing left to copy)';
    if (adoptAgain) {
      const again = await adoptDirectory(host, link, progress);
      return { summary: `${summary}; then ${again.summary}`, notes: [...notes, ...(again.notes ?? [])] };
    }
    return { summary, notes };
  } catch (error) {
    if (temp !== null) await host.remove(temp).catch(() => undefined);
    if (error instanceof UnreadableSource) {
      const kept = committed || (await host.lstat(journal.backup).catch(() => null)) !== null;
      const where = kept ? `the original is kept at ${journal.backup}, run apply again once it can be read` : `nothing was moved, the folder is left as it is`;
      throw new ActionError(`cannot adopt ${link.path}: persist cannot read ${error.path} (${error.code}); ${unreadableFix(link.path, 1)}; ${where}`, { cause: error });
    }
    if (error instanceof MergeInterrupted) {
      throw new ActionError(`adopt of ${link.path} interrupted; nothing is lost, run apply again to finish it`);
    }
    throw error;
  }
}

/** The link made under a temporary name beside the link path, ready to be renamed into place. */
async function temporaryLink(host: Host, link: ResolvedLink): Promise<string> {
  let temp = join(dirname(link.path), `.${link.name}.persist-link-tmp`);
  const leftover = await host.lstat(temp);
  // Only persist's own leftover (a link to this very target) is removed; a user's file or link
  // that happens to have this name is left alone, and another temporary name is used.
  if (leftover?.type === 'symlink' && (await host.readlink(temp)) === link.target) await host.remove(temp);
  else if (leftover !== null) temp = `${temp}-${randomBytes(6).toString('hex')}`;
  await host.symlink(link.target, temp);
  return temp;
}

/** Point an existing symlink at the link's target: new link under a temporary name, renamed over. */
export async function replaceSymlink(host: Host, link: ResolvedLink): Promise<void> {
  await host.rename(await temporaryLink(host, link), link.path);
}

