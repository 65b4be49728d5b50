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
//   (a mode-only difference is a chmod).
// The file's content (secrets) never reaches output: changes say `content: differs`, never a
// value or a hash.
import { dirname } from 'node:path';
import { ActionError } from '../../errors.js';
import type { Host } from '../../host/types.js';
import type { ApplyContext, ApplyOutcome, Change, ObserveContext, PlanOptions, PlannedAction, ResourceModule } from '../../engine/types.js';
import type { ResolvedFile } from '../../spec/types.js';
import { assertMountLive, copyIntoPlace } from '../sync/transfer.js';

export type FileSideObserved = { state: 'missing' } | { state: 'not-file'; found: string } | { state: 'file'; size: number; mode: number };

export interface FileObserved {
  /** The file in the mount; `unknown` until the mount is ready. */
  source: FileSideObserved | { state: 'unknown' };
  local: FileSideObserved;
  /** Whether both files have the same content; null when not both could be compared. */
  sameContent: boolean | null;
}

function addressOf(file: ResolvedFile): string {
  return `file.${file.name}`;
}

function formatMode(mode: number): string {
  return `0${mode.toString(8).padStart(3, '0')}`;
}

async function observeSide(host: Host, path: string, follow: boolean): Promise<FileSideObserved> {
  const info = follow ? await host.stat(path) : await host.lstat(path);
  if (!info) return { state: 'missing' };
  if (info.type !== 'file') return { state: 'not-file', found: info.type };
  return { state: 'file', size: info.size, mode: info.mode };
}

async function observeFile(file: ResolvedFile, host: Host, mountReady: boolean): Promise<FileObserved> {
  // The local side is not followed: a symlink there is reported, never written through.
  const local = await observeSide(host, file.to, false);
  if (!mountReady) return { source: { state: 'unknown' }, local, sameContent: null };
  const source = await observeSide(host, file.from, true);
  let sameContent: boolean | null = null;
  if (source.state === 'file' && local.state === 'file') {
    sameContent = source.size === local.size && (await host.hashFile(file.from)) === (await host.hashFile(file.to));
  }
  return { source, local, sameContent };
}

type Decision = Omit<PlannedAction, 'dependsOn'>;

export function diffFile(file: ResolvedFile, observed: FileObserved, _options: PlanOptions): Decision | null {
  const address = addressOf(file);
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

  if (local.state === 'not-file') {
    return conflict(`${file.to} is a ${local.found}, not a regular file`, `Move it aside so that persist can restore the file there, or change files.${file.name}.to.`);
  }
  if (source.state === 'unknown') {
    const reason =
      local.state === 'missing'
        ? `${file.to} does not exist; restored from ${file.from} once mount.${file.bucket} is up`
        : `compared with ${file.from} once mount.${file.bucket} is up (restored only if it differs)`;
    return restore(reason, [{ field: 'content', before: local.state === 'missing' ? null : 'unknown', after: 'from the mount' }]);
  }
  if (source.state === 'not-file') {
    return conflict(`${file.from} in the mount is a ${source.found}, not a regular file`, `Replace it with the file in the bucket, or change files.${file.name}.from.`);
  }
  if (source.state === 'missing') {
    return local.state === 'missing'
      ? conflict(`nothing to restore: ${file.from} does not exist in the mount`, `Put the file there (${file.relFrom} in bucket ${file.bucket}), or remove files.${file.name} from the spec.`)
      : conflict(
          `${file.from} does not exist in the mount; the local ${file.to} is kept as it is`,
          `To keep it durable, copy it into the mount (cp ${file.to} ${file.from}), or remove files.${file.name} from the spec.`,
        );
  }

  const mode = modeChange();
  if (local.state === 'missing') {
    return restore(`${file.to} does not exist`, [{ field: 'content', before: null, after: 'from the mount' }, mode!]);
  }
  if (observed.sameContent) return mode ? restore(`${file.to} has mode ${mode.before}`, [mode]) : null;
  const changes: Change[] = [{ field: 'content', before: 'differs', after: 'from the mount' }];
  if (mode) changes.push(mode);
  return restore(`${file.to} differs from ${file.from}`, changes);
}

export async function applyFile(file: ResolvedFile, action: PlannedAction, ctx: ApplyContext): Promise<ApplyOutcome> {
  const { host } = ctx;
  const address = addressOf(file);
  await assertMountLive(address, file.bucket, ctx.env, host);
  const observed = await observeFile(file, host, true);
  const decision = diffFile(file, observed, ctx.options);
  if (!decision) return { summary: 'already up to date' };
  if (decision.conflict) throw new ActionError(`${address}: ${decision.conflict.message}. ${decision.conflict.fix}`);
  if (decision.action !== action.action) {
    throw new ActionError(`${address}: planned ${action.action}, but the file now needs ${decision.action}; run plan again`);
  }
  if (observed.sameContent) {
    await host.chmod(file.to, file.mode);
    return { summary: `mode set to ${formatMode(file.mode)}` };
  }
  const source = await host.stat(file.from);
  await host.mkdir(dirname(file.to));
  // Created with its mode, written under a temporary name, fsynced, renamed: the file is never
  // half-written nor readable by others at any moment.
  const copied = await copyIntoPlace(host, file.from, file.to, { mode: file.mode, mtimeMs: source!.mtimeMs, metadata: 'strict' });
  return { summary: `restored ${copied.size} bytes, mode ${formatMode(file.mode)}` };
}

export const fileModule: ResourceModule<ResolvedFile, FileObserved> = {
  kind: 'file',
  resources: (env) => env.files,
  bucketOf: (file) => file.bucket,
  localPaths: (file) => [file.to],
  observe: (file: ResolvedFile, ctx: ObserveContext) => observeFile(file, ctx.host, ctx.mountReady[file.bucket] === true),
  diff: diffFile,
  apply: applyFile,
};
