import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { RealHost } from '../../src/host/real.js';
import { recordingHost } from '../../src/host/wrappers.js';
import { MountedStore } from '../../src/store/mounted.js';
import {
  chooseShardCount,
  idealShardCount,
  ManifestError,
  MANIFEST_NAME,
  ManifestWriter,
  MAX_SHARDS,
  parseManifestFile,
  parseShard,
  readManifest,
  SHARD_DIR_NAME,
  shardFileName,
  shardOf,
  writeManifest,
  type ManifestEntry,
} from '../../src/resources/sync/manifest.js';

const SHA = 'a'.repeat(64);
const PUSHED_AT = '2026-01-02T03:04:05.000Z';

function entries(count: number, prefix = 'memory/'): Record<string, ManifestEntry> {
  const files: Record<string, ManifestEntry> = {};
  for (let i = 0; i < count; i++) files[`${prefix}${i}.md`] = { size: i, mtimeMs: 1_700_000_000_000 + i + 0.25, sha256: SHA, mode: i % 2 ? 0o600 : 0o644 };
  return files;
}

describe('shard choice', () => {
  it('about 200 entries a shard, a power of two, at most 64', () => {
    expect([0, 1, 200, 201, 400, 401, 2000, 10_000, 1_000_000].map(idealShardCount)).toEqual([1, 1, 1, 2, 2, 4, 16, 64, MAX_SHARDS]);
  });

  it('re-shards only when the ideal count is four times away', () => {
    expect(chooseShardCount(null, 2000)).toBe(16);
    expect(chooseShardCount(16, 6400)).toBe(16); // ideal 32: kept
    expect(chooseShardCount(16, 6401)).toBe(64); // ideal 64: grown
    expect(chooseShardCount(16, 801)).toBe(16); // ideal 8: kept
    expect(chooseShardCount(16, 800)).toBe(4); // ideal 4: shrunk
    expect(chooseShardCount(16, 400)).toBe(2);
    expect(chooseShardCount(1, 401)).toBe(4);
  });

  it('spreads paths evenly and always puts a path in the same shard', () => {
    const counts = new Array<number>(16).fill(0);
    for (const path of Object.keys(entries(2000))) counts[shardOf(path, 16)]! += 1;
    expect(Math.min(...counts)).toBeGreaterThan(80);
    expect(Math.max(...counts)).toBeLessThan(170);
    expect(shardOf('memory/42.md', 16)).toBe(shardOf('memory/42.md', 16));
    expect(shardOf('é/ü', 1)).toBe(0);
  });

  it('names shards by index and count', () => {
    expect(shardFileName(0, 1)).toBe('0-of-1.json');
    expect(shardFileName(3, 16)).toBe('03-of-16.json');
    expect(shardFileName(63, 64)).toBe('63-of-64.json');
  });
});

describe('sync manifest', () => {
  let dir: string;
  const host = new RealHost();
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'persist-manifest-'));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('round-trips through the mirror: a small root and shards, each written atomically', async () => {
    const files = entries(2000);
    await writeManifest(new MountedStore(host, dir), '', files, PUSHED_AT);
    expect((await readdir(dir)).sort()).toEqual([SHARD_DIR_NAME, MANIFEST_NAME]);
    const shardNames = await readdir(join(dir, SHARD_DIR_NAME));
    expect(shardNames.sort()).toEqual(Array.from({ length: 16 }, (_, i) => shardFileName(i, 16))); // no temporary left behind
    const root = await readFile(join(dir, MANIFEST_NAME), 'utf8');
    expect(root.length).toBeLessThan(2000);
    const parsed = parseManifestFile(root, 'root');
    expect(parsed).toMatchObject({ version: 2, root: { pushedAt: PUSHED_AT, files: 2000 } });

    const manifest = (await readManifest(new MountedStore(host, dir), ''))!;
    expect(manifest.files).toEqual(files);
    expect(manifest.pushedAt).toBe(PUSHED_AT);
    expect(manifest.storage).toMatchObject({ version: 2, interrupted: [] });
    // One entry a line, sorted: a shard is as readable as the old manifest.
    const shard = await readFile(join(dir, SHARD_DIR_NAME, shardNames[0]!), 'utf8');
    const lines = shard.trim().split('\n').slice(1, -1);
    expect(lines.map((line) => JSON.parse(`{${line.replace(/,$/, '')}}`) as object).map((o) => Object.keys(o)[0])).toEqual(
      Object.keys(parseShard(shard, 's', 0, 16)).sort(),
    );
  });

  it('rewrites only the shards whose entries changed, then the root', async () => {
    const files = entries(2000);
    await writeManifest(new MountedStore(host, dir), '', files, PUSHED_AT);
    const previous = (await readManifest(new MountedStore(host, dir), ''))!;
    const changedPath = 'memory/1234.md';
    const recorder = recordingHost(host);
    await writeManifest(new MountedStore(recorder, dir), '', { ...files, [changedPath]: { ...files[changedPath]!, size: 99 } }, '2026-02-01T00:00:00.000Z', previous);
    const written = recorder.writes.filter((w) => w.method === 'writeFileAtomic').map((w) => w.path.slice(dir.length + 1));
    expect(written).toEqual([`${SHARD_DIR_NAME}/${shardFileName(shardOf(changedPath, 16), 16)}`, MANIFEST_NAME]);
    expect(recorder.writes.filter((w) => w.method === 'remove')).toEqual([]);
    expect((await readManifest(new MountedStore(host, dir), ''))!.files[changedPath]!.size).toBe(99);
  });

  it('re-shards when the mirror grows, and removes the shards of the old count', async () => {
    await writeManifest(new MountedStore(host, dir), '', entries(100), PUSHED_AT);
    expect(await readdir(join(dir, SHARD_DIR_NAME))).toEqual(['0-of-1.json']);
    const previous = (await readManifest(new MountedStore(host, dir), ''))!;
    await writeManifest(new MountedStore(host, dir), '', entries(1000), PUSHED_AT, previous);
    expect((await readdir(join(dir, SHARD_DIR_NAME))).sort()).toEqual(['0-of-8.json', '1-of-8.json', '2-of-8.json', '3-of-8.json', '4-of-8.json', '5-of-8.json', '6-of-8.json', '7-of-8.json']);
    expect(Object.keys((await readManifest(new MountedStore(host, dir), ''))!.files)).toHaveLength(1000);
  });

  it('a shard newer than the root (an interrupted push) is read as found and marked', async () => {
    await writeManifest(new MountedStore(host, dir), '', entries(500), PUSHED_AT);
    const previous = (await readManifest(new MountedStore(host, dir), ''))!;
    const writer = new ManifestWriter(new MountedStore(host, dir), '', previous, 501);
    const extra = 'memory/new.md';
    const index = writer.shardOf(extra);
    const shardFiles = Object.fromEntries(Object.entries(previous.files).filter(([path]) => writer.shardOf(path) === index));
    shardFiles[extra] = { size: 1, mtimeMs: 1, sha256: SHA, mode: 0o644 };
    expect(await writer.putShard(index, shardFiles)).toBe(true);
    // No commit: the root still describes the previous push.
    const read = (await readManifest(new MountedStore(host, dir), ''))!;
    expect(read.files[extra]).toEqual({ size: 1, mtimeMs: 1, sha256: SHA, mode: 0o644 });
    expect(read.storage).toMatchObject({ version: 2, interrupted: [index] });
    expect(read.pushedAt).toBe(PUSHED_AT);
  });

  it('a shard left by a crash in another layout is removed by the next full write', async () => {
    await writeManifest(new MountedStore(host, dir), '', entries(10), PUSHED_AT);
    await writeFile(join(dir, SHARD_DIR_NAME, '3-of-4.json'), '{"version":2,"files":{}}\n');
    await writeFile(join(dir, SHARD_DIR_NAME, '.0-of-1.json.persist-tmp-1-abcd'), 'partial');
    const previous = (await readManifest(new MountedStore(host, dir), ''))!;
    // Same layout and nothing interrupted: no listing, leftovers stay (they are never read).
    await writeManifest(new MountedStore(host, dir), '', entries(11), PUSHED_AT, previous);
    expect((await readdir(join(dir, SHARD_DIR_NAME))).length).toBe(3);
    // A mirror written without a previous manifest lists the folder and removes them.
    await writeManifest(new MountedStore(host, dir), '', entries(11), PUSHED_AT, null);
    expect(await readdir(join(dir, SHARD_DIR_NAME))).toEqual(['0-of-1.json']);
  });

  it('reads a version-1 manifest (one file, written by earlier versions)', async () => {
    const v1 = {
      version: 1,
      files: { 'z.db': { size: 3, mtimeMs: 1700000000123.5, sha256: SHA, mode: 0o600 }, 'a/b.txt': { size: 0, mtimeMs: 1, sha256: 'b'.repeat(64), mode: 0o644 } },
      pushedAt: PUSHED_AT,
      restoredAt: '2026-01-03T00:00:00.000Z',
    };
    await writeFile(join(dir, MANIFEST_NAME), JSON.stringify(v1, null, 1));
    const manifest = (await readManifest(new MountedStore(host, dir), ''))!;
    expect(manifest).toEqual({ files: v1.files, pushedAt: PUSHED_AT, restoredAt: v1.restoredAt, storage: { version: 1 } });
    // Converted by the next write, which keeps restoredAt.
    await writeManifest(new MountedStore(host, dir), '', manifest.files, '2026-02-01T00:00:00.000Z', manifest);
    const converted = (await readManifest(new MountedStore(host, dir), ''))!;
    expect(converted).toMatchObject({ files: v1.files, restoredAt: v1.restoredAt, storage: { version: 2, interrupted: [] } });
  });

  it('is null when the mirror has none', async () => {
    expect(await readManifest(new MountedStore(host, dir), '')).toBeNull();
    expect(await readManifest(new MountedStore(host, join(dir, 'missing')), '')).toBeNull();
  });

  it('names the file and what was expected when it is damaged', async () => {
    await writeFile(join(dir, MANIFEST_NAME), '{"version": 1, "files": ');
    await expect(readManifest(new MountedStore(host, dir), '')).rejects.toThrow(new RegExp(`${MANIFEST_NAME}: not valid JSON`));
    await expect(readManifest(new MountedStore(host, dir), '')).rejects.toBeInstanceOf(ManifestError);
  });

  it('a missing shard is an error naming it, never an empty shard', async () => {
    await writeManifest(new MountedStore(host, dir), '', entries(300), PUSHED_AT);
    await rm(join(dir, SHARD_DIR_NAME, '1-of-2.json'));
    await expect(readManifest(new MountedStore(host, dir), '')).rejects.toThrow(/\.persist-sync\/1-of-2\.json: missing \(ENOENT\); .*\.persist-sync\.json lists \d+ files in it/);
    await expect(readManifest(new MountedStore(host, dir), '')).rejects.toBeInstanceOf(ManifestError);
  });

  it('a damaged shard, or a path in the wrong shard, is an error naming the shard', async () => {
    await writeManifest(new MountedStore(host, dir), '', entries(300), PUSHED_AT);
    await writeFile(join(dir, SHARD_DIR_NAME, '0-of-2.json'), '{"version":2,"files":');
    await expect(readManifest(new MountedStore(host, dir), '')).rejects.toThrow(/0-of-2\.json: not valid JSON/);
    const wrong = Object.keys(entries(300)).find((path) => shardOf(path, 2) === 1)!;
    await writeFile(join(dir, SHARD_DIR_NAME, '0-of-2.json'), JSON.stringify({ version: 2, files: { [wrong]: { size: 1, mtimeMs: 1, sha256: SHA, mode: 420 } } }));
    await expect(readManifest(new MountedStore(host, dir), '')).rejects.toThrow(`0-of-2.json: file path "${wrong}" belongs in shard 1-of-2.json`);
  });

  it('the shard folder is created on the first write only', async () => {
    await mkdir(join(dir, 'mirror'));
    const recorder = recordingHost(host);
    await writeManifest(new MountedStore(recorder, join(dir, 'mirror')), '', entries(3), PUSHED_AT);
    expect(recorder.writes.filter((w) => w.method === 'mkdir').map((w) => w.path)).toEqual([join(dir, 'mirror', SHARD_DIR_NAME)]);
  });

  const shardRoot = (shards: string) => `{"version": 2, "pushedAt": "2026-01-01T00:00:00Z", "files": 0, "shards": ${shards}}`;
  it.each([
    ['{"version": 3, "files": {}, "pushedAt": "2026-01-01T00:00:00Z"}', /unsupported version 3; expected 1 or 2/],
    ['{"version": 1, "files": [], "pushedAt": "2026-01-01T00:00:00Z"}', /"files" must be an object/],
    ['{"version": 1, "files": {}, "pushedAt": "yesterday"}', /"pushedAt" must be an ISO date/],
    [`{"version": 1, "files": {"a": {"size": 1, "mtimeMs": 1, "sha256": "xyz", "mode": 420}}, "pushedAt": "2026-01-01T00:00:00Z"}`, /files\["a"\] must be/],
    [`{"version": 1, "files": {"../etc/passwd": {"size": 1, "mtimeMs": 1, "sha256": "${SHA}", "mode": 420}}, "pushedAt": "2026-01-01T00:00:00Z"}`, /must be relative and stay inside/],
    [`{"version": 1, "files": {"/abs": {"size": 1, "mtimeMs": 1, "sha256": "${SHA}", "mode": 420}}, "pushedAt": "2026-01-01T00:00:00Z"}`, /must be relative/],
    ['[]', /expected \{"version": 2/],
    [shardRoot('[]'), /"shards" must list 1 to 64 shards/],
    [shardRoot(`[{"files": 1}]`), /shards\[0\] must be \{"files": <count>, "sha256"/],
    ['{"version": 2, "pushedAt": "2026-01-01T00:00:00Z", "files": -1, "shards": []}', /"files" must be a count/],
  ])('rejects %s', (text, message) => {
    expect(() => parseManifestFile(text, '/m/.persist-sync.json')).toThrow(message);
    expect(() => parseManifestFile(text, '/m/.persist-sync.json')).toThrow(/^\/m\/\.persist-sync\.json: /);
  });

  it('rejects a shard path escaping the folder', () => {
    expect(() => parseShard(`{"version": 2, "files": {"../x": {"size": 1, "mtimeMs": 1, "sha256": "${SHA}", "mode": 420}}}`, 's', 0, 1)).toThrow(/must be relative and stay inside/);
  });
});
