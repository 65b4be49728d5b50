// Figures for issue 12 (run with PERSIST_FIGURES=1; skipped otherwise): the cost of a SQLite
// snapshot of a 50 MiB database inside a push (vs a plain copy), and of the stable-read check on a
// 10,000-file push.
import { execFileSync } from 'node:child_process';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { beforeEach, describe, expect, it } from 'vitest';
import { RealHost } from '../../src/host/real.js';
import { readOnlyHost } from '../../src/host/wrappers.js';
import { syncModule } from '../../src/resources/sync/index.js';
import { snapshotSqlite } from '../../src/resources/sync/sqlite.js';
import type { ResolvedSync } from '../../src/spec/types.js';
import { applyPlanned, observing } from '../helpers/resources.js';
import { applyContext, environment } from '../resources/sync-helpers.js';
import { folderPerTestWithState } from '../helpers/temp.js';

const host = new RealHost();
let root: string;

const testFolder = folderPerTestWithState('persist-figures-');

beforeEach(async () => {
  root = testFolder();
});
async function timedPush(from: string, name: string): Promise<number> {
  const mount = join(root, 'mount');
  await mkdir(mount, { recursive: true });
  const sync: ResolvedSync = { name, bucket: 'data', from, relTo: name, to: join(mount, name), delete: true, exclude: [], maxDeleteRatio: 0.5 };
  const env = environment(mount, { syncs: { [name]: sync } });
  const observed = await syncModule.observe(sync, observing({ host: readOnlyHost(host), env, mountReady: { data: true } }));
  const decision = syncModule.diff(sync, observed.state, { allowShrink: false })!;
  const started = performance.now();
  await applyPlanned({ ...decision, dependsOn: [] }, applyContext(host, env));
  return performance.now() - started;
}

describe.runIf(process.env.PERSIST_FIGURES === '1')('figures', () => {
  it('SQLite snapshot of a 50 MiB database vs a plain copy', async () => {
    const dbDir = join(root, 'db');
    const plainDir = join(root, 'plain');
    await mkdir(dbDir);
    await mkdir(plainDir);
    const db = join(dbDir, 'big.sqlite');
    execFileSync('sqlite3', [db, `PRAGMA journal_mode=WAL; CREATE TABLE t(v BLOB); WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM c WHERE i < 12800) INSERT INTO t SELECT randomblob(4000) FROM c;`]);
    execFileSync('cp', [db, join(plainDir, 'big.bin')]);
    execFileSync('truncate', ['-s', '+1', join(plainDir, 'big.bin')]); // not page-aligned: never taken for a database
    const size = Number(execFileSync('stat', ['-c', '%s', db], { encoding: 'utf8' }));
    let t = performance.now();
    await snapshotSqlite(host, db, join(root, 'snap-check'));
    const snapshotWithCheck = performance.now() - t;
    t = performance.now();
    await snapshotSqlite(host, db, join(root, 'snap-nocheck'), { integrityCheck: false });
    const snapshotOnly = performance.now() - t;
    t = performance.now();
    await host.copyFile(db, join(root, 'copy'));
    const copy = performance.now() - t;
    const pushDb = await timedPush(dbDir, 'db');
    const pushPlain = await timedPush(plainDir, 'plain');
    console.log(
      `FIGURE sqlite ${(size / 1048576).toFixed(1)} MiB: snapshot+integrity_check ${snapshotWithCheck.toFixed(0)} ms, snapshot alone ${snapshotOnly.toFixed(0)} ms, plain copyFile ${copy.toFixed(0)} ms; ` +
        `push of the database ${pushDb.toFixed(0)} ms vs push of a plain 50 MiB file ${pushPlain.toFixed(0)} ms`,
    );
    expect(size).toBeGreaterThan(50 * 1048576);
  }, 120_000);

  it('stable-read check on a 10,000-file push', async () => {
    const from = join(root, 'many');
    for (let d = 0; d < 100; d++) await mkdir(join(from, `d${d}`), { recursive: true });
    await Promise.all(Array.from({ length: 10_000 }, (_, i) => writeFile(join(from, `d${i % 100}`, `f${i}.md`), `note ${i}\n${'x'.repeat(500 + (i % 13) * 50)}`)));
    await new Promise((r) => setTimeout(r, 300)); // past the settle window
    const paths = Array.from({ length: 10_000 }, (_, i) => join(from, `d${i % 100}`, `f${i}.md`));
    let t = performance.now();
    for (const path of paths) {
      await host.lstat(path);
      await host.lstat(path);
    }
    const statPairs = performance.now() - t;
    t = performance.now();
    for (const path of paths) await host.readFile(path);
    const reads = performance.now() - t;
    const push = await timedPush(from, 'many');
    console.log(`FIGURE 10,000-file push: ${push.toFixed(0)} ms in all; the stable-read check (a second lstat and the comparison per file) ${(statPairs / 2).toFixed(0)} ms for the extra lstats (${((statPairs / 2 / push) * 100).toFixed(1)}% of the push); reading the files once ${reads.toFixed(0)} ms`);
    expect(push).toBeGreaterThan(0);
  }, 300_000);
});
