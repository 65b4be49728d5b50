// Pieces of the durability tests (durable-*.test.ts, rclone-*.test.ts): a flow machine whose rclone
// waits long before uploading (so that only persist's own durable wait can put the bytes in the
// store), the daemon killed at once, persist run in the background, a TCP forwarder that gives the
// same server another port.
import { execFileSync, spawn } from 'node:child_process';
import { mkdir, writeFile } from 'node:fs/promises';
import { createServer, connect, type Server, type Socket } from 'node:net';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect } from 'vitest';
import { pidsWithArg, type MountSandbox } from '../helpers/e2e.js';
import type { S3TestServer } from '../helpers/s3server.js';
import { buildWorkspace, CREDENTIALS, flowSpec, GOOD_KEYS, Machine, treeOf, waitFor, type FuseBackend, type RunResult } from './flow-helpers.js';

/** The flow spec with rclone's write-back set to `writeBack` (and the bucket lease's time to live, if given). */
export function specWithWriteBack(server: S3TestServer, backend: FuseBackend, bucket: string, writeBack: string, endpoint?: string, leaseTtl?: string): string {
  let spec = flowSpec(server, backend, bucket, leaseTtl).replace('writeBack: 1s', `writeBack: ${writeBack}`);
  if (endpoint) spec = spec.replace(`endpoint: ${server.endpoint}`, `endpoint: ${endpoint}`);
  return spec;
}

/** The flow's workspace plus `extra` small files in memory/ (an adopt of ~40 files). */
export async function durableMachine(server: S3TestServer, sandbox: MountSandbox, backend: FuseBackend, bucket: string, writeBack: string, extra = 34, leaseTtl?: string): Promise<{ machine: Machine; original: Record<string, string> }> {
  await server.createBucket(bucket);
  await server.putObject(bucket, '.credentials.env', CREDENTIALS);
  const machine = new Machine(await sandbox.tempDir(`persist-durable-${backend}-`));
  await buildWorkspace(machine);
  await mkdir(join(machine.ws, 'memory', 'many'), { recursive: true });
  for (let i = 0; i < extra; i++) await writeFile(join(machine.ws, 'memory', 'many', `note-${String(i).padStart(2, '0')}.md`), `note ${i}\n`.repeat(i + 1));
  await writeFile(machine.spec, specWithWriteBack(server, backend, bucket, writeBack, undefined, leaseTtl));
  return { machine, original: await treeOf(machine) };
}

/**
 * durableMachine, converged (applied, then shut down), then mounted again with rclone's write-back
 * at 10 minutes: what the agent writes now stays in rclone's cache until persist uploads it.
 */
export async function holdingMachine(server: S3TestServer, sandbox: MountSandbox, bucket: string): Promise<Machine> {
  const { machine } = await durableMachine(server, sandbox, 'rclone', bucket, '1s', 0);
  expect((await machine.persist(['apply', '--auto-approve'])).code).toBe(0);
  expect((await machine.persist(['shutdown'])).code).toBe(0);
  await writeFile(machine.spec, specWithWriteBack(server, 'rclone', bucket, '10m'));
  const up = await machine.persist(['apply', '--auto-approve']);
  expect(up.code, up.output).toBe(0);
  return machine;
}

const PERSIST_BIN = fileURLToPath(new URL('../../bin/persist.js', import.meta.url));

/** `persist ARGS` of a machine, started in the background: its output so far, and its end. */
export function startPersist(machine: Machine, args: string[]): { output(): string; stderr(): string; kill(signal: NodeJS.Signals): void; done: Promise<RunResult> } {
  const env: Record<string, string> = {};
  for (const [name, value] of Object.entries(process.env)) if (value !== undefined && !['ENVIRONMENT', 'PERSIST_SPEC', 'FORCE_COLOR'].includes(name)) env[name] = value;
  Object.assign(env, { PERSIST_STATE_DIR: machine.stateDir, E2E_S3_KEY: GOOD_KEYS.accessKeyId, E2E_S3_SECRET: GOOD_KEYS.secretAccessKey, NO_COLOR: '1' });
  const started = Date.now();
  const child = spawn(process.execPath, [PERSIST_BIN, ...args, '-f', machine.spec], { cwd: machine.root, env, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString('utf8')));
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString('utf8')));
  const timer = setTimeout(() => child.kill('SIGKILL'), 150_000);
  const done = new Promise<RunResult>((resolve) =>
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr, ms: Date.now() - started, output: `${stdout}${stderr ? `\n[stderr]\n${stderr}` : ''}` });
    }),
  );
  return { output: () => stdout, stderr: () => stderr, kill: (signal) => child.kill(signal), done };
}

/** SIGKILL the FUSE daemon serving `mountPoint` and wait until it is gone; then drop its dead mount. */
export async function killDaemon(backend: FuseBackend, mountPoint: string, unmount = true): Promise<void> {
  const pids = pidsWithArg(backend, mountPoint);
  expect(pids.length, `${backend} daemons serving ${mountPoint}`).toBeGreaterThan(0);
  for (const pid of pids) process.kill(pid, 'SIGKILL');
  await waitFor(`${backend} to exit`, () => pidsWithArg(backend, mountPoint).length === 0);
  if (unmount) execFileSync('fusermount', ['-u', '-z', mountPoint], { stdio: 'ignore' });
}

/** A TCP forwarder on a free loopback port to `port`: the same server at another endpoint. */
export async function forwarder(port: number): Promise<{ endpoint: string; close(): Promise<void> }> {
  const sockets = new Set<Socket>();
  const server: Server = createServer((client) => {
    const upstream = connect(port, '127.0.0.1');
    sockets.add(client).add(upstream);
    client.pipe(upstream).pipe(client);
    const done = () => (client.destroy(), upstream.destroy(), sockets.delete(client), sockets.delete(upstream));
    client.on('error', done).on('close', done);
    upstream.on('error', done).on('close', done);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  const local = typeof address === 'object' && address ? address.port : 0;
  return {
    endpoint: `http://127.0.0.1:${local}`,
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  };
}
