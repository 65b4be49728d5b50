// goofys 0.24 (not packaged in Debian; installed by hand). Credentials in the child's environment.
// It exits non-zero when the mount fails. See docs/backends.md.
import type { MountedBucket } from '../spec/types.js';
import { assertValidOptions, childEnv, endpointOf, fuseUnmount, identifiedBy, regionOf, revealCredentials } from './common.js';
import { checkOptions, type OptionProblem, type OptionsTable } from './options.js';
import type { Backend, BackendContext, MountCommand } from './types.js';

export const options = {
  statCacheTtl: { type: 'duration', default: '1m', description: 'How long file attributes are cached (`--stat-cache-ttl`), e.g. 1m.' },
  typeCacheTtl: { type: 'duration', default: '1m', description: 'How long file types are cached (`--type-cache-ttl`), e.g. 1m.' },
  subdomain: { type: 'boolean', description: 'Use virtual-host-style requests (`--subdomain`); some R2 setups need it.' },
} as const satisfies OptionsTable;

function validateOptions(given: Record<string, unknown>): OptionProblem[] {
  return checkOptions('goofys', given, options);
}

async function mountCommand(bucket: MountedBucket, ctx: BackendContext): Promise<MountCommand> {
  const problems = validateOptions(bucket.mount.options);
  assertValidOptions('goofys', problems);
  const given = bucket.mount.options as { statCacheTtl?: string; typeCacheTtl?: string; subdomain?: boolean };
  const { accessKeyId, secretAccessKey } = revealCredentials(bucket);
  return {
    command: 'goofys',
    args: [
      '--endpoint',
      endpointOf(bucket),
      '--region',
      regionOf(bucket),
      '--stat-cache-ttl',
      given.statCacheTtl ?? options.statCacheTtl.default,
      '--type-cache-ttl',
      given.typeCacheTtl ?? options.typeCacheTtl.default,
      // goofys is path-style by default; virtual-host style when the spec says so or asks for it.
      ...(given.subdomain === true || (given.subdomain === undefined && !bucket.pathStyle) ? ['--subdomain'] : []),
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
  options,
  validateOptions,
  ...identifiedBy('fuse.goofys'),
  mountCommand,
  async unmount(_bucket, mountPoint, ctx) {
    await fuseUnmount(ctx.host, mountPoint);
  },
};
