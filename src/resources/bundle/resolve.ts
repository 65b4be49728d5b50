// Spec resolution of `bundles:`: a local git repository saved as a bundle file in the mount.
import type { Entry, ResolveContext } from '../../spec/context.js';
import type { KeyPath } from '../../spec/load.js';
import type { ResolvedBundle } from '../../spec/types.js';

/** Bundles keep 5 generations by default (docs/architecture.md, lineage). */
const DEFAULT_KEEP = 5;

export function resolveBundle(ctx: ResolveContext, name: string, value: Entry): ResolvedBundle | undefined {
  if (typeof value === 'string') return undefined;
  const at: KeyPath = ['bundles', name];
  const bucket = ctx.bucketOf(at, value);
  const repo = ctx.localPath([...at, 'repo']);
  const relFile = ctx.inMountPath([...at, 'file'], bucket?.key);
  const keep = Number.isInteger(value.keep) && (value.keep as number) >= 0 ? (value.keep as number) : DEFAULT_KEEP;
  const remote = ctx.text([...at, 'remote']);
  if (repo !== undefined) ctx.claimLocal({ address: `bundle.${name}`, kind: 'repo', path: repo, at: [...at, 'repo'] });
  if (!bucket || relFile === undefined || repo === undefined) return undefined;
  const generations = Array.from({ length: keep }, (_, index) => `${relFile}.${index + 1}`);
  ctx.claimMount({ address: `bundle.${name}`, bucket: bucket.key, paths: [relFile, ...generations], at: [...at, 'file'] });
  return {
    name,
    bucket: bucket.key,
    repo,
    relFile,
    file: ctx.mountTarget(bucket, relFile),
    keep,
    ...(remote !== undefined && { remote }),
  };
}
