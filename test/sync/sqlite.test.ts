// SQLite snapshots with the real sqlite3 CLI: a WAL database under a busy writer, odd paths, a
// file that only looks like a database, stale sidecars, a missing sqlite3, and the cost figures.
import { spawn, execFileSync, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { appendFileSync, chmodSync, copyFileSync, existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import { RealHost } from '../../src/host/real.js';
import {
  SqliteUnavailableError,
  fileUri,
  isSqliteHeader,
  removeStaleSidecars,
  sidecarOf,
  snapshotSqlite,
  sqliteChangeToken,
} from '../../src/resources/sync/sqlite.js';
import { findDatabases } from '../../src/resources/sync/sqlite-sync.js';
import { syncExcluder, walkTree } from '../../src/resources/sync/tree.js';

const host = new RealHost();
const cleanups: Array<() => void> = [];

afterEach(() => {
  for (const cleanup of cleanups.splice(0).reverse()) {
    try {
      cleanup();
    } catch {
      // keep cleaning
    }
  }
});

function tempDir(name = 'persist-sqlite-'): string {
  const dir = mkdtempSync(join(tmpdir(), name));
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

function sql(db: string, ...statements: string[]): string {
  return execFileSync('sqlite3', ['-init', '/dev/null', '-batch', '-bail', db], { input: statements.join('\n') + '\n', encoding: 'utf8', stdio: ['pipe', 'pipe', 'pipe'] }).trim();
}

/** Read a snapshot without creating anything beside it. */
function sqlImmutable(db: string, statement: string): string {
  return execFileSync('sqlite3', ['-init', '/dev/null', '-batch', '-bail', fileUri(db, 'immutable=1'), statement], { encoding: 'utf8' }).trim();
}

/**
 * A busy writer: one sqlite3 process fed transactions of 20 sequential ids on stdin; after each
 * COMMIT it prints `c<last id>`, which is then recorded in `committed` and in a side file.
 */
class Writer {
  readonly child: ChildProcessWithoutNullStreams;
  committed = 0;
  private next = 0;
  private buffer = '';
  private stopped = false;
  private stderr = '';
  private firstCommit: Promise<void>;

  constructor(db: string, private readonly sideFile: string) {
    this.child = spawn('sqlite3', ['-init', '/dev/null', '-batch', db], { stdio: ['pipe', 'pipe', 'pipe'] });
    cleanups.push(() => this.stop());
    this.child.stderr.on('data', (chunk: Buffer) => (this.stderr += chunk.toString()));
    this.child.stdin.on('error', () => undefined);
    let resolveFirst!: () => void;
    this.firstCommit = new Promise((resolve) => (resolveFirst = resolve));
    this.child.stdout.on('data', (chunk: Buffer) => {
      this.buffer += chunk.toString();
      let newline: number;
      while ((newline = this.buffer.indexOf('\n')) >= 0) {
        const line = this.buffer.slice(0, newline);
        this.buffer = this.buffer.slice(newline + 1);
        const match = /^c(\d+)$/.exec(line);
        if (!match) continue;
        this.committed = Number(match[1]);
        writeFileSync(this.sideFile, String(this.committed));
        resolveFirst();
        if (!this.stopped) setTimeout(() => this.send(), 1);
      }
    });
    this.child.stdin.write('.timeout 5000\nPRAGMA journal_mode=WAL;\nCREATE TABLE IF NOT EXISTS t(id INTEGER PRIMARY KEY, pad BLOB);\n');
    this.send();
  }

  private send(): void {
    if (this.stopped) return;
    let script = 'BEGIN;\n';
    for (let k = 0; k < 20; k++) script += `INSERT INTO t VALUES(${++this.next}, randomblob(500));\n`;
    script += `COMMIT;\nSELECT 'c' || ${this.next};\n`;
    this.child.stdin.write(script);
  }

  started(): Promise<void> {
    return this.firstCommit;
  }

  errors(): string {
    return this.stderr;
  }

  stop(): void {
    if (this.stopped) return;
    this.stopped = true;
    this.child.stdin.end();
    this.child.kill('SIGKILL');
  }
}

describe('isSqliteHeader and sidecarOf', () => {
  it("recognises a database's header, not a file that only starts with the SQLite magic", () => {
    const dir = tempDir();
    sql(join(dir, 'a.db'), 'PRAGMA page_size=65536;', 'CREATE TABLE t(x);');
    sql(join(dir, 'b.db'), 'PRAGMA journal_mode=WAL;', 'CREATE TABLE t(x);');
    const real = readFileSync(join(dir, 'a.db')).subarray(0, 100);
    expect(isSqliteHeader(real)).toBe(true);
    expect(isSqliteHeader(readFileSync(join(dir, 'b.db')).subarray(0, 24))).toBe(true);
    // Bytes 16-23 as SQLite checks them: page size, read version, usable bytes, payload fractions.
    const changed = (offset: number, ...bytes: number[]) => Buffer.concat([real.subarray(0, offset), Buffer.from(bytes), real.subarray(offset + bytes.length)]);
    expect(isSqliteHeader(changed(16, 0x10, 0x00))).toBe(true); // 4096
    expect(isSqliteHeader(changed(16, 0x01, 0x00))).toBe(false); // 256
    expect(isSqliteHeader(changed(16, 0x10, 0x01))).toBe(false);
    expect(isSqliteHeader(changed(19, 3))).toBe(false);
    expect(isSqliteHeader(changed(16, 0x02, 0x00, 1, 1, 40))).toBe(false); // 512 - 40 < 480 usable
    expect(isSqliteHeader(changed(21, 64, 32, 33))).toBe(false);
    expect(isSqliteHeader(Buffer.from('SQLite format 3\0 not a db, only its magic', 'latin1'))).toBe(false);
    expect(isSqliteHeader(Buffer.from('SQLite format 3\0', 'latin1'))).toBe(false);
    expect(isSqliteHeader(Buffer.concat([Buffer.from('SQLite format 4\0', 'latin1'), real.subarray(16)]))).toBe(false);
    expect(isSqliteHeader(Buffer.alloc(0))).toBe(false);
  });

  it('maps -wal, -shm and -journal to their database', () => {
    expect(sidecarOf('/a/memory.sqlite-wal')).toBe('/a/memory.sqlite');
    expect(sidecarOf('/a/memory.sqlite-shm')).toBe('/a/memory.sqlite');
    expect(sidecarOf('db-journal')).toBe('db');
    expect(sidecarOf('/a/memory.sqlite')).toBeNull();
    expect(sidecarOf('/a/notes-wal.md')).toBeNull();
    expect(sidecarOf('/a/-wal')).toBeNull();
  });
});

describe('snapshotSqlite', () => {
  it('takes 12 sound snapshots of a WAL database while a writer commits, each holding every transaction committed before it began', async () => {
    const dir = tempDir();
    const db = join(dir, 'memory.sqlite');
    // Some volume first, so that a copy takes long enough to overlap many commits.
    sql(db, 'PRAGMA journal_mode=WAL;', 'CREATE TABLE big(id INTEGER PRIMARY KEY, pad BLOB);', 'WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c WHERE x<8000) INSERT INTO big SELECT x, randomblob(1000) FROM c;');
    const side = join(dir, 'committed.txt');
    const writer = new Writer(db, side);
    await writer.started();
    const results: Array<{ before: number; after: number; rows: number; max: number }> = [];
    for (let round = 0; round < 12; round++) {
      await new Promise((resolve) => setTimeout(resolve, 30));
      const before = Number(readFileSyncSafe(side)); // committed before this snapshot began
      const dest = join(dir, `snap-${round}.sqlite`);
      const snapshot = await snapshotSqlite(host, db, dest, { timeoutMs: 30_000 });
      const after = writer.committed;
      expect(snapshot.integrity).toBe('ok');
      expect(snapshot.readOnly).toBe(true);
      expect(snapshot.size).toBe(statSync(dest).size);
      // checked again independently of the module, without creating sidecars
      expect(sqlImmutable(dest, 'PRAGMA integrity_check')).toBe('ok');
      const [rows, max] = sqlImmutable(dest, 'SELECT count(*), coalesce(max(id),0) FROM t').split('|').map(Number);
      results.push({ before, after, rows: rows!, max: max! });
      expect(max).toBeGreaterThanOrEqual(before);
      expect(rows).toBe(max); // whole transactions only: no gap, no torn one
      expect(max! % 20).toBe(0);
      expect(existsSync(`${dest}-wal`) || existsSync(`${dest}-shm`) || existsSync(`${dest}-journal`)).toBe(false);
    }
    writer.stop();
    expect(writer.errors()).toBe('');
    // The snapshots were taken during writes: the writer committed during most of them.
    const overlapped = results.filter((r) => r.after > r.before).length;
    expect(overlapped).toBeGreaterThanOrEqual(6);
    // Snapshots keep the WAL mode of the source (header bytes 18-19 = 2).
    const head = await host.readHead(join(dir, 'snap-0.sqlite'), 20);
    expect([head[18], head[19]]).toEqual([2, 2]);
  });

  it('also works with VACUUM INTO (read-only), which leaves the copy in rollback-journal mode', async () => {
    const dir = tempDir();
    const db = join(dir, 'a.db');
    sql(db, 'PRAGMA journal_mode=WAL;', 'CREATE TABLE t(x);', 'INSERT INTO t VALUES (1),(2),(3);');
    const snapshot = await snapshotSqlite(host, db, join(dir, 'v.db'), { method: 'vacuum' });
    expect(snapshot).toMatchObject({ method: 'vacuum', readOnly: true, integrity: 'ok' });
    expect(sqlImmutable(join(dir, 'v.db'), 'SELECT sum(x) FROM t')).toBe('6');
    const head = await host.readHead(join(dir, 'v.db'), 20);
    expect([head[18], head[19]]).toEqual([1, 1]);
  });

  it('handles paths with spaces, quotes, backslashes and non-ASCII', async () => {
    const dir = join(tempDir(), `it's a "dir" \\ é`);
    execFileSync('mkdir', ['-p', dir]);
    const db = join(dir, `my 'db" file.sqlite`);
    sql(db, 'PRAGMA journal_mode=WAL;', 'CREATE TABLE t(x);', "INSERT INTO t VALUES ('hello');");
    const dest = join(dir, `snap 'x" %20 ?#.sqlite`);
    const snapshot = await snapshotSqlite(host, db, dest, { integrityCheck: true });
    expect(snapshot.integrity).toBe('ok');
    expect(snapshot.sha256).toBe(await host.hashFile(dest));
    // Beside the snapshot nothing. Beside the source, a read-only connection to a WAL database
    // whose writer had closed creates an empty -wal and the -shm (it may not checkpoint them away).
    expect(readdirSync(dir).filter((name) => name.startsWith('snap')).sort()).toEqual([`snap 'x" %20 ?#.sqlite`]);
    expect(statSync(`${db}-wal`, { throwIfNoEntry: false })?.size ?? 0).toBe(0);
    expect(sqlImmutable(dest, 'SELECT x FROM t')).toBe('hello');
  });

  it('reports a file that starts with the header but is not a database, and leaves nothing behind', async () => {
    const dir = tempDir();
    const fake = join(dir, 'fake.db');
    writeFileSync(fake, Buffer.concat([Buffer.from('SQLite format 3\0', 'latin1'), Buffer.alloc(200, 0x41)]));
    const dest = join(dir, 'out.db');
    await expect(snapshotSqlite(host, fake, dest)).rejects.toThrow(/fake\.db starts with the SQLite header but is not a readable database/);
    expect(readdirSync(dir)).toEqual(['fake.db']);
  });

  it('refuses a destination that exists, and a source that does not', async () => {
    const dir = tempDir();
    const db = join(dir, 'a.db');
    sql(db, 'CREATE TABLE t(x);');
    writeFileSync(join(dir, 'exists'), 'x');
    await expect(snapshotSqlite(host, db, join(dir, 'exists'))).rejects.toThrow(/already exists/);
    expect(readFileSyncSafe(join(dir, 'exists'))).toBe('x');
    await expect(snapshotSqlite(host, join(dir, 'none.db'), join(dir, 'o.db'))).rejects.toThrow(/does not exist/);
  });

  it('says clearly that sqlite3 is not installed when it is not on PATH', async () => {
    const dir = tempDir();
    const db = join(dir, 'a.db');
    sql(db, 'CREATE TABLE t(x);');
    const promise = snapshotSqlite(host, db, join(dir, 'o.db'), { env: { PATH: join(dir, 'empty-bin') } });
    await expect(promise).rejects.toBeInstanceOf(SqliteUnavailableError);
    await expect(snapshotSqlite(host, db, join(dir, 'o.db'), { env: { PATH: join(dir, 'empty-bin') } })).rejects.toThrow(/^sqlite3 is not installed/);
    expect(readdirSync(dir)).toEqual(['a.db']);
  });
});

/** A sqlite3 process holding an exclusive lock on `db` (its `statements` done) until `release` (resolved once it exited). */
function holdLock(db: string, statements: string): { locked: Promise<void>; release: () => Promise<void> } {
  const child = spawn('sqlite3', ['-init', '/dev/null', '-batch', '-bail', db], { stdio: ['pipe', 'pipe', 'pipe'] });
  cleanups.push(() => child.kill('SIGKILL'));
  const locked = new Promise<void>((resolve, reject) => {
    let out = '';
    child.stdout.on('data', (chunk: Buffer) => {
      out += chunk.toString();
      if (out.includes('@locked@')) resolve();
    });
    child.on('exit', () => reject(new Error(`the lock holder exited: ${out}`)));
  });
  const exited = new Promise<void>((resolve) => child.on('exit', () => resolve()));
  child.stdin.write(`.timeout 5000\nBEGIN EXCLUSIVE;\n${statements}\nSELECT '@locked@';\n`);
  return {
    locked,
    release: () => {
      child.stdin.end('COMMIT;\n');
      return exited;
    },
  };
}

/** Leave a hot journal beside `db`: a transaction whose pages spill into the file, its process killed before COMMIT. */
async function crashMidTransaction(db: string, statements: string): Promise<void> {
  const child = spawn('sqlite3', ['-init', '/dev/null', '-batch', '-bail', db], { stdio: ['pipe', 'pipe', 'pipe'] });
  cleanups.push(() => child.kill('SIGKILL'));
  const exited = new Promise((resolve) => child.on('exit', resolve));
  await new Promise<void>((resolve) => {
    let out = '';
    child.stdout.on('data', (chunk: Buffer) => {
      out += chunk.toString();
      if (out.includes('@mid@')) resolve();
    });
    child.stdin.write(`PRAGMA cache_size=5;\nBEGIN;\n${statements}\nSELECT '@mid@';\n`);
  });
  child.kill('SIGKILL');
  await exited;
}

/** Every file of a folder with its bytes (hex), to show that nothing in it changed. */
function contentsOf(dir: string): Record<string, string> {
  return Object.fromEntries(readdirSync(dir).sort().map((name) => [name, readFileSync(join(dir, name)).toString('hex')]));
}

describe('snapshotSqlite of a rollback-journal database a writer has locked', () => {
  it('waits for the lock (busy timeout on the connection it opened), then snapshots what the writer committed', async () => {
    const dir = tempDir();
    const db = join(dir, 'roll.db');
    sql(db, 'CREATE TABLE t(x);', 'INSERT INTO t VALUES (1);');
    const holder = holdLock(db, 'INSERT INTO t VALUES (2);');
    await holder.locked;
    const started = Date.now();
    setTimeout(() => void holder.release(), 1500);
    const snapshot = await snapshotSqlite(host, db, join(dir, 'snap.db'), { busyTimeoutMs: 10_000 });
    // Before, `.timeout` went to the connection `.open` then replaced: "database is locked" at once.
    expect(Date.now() - started).toBeGreaterThanOrEqual(1200);
    expect(snapshot).toMatchObject({ readOnly: true, integrity: 'ok' });
    expect(sqlImmutable(join(dir, 'snap.db'), 'SELECT group_concat(x) FROM t')).toBe('1,2');
  });

  it('gives up on a lock held past the busy timeout, once that timeout has passed', async () => {
    const dir = tempDir();
    const db = join(dir, 'roll.db');
    sql(db, 'CREATE TABLE t(x);');
    const holder = holdLock(db, 'INSERT INTO t VALUES (2);');
    await holder.locked;
    const started = Date.now();
    await expect(snapshotSqlite(host, db, join(dir, 'snap.db'), { busyTimeoutMs: 800 })).rejects.toThrow(/roll\.db failed: .*database is locked/);
    expect(Date.now() - started).toBeGreaterThanOrEqual(750);
    await holder.release();
    expect(readdirSync(dir)).toEqual(['roll.db']);
  });
});

describe('snapshotSqlite changes nothing that is not a database, nor a -journal that is not its own', () => {
  /** QA's file: the SQLite magic, then text and random bytes. */
  const fakeDatabase = () => Buffer.concat([Buffer.from('SQLite format 3\0 not a db, notes', 'latin1'), randomBytes(300)]);

  it("a file that only starts with the SQLite magic, with the user's notes named like its -journal: refused, both left byte for byte", async () => {
    const dir = tempDir();
    const fake = join(dir, 'fake.db');
    writeFileSync(fake, fakeDatabase());
    writeFileSync(`${fake}-journal`, 'user notes\n');
    appendFileSync(fake, 'again\n');
    const before = contentsOf(dir);
    await expect(snapshotSqlite(host, fake, join(dir, 'snap.db'))).rejects.toThrow(/fake\.db starts with the SQLite header but is not a readable database/);
    expect(contentsOf(dir)).toEqual(before);
  });

  it('a database header over a body that is not a database, beside a journal-shaped -journal: refused, both left byte for byte', async () => {
    const dir = tempDir();
    sql(join(dir, 'real.db'), 'CREATE TABLE t(x);');
    const fake = join(dir, 'fake.db');
    writeFileSync(fake, Buffer.concat([readFileSync(join(dir, 'real.db')).subarray(0, 100), randomBytes(3 * 4096 - 100)]));
    rmSync(join(dir, 'real.db'));
    // A journal header: the magic, records, nonce, initial size, sector size, page size 4096.
    const journal = Buffer.alloc(4096 + 512);
    Buffer.from('d9d505f920a163d7', 'hex').copy(journal);
    journal.writeUInt32BE(1, 8);
    journal.writeUInt32BE(3, 16);
    journal.writeUInt32BE(512, 20);
    journal.writeUInt32BE(4096, 24);
    randomBytes(4096).copy(journal, 512);
    writeFileSync(`${fake}-journal`, journal);
    const before = contentsOf(dir);
    await expect(snapshotSqlite(host, fake, join(dir, 'snap.db'))).rejects.toThrow(/fake\.db starts with the SQLite header but is not a readable database .*persist left it and .*fake\.db-journal untouched/);
    expect(contentsOf(dir)).toEqual(before);
  });

  it("a real database with a user's file named like its -journal: refused, both left byte for byte", async () => {
    const dir = tempDir();
    const db = join(dir, 'notes.db');
    sql(db, 'CREATE TABLE t(x);', "INSERT INTO t VALUES ('kept');");
    writeFileSync(`${db}-journal`, 'my notes about notes.db\n');
    const before = contentsOf(dir);
    await expect(snapshotSqlite(host, db, join(dir, 'snap.db'))).rejects.toThrow(/notes\.db was not snapshotted: .*notes\.db-journal, which is not a SQLite rollback journal.*move .*notes\.db-journal away/);
    expect(contentsOf(dir)).toEqual(before);
  });

  it('a -journal written for another page size is not this database\'s: refused, both left byte for byte', async () => {
    const dir = tempDir();
    const db = join(dir, 'big.db');
    sql(db, 'CREATE TABLE big(id INTEGER PRIMARY KEY, pad BLOB);', 'WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c WHERE x<300) INSERT INTO big SELECT x, zeroblob(1000) FROM c;');
    await crashMidTransaction(db, 'UPDATE big SET pad=randomblob(1000);');
    const journal = readFileSync(`${db}-journal`);
    journal.writeUInt32BE(8192, 24);
    writeFileSync(`${db}-journal`, journal);
    const before = contentsOf(dir);
    await expect(snapshotSqlite(host, db, join(dir, 'snap.db'))).rejects.toThrow(/big\.db-journal was written for pages of 8192 bytes, the database has 4096/);
    expect(contentsOf(dir)).toEqual(before);
  });

  it("the hot journal of a crashed transaction is rolled back, as SQLite's own recovery does: the snapshot holds the state before it", async () => {
    const dir = tempDir();
    const db = join(dir, 'big.db');
    sql(db, 'CREATE TABLE big(id INTEGER PRIMARY KEY, pad BLOB);', 'WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c WHERE x<300) INSERT INTO big SELECT x, zeroblob(1000) FROM c;');
    await crashMidTransaction(db, 'UPDATE big SET pad=randomblob(1000);');
    expect(statSync(`${db}-journal`).size).toBeGreaterThan(0);
    const snapshot = await snapshotSqlite(host, db, join(dir, 'snap.db'));
    expect(snapshot).toMatchObject({ readOnly: false, integrity: 'ok' });
    expect(sqlImmutable(join(dir, 'snap.db'), 'SELECT count(*), sum(pad = zeroblob(1000)) FROM big')).toBe('300|300');
    expect(existsSync(`${db}-journal`)).toBe(false);
    expect(sql(db, 'PRAGMA integrity_check;', 'SELECT sum(pad = zeroblob(1000)) FROM big;')).toBe('ok\n300');
  });

  it('a database that is gone once sqlite3 starts is an error, not the snapshot of an empty database', async () => {
    const dir = tempDir();
    const db = join(dir, 'gone.db');
    sql(db, 'CREATE TABLE t(x);', 'INSERT INTO t VALUES (1);');
    // sqlite3 started right after the database was removed (a race with the agent, made certain).
    const wrapper = join(dir, 'sqlite3-after-rm');
    writeFileSync(wrapper, `#!/bin/sh\nrm -f -- "$GONE_DB"\nexec sqlite3 "$@"\n`);
    chmodSync(wrapper, 0o755);
    const dest = join(dir, 'snap.db');
    await expect(snapshotSqlite(host, db, dest, { command: wrapper, env: { ...process.env, GONE_DB: db } })).rejects.toThrow(/gone\.db failed: .*unable to open database/);
    expect(readdirSync(dir)).toEqual(['sqlite3-after-rm']);
  });
});

describe('findDatabases', () => {
  it("takes a file that only starts with the SQLite magic for an ordinary file, and keeps the files named like its sidecars", async () => {
    const dir = tempDir();
    writeFileSync(join(dir, 'fake.db'), Buffer.concat([Buffer.from('SQLite format 3\0 not a db', 'latin1'), randomBytes(1024 - 25)]));
    writeFileSync(join(dir, 'fake.db-journal'), 'user notes\n');
    sql(join(dir, 'real.db'), 'PRAGMA journal_mode=WAL;', 'CREATE TABLE t(x);');
    writeFileSync(join(dir, 'real.db-journal'), '');
    const listing = await walkTree(host, dir, syncExcluder([]));
    const found = await findDatabases(host, dir, listing);
    expect(found).toEqual({ databases: ['real.db'], sidecars: ['real.db-journal'] });
    expect(Object.keys(listing.files).sort()).toEqual(['fake.db', 'fake.db-journal', 'real.db']);
  });
});

describe('sqliteChangeToken', () => {
  it('changes on a WAL commit even when the main file is untouched', async () => {
    const dir = tempDir();
    const db = join(dir, 'w.db');
    // A long-lived connection keeps the WAL (no checkpoint on close); autocheckpoint off.
    const keeper = spawn('sqlite3', ['-init', '/dev/null', '-batch', db], { stdio: ['pipe', 'pipe', 'pipe'] });
    cleanups.push(() => keeper.kill('SIGKILL'));
    const ask = (statement: string): Promise<string> =>
      new Promise((resolve) => {
        let out = '';
        const onData = (chunk: Buffer): void => {
          out += chunk.toString();
          if (out.includes('@done@')) {
            keeper.stdout.off('data', onData);
            resolve(out.replace('@done@', '').trim());
          }
        };
        keeper.stdout.on('data', onData);
        keeper.stdin.write(`${statement}\nSELECT '@done@';\n`);
      });
    await ask('PRAGMA journal_mode=WAL; PRAGMA wal_autocheckpoint=0; CREATE TABLE t(x); PRAGMA wal_checkpoint(TRUNCATE);');
    // Pin the main file's mtime to show it is not what tells.
    utimesSync(db, 1_700_000_000, 1_700_000_000);
    const mainBefore = statSync(db);
    const before = await sqliteChangeToken(host, db);
    expect(await sqliteChangeToken(host, db)).toBe(before);
    await ask("INSERT INTO t VALUES ('x');");
    expect(statSync(db).mtimeMs).toBe(mainBefore.mtimeMs);
    expect(statSync(db).size).toBe(mainBefore.size);
    const after = await sqliteChangeToken(host, db);
    expect(after).not.toBe(before);
    // A WAL restart to the same size within one mtime tick still changes the token (new salts).
    await ask('PRAGMA wal_checkpoint(RESTART);');
    utimesSync(`${db}-wal`, 1_700_000_100, 1_700_000_100);
    utimesSync(db, 1_700_000_000, 1_700_000_000);
    const pinned = await sqliteChangeToken(host, db);
    const walStat = statSync(`${db}-wal`);
    await ask("INSERT INTO t VALUES ('y');");
    utimesSync(`${db}-wal`, 1_700_000_100, 1_700_000_100);
    utimesSync(db, 1_700_000_000, 1_700_000_000);
    expect(statSync(`${db}-wal`).size).toBe(walStat.size);
    expect(await sqliteChangeToken(host, db)).not.toBe(pinned);
  });
});

describe('removeStaleSidecars', () => {
  it('removes -wal, -shm and -journal beside a restored database, and nothing else', async () => {
    const dir = tempDir();
    const db = join(dir, 'r.db');
    sql(db, 'CREATE TABLE t(x);', 'INSERT INTO t VALUES (1);');
    const snapshot = join(dir, 'snap.db');
    await snapshotSqlite(host, db, snapshot);
    // The live database moves on and has sidecars of its later state...
    sql(db, 'INSERT INTO t VALUES (2);');
    writeFileSync(`${db}-wal`, 'stale wal of a later state');
    writeFileSync(`${db}-shm`, 'stale shm');
    writeFileSync(`${db}-journal`, 'stale journal');
    writeFileSync(join(dir, 'r.db-other'), 'keep');
    // ...and the restore puts the snapshot in place, then removes them.
    copyFileSync(snapshot, db);
    const removed = await removeStaleSidecars(host, db);
    expect(removed.sort()).toEqual([`${db}-journal`, `${db}-shm`, `${db}-wal`].sort());
    expect(readdirSync(dir).sort()).toEqual(['r.db', 'r.db-other', 'snap.db']);
    expect(sql(db, 'PRAGMA integrity_check;', 'SELECT group_concat(x) FROM t;')).toBe('ok\n1');
    expect(await removeStaleSidecars(host, db)).toEqual([]);
  });
});

// Slow (about 20 s): run with PERSIST_BENCH=1 to print the figures.
describe('cost', () => {
  it.runIf(process.env.PERSIST_BENCH === '1')('snapshot of a 50 MiB database against a plain copy (median of 5; printed)', async () => {
    const dir = tempDir();
    const db = join(dir, 'big.db');
    sql(db, 'PRAGMA journal_mode=WAL;', 'CREATE TABLE big(id INTEGER PRIMARY KEY, pad BLOB);', 'WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c WHERE x<52000) INSERT INTO big SELECT x, randomblob(1000) FROM c;', 'CREATE INDEX big_pad ON big(substr(pad,1,8));');
    const size = statSync(db).size;
    expect(size).toBeGreaterThan(50 * 1024 * 1024);
    const median = (values: number[]): number => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!;
    const time = async (fn: () => Promise<unknown>): Promise<number> => {
      const start = process.hrtime.bigint();
      await fn();
      return Number(process.hrtime.bigint() - start) / 1e6;
    };
    const cases: Record<string, (i: number) => Promise<unknown>> = {
      'plain copy (copyFile)': (i) => host.copyFile(db, join(dir, `copy-${i}`)),
      'plain copy + sha256': async (i) => {
        await host.copyFile(db, join(dir, `copyh-${i}`));
        await host.hashFile(join(dir, `copyh-${i}`));
      },
      'backup, no integrity check': (i) => snapshotSqlite(host, db, join(dir, `b-${i}`), { integrityCheck: false }),
      'backup + integrity_check': (i) => snapshotSqlite(host, db, join(dir, `bi-${i}`)),
      'VACUUM INTO, no integrity check': (i) => snapshotSqlite(host, db, join(dir, `v-${i}`), { method: 'vacuum', integrityCheck: false }),
    };
    const times: Record<string, number[]> = Object.fromEntries(Object.keys(cases).map((name) => [name, []]));
    for (let i = 0; i < 5; i++) {
      for (const [name, run] of Object.entries(cases)) {
        times[name]!.push(await time(() => run(i)));
        for (const file of readdirSync(dir)) if (file !== 'big.db' && !file.startsWith('big.db-')) rmSync(join(dir, file));
      }
    }
    const base = median(times['plain copy (copyFile)']!);
    const lines = Object.entries(times).map(([name, list]) => `${name.padEnd(34)} ${median(list).toFixed(1).padStart(8)} ms  ${(median(list) / base).toFixed(2).padStart(6)}x`);
    console.log(`SQLite snapshot of a ${(size / 1048576).toFixed(1)} MiB database, median of 5:\n${lines.join('\n')}`);
  });
});

function readFileSyncSafe(path: string): string {
  return existsSync(path) ? readFileSync(path, 'utf8') : '0';
}
