// Spec resolution of `syncs:`: a local directory mirrored into the mount.
import type { Entry, ResolveContext } from '../../spec/context.js';
import type { KeyPath } from '../../spec/load.js';
import type { ResolvedSync } from '../../spec/types.js';

const DEFAULT_MAX_DELETE_RATIO = 0.5;
/** Syncs keep 10 generations by default (docs/architecture.md, lineage). */
const DEFAULT_SYNC_KEEP = 10;

export function resolveSync(ctx: ResolveContext, name: string, value: Entry): ResolvedSync | undefined {
  if (typeof value === 'string') return undefined;
  const at: KeyPath = ['syncs', name];
  const bucket = ctx.bucketOf(at, value);
  const from = ctx.localPath([...at, 'from']);
  const relTo = ctx.inMountPath([...at, 'to'], bucket?.key);
  if (from !== undefined) ctx.claimLocal({ address: `sync.${name}`, kind: 'sync', path: from, at: [...at, 'from'] });
  if (!bucket || relTo === undefined || from === undefined) return undefined;
  ctx.claimMount({ address: `sync.${name}`, bucket: bucket.key, paths: [relTo], at: [...at, 'to'] });
  const exclude = Array.isArray(value.exclude) ? value.exclude.filter((item): item is string => typeof item === 'string') : [];
  const ratio = value.maxDeleteRatio;
  return {
    name,
    bucket: bucket.key,
    from,
    relTo,
    to: ctx.mountTarget(bucket, relTo),
    delete: value.delete === true,
    exclude,
    maxDeleteRatio: typeof ratio === 'number' && ratio >= 0 && ratio <= 1 ? ratio : DEFAULT_MAX_DELETE_RATIO,
    keep: Number.isInteger(value.keep) && (value.keep as number) >= 1 ? (value.keep as number) : DEFAULT_SYNC_KEEP,
  };
}
