// Spec resolution of `links:`: `<workspace>/<name>` -> `<mount path>/<path>`.
import { resolve as resolvePath } from 'node:path';
import type { Entry, ResolveContext } from '../../spec/context.js';
import type { KeyPath } from '../../spec/load.js';
import type { ResolvedLink } from '../../spec/types.js';

export function resolveLink(ctx: ResolveContext, name: string, value: Entry): ResolvedLink | undefined {
  const at: KeyPath = ['links', name];
  const bucket = ctx.bucketOf(at, value);
  const targetAt: KeyPath = typeof value === 'string' ? at : [...at, 'path'];
  const relTarget = ctx.inMountPath(targetAt, bucket?.key);
  const path = resolvePath(ctx.workspace, name);
  ctx.claimLocal({ address: `link.${name}`, kind: 'link', path, at }, 'key');
  if (!bucket || relTarget === undefined) return undefined;
  if (!bucket.mount) {
    ctx.report(targetAt, `bucket ${bucket.key} has no mount: links need a mounted bucket; add mount: or use a sync`);
    return undefined;
  }
  ctx.claimMount({ address: `link.${name}`, bucket: bucket.key, paths: [relTarget], at: targetAt });
  return { name, bucket: bucket.key, path, relTarget, target: ctx.mountTarget(bucket, relTarget) };
}
