// A live SQLite database through a real FUSE mount (issue 12): a WAL database under a busy writer,
// pushed 12 times (s3fs; 4 on rclone) by `persist apply` while the writer commits; after each push a new container
// (new state folder, empty local folder, its own mount of the bucket) restores it. Every restore
// must pass `PRAGMA integrity_check` and hold every transaction committed before the push began;
// every push exits 0. The same test on the `local` backend, driven through the executor, is in
// test/sync/trust.test.ts.
import type { ChildProcess } from 'node:child_process';
import { mkdir, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { expect, it } from 'vitest';
import { describeE2E, e2eRig } from '../helpers/e2e.js';
import { startStrictS3Server, type S3TestServer } from '../helpers/s3server.js';
import { bucketYaml, FUSE_BACKENDS, Machine, type FuseBackend } from './flow-helpers.js';
import { leaseYaml, sql, startWalWriter } from './hostile-helpers.js';

/** A mounted bucket and one sync of ./db; a lease (when mounted buckets take one) of 3 s. */
function dbSpec(server: S3TestServer, backend: FuseBackend, bucket: string): string {
  return ['version: 1', 'buckets:', '  data:', bucketYaml(server, backend, bucket, './mnt', '    '), ...leaseYaml('3s', '    '), 'syncs:', '  db:', '    from: ./db', '    to: db', '    delete: true', ''].join('\n');
}

/** Pushes per backend: the issue's 12 on s3fs; 4 on rclone, whose restores of a growing database are slower. */
const ROUNDS: Record<FuseBackend, number> = { s3fs: 12, rclone: 4 };

for (const backend of FUSE_BACKENDS) {
  describeE2E(`a live SQLite database through ${backend}`, ['sqlite3', backend], () => {
    const pushes = ROUNDS[backend];
    const rig = e2eRig(() => startStrictS3Server());
    const children: ChildProcess[] = [];

    it(`a WAL database under a busy writer, pushed ${pushes} times during writes: ${pushes} of ${pushes} restores in new containers are sound and hold every transaction committed before the push`, { timeout: 420_000 }, async () => {
      const bucket = `sqlite-${backend}`;
      await rig.server.createBucket(bucket);
      const spec = dbSpec(rig.server, backend, bucket);
      const agent = new Machine(await rig.sandbox.tempDir(`persist-sqlite-${backend}-`));
      await mkdir(join(agent.root, 'db'), { recursive: true });
      await writeFile(agent.spec, spec);
      const db = join(agent.root, 'db', 'memory.sqlite');
      // Smaller rows than the local test's: the database grows less over the rounds (pushes
      // through FUSE cost more), while commits come as often.
      const writer = startWalWriter(db, children, { rowBytes: 500 });
      try {
        const rows = async () => Number(await sql(db, 'SELECT count(*) FROM t').catch(() => '0'));
        const deadline = Date.now() + 60_000;
        while ((await rows()) < 1500) {
          if (Date.now() > deadline) throw new Error('the writer did not fill the database within 60 s');
          await new Promise((resolve) => setTimeout(resolve, 50));
        }

        const rounds: { committed: number; restored: number; pushMs: number; restoreMs: number }[] = [];
        for (let round = 1; round <= pushes; round++) {
          const committed = Number(await sql(db, 'SELECT max(id) FROM t'));
          // --lock-timeout: the other containers' leases (each released by its shutdown below).
          const pushed = await agent.persist(['apply', '--auto-approve', '--lock-timeout', '60s']);
          expect(pushed.code, `push ${round}: ${pushed.output}`).toBe(0);
          expect(pushed.output, `push ${round}`).toMatch(/sync\.db {2}push/);

          // A new container: its own folder, state folder and mount of the same bucket.
          const fresh = new Machine(await rig.sandbox.tempDir(`persist-sqlite-${backend}-restore-${round}-`));
          await writeFile(fresh.spec, spec);
          const restored = await fresh.persist(['apply', '--auto-approve', '--lock-timeout', '60s']);
          expect(restored.code, `restore ${round}: ${restored.output}`).toBe(0);
          expect(restored.output, `restore ${round}`).toMatch(/sync\.db {2}restore/);
          const copy = join(fresh.root, 'db', 'memory.sqlite');
          expect((await readdir(join(fresh.root, 'db'))).sort(), `restore ${round}: no sidecar beside the database`).toEqual(['memory.sqlite']);
          expect(await sql(copy, 'PRAGMA integrity_check'), `restore ${round}`).toBe('ok');
          expect(Number(await sql(copy, `SELECT count(*) FROM t WHERE id <= ${committed}`)), `restore ${round}: transactions committed before the push`).toBe(committed);
          expect(await sql(copy, 'PRAGMA journal_mode')).toBe('wal');
          rounds.push({ committed, restored: Number(await sql(copy, 'SELECT max(id) FROM t')), pushMs: pushed.ms, restoreMs: restored.ms });
          // The restoring container stops as a container is told to: nothing to push, its mount goes.
          const stopped = await fresh.persist(['shutdown']);
          expect(stopped.code, `shutdown of restore container ${round}: ${stopped.output}`).toBe(0);
        }
        expect(rounds).toHaveLength(pushes);
        console.log(`[sqlite through ${backend}] round: rows committed before the push -> rows restored (push ms, restore ms)\n${rounds.map((r, i) => `  ${i + 1}: ${r.committed} -> ${r.restored} (${r.pushMs}, ${r.restoreMs})`).join('\n')}`);

        // The writer stops: one more push takes the final state, and then the plan is clean.
        await writer.stop();
        const final = Number(await sql(db, 'SELECT max(id) FROM t'));
        const last = await agent.persist(['apply', '--auto-approve', '--lock-timeout', '60s']);
        expect(last.code, last.output).toBe(0);
        const planned = await agent.persist(['plan', '--detailed-exitcode']);
        expect(planned.code, planned.output).toBe(0);
        const fresh = new Machine(await rig.sandbox.tempDir(`persist-sqlite-${backend}-final-`));
        await writeFile(fresh.spec, spec);
        const restored = await fresh.persist(['apply', '--auto-approve', '--lock-timeout', '60s']);
        expect(restored.code, restored.output).toBe(0);
        expect(Number(await sql(join(fresh.root, 'db', 'memory.sqlite'), 'SELECT max(id) FROM t'))).toBe(final);
      } finally {
        for (const child of children.splice(0)) child.kill('SIGKILL');
      }
    });
  });
}
