// rclone 1.60 `mount` with the VFS write cache. Configuration and credentials go in the child's
// environment (RCLONE_CONFIG_<REMOTE>_*), never on its command line. See docs/backends.md.
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { join } from 'node:path';
import { ActionError } from '../errors.js';
import type { Host } from '../host/types.js';
import { errorMessage, formatDuration, plural } from '../output/format.js';
import { storedObjects, type StoredObject } from './store-check.js';
import { dirtyItems, type DirtyItem, type UnreadableItem } from './rclone-cache.js';
import type { MountedBucket } from '../spec/types.js';
import { assertValidOptions, childEnv, endpointOf, fuseUnmount, identifiedBy, regionOf, revealCredentials } from './common.js';
import { checkOptions, RCLONE_REFUSALS, type OptionProblem, type OptionsTable } from './options.js';
import type { Backend, BackendContext, FlushReport, Leftovers, MountCommand, PendingWrites } from './types.js';

export const options = {
  cacheMode: {
    type: { oneOf: ['off', 'minimal', 'writes', 'full'] },
    default: 'writes',
    description: 'VFS cache mode (`--vfs-cache-mode`). Default writes: appends and git need it.',
  },
  cacheDir: { type: 'path', description: 'Cache folder (`--cache-dir`); keep it on disk that survives restarts.' },
  writeBack: {
    type: 'duration',
    default: '1s',
    description: "Delay before a closed file is uploaded (`--vfs-write-back`). Default 1s (rclone's own is 5s), so that the agent's writes through a link reach the store quickly.",
  },
  dirCacheTime: { type: 'duration', description: 'How long directory listings are cached (`--dir-cache-time`), e.g. 1m.' },
  extraArgs: {
    type: 'arguments',
    description:
      'Further rclone arguments, e.g. `--transfers=8`. Refused: `--allow-non-empty`, credential arguments, FUSE options (`-o`, `--option`, `--fuse-flag`), and the flags persist sets (`--config`, `--devname`, `--daemon*`, `--rc*`, `--log-file`, `--cache-dir`, `--vfs-cache-mode`, `--s3-endpoint`, `--s3-region`, `--s3-provider`, `--s3-force-path-style`), as `--flag value` or `--flag=value`.',
    refuse: RCLONE_REFUSALS,
  },
} as const satisfies OptionsTable;

/** The remote's name in the child's environment: `RCLONE_CONFIG_PERSIST_*` configure `persist:`. */
const REMOTE = 'persist';
const CONFIG_PREFIX = `RCLONE_CONFIG_${REMOTE.toUpperCase()}_`;

/** The rc port of the running mount, kept in the runtime folder for a later process's unmount. */
export function rcPortFile(runtimeDir: string): string {
  return join(runtimeDir, 'rclone-rc-port');
}

/** The daemon's pid (written by the launching shell), to stop a daemon whose mount failed. */
export function pidFile(runtimeDir: string): string {
  return join(runtimeDir, 'rclone.pid');
}

/**
 * The remote's configuration, credentials included, in a 0600 file. Not environment variables:
 * rclone treats those as overrides and names its cache folder `persist{<hash of them>}`, so a
 * changed endpoint port or key would strand the cache. From a file the folder is plain `persist`.
 */
export function configFile(runtimeDir: string): string {
  return join(runtimeDir, 'rclone.conf');
}

export function cacheDirOf(bucket: MountedBucket, runtimeDir: string): string {
  return (bucket.mount.options as { cacheDir?: string }).cacheDir ?? join(runtimeDir, 'cache');
}

/** Upper bound on waiting for rclone to upload what was written before unmounting. */
const FLUSH_TIMEOUT_MS = 120_000;

/** Unknown keys, wrong types, refused extraArgs: the spec's check refuses them first, with the same rules. */
function validateOptions(given: Record<string, unknown>): OptionProblem[] {
  return checkOptions('rclone', given, options);
}

function freeLoopbackPort(): Promise<number> {
  // Loaded here: node:net is needed only when rclone is mounted, never by a plan.
  const { createServer } = process.getBuiltinModule('node:net');
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
async function checkBucket(host: Host, bucket: MountedBucket, env: Record<string, string>, caBundle: string | undefined, config: string): Promise<void> {
  const result = await host.run(
    'rclone',
    [
      '--config',
      config,
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
    type: 's3',
    provider: PROVIDERS[bucket.provider],
    endpoint: endpointOf(bucket),
    region: regionOf(bucket),
    access_key_id: accessKeyId,
    secret_access_key: secretAccessKey,
    no_check_bucket: 'true', // R2 object-level tokens get a 403 on bucket creation
    force_path_style: String(bucket.pathStyle),
  };
  const conf = configFile(ctx.runtimeDir);
  const confText = configText(config);
  const rcloneArgs = [
    '--config',
    conf,
    'mount',
    `${REMOTE}:${bucket.name}${bucket.prefix ? `/${bucket.prefix.replace(/\/+$/, '')}` : ''}`,
    bucket.mount.path,
    '--devname',
    bucket.name,
    '--vfs-cache-mode',
    given.cacheMode ?? options.cacheMode.default,
    '--cache-dir',
    cacheDirOf(bucket, ctx.runtimeDir),
    '--vfs-write-back',
    given.writeBack ?? options.writeBack.default,
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
  const env = rcloneEnv(ctx.processEnv);
  await ctx.host.writeFile(conf, confText, { mode: 0o600 });
  await ctx.host.chmod(conf, 0o600);
  await checkBucket(ctx.host, bucket, env, caBundle, conf);
  return {
    // `--daemon` cannot be combined with `--rc` in 1.60 (the parent binds the rc port before
    // forking and the child then fails with "address already in use", rclone #2618), so persist
    // detaches rclone itself: a new session (setsid execs rclone in the background child, so `$!`
    // is rclone's pid), stdio off the caller's pipes, early errors to the log.
    command: 'sh',
    args: [
      '-c',
      'log=$1; pidfile=$2; shift 2; setsid "$@" </dev/null >>"$log" 2>&1 & echo $! >"$pidfile"',
      'persist-rclone',
      logFile,
      pidFile(ctx.runtimeDir),
      'rclone',
      ...rcloneArgs,
    ],
    env,
    files: [
      { path: conf, content: confText, mode: 0o600 },
      { path: rcPortFile(ctx.runtimeDir), content: `${port}\n`, mode: 0o600 },
    ],
    logFile,
  };
}

/** An rclone config file of one remote; values never hold a line break (checked). */
function configText(config: Record<string, string>): string {
  const lines = [`[${REMOTE}]`];
  for (const [name, value] of Object.entries(config)) {
    if (/[\r\n]/.test(value)) throw new ActionError(`the rclone setting ${name} holds a line break; it cannot go into rclone's config file`);
    lines.push(`${name} = ${value}`);
  }
  return `${lines.join('\n')}\n`;
}

/**
 * The child's environment: without AWS_CA_BUNDLE (rclone 1.60 fails on it), and without variables
 * that would override the config file (RCLONE_CONFIG_PERSIST_*, RCLONE_S3_*): an override changes
 * the cache folder's name, and must not redirect persist's remote anyway.
 */
function rcloneEnv(processEnv: Record<string, string | undefined>): Record<string, string> {
  const remove = Object.keys(processEnv).filter((name) => name === 'AWS_CA_BUNDLE' || name === 'RCLONE_CONFIG' || name.startsWith(CONFIG_PREFIX) || name.startsWith('RCLONE_S3_'));
  return childEnv(processEnv, {}, remove);
}

interface VfsStats {
  diskCache?: { uploadsInProgress?: number; uploadsQueued?: number; erroredFiles?: number };
}

interface QueueState {
  pending: number;
  errored: number;
}

/** The mount's VFS upload queue, or null when its rc does not answer (dead, or not ours). */
async function uploadQueue(host: Host, port: number, env: Record<string, string>): Promise<QueueState | null> {
  const result = await host.run('rclone', ['rc', 'vfs/stats', '--url', `http://127.0.0.1:${port}/`], {
    env,
    timeoutMs: 10_000,
    readOnly: true,
  });
  if (result.exitCode !== 0) return null;
  try {
    const stats = JSON.parse(result.stdout) as VfsStats;
    return {
      pending: (stats.diskCache?.uploadsInProgress ?? 0) + (stats.diskCache?.uploadsQueued ?? 0),
      errored: stats.diskCache?.erroredFiles ?? 0,
    };
  } catch {
    return null;
  }
}

async function readNumber(host: Host, file: string): Promise<number | null> {
  try {
    const value = Number((await host.readFile(file)).toString('utf8').trim());
    return Number.isInteger(value) && value > 0 ? value : null;
  } catch {
    return null;
  }
}

/** This bucket's own dirty items (the current remote's folder), as keys. */
async function ownDirty(host: Host, bucket: MountedBucket, runtimeDir: string): Promise<DirtyItem[]> {
  return (await dirtyItems(host, cacheDirOf(bucket, runtimeDir))).filter((item) => item.remote === REMOTE && item.bucket === bucket.name);
}

/** `keys` as the store holds them (size, MD5), asked over its S3 API (not through rclone's cache). */
async function remoteObjects(bucket: MountedBucket, ctx: BackendContext, keys: string[]): Promise<Map<string, StoredObject>> {
  if (keys.length === 0) return new Map();
  try {
    return await storedObjects(bucket, keys, ctx.processEnv.AWS_CA_BUNDLE);
  } catch (error) {
    throw new ActionError(`could not check ${plural(keys.length, 'file')} in bucket ${bucket.name}: ${errorMessage(error)}`, { cause: error });
  }
}

/** rclone's cache copy of a key: the bytes it uploads (its metadata's size lags behind the writes until the file is closed). */
function cacheFile(bucket: MountedBucket, runtimeDir: string, key: string): string {
  return join(cacheDirOf(bucket, runtimeDir), 'vfs', REMOTE, bucket.name, key);
}

/** MD5 (hex) of a local file; null when it is gone. */
function md5OfFile(path: string): Promise<string | null> {
  return new Promise((resolve, reject) => {
    const hash = createHash('md5');
    createReadStream(path)
      .on('data', (chunk) => hash.update(chunk))
      .on('error', (error: NodeJS.ErrnoException) => (error.code === 'ENOENT' ? resolve(null) : reject(error)))
      .on('end', () => resolve(hash.digest('hex')));
  });
}

/**
 * How the store's object differs from the local file `path` (rclone's cache copy): null when it
 * holds the same bytes (same size, and same MD5 where the store tells it), or when `path` is gone
 * (rclone dropped its copy: it no longer holds anything of that key to upload).
 */
async function differsFromStore(host: Host, stored: StoredObject | undefined, path: string): Promise<string | null> {
  const local = await host.lstat(path);
  if (!local || local.type !== 'file') return null;
  if (!stored) return 'not in the store';
  if (stored.size !== local.size) return `${stored.size} bytes in the store, ${local.size} in the cache`;
  if (stored.md5 !== null && stored.md5 !== (await md5OfFile(path))) return 'other content in the store';
  return null;
}

function sampleKeys(keys: string[], max = 5): string {
  return keys.slice(0, max).join(', ') + (keys.length > max ? `, ... (${keys.length} in all)` : '');
}

/**
 * Wait until the mount's upload queue is empty (read empty twice, 300 ms apart: a file closed a
 * moment ago reaches the queue when FUSE's asynchronous release does), or until every file written
 * before the wait began is uploaded or was written again since (found so on two looks a second
 * apart): a file the agent keeps rewriting re-arms rclone's write-back delay at every close and
 * keeps the queue busy for as long as it writes (docs/backends.md); it is not this action's to
 * wait for (`wholeQueue`: it is, before an unmount; shutdown's wait is flushEarlierWrites). Then
 * check every file waited for that rclone uploaded against the store itself: the bytes of its
 * cache copy (size, MD5).
 */
async function flushMount(bucket: MountedBucket, ctx: BackendContext, timeoutMs: number, wholeQueue = false): Promise<FlushReport> {
  const { host, runtimeDir } = ctx;
  const started = host.now().getTime();
  const port = await readNumber(host, rcPortFile(runtimeDir));
  const where = bucket.mount.path;
  if (port === null) {
    throw new ActionError(`cannot tell whether rclone at ${where} has uploaded everything: its rc port file ${rcPortFile(runtimeDir)} is missing (mounted by another program?)`);
  }
  const env = rcloneEnv(ctx.processEnv);
  const pendingAtStart = await ownDirty(host, bucket, runtimeDir);
  /** The files written before the wait began, with the write time they had when first seen dirty. */
  const waitingFor = new Map(pendingAtStart.map((item) => [item.key, item.modTimeMs]));
  let lastDirtyCheck = started;
  let doneLooks = 0;
  const deadline = started + timeoutMs;
  let zeroes = 0;
  for (;;) {
    const queue = await uploadQueue(host, port, env);
    if (queue === null) throw new ActionError(`rclone at ${where} does not answer on its rc port ${port} (the daemon died?); its writes may not be in bucket ${bucket.name} (see ${join(runtimeDir, 'rclone.log')})`);
    zeroes = queue.pending === 0 ? zeroes + 1 : 0;
    if (zeroes >= 2) break;
    if (!wholeQueue && host.now().getTime() - lastDirtyCheck >= 1_000) {
      lastDirtyCheck = host.now().getTime();
      const dirty = await ownDirty(host, bucket, runtimeDir);
      for (const item of dirty) if (item.modTimeMs <= started && !waitingFor.has(item.key)) waitingFor.set(item.key, item.modTimeMs);
      const dirtyNow = new Map(dirty.map((item) => [item.key, item.modTimeMs]));
      const done = [...waitingFor].every(([key, modTimeMs]) => !dirtyNow.has(key) || dirtyNow.get(key)! > modTimeMs);
      doneLooks = done ? doneLooks + 1 : 0;
      if (doneLooks >= 2) break;
    }
    if (host.now().getTime() > deadline) {
      const dirty = await ownDirty(host, bucket, runtimeDir);
      const oldest = dirty.reduce((min, item) => Math.min(min, item.modTimeMs), Infinity);
      throw new ActionError(
        `rclone at ${where} still had ${plural(queue.pending, 'upload')} pending after ${formatDuration(timeoutMs)}` +
          (dirty.length ? ` (${sampleKeys(dirty.map((d) => d.key))}; oldest written ${formatDuration(host.now().getTime() - oldest)} ago)` : '') +
          (queue.errored ? `; ${plural(queue.errored, 'file')} failed to upload` : '') +
          `; see ${join(runtimeDir, 'rclone.log')}`,
      );
    }
    await host.sleep(zeroes ? 300 : 200);
  }
  const still = await ownDirty(host, bucket, runtimeDir);
  const stillKeys = new Set(still.map((item) => item.key));
  const stuck = [...waitingFor].filter(([key, modTimeMs]) => modTimeMs === still.find((s) => s.key === key)?.modTimeMs).map(([key]) => key);
  if (stuck.length) {
    throw new ActionError(`rclone at ${where} reports an empty upload queue but still holds ${plural(stuck.length, 'unuploaded file')}: ${sampleKeys(stuck)}; see ${join(runtimeDir, 'rclone.log')}`);
  }
  const keys = [...waitingFor.keys()];
  if (keys.length === 0) return { verified: 0, waitedMs: host.now().getTime() - started };
  const stored = await remoteObjects(bucket, ctx, keys);
  const missing: string[] = [];
  for (const key of keys) {
    if (stillKeys.has(key)) continue; // written again meanwhile: the next flush checks it
    const differs = await differsFromStore(host, stored.get(key), cacheFile(bucket, runtimeDir, key));
    if (differs === null) continue;
    // Removed or renamed since (through the mount): then the mount no longer shows it either.
    // Written again since it was waited for (a file the agent keeps appending to, read between
    // two of its writes): the next flush checks it.
    const now = await host.lstat(join(where, key));
    if (!now || Math.floor(now.mtimeMs) > waitingFor.get(key)!) continue;
    missing.push(`${key} (${differs})`);
  }
  if (missing.length) {
    throw new ActionError(`rclone at ${where} finished uploading, but bucket ${bucket.name} lacks ${plural(missing.length, 'file')} it was given: ${sampleKeys(missing)}`);
  }
  return { verified: keys.length, waitedMs: host.now().getTime() - started };
}

/**
 * Shutdown's wait: every file rclone held unuploaded when the wait began (or written before it
 * and found dirty since) must be in the store with the content it had then or later. A file the
 * agent rewrote since counts only once the store holds one of the contents its cache copy was
 * seen with from the wait's start on (an upload between two rewrites), or, once no longer dirty,
 * the cache copy itself. So a file rewritten faster than the write-back delay is waited for until
 * the writes pause, or until `timeoutMs`, which names it.
 */
async function flushEarlierWrites(bucket: MountedBucket, ctx: BackendContext, timeoutMs: number): Promise<FlushReport> {
  const { host, runtimeDir } = ctx;
  const started = host.now().getTime();
  const where = bucket.mount.path;
  const port = await readNumber(host, rcPortFile(runtimeDir));
  if (port === null) {
    throw new ActionError(`cannot tell whether rclone at ${where} has uploaded everything: its rc port file ${rcPortFile(runtimeDir)} is missing (mounted by another program?)`);
  }
  const env = rcloneEnv(ctx.processEnv);
  /** Per file waited for: the MD5s its cache copy had from the wait's start on, and the write time they were last taken at. */
  const waiting = new Map<string, { md5s: Set<string>; modTimeMs: number }>();
  let verified = 0;
  let first = true;
  for (;;) {
    if ((await uploadQueue(host, port, env)) === null) {
      throw new ActionError(`rclone at ${where} does not answer on its rc port ${port} (the daemon died?); its writes may not be in bucket ${bucket.name} (see ${join(runtimeDir, 'rclone.log')})`);
    }
    const dirtyNow = new Map((await ownDirty(host, bucket, runtimeDir)).map((item) => [item.key, item.modTimeMs]));
    /** Files written since the last look: an upload may have come between two of their writes. */
    const rewritten = new Set<string>();
    for (const [key, modTimeMs] of dirtyNow) {
      let entry = waiting.get(key);
      if (!entry) {
        if (!first && modTimeMs > started) continue; // written after the wait began: not this wait's
        entry = { md5s: new Set(), modTimeMs: Number.NaN };
        waiting.set(key, entry);
      }
      if (entry.modTimeMs === modTimeMs) continue;
      if (!first) rewritten.add(key);
      entry.modTimeMs = modTimeMs;
      const md5 = await md5OfFile(cacheFile(bucket, runtimeDir, key));
      if (md5 !== null) entry.md5s.add(md5);
    }
    first = false;
    const toCheck = [...waiting.keys()].filter((key) => !dirtyNow.has(key) || rewritten.has(key));
    const stored = await remoteObjects(bucket, ctx, toCheck);
    const saved = async (key: string): Promise<boolean> => {
      const object = stored.get(key);
      if (object?.md5 != null && waiting.get(key)!.md5s.has(object.md5)) return true; // a content it had since the wait began
      if (dirtyNow.has(key)) return false;
      // No longer dirty: uploaded since (its cache copy, read now, is what rclone sent), or removed or renamed through the mount.
      if (!object) return !(await host.lstat(join(where, key)));
      return (await differsFromStore(host, object, cacheFile(bucket, runtimeDir, key))) === null;
    };
    for (const key of toCheck) {
      if (!(await saved(key))) continue;
      waiting.delete(key);
      verified++;
    }
    if (waiting.size === 0) return { verified, waitedMs: host.now().getTime() - started };
    if (host.now().getTime() > started + timeoutMs) {
      const now = host.now().getTime();
      const unsaved = [...waiting.keys()].map((key) => (dirtyNow.has(key) ? `${key} (last written ${formatDuration(now - dirtyNow.get(key)!)} ago)` : `${key} (the store holds other content)`));
      throw new ActionError(
        `rclone at ${where} still had ${plural(waiting.size, 'upload')} pending after ${formatDuration(timeoutMs)}, written before the wait began and not in bucket ${bucket.name}: ${sampleKeys(unsaved)}` +
          `; a file rewritten more often than the write-back delay is uploaded only once its writes pause (see ${join(runtimeDir, 'rclone.log')})`,
      );
    }
    await host.sleep(500);
  }
}

/** Before unmounting: wait (bounded) until the writes cache has uploaded everything, or refuse. */
async function flushBeforeUnmount(bucket: MountedBucket, mountPoint: string, ctx: BackendContext): Promise<void> {
  const port = await readNumber(ctx.host, rcPortFile(ctx.runtimeDir));
  if (port === null) return;
  // A dead daemon cannot upload anything: unmounting it loses nothing more (its cache stays for the next mount).
  if ((await uploadQueue(ctx.host, port, rcloneEnv(ctx.processEnv))) === null) return;
  try {
    // Unmounting leaves nothing behind: here the whole queue must be empty, busy files included.
    await flushMount(bucket, ctx, FLUSH_TIMEOUT_MS, true);
  } catch (error) {
    throw new ActionError(`${errorMessage(error)}; not unmounting ${mountPoint} so nothing is lost`, { cause: error });
  }
}

async function pendingWrites(bucket: MountedBucket, ctx: BackendContext): Promise<PendingWrites | null> {
  const dirty = await ownDirty(ctx.host, bucket, ctx.runtimeDir);
  const port = await readNumber(ctx.host, rcPortFile(ctx.runtimeDir));
  const queue = port === null ? null : await uploadQueue(ctx.host, port, rcloneEnv(ctx.processEnv));
  if (queue === null && dirty.length === 0) return port === null ? null : { count: 0, oldestMs: null };
  const count = Math.max(queue?.pending ?? 0, dirty.length);
  const oldest = dirty.reduce((min, item) => Math.min(min, item.modTimeMs), Infinity);
  return { count, oldestMs: Number.isFinite(oldest) ? oldest : null };
}

async function leftovers(bucket: MountedBucket, ctx: BackendContext): Promise<Leftovers> {
  const cacheDir = cacheDirOf(bucket, ctx.runtimeDir);
  const result: Leftovers = { uploadable: [], stranded: [] };
  const unreadable: UnreadableItem[] = [];
  const dirty = await dirtyItems(ctx.host, cacheDir, unreadable);
  // A daemon killed while it rewrote an item's metadata leaves it cut off: whether the item was
  // dirty is lost with it. Its data file is never dropped unseen: when the store holds exactly its
  // bytes it was clean (or uploaded) and goes; when the store lacks the key, the bytes can only be
  // a write through the mount (a read caches what the store holds) and are uploaded; otherwise
  // (another content, or a file cached in parts) persist cannot tell, and says so.
  const own = unreadable.filter((item) => item.remote === REMOTE && item.bucket === bucket.name);
  let stored: Map<string, StoredObject> | Error;
  try {
    stored = await remoteObjects(bucket, ctx, own.map((item) => item.key));
  } catch (error) {
    stored = error as Error;
  }
  for (const item of own) {
    const differs = stored instanceof Error ? `it could not be compared: ${errorMessage(stored)}` : await differsFromStore(ctx.host, stored.get(item.key), item.dataPath);
    if (differs === null) {
      (result.alreadyStored ??= []).push(item.metaPath, item.dataPath);
      continue;
    }
    const size = (await ctx.host.lstat(item.dataPath))?.size ?? 0;
    if (!(stored instanceof Error) && !stored.has(item.key)) {
      result.uploadable.push({ key: item.key, size, where: item.dataPath });
      continue;
    }
    result.stranded.push({ key: item.key, size, where: item.dataPath, reason: `rclone's record of it (${item.metaPath}) is cut off (the daemon died while writing it) and the store does not hold these bytes (${differs}): upload the file to ${item.key} or remove both by hand` });
  }
  for (const item of dirty) {
    // The data file's size: a daemon killed before closing a file never recorded its size.
    const data = await ctx.host.lstat(item.dataPath);
    const file = { key: item.key, size: data?.type === 'file' ? data.size : item.size, where: item.dataPath };
    if (item.remote !== REMOTE) {
      result.stranded.push({ ...file, reason: `left by rclone under another configuration (cache folder ${join(cacheDir, 'vfs', item.remote)}): its endpoint or keys may not be this bucket's` });
    } else if (item.bucket !== bucket.name) {
      result.stranded.push({ ...file, reason: `belongs to bucket ${item.bucket}, not ${bucket.name}` });
    } else if (!item.complete) {
      result.stranded.push({ ...file, reason: 'only part of it is in the cache' });
    } else {
      result.uploadable.push(file);
    }
  }
  return result;
}

/**
 * Upload what a dead daemon left dirty in this bucket's cache folder, before a new daemon starts:
 * rclone 1.60 re-queues such items itself only when their folders exist in the store, and an
 * object store has no folders until a file is in them. So persist copies them itself (same
 * config, `rclone copy --files-from-raw`), checks them in the store, then drops them from the cache.
 */
async function recover(bucket: MountedBucket, ctx: BackendContext, report: (line: string) => void): Promise<number> {
  const { host, runtimeDir } = ctx;
  const found = await leftovers(bucket, ctx);
  if (found.stranded.length) {
    throw new ActionError(`rclone's cache holds ${plural(found.stranded.length, 'unuploaded file')} persist will not upload by itself: ${sampleKeys(found.stranded.map((f) => `${f.where} (${f.reason})`), 3)}`);
  }
  for (const path of found.alreadyStored ?? []) await host.remove(path);
  if (found.uploadable.length === 0) return 0;
  report(`uploading ${plural(found.uploadable.length, 'file')} a stopped rclone left in its cache`);
  const env = rcloneEnv(ctx.processEnv);
  const cacheDir = cacheDirOf(bucket, runtimeDir);
  const keys = found.uploadable.map((file) => file.key);
  const caBundle = env.AWS_CA_BUNDLE;
  const copy = await host.run(
    'rclone',
    [
      '--config',
      configFile(runtimeDir),
      'copy',
      join(cacheDir, 'vfs', REMOTE, bucket.name),
      `${REMOTE}:${bucket.name}`,
      '--files-from-raw',
      '-',
      '--no-traverse',
      '--retries',
      '2',
      ...(caBundle ? ['--ca-cert', caBundle] : []),
    ],
    { env, input: `${keys.join('\n')}\n`, timeoutMs: 600_000 },
  );
  if (copy.exitCode !== 0) {
    throw new ActionError(`uploading ${plural(keys.length, 'file')} left in rclone's cache (${join(cacheDir, 'vfs', REMOTE, bucket.name)}) failed: ${copy.stderr.trim().split('\n').slice(-2).join('; ') || `exit code ${copy.exitCode}`}`);
  }
  // Judged by the bytes in the cache (what was uploaded), not by rclone's metadata.
  const stored = await remoteObjects(bucket, ctx, keys);
  const bad: string[] = [];
  for (const file of found.uploadable) {
    const differs = await differsFromStore(host, stored.get(file.key), file.where);
    if (differs !== null) bad.push(`${file.key} (${differs}; cache file ${file.where})`);
  }
  if (bad.length) {
    throw new ActionError(`after uploading ${plural(keys.length, 'file')} rclone left in its cache, bucket ${bucket.name} does not hold what the cache holds for ${plural(bad.length, 'file')}: ${sampleKeys(bad, 3)}`);
  }
  const cutOff: UnreadableItem[] = [];
  const uploaded = new Set(keys);
  const dirtyNow = await dirtyItems(host, cacheDir, cutOff);
  for (const item of [...dirtyNow, ...cutOff.filter((i) => uploaded.has(i.key))].filter((i) => i.remote === REMOTE && i.bucket === bucket.name)) {
    await host.remove(item.metaPath);
    await host.remove(item.dataPath);
  }
  return keys.length;
}

/** Stop the daemon persist started for this mount point (if it still runs) and remove its runtime files. */
async function stop(_bucket: MountedBucket, mountPoint: string, ctx: BackendContext): Promise<void> {
  const { host, runtimeDir } = ctx;
  const pid = await readNumber(host, pidFile(runtimeDir));
  if (pid !== null && host.processAlive(pid)) {
    // Only a process that is rclone serving this mount point (the pid may have been reused).
    const argv = await host
      .readFile(`/proc/${pid}/cmdline`)
      .then((data) => data.toString('utf8').split('\0'))
      .catch(() => [] as string[]);
    if (argv.some((arg) => arg.endsWith('rclone')) && argv.includes(mountPoint)) {
      await host.run('kill', ['-TERM', String(pid)], { timeoutMs: 5_000 });
      for (let i = 0; i < 30 && host.processAlive(pid); i++) await host.sleep(100);
      if (host.processAlive(pid)) await host.run('kill', ['-KILL', String(pid)], { timeoutMs: 5_000 });
    }
  }
  for (const file of [pidFile(runtimeDir), rcPortFile(runtimeDir), configFile(runtimeDir)]) await host.remove(file).catch(() => undefined);
}

export const rclone: Backend = {
  name: 'rclone',
  fuse: true,
  binary: { command: 'rclone', debianPackage: 'rclone' },
  options,
  validateOptions,
  ...identifiedBy('fuse.rclone'),
  mountCommand,
  async unmount(bucket, mountPoint, ctx) {
    await flushBeforeUnmount(bucket, mountPoint, ctx);
    await fuseUnmount(ctx.host, mountPoint);
    await stop(bucket, mountPoint, ctx);
  },
  flush: (bucket, ctx, { timeoutMs, everyEarlierWrite }) => (everyEarlierWrite ? flushEarlierWrites(bucket, ctx, timeoutMs) : flushMount(bucket, ctx, timeoutMs)),
  pendingWrites,
  leftovers,
  recover,
  stop,
};
