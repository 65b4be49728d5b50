// `persist clean`: list persist's own leftovers in the bucket (conflict copies made by adopt,
// partial files of interrupted writes, and incomplete multipart uploads an interrupted push or
// write left; see leftovers.ts) and remove them after asking (or with --auto-approve). Nothing
// else is ever removed: every key is matched against persist's own naming patterns again right
// before it is removed, a conflict copy is removed only while it is one adopt recorded in the
// bucket when it made it and still has the recorded size and sha256 (a file merely named like one,
// or a copy edited since, is named and left alone; the record goes with the copy it describes), and
// every upload's parts are looked at again right before it is aborted (one written to in the last
// hour, which a live push may still be sending, is left alone).
//
// A partial file is a leftover only once nobody is writing it. So clean holds this machine's apply
// lock from its listing to its last removal (an apply, watch round, shutdown, rollback or detach
// of this machine runs before or after it, never during it; one running now makes clean refuse at
// once), and leaves alone the files of a bucket whose lease another machine holds (not expired):
// that machine may be writing them right now (checked when listing and again right before removing).
import { createInterface } from 'node:readline/promises';
import { posix } from 'node:path';
import { acquireLock } from '../engine/lock.js';
import { UsageError } from '../errors.js';
import { stateDir } from '../host/paths.js';
import { deadBuildings } from '../host/state-leftovers.js';
import { killedRunFoldersRemoved } from '../output/status-view.js';
import { formatBytes, plural } from '../output/format.js';
import { storesFor } from '../store/index.js';
import { computePlan, header, loadSpec, makeHost } from './common.js';
import { conflictRecordKey } from '../resources/link/conflict-records.js';
import { abortIncompleteUploads, findIncompleteUploads, isRecordedConflictCopy, leftoverKind, renderIncompleteUploads, renderLeftovers, renderLeftAloneForLease, renderLookalikes, surveyLeftovers, type Leftover } from './leftovers.js';
import { otherLeaseHolder } from './other-lease.js';
import type { Host } from '../host/types.js';
import type { ResolvedEnvironment } from '../spec/types.js';
import type { CommandIO, SpecOptions } from './types.js';

export interface CleanCommandOptions extends SpecOptions {
  autoApprove?: boolean;
}

/** `these 4 files and these 2 incomplete uploads`, `this file`, `this incomplete upload`. */
function what(files: number, uploads: number): string {
  const parts: string[] = [];
  if (files) parts.push(files === 1 ? 'this file' : `these ${files} files`);
  if (uploads) parts.push(uploads === 1 ? 'this incomplete upload' : `these ${uploads} incomplete uploads`);
  return parts.join(' and ');
}

async function confirm(io: CommandIO, files: number, uploads: number): Promise<boolean> {
  const rl = createInterface({ input: process.stdin, output: process.stdout });
  try {
    const verb = files ? 'Remove' : 'Abort';
    const answer = await rl.question(`\n${verb} ${what(files, uploads)}? Only 'yes' will be accepted: `);
    return answer.trim() === 'yes';
  } finally {
    rl.close();
    io.out('\n');
  }
}

export default async function clean(opts: CleanCommandOptions, io: CommandIO): Promise<number> {
  const readOnly = makeHost(io, { readOnly: true });
  const env = await loadSpec(opts, io, readOnly);
  const host = makeHost(io);
  // Not on a terminal and without --auto-approve, clean only lists and refuses: it writes nothing, not even the lock.
  const removes = opts.autoApprove === true || io.interactive;
  // Taking the lock removes what killed rollbacks, detaches and restores left beside local folders (host/state-leftovers.ts): said here.
  const killed = removes ? await deadBuildings(readOnly, stateDir(io.env)) : [];
  const release = removes ? await acquireLock(host, stateDir(io.env), { spec: env.specFile, environment: env.environment, command: 'clean' }, 0, 'wait for it to finish, then run this clean again') : async () => {};
  try {
    const gone: string[] = [];
    for (const path of killed) if (!(await readOnly.lstat(path))) gone.push(path);
    return await cleanLocked(opts, io, env, readOnly, host, gone);
  } finally {
    await release();
  }
}

/** `killedRunFolders`: what taking the lock removed beside local folders (said after the header). */
async function cleanLocked(opts: CleanCommandOptions, io: CommandIO, env: ResolvedEnvironment, readOnly: Host, host: Host, killedRunFolders: string[]): Promise<number> {
  const { observation } = await computePlan(readOnly, env, { allowShrink: false }, []);
  const survey = await surveyLeftovers(env, observation.ctx);
  const { lookalikes } = survey;
  // Another machine's live lease: its partial files may be being written; none of that bucket's files is touched.
  const holderOf = await otherLeaseHolder(readOnly, env, { unreadable: 'busy' });
  const busy = new Map<string, string>();
  for (const bucket of new Set(survey.leftovers.map((leftover) => leftover.bucket))) {
    const holder = await holderOf(bucket);
    if (holder !== null) busy.set(bucket, holder);
  }
  const leftovers = survey.leftovers.filter((leftover) => !busy.has(leftover.bucket));
  const leftAlone: Leftover[] = survey.leftovers.filter((leftover) => busy.has(leftover.bucket));
  const uploads = await findIncompleteUploads(env, readOnly.now().getTime());
  const failedToLook = uploads.failures.some((failure) => !failure.unsupported);
  io.out(`${header(env, 'clean')}\n\n`);
  if (killedRunFolders.length) io.out(killedRunFoldersRemoved(killedRunFolders));
  const unready = Object.entries(observation.mountReady).filter(([, ready]) => !ready).map(([bucket]) => bucket);
  if (unready.length) io.out(`not looked into (not mounted): bucket ${unready.join(', ')}\n`);
  io.out(renderIncompleteUploads({ ...uploads, stale: [] }, readOnly.now()));
  io.out(renderLookalikes(lookalikes));
  for (const [bucket, holder] of busy) io.out(renderLeftAloneForLease(bucket, holder, leftAlone.filter((leftover) => leftover.bucket === bucket)));
  if (leftovers.length === 0 && uploads.stale.length === 0) {
    if (leftAlone.length) io.out('Nothing removed.\n');
    else io.out(failedToLook ? 'No leftovers of persist found where clean could look.\n' : 'No leftovers of persist in the bucket.\n');
    return failedToLook ? 1 : 0;
  }
  io.out(renderLeftovers(leftovers));
  io.out(renderIncompleteUploads({ stale: uploads.stale, recent: [], elsewhere: 0, failures: [] }, readOnly.now()));
  if (!opts.autoApprove) {
    if (!io.interactive) throw new UsageError('clean needs --auto-approve when not run on a terminal');
    if (!(await confirm(io, leftovers.length, uploads.stale.length))) {
      io.out('Clean cancelled; nothing removed.\n');
      return 1;
    }
  }
  const storeOf = storesFor(env, host);
  let removed = 0;
  const takenSince = new Map<string, string | null>(); // per bucket: another machine's lease, looked at again right before
  for (const leftover of leftovers) {
    const kind = leftoverKind(posix.basename(leftover.key));
    if (kind === null) continue; // never anything persist did not name
    if (!takenSince.has(leftover.bucket)) {
      const holder = await holderOf(leftover.bucket);
      takenSince.set(leftover.bucket, holder);
      if (holder !== null) io.out(renderLeftAloneForLease(leftover.bucket, holder, leftovers.filter((other) => other.bucket === leftover.bucket)));
    }
    if (takenSince.get(leftover.bucket) !== null) {
      leftAlone.push(leftover);
      continue;
    }
    const store = storeOf(leftover.bucket);
    const info = await store.stat(leftover.key);
    if (!info || info.type !== 'file') continue;
    if (kind === 'conflict copy') {
      // Looked at again right before: edited since it was listed (or its record gone), it is the user's now.
      if (!(await isRecordedConflictCopy(store, leftover.key))) {
        io.out(renderLookalikes([leftover]));
        continue;
      }
      await store.remove(leftover.key);
      await store.remove(conflictRecordKey(leftover.key));
    } else {
      await store.remove(leftover.key);
    }
    removed += 1;
  }
  const done = leftovers.length ? [`removed ${plural(removed, 'file')}`] : [];
  if (leftAlone.length) done.push(`left ${plural(leftAlone.length, 'file')} alone (another machine holds the bucket's lease)`);
  let failed = failedToLook;
  if (uploads.stale.length) {
    const result = await abortIncompleteUploads(env, uploads.stale, readOnly.now().getTime());
    const bytes = result.aborted.reduce((sum, upload) => sum + upload.bytes, 0);
    done.push(`aborted ${plural(result.aborted.length, 'incomplete upload')} (${formatBytes(bytes)})`);
    if (result.busy.length) io.out(`Left alone: ${plural(result.busy.length, 'incomplete upload')} written to since it was listed: ${result.busy.map((upload) => upload.where).join(', ')}\n`);
    if (result.gone) io.out(`${plural(result.gone, 'incomplete upload')} completed or aborted meanwhile by someone else.\n`);
    for (const failure of result.failures) io.out(`could not abort the incomplete upload ${failure.upload.where}: ${failure.message}\n`);
    if (result.failures.length) failed = true;
  }
  io.out(`Clean complete: ${done.join(', ')}.\n`);
  return failed ? 1 : 0;
}
