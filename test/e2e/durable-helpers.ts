// Pieces of the durability tests (durable-*.test.ts): a flow machine whose rclone waits long
// before uploading (so that only persist's own durable wait can put the bytes in the store), the
// daemon killed at once, a TCP forwarder that gives the same server another port.
import { execFileSync } from 'node:child_process';
import { mkdir, writeFile } from 'node:fs/promises';
import { createServer, connect, type Server, type Socket } from 'node:net';
import { join } from 'node:path';
import { expect } from 'vitest';
import { pidsWithArg, type MountSandbox } from '../helpers/e2e.js';
import type { S3TestServer } from '../helpers/s3server.js';
import { buildWorkspace, CREDENTIALS, flowSpec, Machine, treeOf, waitFor, type FuseBackend } from './flow-helpers.js';

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
