// goofys 0.24 (not packaged in Debian; installed by hand). Credentials in the child's environment.
// It exits non-zero when the mount fails. See docs/backends.md.
import type { ResolvedBucket } from '../spec/types.js';
import { assertValidOptions, checkOptions, childEnv, endpointOf, fuseUnmount, identifiedBy, regionOf, revealCredentials, type OptionKind } from './common.js';
import type { Backend, BackendContext, MountCommand, OptionProblem } from './types.js';

const OPTIONS: Record<string, OptionKind> = {
  statCacheTtl: 'duration',
  typeCacheTtl: 'duration',
  subdomain: 'boolean',
};

function validateOptions(options: Record<string, unknown>): OptionProblem[] {
  return checkOptions('goofys', options, OPTIONS);
}

async function mountCommand(bucket: ResolvedBucket, ctx: BackendContext): Promise<MountCommand> {
  const problems = validateOptions(bucket.mount.options);
  assertValidOptions('goofys', problems);
  const options = bucket.mount.options as { statCacheTtl?: string; typeCacheTtl?: string; subdomain?: boolean };
  const { accessKeyId, secretAccessKey } = revealCredentials(bucket);
  return {
    command: 'goofys',
    args: [
      '--endpoint',
      endpointOf(bucket),
      '--region',
      regionOf(bucket),
      '--stat-cache-ttl',
      options.statCacheTtl ?? '1m',
      '--type-cache-ttl',
      options.typeCacheTtl ?? '1m',
      // goofys is path-style by default; virtual-host style when the spec says so or asks for it.
      ...(options.subdomain === true || (options.subdomain === undefined && !bucket.pathStyle) ? ['--subdomain'] : []),
      bucket.name,
      bucket.mount.path,
    ],
    env: childEnv(
      ctx.processEnv,
      { AWS_ACCESS_KEY_ID: accessKeyId, AWS_SECRET_ACCESS_KEY: secretAccessKey },
      ['AWS_SESSION_TOKEN', 'AWS_PROFILE'],
    ),
    files: [],
  };
}

export const goofys: Backend = {
  name: 'goofys',
  fuse: true,
  binary: { command: 'goofys', debianPackage: '(none: not packaged in Debian; install the release binary from github.com/kahing/goofys)' },
  validateOptions,
  ...identifiedBy('fuse.goofys'),
  mountCommand,
  async unmount(_bucket, mountPoint, ctx) {
    await fuseUnmount(ctx.host, mountPoint);
  },
};
