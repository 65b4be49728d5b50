import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { RealHost } from '../../src/host/real.js';
import { ManifestError, MANIFEST_NAME, parseManifest, readManifest, serializeManifest, writeManifest, type SyncManifest } from '../../src/sync/manifest.js';

const SHA = 'a'.repeat(64);

describe('sync manifest', () => {
  let dir: string;
  const host = new RealHost();
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'persist-manifest-'));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('round-trips through the mirror, written atomically with sorted paths', async () => {
    const manifest: SyncManifest = {
      version: 1,
      files: {
        'z.db': { size: 3, mtimeMs: 1700000000123.5, sha256: SHA, mode: 0o600 },
        'a/b.txt': { size: 0, mtimeMs: 1, sha256: 'b'.repeat(64), mode: 0o644 },
      },
      pushedAt: '2026-01-02T03:04:05.000Z',
    };
    await writeManifest(host, dir, manifest);
    expect(await readdir(dir)).toEqual([MANIFEST_NAME]); // no temporary left behind
    const text = await readFile(join(dir, MANIFEST_NAME), 'utf8');
    expect(text.indexOf('a/b.txt')).toBeLessThan(text.indexOf('z.db'));
    expect(await readManifest(host, dir)).toEqual(manifest);
    expect(serializeManifest((await readManifest(host, dir))!)).toBe(text);
  });

  it('keeps restoredAt when present', () => {
    const text = serializeManifest({ version: 1, files: {}, pushedAt: '2026-01-01T00:00:00.000Z', restoredAt: '2026-01-03T00:00:00.000Z' });
    expect(parseManifest(text, 'm').restoredAt).toBe('2026-01-03T00:00:00.000Z');
  });

  it('is null when the mirror has none', async () => {
    expect(await readManifest(host, dir)).toBeNull();
    expect(await readManifest(host, join(dir, 'missing'))).toBeNull();
  });

  it('names the file and what was expected when it is damaged', async () => {
    await writeFile(join(dir, MANIFEST_NAME), '{"version": 1, "files": ');
    await expect(readManifest(host, dir)).rejects.toThrow(new RegExp(`${MANIFEST_NAME}: not valid JSON`));
    await expect(readManifest(host, dir)).rejects.toBeInstanceOf(ManifestError);
  });

  it.each([
    ['{"version": 2, "files": {}, "pushedAt": "2026-01-01T00:00:00Z"}', /unsupported version 2/],
    ['{"version": 1, "files": [], "pushedAt": "2026-01-01T00:00:00Z"}', /"files" must be an object/],
    ['{"version": 1, "files": {}, "pushedAt": "yesterday"}', /"pushedAt" must be an ISO date/],
    [`{"version": 1, "files": {"a": {"size": 1, "mtimeMs": 1, "sha256": "xyz", "mode": 420}}, "pushedAt": "2026-01-01T00:00:00Z"}`, /files\["a"\] must be/],
    [`{"version": 1, "files": {"../etc/passwd": {"size": 1, "mtimeMs": 1, "sha256": "${SHA}", "mode": 420}}, "pushedAt": "2026-01-01T00:00:00Z"}`, /must be relative and stay inside/],
    [`{"version": 1, "files": {"/abs": {"size": 1, "mtimeMs": 1, "sha256": "${SHA}", "mode": 420}}, "pushedAt": "2026-01-01T00:00:00Z"}`, /must be relative/],
    ['[]', /expected \{"version": 1/],
  ])('rejects %s', (text, message) => {
    expect(() => parseManifest(text, '/m/.persist-sync.json')).toThrow(message);
    expect(() => parseManifest(text, '/m/.persist-sync.json')).toThrow(/^\/m\/\.persist-sync\.json: /);
  });
});
