// Spec resolution of `files:`: a file restored from the mount to local disk, with its mode.
import type { Entry, ResolveContext } from '../../spec/context.js';
import type { KeyPath } from '../../spec/load.js';
import type { ResolvedFile } from '../../spec/types.js';

const DEFAULT_FILE_MODE = 0o600;

export function resolveFile(ctx: ResolveContext, name: string, value: Entry): ResolvedFile | undefined {
  if (typeof value === 'string') return undefined;
  const at: KeyPath = ['files', name];
  const bucket = ctx.bucketOf(at, value);
  const relFrom = ctx.inMountPath([...at, 'from'], bucket?.key);
  const to = ctx.localPath([...at, 'to']);
  const modeText = ctx.text([...at, 'mode']);
  const mode = modeText !== undefined && /^0?[0-7]{3}$/.test(modeText) ? Number.parseInt(modeText, 8) : DEFAULT_FILE_MODE;
  if (to !== undefined) ctx.claimLocal({ address: `file.${name}`, kind: 'file', path: to, at: [...at, 'to'] });
  if (!bucket || relFrom === undefined || to === undefined) return undefined;
  ctx.claimMount({ address: `file.${name}`, bucket: bucket.key, paths: [relFrom], at: [...at, 'from'] });
  return { name, bucket: bucket.key, relFrom, from: ctx.mountTarget(bucket, relFrom), to, mode };
}
