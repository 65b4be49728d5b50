// rclone 1.60 `mount` with the VFS write cache. Configuration and credentials go in the child's
// environment (RCLONE_CONFIG_<REMOTE>_*), never on its command line. See docs/backends.md.
import { createServer } from 'node:net';
import { join } from 'node:path';
import { ActionError } from '../errors.js';
import type { Host } from '../host/types.js';
import { formatDuration, plural } from '../output/format.js';
import type { MountedBucket } from '../spec/types.js';
import { assertValidOptions, childEnv, endpointOf, fuseUnmount, identifiedBy, regionOf, revealCredentials } from './common.js';
import { checkOptions, type OptionProblem, type OptionsTable } from './options.js';
import type { Backend, BackendContext, MountCommand } from './types.js';

export const options = {
  cacheMode: {
    type: { oneOf: ['off', 'minimal', 'writes', 'full'] },
    default: 'writes',
    description: 'VFS cache mode (`--vfs-cache-mode`). Default writes: appends and git need it.',
  },
  cacheDir: { type: 'path', description: 'Cache folder (`--cache-dir`); keep it on disk that survives restarts.' },
  writeBack: { type: 'duration', description: 'Delay before a closed file is uploaded (`--vfs-write-back`), e.g. 5s.' },
  dirCacheTime: { type: 'duration', description: 'How long directory listings are cached (`--dir-cache-time`), e.g. 1m.' },
  extraArgs: { type: 'arguments', description: 'Further rclone arguments, e.g. `--transfers=8`. Credential arguments are refused.' },
} as const satisfies OptionsTable;

/** Flags persist sets itself, or that would hide data (`--allow-non-empty`). */
const RESERVED_ARGS = /^--(allow-non-empty|devname|daemon|rc|rc-addr|rc-no-auth|log-file|cache-dir|vfs-cache-mode|config)(=|$)/;

/** The remote's name in the child's environment: `RCLONE_CONFIG_PERSIST_*` configure `persist:`. */
const REMOTE = 'persist';
const CONFIG_PREFIX = `RCLONE_CONFIG_${REMOTE.toUpperCase()}_`;

/** The rc port of the running mount, kept in the runtime folder for a later process's unmount. */
export function rcPortFile(runtimeDir: string): string {
  return join(runtimeDir, 'rclone-rc-port');
}

/** Upper bound on waiting for rclone to upload what was written before unmounting. */
const FLUSH_TIMEOUT_MS = 120_000;

function validateOptions(given: Record<string, unknown>): OptionProblem[] {
  const problems = checkOptions('rclone', given, options);
  const extra = given.extraArgs;
  if (Array.isArray(extra)) {
    for (const arg of extra) {
      if (typeof arg === 'string' && RESERVED_ARGS.test(arg)) {
        problems.push({
          key: 'extraArgs',
          message: arg.startsWith('--allow-non-empty')
            ? '`--allow-non-empty` is refused: it would hide the files already in the mount point'
            : `\`${arg.split('=')[0]}\` is set by persist (use the cacheMode/cacheDir options where they exist)`,
        });
      }
    }
  }
  return problems;
}

function freeLoopbackPort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => (port ? resolve(port) : reject(new Error('no free port on 127.0.0.1'))));
    });
  });
}

const PROVIDERS = { r2: 'Cloudflare', aws: 'AWS', other: 'Other' } as const;

/**
 * rclone mounts whatever the keys and the bucket: bad keys give EIO later, a missing bucket
 * mounts empty and swallows writes into its cache. So list the bucket's root once first
 * (read-only, one ListObjects page per 1000 root entries) and stop with rclone's own reason.
 */
async function checkBucket(host: Host, bucket: MountedBucket, env: Record<string, string>, caBundle: string | undefined): Promise<void> {
  const result = await host.run(
    'rclone',
    [
      'lsf',
      `${REMOTE}:${bucket.name}`,
      '--max-depth',
      '1',
      '--low-level-retries',
      '1',
      '--retries',
      '1',
      '--contimeout',
      '10s',
      '--timeout',
      '15s',
      ...(caBundle ? ['--ca-cert', caBundle] : []),
    ],
    { env, timeoutMs: 30_000, readOnly: true },
  );
  if (result.exitCode === 0) return;
  const reason = result.stderr
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line && !/NOTICE: Config file/.test(line))
    .slice(-3)
    .join('; ');
  throw new ActionError(
    `rclone cannot list bucket ${bucket.name} at ${endpointOf(bucket)}: ${reason || (result.timedOut ? 'no answer within 30 s' : `exit code ${result.exitCode}`)}`,
  );
}

async function mountCommand(bucket: MountedBucket, ctx: BackendContext): Promise<MountCommand> {
  const problems = validateOptions(bucket.mount.options);
  assertValidOptions('rclone', problems);
  const given = bucket.mount.options as {
    cacheMode?: string;
    cacheDir?: string;
    writeBack?: string;
    dirCacheTime?: string;
    extraArgs?: string[];
  };
  const { accessKeyId, secretAccessKey } = revealCredentials(bucket);
  const logFile = join(ctx.runtimeDir, 'rclone.log');
  const port = await freeLoopbackPort();
  const caBundle = ctx.processEnv.AWS_CA_BUNDLE;
  const config: Record<string, string> = {
    TYPE: 's3',
    PROVIDER: PROVIDERS[bucket.provider],
    ENDPOINT: endpointOf(bucket),
    REGION: regionOf(bucket),
    ACCESS_KEY_ID: accessKeyId,
    SECRET_ACCESS_KEY: secretAccessKey,
    NO_CHECK_BUCKET: 'true', // R2 object-level tokens get a 403 on bucket creation
    FORCE_PATH_STYLE: String(bucket.pathStyle),
  };
  const rcloneArgs = [
    'mount',
    `${REMOTE}:${bucket.name}${bucket.prefix ? `/${bucket.prefix.replace(/\/+$/, '')}` : ''}`,
    bucket.mount.path,
    '--devname',
    bucket.name,
    '--vfs-cache-mode',
    given.cacheMode ?? options.cacheMode.default,
    '--cache-dir',
    given.cacheDir ?? join(ctx.runtimeDir, 'cache'),
    ...(given.writeBack ? ['--vfs-write-back', given.writeBack] : []),
    ...(given.dirCacheTime ? ['--dir-cache-time', given.dirCacheTime] : []),
    // rclone 1.60 fails before any I/O when AWS_CA_BUNDLE is set; hand the file over as a flag.
    ...(caBundle ? ['--ca-cert', caBundle] : []),
    '--log-file',
    logFile,
    '--rc',
    '--rc-addr',
    `127.0.0.1:${port}`,
    '--rc-no-auth',
    ...(given.extraArgs ?? []),
  ];
  const env = childEnv(
    ctx.processEnv,
    Object.fromEntries(Object.entries(config).map(([name, value]) => [CONFIG_PREFIX + name, value])),
    ['AWS_CA_BUNDLE'],
  );
  await checkBucket(ctx.host, bucket, env, caBundle);
  return {
    // `--daemon` cannot be combined with `--rc` in 1.60 (the parent binds the rc port before
    // forking and the child then fails with "address already in use", rclone #2618), so persist
    // detaches rclone itself: a new session, stdio off the caller's pipes, early errors to the log.
    command: 'sh',
    args: ['-c', 'log=$1; shift; exec setsid -f "$@" </dev/null >>"$log" 2>&1', 'persist-rclone', logFile, 'rclone', ...rcloneArgs],
    env,
    files: [{ path: rcPortFile(ctx.runtimeDir), content: `${port}\n`, mode: 0o600 }],
    logFile,
  };
}

interface VfsStats {
  diskCache?: { uploadsInProgress?: number; uploadsQueued?: number };
}

/** Pending uploads of the mount's VFS, or null when its rc does not answer (dead, or not ours). */
async function pendingUploads(host: Host, port: number, env: Record<string, string>): Promise<number | null> {
  const result = await host.run('rclone', ['rc', 'vfs/stats', '--url', `http://127.0.0.1:${port}/`], {
    env,
    timeoutMs: 10_000,
    readOnly: true,
  });
  if (result.exitCode !== 0) return null;
  try {
    const stats = JSON.parse(result.stdout) as VfsStats;
    return (stats.diskCache?.uploadsInProgress ?? 0) + (stats.diskCache?.uploadsQueued ?? 0);
  } catch {
    return null;
  }
}

async function readPort(host: Host, runtimeDir: string): Promise<number | null> {
  try {
    const port = Number((await host.readFile(rcPortFile(runtimeDir))).toString('utf8').trim());
    return Number.isInteger(port) && port > 0 ? port : null;
  } catch {
    return null;
  }
}

/** Wait (bounded) until the writes cache has uploaded everything: an unmount would strand them. */
async function flush(host: Host, runtimeDir: string, processEnv: Record<string, string | undefined>, mountPoint: string): Promise<void> {
  const port = await readPort(host, runtimeDir);
  if (port === null) return;
  const env = childEnv(processEnv, {}, ['AWS_CA_BUNDLE']);
  const deadline = host.now().getTime() + FLUSH_TIMEOUT_MS;
  for (;;) {
    const pending = await pendingUploads(host, port, env);
    if (pending === null || pending === 0) return;
    if (host.now().getTime() > deadline) {
      throw new ActionError(
        `rclone still has ${plural(pending, 'upload')} pending at ${mountPoint} after ${formatDuration(FLUSH_TIMEOUT_MS)}; not unmounting so nothing is lost (see ${join(runtimeDir, 'rclone.log')})`,
      );
    }
    await new Promise((resolve) => setTimeout(resolve, 500));
  }
}

export const rclone: Backend = {
  name: 'rclone',
  fuse: true,
  binary: { command: 'rclone', debianPackage: 'rclone' },
  options,
  validateOptions,
  ...identifiedBy('fuse.rclone'),
  mountCommand,
  async unmount(_bucket, mountPoint, ctx) {
    await flush(ctx.host, ctx.runtimeDir, ctx.processEnv, mountPoint);
    await fuseUnmount(ctx.host, mountPoint);
    await ctx.host.remove(rcPortFile(ctx.runtimeDir));
  },
};
