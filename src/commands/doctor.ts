// persist doctor: can this machine mount the spec's buckets? One line per check, with a fix for
// each failure. Reads only (through a read-only host): no mount, no write, credentials never printed.
import * as http from 'node:http';
import * as https from 'node:https';
import { delimiter, join } from 'node:path';
import { backends } from '../backends/registry.js';
import type { Host } from '../host/types.js';
import { errorMessage, formatDuration } from '../output/format.js';
import { mountReady, observeMount, diffMount } from '../resources/mount/index.js';
import { loadEnvironment } from '../spec/index.js';
import { isMounted, type MountedBucket, type ResolvedBucket, type ResolvedEnvironment } from '../spec/types.js';
import { makeHost } from './host.js';
import { throughApi } from '../store/index.js';
import type { CommandIO } from './types.js';

export interface DoctorCheck {
  name: string;
  ok: boolean;
  message: string;
  fix?: string;
}

const ENDPOINT_TIMEOUT_MS = 5_000;

async function findOnPath(host: Host, command: string, env: Record<string, string | undefined>): Promise<string | undefined> {
  for (const dir of (env.PATH ?? '/usr/local/bin:/usr/bin:/bin').split(delimiter)) {
    const candidate = join(dir, command);
    if (await host.isExecutable(candidate)) return candidate;
  }
  return undefined;
}

async function checkFuseDevice(host: Host): Promise<DoctorCheck> {
  try {
    await host.openReadWrite('/dev/fuse');
    return { name: 'fuse device', ok: true, message: '/dev/fuse is present and opens read-write' };
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code ?? String(error);
    return {
      name: 'fuse device',
      ok: false,
      message: code === 'ENOENT' ? '/dev/fuse does not exist' : `/dev/fuse cannot be opened (${code})`,
      fix: 'run the container with --device /dev/fuse --cap-add SYS_ADMIN (or --privileged), and run persist as root',
    };
  }
}

async function checkFusermount(host: Host, env: Record<string, string | undefined>): Promise<DoctorCheck> {
  const found = (await findOnPath(host, 'fusermount', env)) ?? (await findOnPath(host, 'fusermount3', env));
  return found
    ? { name: 'fusermount', ok: true, message: `found ${found}` }
    : { name: 'fusermount', ok: false, message: 'neither fusermount nor fusermount3 is installed', fix: 'apt-get install fuse3' };
}

async function checkBinary(host: Host, bucket: MountedBucket, env: Record<string, string | undefined>): Promise<DoctorCheck | undefined> {
  const binary = backends[bucket.mount.backend].binary;
  if (!binary) return undefined;
  const found = await findOnPath(host, binary.command, env);
  const name = `${bucket.mount.backend} binary`;
  return found
    ? { name, ok: true, message: `found ${found}` }
    : {
        name,
        ok: false,
        message: `${binary.command} is not installed (needed by bucket ${bucket.key})`,
        fix: binary.debianPackage.startsWith('(') ? `install ${binary.command} ${binary.debianPackage}` : `apt-get install ${binary.debianPackage}`,
      };
}

async function checkSqlite3(host: Host, env: Record<string, string | undefined>): Promise<DoctorCheck> {
  const found = await findOnPath(host, 'sqlite3', env);
  return found
    ? { name: 'sqlite3', ok: true, message: `found ${found} (SQLite databases in syncs are pushed as snapshots)` }
    : { name: 'sqlite3', ok: false, message: 'sqlite3 is not installed: SQLite databases in syncs cannot be pushed (they are never byte-copied)', fix: 'apt-get install sqlite3' };
}

function checkCredentials(bucket: ResolvedBucket): DoctorCheck {
  const name = `credentials for ${bucket.key}`;
  const id = bucket.credentials?.accessKeyId.reveal() ?? '';
  const secret = bucket.credentials?.secretAccessKey.reveal() ?? '';
  const missing = [id ? '' : 'accessKeyId', secret ? '' : 'secretAccessKey'].filter(Boolean);
  if (missing.length === 0) return { name, ok: true, message: 'access key id and secret are set (values not shown)' };
  return {
    name,
    ok: false,
    message: `${missing.join(' and ')} ${missing.length > 1 ? 'are' : 'is'} empty or missing`,
    fix: `set buckets.${bucket.key}.credentials in the spec, usually from the environment (e.g. \${env:R2_ACCESS_KEY_ID})`,
  };
}

/** Any HTTP answer (even 403) counts: the point is that the endpoint is reachable. */
async function checkEndpoint(host: Host, bucket: ResolvedBucket): Promise<DoctorCheck> {
  const name = `endpoint for ${bucket.key}`;
  const endpoint = bucket.endpoint ?? (bucket.provider === 'aws' ? `https://s3.${bucket.region ?? 'us-east-1'}.amazonaws.com` : undefined);
  if (!endpoint) return { name, ok: false, message: 'no endpoint is set', fix: `set buckets.${bucket.key}.endpoint` };
  let url: URL;
  try {
    url = new URL(endpoint);
  } catch {
    return { name, ok: false, message: `${endpoint} is not a URL`, fix: `set buckets.${bucket.key}.endpoint to https://HOST` };
  }
  const client = url.protocol === 'http:' ? http : https;
  const started = host.now().getTime();
  return new Promise((resolve) => {
    const request = client.request(url, { method: 'HEAD', timeout: ENDPOINT_TIMEOUT_MS }, (response) => {
      response.resume();
      resolve({ name, ok: true, message: `${url.origin} answered HTTP ${response.statusCode} in ${formatDuration(host.now().getTime() - started)}` });
    });
    request.on('timeout', () => request.destroy(new Error(`no answer within ${formatDuration(ENDPOINT_TIMEOUT_MS)}`)));
    request.on('error', (error) =>
      resolve({
        name,
        ok: false,
        message: `${url.origin} does not answer: ${error.message}`,
        fix: 'check the endpoint URL, DNS and the container network (proxy, firewall)',
      }),
    );
    request.end();
  });
}

async function checkMountPath(bucket: MountedBucket, host: Host): Promise<DoctorCheck> {
  const name = `mount path for ${bucket.key}`;
  try {
    const observed = await observeMount(bucket, host);
    const action = diffMount(bucket, observed);
    if (mountReady(observed)) return { name, ok: true, message: `${bucket.mount.path} is ready (${bucket.mount.backend})` };
    if (action?.conflict) return { name, ok: false, message: action.conflict.message, fix: action.conflict.fix };
    return { name, ok: true, message: `${action?.reason ?? 'not ready'}; persist apply will ${action?.action ?? 'mount'} it` };
  } catch (error) {
    return { name, ok: false, message: `cannot inspect ${bucket.mount.path}: ${errorMessage(error)}`, fix: 'check the path and its permissions' };
  }
}

/** A bucket without a mount: one signed list (endpoint, keys and bucket at once). */
async function checkApi(bucket: ResolvedBucket): Promise<DoctorCheck> {
  const name = `S3 API for ${bucket.key}`;
  const { apiLabel, clientFor } = await import('../store/api.js');
  try {
    const client = await clientFor(bucket);
    try {
      for await (const page of client.list(bucket.prefix ?? '', { maxKeys: 1 })) {
        void page;
        break;
      }
    } finally {
      client.close();
    }
    return { name, ok: true, message: `a signed list of ${apiLabel(bucket)} succeeded` };
  } catch (error) {
    return { name, ok: false, message: `listing ${apiLabel(bucket)} failed: ${errorMessage(error)}`, fix: `check buckets.${bucket.key}.endpoint, the bucket's name and the keys (they need read and write access to it)` };
  }
}

/** The checks for `env`, made through `host` (read-only: doctor changes nothing). */
export async function runDoctorChecks(env: ResolvedEnvironment, processEnv: Record<string, string | undefined>, host: Host): Promise<DoctorCheck[]> {
  const all = Object.values(env.buckets);
  const buckets = all.filter(isMounted);
  const checks: DoctorCheck[] = [];
  if (buckets.some((bucket) => backends[bucket.mount.backend].fuse)) {
    checks.push(await checkFuseDevice(host), await checkFusermount(host, processEnv));
  }
  const seenBinaries = new Set<string>();
  for (const bucket of buckets) {
    if (!seenBinaries.has(bucket.mount.backend)) {
      seenBinaries.add(bucket.mount.backend);
      const binary = await checkBinary(host, bucket, processEnv);
      if (binary) checks.push(binary);
    }
  }
  // Syncs push SQLite databases as snapshots made by sqlite3 (never byte-copied while written).
  if (Object.keys(env.syncs).length > 0) checks.push(await checkSqlite3(host, processEnv));
  for (const bucket of buckets) {
    if (!backends[bucket.mount.backend].fuse) {
      checks.push(await checkMountPath(bucket, host));
      continue;
    }
    checks.push(checkCredentials(bucket), await checkEndpoint(host, bucket), await checkMountPath(bucket, host));
  }
  for (const bucket of all.filter((b) => !isMounted(b))) {
    const credentials = checkCredentials(bucket);
    checks.push(credentials);
    if (credentials.ok) checks.push(await checkApi(bucket));
  }
  // A mounted bucket whose syncs, bundles and files go over the S3 API (s3fs by default) needs it reachable too.
  for (const bucket of buckets.filter(throughApi)) checks.push(await checkApi(bucket));
  return checks;
}

export default async function doctor(opts: { file?: string; env?: string; json?: boolean }, io: CommandIO): Promise<number> {
  const file = opts.file ?? io.env.PERSIST_SPEC ?? './persist.yaml';
  let checks: DoctorCheck[];
  let environment: string | undefined;
  const host = makeHost(io, { readOnly: true });
  try {
    const env = await loadEnvironment({ file, environment: opts.env, processEnv: io.env, cwd: io.cwd, host });
    environment = env.environment;
    checks = await runDoctorChecks(env, io.env, host);
  } catch (error) {
    checks = [
      { name: 'spec', ok: false, message: errorMessage(error), fix: `fix the spec (persist validate -f ${file}), or point -f / PERSIST_SPEC at it` },
      await checkFuseDevice(host),
      await checkFusermount(host, io.env),
    ];
  }
  const failed = checks.filter((check) => !check.ok).length;
  if (opts.json) {
    io.out(`${JSON.stringify({ formatVersion: 1, environment: environment ?? null, ok: failed === 0, checks }, null, 2)}\n`);
  } else {
    for (const check of checks) {
      io.out(`${check.ok ? 'ok  ' : 'FAIL'} ${check.name}: ${check.message}\n`);
      if (!check.ok && check.fix) io.out(`     fix: ${check.fix}\n`);
    }
    io.out(`${failed === 0 ? `All ${checks.length} checks passed.` : `${failed} of ${checks.length} checks failed.`}\n`);
  }
  return failed === 0 ? 0 : 1;
}
