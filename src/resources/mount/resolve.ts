// Spec resolution of `buckets:` (the mount kind): the bucket's name, endpoint, provider and
// credentials, and where and how it is mounted.
import { resolve as resolvePath } from 'node:path';
import { BACKEND_NAMES, backends, type BackendName } from '../../backends/registry.js';
import type { Entry, ResolveContext } from '../../spec/context.js';
import { hasReference, isPlainObject } from '../../spec/interpolate.js';
import type { KeyPath } from '../../spec/load.js';
import { lazyPlace } from '../../spec/positions.js';
import { inferProvider } from '../../spec/provider.js';
import { Sensitive } from '../../spec/sensitive.js';
import type { ResolvedBucket } from '../../spec/types.js';
import { normalizePrefix } from '../../store/prefix.js';
import { isDuration, parseDuration } from '../../spec/duration.js';

const S3_BUCKET_NAME = /^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/;

export function resolveBucket(ctx: ResolveContext, key: string, value: Entry): ResolvedBucket | undefined {
  if (typeof value === 'string') return undefined;
  const at: KeyPath = ['buckets', key];
  const name = ctx.text([...at, 'name']);
  if (name !== undefined && !S3_BUCKET_NAME.test(name)) {
    ctx.report(
      [...at, 'name'],
      `"${name}" is not a valid bucket name: 3 to 63 characters, lowercase letters, digits, "." and "-", starting and ending with a letter or digit`,
    );
  }
  const endpoint = ctx.text([...at, 'endpoint']);
  const region = ctx.text([...at, 'region']);
  const pathStyle = ctx.value([...at, 'pathStyle']);
  const provider = ctx.value([...at, 'provider']);
  const prefixText = ctx.text([...at, 'prefix']);
  const hasMount = ctx.value([...at, 'mount']) !== undefined;
  const backend = ctx.value([...at, 'mount', 'backend']);
  const mountPath = ctx.localPath([...at, 'mount', 'path']);
  const options = ctx.value([...at, 'mount', 'options']);
  const accessKeyId = ctx.value([...at, 'credentials', 'accessKeyId']);
  const secretAccessKey = ctx.value([...at, 'credentials', 'secretAccessKey']);
  const leaseTtl = ctx.value([...at, 'lease', 'ttl']);
  const leaseTtlMs = isDuration(leaseTtl) ? parseDuration(leaseTtl, 'lease.ttl') : undefined;
  if (leaseTtlMs !== undefined && leaseTtlMs < 1000) ctx.report([...at, 'lease', 'ttl'], `"${String(leaseTtl)}" is too short for a lease's time to live; use at least 1s`);

  const prefix = normalizePrefix(prefixText);
  if (prefixText !== undefined && prefixText.split('/').some((part) => part === '.' || part === '..')) {
    ctx.report([...at, 'prefix'], `"${prefixText}" is not a usable prefix: it may not hold "." or ".." segments`);
  }
  if (prefix && backend === 'goofys') ctx.report([...at, 'prefix'], 'prefix: is not supported with the goofys backend yet; use s3fs or rclone, or leave out mount: (the S3 API)');
  // Credentials written but not resolved (a variable not set) are reported where they are written.
  if (!hasMount && ctx.value([...at, 'credentials']) === undefined && name !== undefined) {
    ctx.report(at, `bucket ${key} has no mount:, so it is reached through its S3 API, which needs credentials (accessKeyId and secretAccessKey); add them, or add mount:`, 'key');
  }
  if (name !== undefined) ctx.facts.buckets.push({ key, name, endpoint, prefix, place: lazyPlace(() => ctx.place([...at, 'name'])) });
  if (mountPath !== undefined) {
    if (mountPath === '/') ctx.report([...at, 'mount', 'path'], 'the mount path may not be / (the whole file system)');
    ctx.facts.mounts.push({ key, path: mountPath, place: lazyPlace(() => ctx.place([...at, 'mount', 'path'])) });
  }
  return {
    key,
    name: name ?? '',
    ...(endpoint !== undefined && { endpoint }),
    ...(region !== undefined && { region }),
    pathStyle: typeof pathStyle === 'boolean' ? pathStyle : true,
    provider: provider === 'r2' || provider === 'aws' || provider === 'other' ? provider : inferProvider(endpoint),
    ...(accessKeyId instanceof Sensitive && secretAccessKey instanceof Sensitive && { credentials: { accessKeyId, secretAccessKey } }),
    ...(prefix && { prefix }),
    ...(hasMount && {
      mount: {
        backend: BACKEND_NAMES.includes(backend as BackendName) ? (backend as BackendName) : 'local',
        path: mountPath ?? '',
        options: mountOptions(ctx.specDir, backend, options),
      },
    }),
    ...(leaseTtlMs !== undefined && { leaseTtlMs }),
  };
}

/** Options as given, with the backend's `path` options resolved like every other local path. */
function mountOptions(specDir: string, backend: unknown, options: unknown): Record<string, unknown> {
  if (!isPlainObject(options)) return {};
  const copy = { ...options };
  const table = BACKEND_NAMES.includes(backend as BackendName) ? backends[backend as BackendName].options : {};
  for (const [key, spec] of Object.entries(table)) {
    const value = copy[key];
    if (spec.type === 'path' && typeof value === 'string' && !hasReference(value)) copy[key] = resolvePath(specDir, value);
  }
  return copy;
}
