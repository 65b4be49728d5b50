// Shared pieces of the whole-product end-to-end tests (flow-*.test.ts): the CLI run as a child
// process, a "machine" (workspace, sync folder, spec, persist state folder) in a temporary folder,
// sha256 manifests of trees, git ref snapshots, and the product's own unmount (rclone flush).
import { execFile, execFileSync, spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { chmod, mkdir, readdir, readFile, readlink, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { expect } from 'vitest';
import { getBackend } from '../../src/backends/registry.js';
import { rcPortFile } from '../../src/backends/rclone.js';
import { mountAt } from '../../src/host/mountinfo.js';
import { bucketRuntimeDir } from '../../src/host/paths.js';
import { RealHost } from '../../src/host/real.js';
import { loadEnvironment } from '../../src/spec/index.js';
import type { MountedBucket, ResolvedBucket } from '../../src/spec/types.js';
import type { MountSandbox } from '../helpers/e2e.js';
import { S3RVER_ACCESS_KEY, S3RVER_SECRET_KEY, type S3TestServer } from '../helpers/s3server.js';

const execFileAsync = promisify(execFile);
const PERSIST_BIN = fileURLToPath(new URL('../../bin/persist.js', import.meta.url));

export type FuseBackend = 's3fs' | 'rclone';
export const FUSE_BACKENDS: FuseBackend[] = ['s3fs', 'rclone'];

export interface RunResult {
  code: number | null;
  stdout: string;
  stderr: string;
  ms: number;
  /** stdout and stderr together, for assertions and failure messages. */
  output: string;
}

export interface Keys {
  accessKeyId: string;
  secretAccessKey: string;
}

export const GOOD_KEYS: Keys = { accessKeyId: S3RVER_ACCESS_KEY, secretAccessKey: S3RVER_SECRET_KEY };

/**
 * `node bin/persist.js ARGS` as a child process. Asynchronous on purpose: s3rver answers from
 * this process's event loop, so a blocking spawn would starve the FUSE daemon of its server.
 */
export function runPersist(args: string[], options: { cwd: string; stateDir: string; keys?: Keys; timeoutMs?: number }): Promise<RunResult> {
  const keys = options.keys ?? GOOD_KEYS;
  const env: Record<string, string> = {};
  for (const [name, value] of Object.entries(process.env)) {
    if (value !== undefined && !['ENVIRONMENT', 'PERSIST_SPEC', 'FORCE_COLOR'].includes(name)) env[name] = value;
  }
  Object.assign(env, { PERSIST_STATE_DIR: options.stateDir, E2E_S3_KEY: keys.accessKeyId, E2E_S3_SECRET: keys.secretAccessKey, NO_COLOR: '1' });
  const started = Date.now();
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [PERSIST_BIN, ...args], { cwd: options.cwd, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString('utf8')));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString('utf8')));
    const timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs ?? 120_000);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr, ms: Date.now() - started, output: `${stdout}${stderr ? `\n[stderr]\n${stderr}` : ''}` });
    });
  });
}

/** A bucket's name, the loopback server and the keys from the child's environment, unindented. */
function connectionLines(server: S3TestServer, name: string): string[] {
  return [
    `name: ${name}`,
    `endpoint: ${server.endpoint}`,
    'region: us-east-1',
    'provider: other',
    'credentials:',
    '  accessKeyId: ${env:E2E_S3_KEY}',
    '  secretAccessKey: ${env:E2E_S3_SECRET}',
  ];
}

/**
 * The S3 side of a bucket in a spec: s3rver on loopback, keys from the child's environment.
 * `leaseTtl` shortens the bucket lease's time to live (tests of a container killed without shutdown).
 */
export function bucketYaml(server: S3TestServer, backend: FuseBackend, name: string, mountPath: string, indent = '  ', leaseTtl?: string): string {
  const lines = [
    ...connectionLines(server, name),
    'pathStyle: true',
    'mount:',
    `  backend: ${backend}`,
    `  path: ${mountPath}`,
    // rclone uploads a closed file only after --vfs-write-back (5 s by default).
    ...(backend === 'rclone' ? ['  options:', '    writeBack: 1s'] : []),
    ...(leaseTtl ? [`lease: { ttl: ${leaseTtl} }`] : []),
  ];
  return lines.map((line) => `${indent}${line}`).join('\n');
}

/** A bucket with no mount (the S3 API), at the indent of a bucket's body under `buckets:`. */
export function apiBucketYaml(server: S3TestServer, name: string, prefix?: string): string {
  return [...connectionLines(server, name), ...(prefix ? [`prefix: ${prefix}`] : [])].map((line) => `    ${line}`).join('\n');
}

/** The whole-flow spec: links (adopted), a bundle of the workspace repo, a sync, a restored file. */
export function flowSpec(server: S3TestServer, backend: FuseBackend, bucket: string, leaseTtl?: string): string {
  return [
    'version: 1',
    'workspace: ./ws',
    'buckets:',
    '  data:',
    bucketYaml(server, backend, bucket, './mnt', '    ', leaseTtl),
    'links:',
    '  memory: workspace/memory',
    '  config: workspace/config',
    '  logs: workspace/logs',
    'bundles:',
    '  ws:',
    '    repo: ./ws',
    '    file: workspace/ws.bundle',
    '    keep: 2',
    'syncs:',
    '  state:',
    '    from: ./state',
    '    to: state',
    '    delete: true',
    'files:',
    '  credentials:',
    '    from: .credentials.env',
    '    to: ./ws/.credentials.env',
    '    mode: "0600"',
    '',
  ].join('\n');
}

export const LINK_NAMES = ['memory', 'config', 'logs'] as const;
export const CREDENTIALS = Buffer.from('API_TOKEN=e2e-token-value\nOTHER=1\n');

/** One machine of the flow: `root/{ws,state,mnt,persist.yaml}` plus its persist state folder. */
/** `persist apply` on `m` as a child (the keys from GOOD_KEYS), SIGKILLed once `when` holds (polled every 5 ms). */
export function applyKilledWhen(m: Machine, when: () => boolean): Promise<{ killed: boolean; code: number | null }> {
  return new Promise((resolve, reject) => {
    const env = { ...process.env, PERSIST_STATE_DIR: m.stateDir, E2E_S3_KEY: GOOD_KEYS.accessKeyId, E2E_S3_SECRET: GOOD_KEYS.secretAccessKey, NO_COLOR: '1' };
    const child = spawn(process.execPath, [PERSIST_BIN, 'apply', '--auto-approve', '-f', m.spec], { cwd: m.root, env, stdio: 'ignore' });
    let killed = false;
    const poll = setInterval(() => {
      if (!killed && when()) {
        killed = true;
        child.kill('SIGKILL');
      }
    }, 5);
    child.on('error', reject);
    child.on('close', (code) => {
      clearInterval(poll);
      resolve({ killed, code });
    });
  });
}

export class Machine {
  readonly ws: string;
  readonly state: string;
  readonly mnt: string;
  readonly spec: string;
  stateDir: string;

  constructor(readonly root: string) {
    this.ws = join(root, 'ws');
    this.state = join(root, 'state');
    this.mnt = join(root, 'mnt');
    this.spec = join(root, 'persist.yaml');
    this.stateDir = join(root, 'persist-state');
  }

  /** `persist ARGS -f SPEC` with this machine's persist state folder. */
  persist(args: string[], keys?: Keys, spec = this.spec): Promise<RunResult> {
    return runPersist([...args, '-f', spec], { cwd: this.root, stateDir: this.stateDir, keys });
  }

  /** A fresh container: persist's own state (runtime folders, rclone cache, sync times) is gone too. */
  newStateDir(suffix: string): void {
    this.stateDir = join(this.root, `persist-state-${suffix}`);
  }

  async bucket(environment?: string): Promise<ResolvedBucket> {
    const processEnv = { E2E_S3_KEY: GOOD_KEYS.accessKeyId, E2E_S3_SECRET: GOOD_KEYS.secretAccessKey };
    const env = await loadEnvironment({ file: this.spec, environment, processEnv });
    return env.buckets.data!;
  }

  host(): RealHost {
    return hostWithState(this.stateDir);
  }
}

export function hostWithState(stateDir: string): RealHost {
  return new (class extends RealHost {
    override env(): Record<string, string | undefined> {
      return { ...process.env, PERSIST_STATE_DIR: stateDir };
    }
  })();
}

function git(cwd: string, args: string[]): string {
  return execFileSync('git', args, {
    cwd,
    encoding: 'utf8',
    env: { ...process.env, GIT_AUTHOR_DATE: '2024-01-02T03:04:05Z', GIT_COMMITTER_DATE: '2024-01-02T03:04:05Z' },
  });
}

async function put(path: string, content: string | Buffer): Promise<void> {
  await mkdir(join(path, '..'), { recursive: true });
  await writeFile(path, content);
}

/**
 * The agent's workspace: a git repo with commits on two branches and a tag, and the data folders
 * the links adopt (nested files, a 5 MiB binary); plus the sync folder with a SQLite-like file.
 */
export async function buildWorkspace(machine: Machine): Promise<void> {
  const { ws, state } = machine;
  await mkdir(ws, { recursive: true });
  git(ws, ['-c', 'init.defaultBranch=main', 'init', '-q']);
  git(ws, ['config', 'user.email', 'agent@example.test']);
  git(ws, ['config', 'user.name', 'Agent']);
  await put(join(ws, '.gitignore'), 'memory/\nconfig/\nlogs/\n.credentials.env\n.persist-backups/\n');
  await put(join(ws, 'README.md'), '# agent workspace\n');
  await put(join(ws, 'src', 'main.ts'), 'export const answer = 42;\n');
  git(ws, ['add', '-A']);
  git(ws, ['commit', '-q', '-m', 'first']);
  git(ws, ['tag', 'v1']);
  git(ws, ['checkout', '-q', '-b', 'feature']);
  await put(join(ws, 'src', 'feature.ts'), 'export const feature = true;\n');
  git(ws, ['add', '-A']);
  git(ws, ['commit', '-q', '-m', 'feature']);
  git(ws, ['checkout', '-q', 'main']);
  await put(join(ws, 'src', 'main.ts'), 'export const answer = 43;\n');
  git(ws, ['commit', '-q', '-am', 'second']);

  await put(join(ws, 'memory', 'notes.md'), '# notes\nremember the milk\n');
  await put(join(ws, 'memory', '2024', '01', 'day.md'), 'a day in the life\n');
  await put(join(ws, 'config', 'settings.json'), '{"model":"large","temperature":0.2}\n');
  await put(join(ws, 'config', 'nested', 'deep', 'tools.yaml'), 'tools: [search, shell]\n');
  await put(join(ws, 'logs', 'agent.log'), 'started\nworking\n');
  await put(join(ws, 'logs', 'blob.bin'), randomBytes(5 * 1024 * 1024));

  await put(join(state, 'db.sqlite'), Buffer.concat([Buffer.from('SQLite format 3\0'), randomBytes(256 * 1024)]));
  await put(join(state, 'devices', 'pairing.json'), '{"device":"phone","paired":true}\n');
  await chmod(join(state, 'devices', 'pairing.json'), 0o600);
}

/**
 * Relative path -> `dir`, or `file <sha256>`, following symlinks (so linked folders are read
 * through the mount). Top-level names in `skip` are left out.
 */
export async function manifest(dir: string, skip: string[] = ['.git', '.persist-backups']): Promise<Record<string, string>> {
  const result: Record<string, string> = {};
  async function walk(current: string, rel: string): Promise<void> {
    for (const name of (await readdir(current)).sort()) {
      if (rel === '' && skip.includes(name)) continue;
      if (name.startsWith('.persist-probe-')) continue;
      const path = join(current, name);
      const relPath = rel ? `${rel}/${name}` : name;
      const info = await stat(path);
      if (info.isDirectory()) {
        result[relPath] = 'dir';
        await walk(path, relPath);
      } else {
        result[relPath] = `file ${createHash('sha256').update(await readFile(path)).digest('hex')}`;
      }
    }
  }
  await walk(dir, '');
  return result;
}

export interface RepoSnapshot {
  head: string;
  headRef: string;
  refs: string;
}

export function repoSnapshot(repo: string): RepoSnapshot {
  return {
    head: git(repo, ['rev-parse', 'HEAD']).trim(),
    headRef: git(repo, ['symbolic-ref', 'HEAD']).trim(),
    // The user's refs; persist's own (refs/persist/worktree, the saved uncommitted work) aside.
    refs: git(repo, ['for-each-ref', '--format=%(refname) %(objectname)'])
      .split('\n')
      .filter((line) => !line.startsWith('refs/persist/'))
      .join('\n'),
  };
}

export function gitStatus(repo: string): string {
  return git(repo, ['status', '--porcelain']);
}

/** Poll until `check` is true or the time is up. */
export async function waitFor(what: string, check: () => Promise<boolean> | boolean, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}

/** rclone only: wait until the mount's VFS has no upload in progress or queued (asked over its rc). */
export async function rcloneSettled(machine: Machine, environment?: string): Promise<void> {
  const bucket = (await machine.bucket(environment)) as MountedBucket;
  if (bucket.mount.backend !== 'rclone') return;
  const runtimeDir = bucketRuntimeDir({ PERSIST_STATE_DIR: machine.stateDir }, bucket);
  const port = Number((await readFile(rcPortFile(runtimeDir), 'utf8')).trim());
  await waitFor('rclone uploads to finish', async () => {
    const { stdout } = await execFileAsync('rclone', ['rc', 'vfs/stats', '--url', `http://127.0.0.1:${port}/`]);
    const stats = JSON.parse(stdout) as { diskCache?: { uploadsInProgress?: number; uploadsQueued?: number } };
    return (stats.diskCache?.uploadsInProgress ?? 0) + (stats.diskCache?.uploadsQueued ?? 0) === 0;
  });
}

/** The product's own unmount (rclone: flush its uploads first), as a container shutting down. */
export async function unmountLikeShutdown(machine: Machine): Promise<void> {
  const bucket = (await machine.bucket()) as MountedBucket;
  const host = machine.host();
  await getBackend(bucket.mount.backend).unmount(bucket, bucket.mount.path, {
    host,
    runtimeDir: bucketRuntimeDir(host.env(), bucket),
    processEnv: host.env(),
  });
  if (mountAt(await host.mounts(), bucket.mount.path)) throw new Error(`${bucket.mount.path} is still mounted`);
}

/** Every object of a bucket with the sha256 of its content, read at the server. */
export async function bucketSnapshot(server: S3TestServer, bucket: string): Promise<Record<string, string>> {
  const snapshot: Record<string, string> = {};
  for (const key of await server.listObjects(bucket)) {
    const content = await server.getObject(bucket, key);
    snapshot[key] = content ? createHash('sha256').update(content).digest('hex') : 'missing';
  }
  return snapshot;
}

export async function isSymlinkTo(path: string, target: string): Promise<boolean> {
  try {
    return (await readlink(path)) === target;
  } catch {
    return false;
  }
}

function prefixed(prefix: string, entries: Record<string, string>): Record<string, string> {
  return Object.fromEntries([[prefix, 'dir'], ...Object.entries(entries).map(([path, value]) => [`${prefix}/${path}`, value])]);
}

/** The workspace (read through its links) and the sync folder, as one manifest. */
export async function treeOf(machine: Machine, skip?: string[]): Promise<Record<string, string>> {
  return { ...(await manifest(machine.ws, skip)), ...prefixed('state', await manifest(machine.state, skip)) };
}

export function sha256(content: Buffer): string {
  return createHash('sha256').update(content).digest('hex');
}

export interface ConvergedMachine {
  machine: Machine;
  /** The tree before the first apply (without the restored credentials file). */
  original: Record<string, string>;
  /** The tree a converged machine has: the original plus the restored credentials file. */
  expected: Record<string, string>;
  repo: RepoSnapshot;
}

/**
 * A first machine: the workspace built, the bucket created and seeded with the credentials file
 * (as the operator would), and one `persist apply --auto-approve` of the whole-flow spec done.
 */
export async function convergedMachine(server: S3TestServer, sandbox: MountSandbox, backend: FuseBackend, bucket: string): Promise<ConvergedMachine> {
  await server.createBucket(bucket);
  await server.putObject(bucket, '.credentials.env', CREDENTIALS);
  const machine = new Machine(await sandbox.tempDir(`persist-flow-${backend}-`));
  await buildWorkspace(machine);
  await writeFile(machine.spec, flowSpec(server, backend, bucket));
  const original = await treeOf(machine);
  const repo = repoSnapshot(machine.ws);

  const applied = await machine.persist(['apply', '--auto-approve']);
  expect(applied.code, applied.output).toBe(0);
  expect(applied.output).toMatch(/Apply complete: 7 applied, 0 failed, 0 skipped/);
  for (const name of LINK_NAMES) expect(await isSymlinkTo(join(machine.ws, name), join(machine.mnt, 'workspace', name))).toBe(true);
  return { machine, original, expected: { ...original, '.credentials.env': `file ${sha256(CREDENTIALS)}` }, repo };
}
