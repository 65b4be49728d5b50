// A container frozen in the middle of a push (SIGSTOP: a paused VM, a frozen node) past its lease's
// time to live, on the strict loopback server through its S3 API. Container A's push goes through
// a throttling TCP proxy (test/helpers/throttle-proxy.ts), so that when A is stopped some of its
// file PUTs have reached the server and others are on the way. Container B (another state folder:
// another machine, talking to the server directly) then takes the lease over, restores, changes
// every file and pushes. A is resumed: no write it starts may overwrite what B saved (only a
// request it had in flight may still land: the known gap, README). A fails naming the lease; the
// store holds B's files, and a fresh container C restores them.
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { e2eRig, type MountSandbox } from '../helpers/e2e.js';
import { startStrictS3Server, type StrictS3TestServer } from '../helpers/s3server.js';
import { API_TRANSFERS } from '../../src/store/limit.js';
import { startThrottleProxy } from '../helpers/throttle-proxy.js';
import { startPersist } from './durable-helpers.js';
import { apiBucketYaml, Machine, manifest, waitFor } from './flow-helpers.js';

const PREFIX = 'env1';
const FILES = 300;
const names = Array.from({ length: FILES }, (_, i) => `s${i + 1}.txt`);

/** The sync `state` of the machine's `./state` folder into `bucket`, whose lease lives 3 s; through `endpoint` when given. */
function spec(server: StrictS3TestServer, bucket: string, endpoint = server.endpoint): string {
  return [
    'version: 1',
    'buckets:',
    '  data:',
    apiBucketYaml(server, bucket, PREFIX).replace(server.endpoint, endpoint),
    '    lease: { ttl: 3s }',
    'syncs:',
    '  state: { from: ./state, to: state, delete: true }',
    '',
  ].join('\n');
}

async function fill(m: Machine, content: (name: string) => string): Promise<void> {
  await mkdir(m.state, { recursive: true });
  for (const name of names) await writeFile(join(m.state, name), content(name));
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * The whole scenario in `bucket`. `heldInFlight`: the bytes A had sent toward the server when it
 * was stopped (at least one file PUT among them) are held by the proxy until A is resumed, so
 * they reach the server after B's writes; otherwise they reach it while A is stopped, before B
 * takes the lease over, and only what A writes once resumed comes after B's writes.
 */
async function frozenHolder(server: StrictS3TestServer, sandbox: MountSandbox, bucket: string, heldInFlight: boolean): Promise<void> {
  await server.createBucket(bucket);
  const proxy = await startThrottleProxy(server.port);
  let a: ReturnType<typeof startPersist> | undefined;
  let aDone = false;
  try {
    // A: a first save and a clean shutdown (the lease released), then every file changed.
    const machineA = new Machine(await sandbox.tempDir('persist-frozen-a-'));
    await writeFile(machineA.spec, spec(server, bucket, proxy.endpoint));
    await fill(machineA, (name) => `A1 ${name}\n`);
    const first = await machineA.persist(['apply', '--auto-approve']);
    expect(first.code, first.output).toBe(0);
    const down = await machineA.persist(['shutdown']);
    expect(down.code, down.output).toBe(0);
    await fill(machineA, (name) => `A2 changed by A ${name}\n`);

    // A's push, slowed down (20 ms per chunk each way): stopped once the server has some of its
    // file PUTs, not all (and, for heldInFlight, while a file PUT is on its way in the proxy).
    const filePut = `PUT /${bucket}/${PREFIX}/state/s`;
    const filePuts = () => server.requests().filter((r) => `${r.method} ${r.url}`.startsWith(filePut)).length;
    const putOnTheWay = () => proxy.pendingToServer().some((chunk) => chunk.toString('latin1').startsWith(filePut));
    proxy.setDelay(20);
    server.resetCounts();
    const pushA = startPersist(machineA, ['apply', '--auto-approve']);
    a = pushA;
    void pushA.done.then(() => (aDone = true));
    const deadline = Date.now() + 60_000;
    while (!(filePuts() >= 40 && (!heldInFlight || putOnTheWay())) && !aDone && Date.now() < deadline) await sleep(2);
    pushA.kill('SIGSTOP');
    if (heldInFlight) proxy.hold();
    else proxy.setDelay(0);
    const received = filePuts();
    const inFlight = proxy.pending();
    // The file PUTs on their way then, with their condition (for the failure message).
    const heldPuts = proxy
      .pendingToServer()
      .map((chunk) => chunk.toString('latin1'))
      .filter((text) => text.startsWith(filePut))
      .map((text) => `${text.split(' ')[1]} ${/\r\nif-match:/i.test(text) ? '(If-Match)' : /\r\nif-none-match:/i.test(text) ? '(If-None-Match)' : '(no condition)'}`);
    expect(aDone, `A ended before it was stopped:\n${pushA.output()}${pushA.stderr()}`).toBe(false);
    expect(received).toBeGreaterThanOrEqual(40);
    expect(received).toBeLessThan(FILES);
    if (!heldInFlight) await waitFor("A's bytes sent before it stopped to reach the server", () => proxy.pending().chunks === 0, 10_000);

    // B, another machine reaching the server directly: waits for A's lease to expire, takes it
    // over, restores, changes every file and pushes.
    const machineB = new Machine(await sandbox.tempDir('persist-frozen-b-'));
    await writeFile(machineB.spec, spec(server, bucket));
    const restoreB = await machineB.persist(['apply', '--auto-approve', '--lock-timeout', '30s']);
    expect(restoreB.code, restoreB.output).toBe(0);
    expect(restoreB.output).toContain(`took over the bucket lease s3://${bucket}/${PREFIX}/.persist-lease.json`);
    const idB = (await readFile(join(machineB.stateDir, 'machine-id'), 'utf8')).trim();
    await fill(machineB, (name) => `B2 from B ${name}\n`);
    const pushB = await machineB.persist(['apply', '--auto-approve']);
    expect(pushB.code, pushB.output).toBe(0);
    expect(pushB.stdout).toMatch(/✔ 1\. ~ sync\.state +push: /);
    const savedB = await manifest(machineB.state);
    /** The files whose object in the store is not B's. */
    const notB = async (): Promise<string[]> => {
      const wrong: string[] = [];
      for (const name of names) {
        const stored = (await server.getObject(bucket, `${PREFIX}/state/${name}`))?.toString('utf8') ?? null;
        if (stored !== `B2 from B ${name}\n`) wrong.push(`${name}: ${JSON.stringify(stored)}`);
      }
      return wrong;
    };
    expect(await notB()).toEqual([]);

    // A wakes (what the proxy held goes on to the server first) and finds the lease gone.
    proxy.release();
    proxy.setDelay(0);
    pushA.kill('SIGCONT');
    const resumed = await pushA.done;
    expect(resumed.code, resumed.output).not.toBe(0);
    expect(resumed.output).toMatch(new RegExp(`the bucket lease s3://${bucket}/${PREFIX}/\\.persist-lease\\.json was taken by machine ${idB}`));

    // The store holds B's files byte for byte, and a fresh container restores exactly them.
    const context = `A was stopped after ${received} of its ${FILES} file PUTs, with ${inFlight.chunks} chunks (${inFlight.bytes} bytes) in the proxy, file PUTs among them: ${heldPuts.join(', ') || 'none'}; A's output once resumed:\n${resumed.output}`;
    const overwritten = await notB();
    if (heldInFlight) expect(overwritten, context).toEqual([]);
    else {
      // Nothing A starts once resumed reaches the store (before the fence: 32 of 300 files). A
      // request A had begun but not sent whole when it stopped (its body not yet written) still
      // lands when it wakes: a changed small file is sent without a condition (README, "No write
      // after the lease may have passed on": not covered yet). At most one transfer slot each.
      expect(overwritten.length, `${overwritten.join('\n')}\n${context}`).toBeLessThanOrEqual(API_TRANSFERS);
      if (overwritten.length > 0) console.log(`[frozen holder] ${overwritten.length} of A's requests in flight when it stopped landed after B's writes: ${overwritten.join(', ')}`);
    }
    const machineC = new Machine(await sandbox.tempDir('persist-frozen-c-'));
    await writeFile(machineC.spec, spec(server, bucket));
    const restoreC = await machineC.persist(['apply', '--auto-approve', '--lock-timeout', '30s']);
    expect(restoreC.code, restoreC.output).toBe(0);
    if (overwritten.length === 0) expect(await manifest(machineC.state)).toEqual(savedB);
  } finally {
    if (a && !aDone) {
      a.kill('SIGCONT');
      a.kill('SIGKILL');
      await a.done;
    }
    await proxy.stop();
  }
}

describe('a lease holder frozen in the middle of a push', () => {
  const rig = e2eRig(() => startStrictS3Server());

  it("A, stopped mid-push past its lease's time to live and resumed after B took the lease over and pushed, starts no write: at most what it had in flight lands over B's files", { timeout: 120_000 }, async () => {
    await frozenHolder(rig.server, rig.sandbox, 'frozen-holder', false);
  });

  // Not run by default: it fails today (data loss). A's PUTs sent before it stopped, held in the
  // network until it resumes, land after B's; a changed small file's PUT carries no condition
  // (sync/stable.ts unchangedSince: an ETag is known only for objects of 4 MiB and more,
  // known-objects.ts), so each overwrites B's file (6 to 8 of 300 in each run seen). Run it with
  // PERSIST_E2E_FROZEN_IN_FLIGHT=1; make it a plain `it` once such writes are refused.
  it.skipIf(process.env.PERSIST_E2E_FROZEN_IN_FLIGHT !== '1')("the same with A's file PUTs in flight while it is stopped, reaching the server after B's writes: none of B's files is overwritten", { timeout: 120_000 }, async () => {
    await frozenHolder(rig.server, rig.sandbox, 'frozen-holder-in-flight', true);
  });
});
