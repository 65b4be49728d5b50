// A file that starts with the SQLite magic but is not a database (QA: a push deleted the user's
// `fake.db-journal` beside one: the snapshot's read-write retry let SQLite take it for a hot
// journal). Such a file is an ordinary file at every push, byte-copied, and so are the files named
// like its sidecars; sqlite3 never opens it. The built CLI on the `local` backend, real sqlite3.
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { appendFileSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { makeFixture } from '../cli/helpers.js';

describe('a file that only starts with the SQLite magic, in a sync', () => {
  it('is byte-copied at every push, its -journal-named neighbour kept and pushed too, and both restored as they were', async () => {
    const f = makeFixture({ sync: true, leaseTtl: '1s' });
    const state = join(f.dir, 'state');
    const fake = join(state, 'fake.db');
    writeFileSync(fake, Buffer.concat([Buffer.from('SQLite format 3\0 not a db, notes', 'latin1'), randomBytes(300)]));
    const first = await f.run(['apply', '--auto-approve']);
    expect(first.code, first.stdout + first.stderr).toBe(0);
    expect(readFileSync(join(f.bucket, 'state', 'fake.db'))).toEqual(readFileSync(fake));

    writeFileSync(`${fake}-journal`, 'user notes\n');
    appendFileSync(fake, 'again\n');
    const second = await f.run(['apply', '--auto-approve']);
    expect(second.code, second.stdout + second.stderr).toBe(0);
    expect(second.stdout).not.toMatch(/not pushed|not a readable database/);
    expect(readFileSync(`${fake}-journal`, 'utf8')).toBe('user notes\n');
    expect(readFileSync(join(f.bucket, 'state', 'fake.db'))).toEqual(readFileSync(fake));
    expect(readFileSync(join(f.bucket, 'state', 'fake.db-journal'), 'utf8')).toBe('user notes\n');
    expect((await f.run(['plan', '--detailed-exitcode'])).code).toBe(0);

    // A new container restores both (a restored database's stale sidecars are removed: not these).
    const pushed = readFileSync(fake);
    rmSync(state, { recursive: true });
    renameSync(f.stateDir, `${f.stateDir}-gone`);
    const restored = await f.run(['apply', '--auto-approve', '--lock-timeout', '30s']);
    expect(restored.code, restored.stdout + restored.stderr).toBe(0);
    expect(readFileSync(fake)).toEqual(pushed);
    expect(readFileSync(`${fake}-journal`, 'utf8')).toBe('user notes\n');
  });

  it("a real database with a user's file named like its -journal: reported, not pushed, both left as they were", async () => {
    const f = makeFixture({ sync: true });
    const db = join(f.dir, 'state', 'notes.db');
    execFileSync('sqlite3', ['-init', '/dev/null', '-batch', db, "CREATE TABLE t(x); INSERT INTO t VALUES ('kept');"]);
    writeFileSync(`${db}-journal`, 'my notes about notes.db\n');
    const before = [readFileSync(db), readFileSync(`${db}-journal`)];
    const result = await f.run(['apply', '--auto-approve']);
    expect(result.stdout + result.stderr).toMatch(/1 SQLite database not pushed: notes\.db: .*notes\.db-journal, which is not a SQLite rollback journal/);
    expect([readFileSync(db), readFileSync(`${db}-journal`)]).toEqual(before);
  });
});
