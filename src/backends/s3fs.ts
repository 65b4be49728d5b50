// s3fs-fuse 1.90. Credentials in a 0600 passwd file; the bucket name as mount source
// (`fsname` + `subtype` together keep the type `fuse.s3fs`). See docs/backends.md.
import { join } from 'node:path';
import type { MountedBucket } from '../spec/types.js';
import { assertValidOptions, childEnv, endpointOf, fuseUnmount, identifiedBy, regionOf, revealCredentials } from './common.js';
import { checkOptions, S3FS_REFUSALS, type OptionProblem, type OptionsTable } from './options.js';
import type { Backend, BackendContext, MountCommand } from './types.js';

export const options = {
  statCacheExpire: { type: 'integer', default: 60, description: 'Seconds an entry stays in the stat cache (`-o stat_cache_expire`).' },
  enableNoobjCache: {
    type: 'boolean',
    default: true,
    description: 'Cache the absence of objects (`-o enable_noobj_cache`): far fewer HEAD requests.',
  },
  notsupCompatDir: {
    type: 'boolean',
    default: false,
    description:
      'Opt in to `-o notsup_compat_dir`: fewer requests, but folders written by other S3 clients without a directory object (rclone, goofys, the R2 dashboard) become invisible, so a backup made by them would look absent. Default false.',
  },
  transfers: {
    type: { oneOf: ['api', 'mount'] },
    default: 'api',
    description:
      "How persist moves this bucket's syncs, bundles and files: `api` (default, when the bucket has credentials) through the bucket's S3 API, 16 files at a time and one request per small file; `mount` through the s3fs mount (about 5 requests per small file). Links always use the mount. s3fs keeps no write cache, so both see the same objects.",
  },
  extraOptions: {
    type: 'arguments',
    description:
      'Further s3fs options, each passed as `-o <item>` (e.g. `max_stat_cache_size=10000`). Refused, also inside a comma-separated item: `nonempty`, credential options, and the options persist sets (`url`, `host`, `endpoint`, `region`, `bucket`, `passwd_file`, `fsname`, `subtype`, `logfile`).',
    refuse: S3FS_REFUSALS,
  },
} as const satisfies OptionsTable;

/** Unknown keys, wrong types, refused extraOptions: the spec's check refuses them first, with the same rules. */
function validateOptions(given: Record<string, unknown>): OptionProblem[] {
  return checkOptions('s3fs', given, options);
}

async function mountCommand(bucket: MountedBucket, ctx: BackendContext): Promise<MountCommand> {
  const problems = validateOptions(bucket.mount.options);
  assertValidOptions('s3fs', problems);
  const given = bucket.mount.options as {
    transfers?: string;
    statCacheExpire?: number;
    enableNoobjCache?: boolean;
    notsupCompatDir?: boolean;
    extraOptions?: string[];
  };
  const { accessKeyId, secretAccessKey } = revealCredentials(bucket);
  const passwdFile = join(ctx.runtimeDir, 'passwd-s3fs');
  const logFile = join(ctx.runtimeDir, 's3fs.log');
  const fuseOptions = [
    `passwd_file=${passwdFile}`,
    `url=${endpointOf(bucket)}`,
    `endpoint=${regionOf(bucket)}`, // the region option is still called `endpoint` in 1.90
    ...(bucket.pathStyle ? ['use_path_request_style'] : []),
    'nomixupload', // R2 needs equal-size multipart parts; harmless elsewhere
    // Off unless asked for: with it, folders written without a directory object (by rclone,
    // goofys, the R2 dashboard, `aws s3 cp`) are invisible, so a bundle or mirror made by another
    // backend would look absent and could be written over.
    ...((given.notsupCompatDir ?? options.notsupCompatDir.default) === true ? ['notsup_compat_dir'] : []),
    ...((given.enableNoobjCache ?? options.enableNoobjCache.default) === false ? [] : ['enable_noobj_cache']),
    `stat_cache_expire=${given.statCacheExpire ?? options.statCacheExpire.default}`,
    `fsname=${bucket.name}`,
    'subtype=s3fs',
    `logfile=${logFile}`,
    ...(given.extraOptions ?? []),
  ];
  return {
    command: 's3fs',
    // A prefix is mounted as `bucket:/prefix` (s3fs's own syntax); the mount source stays the bucket name (fsname).
    args: [bucket.prefix ? `${bucket.name}:/${bucket.prefix.replace(/\/+$/, '')}` : bucket.name, bucket.mount.path, ...fuseOptions.flatMap((option) => ['-o', option])],
    // s3fs would prefer keys found in its environment over the passwd file.
    env: childEnv(ctx.processEnv, {}, ['AWSACCESSKEYID', 'AWSSECRETACCESSKEY', 'AWSSESSIONTOKEN', 'AWS_CREDENTIAL_FILE']),
    files: [{ path: passwdFile, content: `${accessKeyId}:${secretAccessKey}\n`, mode: 0o600 }],
    logFile,
  };
}

export const s3fs: Backend = {
  name: 's3fs',
  fuse: true,
  uploadsOnClose: true,
  dataThroughApi: (bucket) => ((bucket.mount.options as { transfers?: string }).transfers ?? options.transfers.default) === 'api',
  binary: { command: 's3fs', debianPackage: 's3fs' },
  options,
  validateOptions,
  ...identifiedBy('fuse.s3fs'),
  mountCommand,
  async unmount(_bucket, mountPoint, ctx) {
    await fuseUnmount(ctx.host, mountPoint);
  },
};
