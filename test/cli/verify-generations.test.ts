// `persist verify` checks the kept generations too (history, rollback), and `persist history`
// lists a kept generation whose record cannot be read as damaged. Before, verify checked only the
// current data ("1 stored file checked ... Verified", exit 0) while a damaged or deleted
// `<bundle>.1`, `<bundle>.2` or kept file under `.persist-sync/generations/<n>/files/` made
// `rollback --to` fail, and history left out a generation whose record was damaged without a word.
import { readFileSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { commit, makeFixture, ok, type Fixture } from './helpers.js';


/** Three pushes of ./state: generations 1, 2 (kept) and 3 (current). */
async function threeSyncGenerations(): Promise<{ fixture: Fixture; generations: string }> {
  const fixture = makeFixture({ sync: true });
  ok(await fixture.run(['apply', '--auto-approve']));
  for (const text of ['rows two\n', 'rows three!\n']) {
    writeFileSync(join(fixture.dir, 'state', 'app.db'), text);
    ok(await fixture.run(['apply', '--auto-approve']));
  }
  return { fixture, generations: join(fixture.bucket, 'state', '.persist-sync', 'generations') };
}

/** Three updates of ./repo: bundles/repo.bundle (3), .1 (2), .2 (1). */
async function threeBundleGenerations(): Promise<{ fixture: Fixture; file: string }> {
  const fixture = makeFixture({ bundle: true });
  ok(await fixture.run(['apply', '--auto-approve']));
  for (const text of ['two\n', 'three\n']) {
    commit(join(fixture.dir, 'repo'), 'f.txt', text);
    ok(await fixture.run(['apply', '--auto-approve']));
  }
  return { fixture, file: join(fixture.bucket, 'bundles', 'repo.bundle') };
}

function flipByte(path: string): void {
  const data = readFileSync(path);
  data[Math.floor(data.length / 2)]! ^= 0xff;
  writeFileSync(path, data);
}

describe('verify checks the kept generations of a sync', () => {
  it('a kept file damaged (size), another deleted: verify fails naming each generation, which cannot be rolled back to', async () => {
    const { fixture, generations } = await threeSyncGenerations();
    expect(ok(await fixture.run(['verify', '--hash']))).toMatch(/ok +sync\.state: 3 stored files checked/);
    writeFileSync(join(generations, '1', 'files', 'app.db'), 'something else entirely\n');
    rmSync(join(generations, '2', 'files', 'app.db'));
    const verified = await fixture.run(['verify']);
    expect(verified.code, verified.stdout).toBe(1);
    expect(verified.stdout).toMatch(/FAIL sync\.state/);
    expect(verified.stdout).toMatch(/generation 1: app\.db: damaged: \.persist-sync\/generations\/1\/files\/app\.db holds 24 bytes, generation 1's manifest says 5/);
    expect(verified.stdout).toMatch(/generation 2: app\.db: its kept copy is missing/);
    expect(verified.stdout).toMatch(/generations 1, 2 cannot be rolled back to/);
    expect(verified.stdout).not.toContain('Verified');
    // The current generation is fine: nothing to repair.
    expect(ok(await fixture.run(['plan']))).toMatch(/No changes/);
  });

  it('a kept file with the same size but other bytes: found by verify --hash only', async () => {
    const { fixture, generations } = await threeSyncGenerations();
    flipByte(join(generations, '2', 'files', 'app.db'));
    expect((await fixture.run(['verify'])).code).toBe(0);
    const verified = await fixture.run(['verify', '--hash']);
    expect(verified.code, verified.stdout).toBe(1);
    expect(verified.stdout).toMatch(/generation 2: app\.db: damaged: \.persist-sync\/generations\/2\/files\/app\.db differs from generation 2's manifest \(sha256\)/);
    expect(verified.stdout).toMatch(/generation 2 cannot be rolled back to/);
  });
});

describe('a repair push does not keep the damaged stored copy as the old generation', () => {
  it('verify finds a stored file damaged, apply repairs it: verify --hash passes and rollback --to 1 gives back generation 1', async () => {
    const fixture = makeFixture({ sync: true });
    ok(await fixture.run(['apply', '--auto-approve']));
    truncateSync(join(fixture.bucket, 'state', 'app.db'), 2);
    expect((await fixture.run(['verify'])).code).toBe(1);
    expect(ok(await fixture.run(['plan']))).toMatch(/~ sync\.state {2}push \(repair\)/);
    ok(await fixture.run(['apply', '--auto-approve']));
    expect(ok(await fixture.run(['verify', '--hash']))).toMatch(/Verified/);
    writeFileSync(join(fixture.dir, 'state', 'app.db'), 'rows changed\n');
    ok(await fixture.run(['apply', '--auto-approve']));
    ok(await fixture.run(['rollback', 'sync.state', '--to', '1', '--auto-approve']));
    expect(readFileSync(join(fixture.dir, 'state', 'app.db'), 'utf8')).toBe('rows\n');
  });
});

describe('verify checks the kept generations of a bundle', () => {
  it('<file>.1 damaged in place (verify --hash) and <file>.2 deleted (verify)', async () => {
    const { fixture, file } = await threeBundleGenerations();
    expect(ok(await fixture.run(['verify', '--hash']))).toMatch(/ok +bundle\.repo: 3 stored files checked/);
    flipByte(`${file}.1`);
    expect((await fixture.run(['verify'])).code).toBe(0);
    const hashed = await fixture.run(['verify', '--hash']);
    expect(hashed.code, hashed.stdout).toBe(1);
    expect(hashed.stdout).toMatch(/generation 2: bundles\/repo\.bundle\.1: damaged: its content \(sha256 [0-9a-f]+…\) is not what was written as generation 2/);
    rmSync(`${file}.2`);
    const verified = await fixture.run(['verify']);
    expect(verified.code, verified.stdout).toBe(1);
    expect(verified.stdout).toMatch(/generation 1: bundles\/repo\.bundle\.2: missing/);
    expect(verified.stdout).toMatch(/generation 1 cannot be rolled back to/);
  });
});

describe('history lists a kept generation whose record cannot be read', () => {
  it('a sync: generations/2.json damaged', async () => {
    const { fixture, generations } = await threeSyncGenerations();
    writeFileSync(join(generations, '2.json'), 'garbage{');
    const text = ok(await fixture.run(['history']));
    expect(text).toMatch(/! 2 {2}damaged: \.persist-sync\/generations\/2\.json: its record cannot be read: not valid JSON/);
    const json = JSON.parse(ok(await fixture.run(['history', '--json']))) as { resources: { damaged?: { generation: number | null }[]; generations: { generation: number }[] }[] };
    expect(json.resources[0]!.generations.map((g) => g.generation)).toEqual([3, 1]);
    expect(json.resources[0]!.damaged?.map((d) => d.generation)).toEqual([2]);
    const verified = await fixture.run(['verify']);
    expect(verified.code).toBe(1);
    expect(verified.stdout).toMatch(/generation 2: \.persist-sync\/generations\/2\.json: its record cannot be read/);
    // rollback says the same, not "not kept in the store".
    const rolled = await fixture.run(['rollback', 'sync.state', '--to', '2', '--auto-approve']);
    expect(rolled.code).toBe(1);
    expect(rolled.stderr).toMatch(/^persist: sync\.state: generation 2 cannot be rolled back to: \.persist-sync\/generations\/2\.json: its record cannot be read: .*\(kept and readable: 1, 3; persist history lists them\)\n$/);
  });

  it('a bundle: <file>.1.lineage.json damaged', async () => {
    const { fixture } = await threeBundleGenerations();
    writeFileSync(join(fixture.bucket, 'bundles', 'repo.bundle.1.lineage.json'), '{"x":1}');
    const text = ok(await fixture.run(['history']));
    expect(text).toMatch(/! \? {2}damaged: bundles\/repo\.bundle\.1\.lineage\.json: the record of bundles\/repo\.bundle\.1 cannot be read/);
    const verified = await fixture.run(['verify']);
    expect(verified.code).toBe(1);
    expect(verified.stdout).toMatch(/a kept generation: bundles\/repo\.bundle\.1\.lineage\.json: the record of bundles\/repo\.bundle\.1 cannot be read/);
    const rolled = await fixture.run(['rollback', 'bundle.repo', '--to', '2', '--auto-approve']);
    expect(rolled.code).toBe(1);
    expect(rolled.stderr).toContain('persist: bundle.repo: generation 2 is not among the readable ones, and bundles/repo.bundle.1.lineage.json may hold it but cannot be read');
  });
});
