// S3Store over real HTTP on 127.0.0.1 (the strict server): keys under a prefix, whole writes,
// conditional creates, folders as key prefixes, uploads and downloads with mode and mtime,
// copy/rename/remove, and the same layout as a mount (s3fs's mode/mtime metadata).
import { createHash, randomBytes } from 'node:crypto';
import { appendFile, mkdir, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RealHost } from '../../src/host/real.js';
import { readOnlyHost } from '../../src/host/wrappers.js';
import { ApiStore } from '../../src/store/api.js';
import { Sensitive } from '../../src/spec/sensitive.js';
import type { ResolvedBucket } from '../../src/spec/types.js';
import { S3Client } from '../../src/store/s3/client.js';
import { S3Store } from '../../src/store/s3/store.js';
import { StoreConflict, StoreMissing } from '../../src/store/types.js';
import { readFolderModes } from '../../src/resources/sync/folders.js';
import { readManifest, writeManifest } from '../../src/resources/sync/manifest.js';
import { S3RVER_ACCESS_KEY, S3RVER_SECRET_KEY, startStrictS3Server, type StrictS3TestServer } from '../helpers/s3server.js';

const BUCKET = 'store-test';
const MiB = 1024 * 1024;
let server: StrictS3TestServer;
let work: string;
const host = new RealHost();
const clients: S3Client[] = [];

function client(): S3Client {
  const made = new S3Client({ endpoint: server.endpoint, region: 'us-east-1', bucket: BUCKET, pathStyle: true, provider: 'other', accessKeyId: S3RVER_ACCESS_KEY, secretAccessKey: S3RVER_SECRET_KEY, retryBaseMs: 5 });
  clients.push(made);
  return made;
}

function store(prefix = 'env/a/'): S3Store {
  return new S3Store(host, client(), `s3://${BUCKET}/${prefix}`, prefix);
}

const sha = (data: Buffer) => createHash('sha256').update(data).digest('hex');

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'persist-s3store-'));
  server = await startStrictS3Server([BUCKET]);
});

afterAll(async () => {
  for (const made of clients) made.close();
  await server?.stop();
  if (work) await rm(work, { recursive: true, force: true });
});

describe('S3Store', () => {
  it('writes whole objects under its prefix; ifAbsent refuses an existing key with StoreConflict', async () => {
    const s = store('p1/');
    await s.write('dir/one.txt', 'one');
    expect(await server.getObject(BUCKET, 'p1/dir/one.txt')).toEqual(Buffer.from('one'));
    await s.write('dir/lock', 'mine', { ifAbsent: true });
    await expect(s.write('dir/lock', 'theirs', { ifAbsent: true })).rejects.toBeInstanceOf(StoreConflict);
    expect((await s.read('dir/lock')).toString()).toBe('mine');
    expect((await s.readHead('dir/one.txt', 2)).toString()).toBe('on');
    expect(await s.hash('dir/one.txt')).toBe(sha(Buffer.from('one')));
    // No temporary name, no rename: only PUTs reached the server for the writes.
    expect(await server.listObjects(BUCKET)).toEqual(expect.arrayContaining(['p1/dir/one.txt', 'p1/dir/lock']));
    expect((await server.listObjects(BUCKET)).some((key) => key.includes('persist-tmp'))).toBe(false);
  });

  it('reads with one GET: a missing object is StoreMissing, so a mirror without folder modes costs one request', async () => {
    const s = store('p1r/');
    await s.write('mirror/.persist-sync-folders.json', JSON.stringify({ version: 1, folders: { private: 0o700 } }));
    server.resetCounts();
    await expect(s.read('mirror/none.json')).rejects.toBeInstanceOf(StoreMissing);
    expect(await readFolderModes(s, 'other')).toEqual({});
    expect(await readFolderModes(s, 'mirror')).toEqual({ private: 0o700 });
    expect(server.stats().requests).toEqual({ GET: 3 });
  });

  it("reads a mirror's manifest first: none is one GET, a shard gone is named with the root that lists it", async () => {
    const s = store('p1m/');
    server.resetCounts();
    expect(await readManifest(s, 'mirror')).toBeNull();
    expect(server.stats().requests).toEqual({ GET: 1 });
    await writeManifest(s, 'mirror', { 'a.txt': { size: 1, mtimeMs: 1, mode: 0o644, sha256: sha(Buffer.from('a')) } }, new Date().toISOString());
    expect(Object.keys((await readManifest(s, 'mirror'))!.files)).toEqual(['a.txt']);
    const shard = (await server.listObjects(BUCKET)).find((key) => key.startsWith('p1m/mirror/.persist-sync/'))!;
    await s.remove(shard.slice('p1m/'.length));
    await expect(readManifest(s, 'mirror')).rejects.toThrow(/\.persist-sync\/\S+\.json: missing \(no such object\); .*\.persist-sync\.json lists 1 files in it/);
  });

  it('has folders only as key prefixes: stat, readdir and a recursive list with excluded folders', async () => {
    const s = store('p2/');
    for (const key of ['m/a.txt', 'm/sub/b.txt', 'm/sub/deep/c.txt', 'm/skip/x.txt', 'other.txt']) await s.write(key, key);
    expect((await s.stat('m'))?.type).toBe('dir');
    expect((await s.stat('m/sub'))?.type).toBe('dir');
    expect((await s.stat('m/a.txt'))?.type).toBe('file');
    expect(await s.stat('m/none')).toBeNull();
    expect(await s.stat('m/su')).toBeNull(); // a prefix of a name is not a folder
    expect(await s.readdir('m')).toEqual(['a.txt', 'skip', 'sub']);
    expect(await s.readdir('')).toEqual(['m', 'other.txt']);
    expect(await s.readdir('nothing')).toEqual([]);
    const listing = await s.list('m', (path) => path === 'skip');
    expect(Object.keys(listing.files)).toEqual(['a.txt', 'sub/b.txt', 'sub/deep/c.txt']);
    expect(listing.files['a.txt']!.size).toBe('m/a.txt'.length);
    // A second store under another prefix of the same bucket sees none of it.
    expect(await store('p2x/').readdir('')).toEqual([]);
  });

  it('uploads and downloads with mode and mtime (kept as s3fs metadata), small and multipart', async () => {
    const s = store('p3/');
    const small = join(work, 'small.bin');
    const big = join(work, 'big.bin');
    const smallData = randomBytes(3000);
    const bigData = randomBytes(17 * MiB + 123);
    await writeFile(small, smallData);
    await writeFile(big, bigData);
    const mtimeMs = Date.parse('2024-05-06T07:08:09Z');
    expect(await s.upload(small, 'f/small.bin', { mode: 0o600, mtimeMs })).toEqual({ size: 3000, sha256: sha(smallData), etag: expect.stringMatching(/\S/) });
    expect(await s.upload(big, 'f/big.bin', { mode: 0o640, mtimeMs })).toEqual({ size: bigData.length, sha256: sha(bigData), etag: expect.stringMatching(/\S/) });
    const info = await s.stat('f/small.bin');
    expect(info).toMatchObject({ type: 'file', size: 3000, mode: 0o600, mtimeMs });
    expect((await s.stat('f/big.bin'))?.mode).toBe(0o640);
    expect(await s.hash('f/big.bin')).toBe(sha(bigData));
    for (const [key, data, mode] of [['f/small.bin', smallData, 0o600], ['f/big.bin', bigData, 0o640]] as const) {
      const target = join(work, 'restored', key);
      const got = await s.download(key, target, { mode, mtimeMs });
      expect(got.sha256).toBe(sha(data));
      expect(sha(await readFile(target))).toBe(sha(data));
      const local = await stat(target);
      expect(local.mode & 0o7777).toBe(mode);
      expect(Math.abs(local.mtimeMs - mtimeMs)).toBeLessThan(1000);
    }
    // The download left no temporary file beside its target.
    expect((await host.readdir(join(work, 'restored', 'f'))).sort()).toEqual(['big.bin', 'small.bin']);
  });

  it('downloads in place: created under its own name, no temporary; a file already there is replaced through a temporary; a missing object leaves nothing', async () => {
    const s = store('p5i/');
    const data = randomBytes(3000);
    await server.putObject(BUCKET, 'p5i/a.bin', data);
    const mtimeMs = Date.parse('2024-05-06T07:08:09Z');
    const folder = join(work, 'p5i', 'new', 'deeper');
    const created: string[] = [];
    const watching = Object.create(host) as RealHost;
    watching.writeFile = async (path, body, options) => {
      await host.writeFile(path, body, options);
      created.push(String(path));
    };
    const inPlace = new S3Store(watching, client(), `s3://${BUCKET}/p5i/`, 'p5i/');
    // A folder that is not there yet is made; the only file created is the target itself.
    const got = await inPlace.download('a.bin', join(folder, 'a.bin'), { mode: 0o600, mtimeMs, inPlace: true });
    expect(got).toMatchObject({ size: data.length, sha256: sha(data) });
    expect(created).toEqual([join(folder, 'a.bin')]);
    expect(sha(await readFile(join(folder, 'a.bin')))).toBe(sha(data));
    expect((await stat(join(folder, 'a.bin'))).mode & 0o7777).toBe(0o600);
    expect((await stat(join(folder, 'a.bin'))).mtimeMs).toBe(mtimeMs);
    // A file that appeared at the path meanwhile: not an error, the object replaces it through a temporary name.
    await writeFile(join(folder, 'b.bin'), 'written meanwhile');
    created.length = 0;
    await inPlace.download('a.bin', join(folder, 'b.bin'), { mode: 0o644, mtimeMs, inPlace: true });
    expect(sha(await readFile(join(folder, 'b.bin')))).toBe(sha(data));
    expect(created).toHaveLength(1);
    expect(created[0]).toMatch(/\.b\.bin\.persist-tmp-[0-9a-f]{12}$/);
    await expect(s.download('none.bin', join(folder, 'none.bin'), { mode: 0o600, mtimeMs, inPlace: true })).rejects.toBeInstanceOf(StoreMissing);
    expect((await host.readdir(folder)).sort()).toEqual(['a.bin', 'b.bin']);
  });

  it('with flushLater, flushes a streamed (large) download at once and leaves a small one to the caller', async () => {
    const big = randomBytes(17 * MiB);
    await server.putObject(BUCKET, 'p5f/big.bin', big);
    await server.putObject(BUCKET, 'p5f/small.bin', Buffer.from('small'));
    const flushed: string[] = [];
    const watching = Object.create(host) as RealHost;
    watching.fsync = async (path, options) => {
      flushed.push(String(path));
      return host.fsync(path, options);
    };
    const s = new S3Store(watching, client(), `s3://${BUCKET}/p5f/`, 'p5f/');
    const folder = join(work, 'p5f');
    for (const name of ['big.bin', 'small.bin']) await s.download(name, join(folder, name), { mode: 0o644, mtimeMs: 0, flushLater: true, inPlace: true });
    expect(flushed).toHaveLength(1);
    expect(flushed[0]).toMatch(/\/\.big\.bin\.persist-tmp-[0-9a-f]{12}$/);
    expect(sha(await readFile(join(folder, 'big.bin')))).toBe(sha(big));
  });

  it('downloads with one GET and no HEAD, small (in memory) or large (streamed and hashed); a missing object is StoreMissing', async () => {
    const s = store('p5/');
    const smallData = randomBytes(5000);
    const bigData = randomBytes(17 * MiB + 5);
    await server.putObject(BUCKET, 'p5/small.bin', smallData);
    await server.putObject(BUCKET, 'p5/big.bin', bigData);
    const mtimeMs = Date.parse('2024-01-02T03:04:05Z');
    server.resetCounts();
    for (const [key, data] of [['small.bin', smallData], ['big.bin', bigData]] as const) {
      const target = join(work, 'p5', key);
      const got = await s.download(key, target, { mode: 0o640, mtimeMs });
      expect(got).toMatchObject({ size: data.length, sha256: sha(data), etag: expect.stringMatching(/\S/) });
      expect(sha(await readFile(target))).toBe(sha(data));
      expect((await stat(target)).mode & 0o7777).toBe(0o640);
    }
    // GETs only (2, or more if one was retried on a busy machine): no HEAD before them.
    expect(Object.keys(server.stats().requests)).toEqual(['GET']);
    expect(server.stats().requests.GET).toBeGreaterThanOrEqual(2);
    expect((await stat(join(work, 'p5', 'small.bin'))).mode & 0o7777).toBe(0o640);
    // A mode the umask would narrow (group and other write under 022) is set all the same, on
    // every file, whichever mode came first.
    for (const name of ['wide1.bin', 'wide2.bin']) {
      await s.download('small.bin', join(work, 'p5w', name), { mode: 0o666, mtimeMs });
      expect((await stat(join(work, 'p5w', name))).mode & 0o7777).toBe(0o666);
    }
    const missing = join(work, 'p5', 'none.bin');
    await expect(s.download('none.bin', missing, { mode: 0o600, mtimeMs })).rejects.toBeInstanceOf(StoreMissing);
    expect(await host.lstat(missing)).toBeNull();
    expect((await host.readdir(join(work, 'p5'))).sort()).toEqual(['big.bin', 'small.bin']);
    // A hash streams the object through sha256: a read-only command can ask for it, and nothing is written.
    const readOnly = new S3Store(readOnlyHost(host), client(), `s3://${BUCKET}/p5/`, 'p5/');
    expect(await readOnly.hash('big.bin')).toBe(sha(bigData));
  });

  describe('uploadGrown: a file that only grew sends its tail; anything else is a whole upload', () => {
    const mtimeMs = Date.parse('2024-03-04T05:06:07Z');
    const base = randomBytes(20 * MiB + 333);
    const tail = randomBytes(1024);

    async function stored(key: string): Promise<{ s: S3Store; file: string; known: { size: number; sha256: string; etag: string } }> {
      const s = store('p6/');
      const file = join(work, 'p6', key);
      await mkdir(join(work, 'p6'), { recursive: true });
      await writeFile(file, base);
      const up = await s.upload(file, key, { mode: 0o600, mtimeMs });
      return { s, file, known: { size: up.size, sha256: up.sha256, etag: up.etag! } };
    }

    it('grown: copies the whole 8 MiB parts server-side and sends the rest', async () => {
      const { s, file, known } = await stored('grown.jsonl');
      await appendFile(file, tail);
      server.resetCounts();
      const result = await s.uploadGrown(file, 'grown.jsonl', { mode: 0o600, mtimeMs }, known);
      const whole = Buffer.concat([base, tail]);
      expect(result).toMatchObject({ size: whole.length, sha256: sha(whole), copied: 16 * MiB });
      expect(server.stats().totalBytesIn).toBeLessThan(whole.length - 16 * MiB + 64 * 1024);
      expect(sha((await server.getObject(BUCKET, 'p6/grown.jsonl'))!)).toBe(sha(whole));
      expect((await s.stat('grown.jsonl'))?.mode).toBe(0o600);
    });

    it('the object changed since it was known (another ETag): a whole upload, never a splice', async () => {
      const { s, file, known } = await stored('changed.jsonl');
      const other = Buffer.from(base);
      other[5] = other[5]! ^ 0xff; // same size, other bytes: only the ETag tells
      await server.putObject(BUCKET, 'p6/changed.jsonl', other);
      await appendFile(file, tail);
      server.resetCounts();
      const result = await s.uploadGrown(file, 'changed.jsonl', { mode: 0o600, mtimeMs }, known);
      const whole = Buffer.concat([base, tail]);
      expect(result.copied ?? 0).toBe(0);
      expect(server.stats().totalBytesIn).toBeGreaterThanOrEqual(whole.length);
      expect(sha((await server.getObject(BUCKET, 'p6/changed.jsonl'))!)).toBe(sha(whole));
    });

    it('the file does not start with the known bytes: a whole upload', async () => {
      const { s, file, known } = await stored('rewritten.jsonl');
      const rewritten = Buffer.concat([randomBytes(1024), base]);
      await writeFile(file, rewritten);
      const result = await s.uploadGrown(file, 'rewritten.jsonl', { mode: 0o600, mtimeMs }, known);
      expect(result.copied ?? 0).toBe(0);
      expect(sha((await server.getObject(BUCKET, 'p6/rewritten.jsonl'))!)).toBe(sha(rewritten));
    });
  });

  it('copies, renames (copy + delete) and removes a folder key with everything under it', async () => {
    const s = store('p4/');
    await s.write('b/file', 'v1');
    await s.copy('b/file', 'b/file.1');
    await s.rename('b/file.1', 'b/file.2');
    expect(await s.readdir('b')).toEqual(['file', 'file.2']);
    for (let i = 0; i < 30; i++) await s.write(`gone/${i}/x`, String(i));
    await s.write('gone-not', 'stays');
    await s.remove('gone');
    expect(await s.stat('gone')).toBeNull();
    expect((await s.read('gone-not')).toString()).toBe('stays');
    await s.remove('b/file.2');
    await s.remove('b/absent');
    expect(await s.readdir('b')).toEqual(['file']);
    expect(s.localPath()).toBeNull();
    await expect(new S3Store(host, client(), 's3://x', '').remove('')).rejects.toThrow(/refusing to remove every object/);
  });

  it('the lazy ApiStore loads the client on first use and speaks through the resolved bucket', async () => {
    const bucket: ResolvedBucket = {
      key: 'data', name: BUCKET, endpoint: server.endpoint, region: 'us-east-1', pathStyle: true, provider: 'other',
      credentials: { accessKeyId: new Sensitive(S3RVER_ACCESS_KEY), secretAccessKey: new Sensitive(S3RVER_SECRET_KEY) }, prefix: 'lazy/',
    };
    const api = new ApiStore(readOnlyHost(host), bucket);
    expect(api.where('a/b')).toBe(`s3://${BUCKET}/lazy/a/b`);
    await store('lazy/').write('a/b', 'x');
    expect((await api.stat('a/b'))?.type).toBe('file');
    // A download onto local disk through a read-only host is refused (plan must not write).
    await expect(api.download('a/b', join(work, 'ro'), { mode: 0o644, mtimeMs: 0 })).rejects.toThrow();
    const { credentials: _, ...withoutKeys } = bucket;
    await expect(new ApiStore(host, withoutKeys).stat('a')).rejects.toThrow(/has no credentials/);
  });
});
