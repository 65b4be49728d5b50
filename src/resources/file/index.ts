// `file.<name>`: one file restored from the mount to a local path with a fixed mode (typically a
// credentials file). Restore only: persist never writes the local file back into the mount.
//
// Rules:
// - Mount not ready → `restore`, decided after the mount (nothing happens if the file then
//   turns out to be equal).
// - The local path exists but is not a regular file (a folder, a symlink...) → conflict: persist
//   does not replace what it did not create (a symlink would also make it write elsewhere).
// - The file is missing from the mount → conflict, whether or not a local copy exists: on a fresh
//   bucket the operator must put it there (plan says so instead of staying silent), and a local
//   copy is never deleted or overwritten because the mount lacks one.
// - Local missing, or content different (size, then sha256 of both), or mode different → `restore`
//   (a mode-only difference is a chmod). A local file with other content is first copied into
//   persist's backups (owner-only), then replaced: nothing is lost.
// The file's content (secrets) never reaches output: changes say `content: differs`, never a
// value or a hash.
import { basename, join } from 'node:path';
import { addressOf } from '../../engine/address.js';
import { ActionError } from '../../errors.js';
import { newAsideFolder } from '../../lineage/aside.js';
import type { ApplyContext, ApplyOutcome, Change, Decision, Facts, PlanOptions, ResourceModule } from '../../engine/types.js';
import { blockingAncestor } from '../../host/blocked.js';
import type { FileInfo, Host } from '../../host/types.js';
import type { ResolvedFile } from '../../spec/types.js';
import type { Store } from '../../store/types.js';

/** `missing`: `blockedBy`, a non-folder on the way that keeps it from being made (local side only). */
export type FileSideObserved = { state: 'missing'; blockedBy?: { path: string; type: string } } | { state: 'not-file'; found: string } | { state: 'file'; size: number; mode: number };

export interface FileObserved {
  /** The file in the mount; `unknown` until the mount is ready. */
  source: FileSideObserved | { state: 'unknown' };
  local: FileSideObserved;
  /** Whether both files have the same content; null when not both could be compared. */
  sameContent: boolean | null;
}


function formatMode(mode: number): string {
  return `0${mode.toString(8).padStart(3, '0')}`;
}

function sideOf(info: Pick<FileInfo, 'type' | 'size' | 'mode'> | null): FileSideObserved {
  if (!info) return { state: 'missing' };
  if (info.type !== 'file') return { state: 'not-file', found: info.type };
  return { state: 'file', size: info.size, mode: info.mode };
}

async function observeFile(file: ResolvedFile, host: Host, store: Store | null): Promise<FileObserved> {
  // The local side is not followed: a symlink there is reported, never written through.
  const local = sideOf(await host.lstat(file.to));
  if (local.state === 'missing') {
    const blockedBy = await blockingAncestor(host, file.to);
    if (blockedBy) local.blockedBy = blockedBy;
  }
  if (!store) return { source: { state: 'unknown' }, local, sameContent: null };
  const source = sideOf(await store.stat(file.relFrom));
  let sameContent: boolean | null = null;
  if (source.state === 'file' && local.state === 'file') {
    sameContent = source.size === local.size && (await store.hash(file.relFrom)) === (await host.hashFile(file.to));
  }
  return { source, local, sameContent };
}

export function diffFile(file: ResolvedFile, observed: FileObserved, _options: PlanOptions): Decision | null {
  const address = addressOf('file', file.name);
  const { source, local } = observed;
  const conflict = (message: string, fix: string): Decision => ({
    address,
    kind: 'file',
    action: 'conflict',
    phase: 'restore',
    reason: message,
    changes: [],
    conflict: { message, fix },
  });
  const restore = (reason: string, changes: Change[]): Decision => ({ address, kind: 'file', action: 'restore', phase: 'restore', reason, changes });
  const modeChange = (): Change | null => {
    const before = local.state === 'file' ? local.mode : null;
    return before === file.mode ? null : { field: 'mode', before: before === null ? null : formatMode(before), after: formatMode(file.mode) };
  };

  if (local.state === 'missing' && local.blockedBy) {
    return conflict(`${local.blockedBy.path} is a ${local.blockedBy.type}, not a folder: ${file.to} cannot be made inside it`, `Move it aside, or change files.${file.name}.to.`);
  }
  if (local.state === 'not-file') {
    return conflict(`${file.to} is a ${local.found}, not a regular file`, `Move it aside so that persist can restore the file there, or change files.${file.name}.to.`);
  }
  // Through a mount `from` is a path there; through the S3 API it is an s3:// address.
  const where = file.from.startsWith('s3://') ? 'the bucket' : 'the mount';
  if (source.state === 'unknown') {
    const reason =
      local.state === 'missing'
        ? `${file.to} does not exist; restored from ${file.from} once mount.${file.bucket} is up`
        : `compared with ${file.from} once mount.${file.bucket} is up (restored only if it differs)`;
    return restore(reason, [{ field: 'content', before: local.state === 'missing' ? null : 'unknown', after: `from ${where}` }]);
  }
  if (source.state === 'not-file') {
    return conflict(`${file.from} in ${where} is a ${source.found}, not a regular file`, `Replace it with the file in the bucket, or change files.${file.name}.from.`);
  }
  if (source.state === 'missing') {
    const copyIn = file.from.startsWith('s3://') ? `upload it to ${file.from}` : `cp ${file.to} ${file.from}`;
    return local.state === 'missing'
      ? conflict(`nothing to restore: ${file.from} does not exist in ${where}`, `Put the file there (${file.relFrom} in bucket ${file.bucket}), or remove files.${file.name} from the spec.`)
      : conflict(
          `${file.from} does not exist in ${where}; the local ${file.to} is kept as it is`,
          `To keep it durable, copy it into ${where} (${copyIn}), or remove files.${file.name} from the spec.`,
        );
  }

  const mode = modeChange();
  if (local.state === 'missing') {
    return restore(`${file.to} does not exist`, [{ field: 'content', before: null, after: `from ${where}` }, mode!]);
  }
  if (observed.sameContent) return mode ? restore(`${file.to} has mode ${mode.before}`, [mode]) : null;
  const changes: Change[] = [
    { field: 'content', before: 'differs', after: `from ${where}` },
    { field: 'local', before: file.to, after: 'kept aside in the backups' },
  ];
  if (mode) changes.push(mode);
  return restore(`${file.to} differs from ${file.from}`, changes);
}

export async function applyFile(file: ResolvedFile, observed: FileObserved, ctx: ApplyContext): Promise<ApplyOutcome> {
  const { host } = ctx;
  if (observed.sameContent) {
    await host.chmod(file.to, file.mode);
    return { summary: `mode set to ${formatMode(file.mode)}` };
  }
  const store = ctx.store(file.bucket);
  const source = await store.stat(file.relFrom);
  const kept = observed.local.state === 'file' ? await keepCopy(host, ctx.env.workspace, file) : null;
  // Created with its mode, written under a temporary name, fsynced, renamed: the file is never
  // half-written nor readable by others at any moment.
  const copied = await store.download(file.relFrom, file.to, { mode: file.mode, mtimeMs: source!.mtimeMs });
  const outcome: ApplyOutcome = { summary: `restored ${copied.size} bytes, mode ${formatMode(file.mode)}` };
  if (kept) outcome.notes = [`the local file it replaced was kept in ${kept}`];
  return outcome;
}

/** A copy of the local file in the backups, readable by its owner only (it may hold secrets). */
async function keepCopy(host: Host, workspace: string, file: ResolvedFile): Promise<string> {
  const folder = await newAsideFolder(host, workspace, addressOf('file', file.name), file.to);
  const copy = join(folder, basename(file.to));
  await host.copyFile(file.to, copy);
  await host.chmod(copy, 0o600);
  if ((await host.hashFile(copy)) !== (await host.hashFile(file.to))) throw new ActionError(`the copy of ${file.to} in ${folder} differs from it; the local file is kept as it is`);
  return copy;
}

function fileFacts(file: ResolvedFile, observed: FileObserved): Facts {
  return { to: file.to, from: file.from, mode: observed.local.state === 'file' ? formatMode(observed.local.mode) : null };
}

export const fileModule: ResourceModule<ResolvedFile, FileObserved> = {
  kind: 'file',
  phaseRank: { restore: 2 },
  resources: (env) => env.files,
  needsBucket: (file) => file.bucket,
  readiness: null,
  localPaths: (file) => [file.to],
  contains: () => [],
  observe: async (file, ctx) => ({ state: await observeFile(file, ctx.host, ctx.mountReady[file.bucket] === true ? ctx.store(file.bucket) : null), detail: null }),
  diff: diffFile,
  apply: (file, _decision, seen, ctx) => applyFile(file, seen.state, ctx),
  // Only where no local file exists: a restore over an existing file replaces what is there.
  unattended: (decision, observed) => decision.action === 'restore' && observed.local.state === 'missing',
  facts: async (file, observed) => fileFacts(file, observed),
};
