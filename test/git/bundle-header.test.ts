import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { BundleHeaderError, parseBundleHeader, readBundleHeader } from '../../src/resources/bundle/header.js';
import { RealHost } from '../../src/host/real.js';
import { commit, git, gitWithInput, initRepo, tempDir } from './helpers.js';

const host = new RealHost();
let dir: { path: string; cleanup: () => void };
beforeEach(() => (dir = tempDir()));
afterEach(() => dir.cleanup());

/** `git bundle list-heads` as [{sha, name}]. */
function listHeads(repo: string, file: string): { sha: string; name: string }[] {
  return git(repo, 'bundle', 'list-heads', file)
    .split('\n')
    .filter(Boolean)
    .map((line) => {
      const [sha, name] = line.split(' ');
      return { sha: sha!, name: name! };
    });
}

function sampleRepo(objectFormat: 'sha1' | 'sha256' = 'sha1'): string {
  const repo = initRepo(join(dir.path, 'repo'), { 'a.txt': 'a\n' }, { objectFormat });
  git(repo, 'branch', 'side');
  commit(repo, { 'b.txt': 'b\n' }, 'second');
  git(repo, 'tag', '-a', 'v1', '-m', 'v1');
  return repo;
}

describe('readBundleHeader on bundles made by git', () => {
  it('parses a v2 bundle like git bundle list-heads', async () => {
    const repo = sampleRepo();
    const file = join(dir.path, 'v2.bundle');
    git(repo, 'bundle', 'create', '-q', file, 'HEAD', '--branches', '--tags');
    const header = await readBundleHeader(host, file);
    expect(header).toMatchObject({ version: 2, objectFormat: 'sha1', capabilities: {}, prerequisites: [] });
    expect(header.refs).toEqual(listHeads(repo, file));
    expect(header.refs[0]).toEqual({ sha: git(repo, 'rev-parse', 'HEAD'), name: 'HEAD' });
    expect(readFileSync(file).subarray(header.length, header.length + 4).toString()).toBe('PACK');
  });

  it('parses a v3 bundle and a sha256 bundle', async () => {
    const repo = sampleRepo();
    const file = join(dir.path, 'v3.bundle');
    git(repo, 'bundle', 'create', '-q', '--version=3', file, '--branches');
    const v3 = await readBundleHeader(host, file);
    expect(v3).toMatchObject({ version: 3, objectFormat: 'sha1', capabilities: { 'object-format': 'sha1' } });
    expect(v3.refs).toEqual(listHeads(repo, file));

    dir.cleanup();
    dir = tempDir();
    const repo256 = sampleRepo('sha256');
    const file256 = join(dir.path, 'sha256.bundle');
    git(repo256, 'bundle', 'create', '-q', file256, 'HEAD', '--branches', '--tags');
    const header = await readBundleHeader(host, file256);
    expect(header).toMatchObject({ version: 3, objectFormat: 'sha256' });
    expect(header.refs).toEqual(listHeads(repo256, file256));
    expect(header.refs[0]!.sha).toHaveLength(64);
  });

  it('parses prerequisites of an incremental bundle', async () => {
    const repo = sampleRepo();
    const base = git(repo, 'rev-parse', 'HEAD~1');
    const file = join(dir.path, 'inc.bundle');
    git(repo, 'bundle', 'create', '-q', file, `${base}..main`);
    const header = await readBundleHeader(host, file);
    expect(header.prerequisites).toEqual([{ sha: base, comment: 'initial' }]);
    expect(header.refs).toEqual([{ sha: git(repo, 'rev-parse', 'main'), name: 'refs/heads/main' }]);
  });

  it('reads on when the header is longer than the first read (2,000 tags)', async () => {
    const repo = sampleRepo();
    const head = git(repo, 'rev-parse', 'HEAD');
    const lines = Array.from({ length: 2000 }, (_, i) => `create refs/tags/release-with-a-long-name-${String(i).padStart(5, '0')} ${head}\n`).join('');
    gitWithInput(repo, lines, 'update-ref', '--stdin');
    const file = join(dir.path, 'many.bundle');
    git(repo, 'bundle', 'create', '-q', file, '--branches', '--tags');
    const header = await readBundleHeader(host, file);
    expect(header.length).toBeGreaterThan(64 * 1024);
    expect(header.refs).toHaveLength(2003);
    expect(header.refs).toEqual(listHeads(repo, file));
  }, 60_000);
});

describe('parseBundleHeader on hand-written headers', () => {
  const a = 'a'.repeat(40);
  const b = 'b'.repeat(64);

  it('parses v3 capabilities, sha256 ids and prerequisites with and without comments', () => {
    const text = `# v3 git bundle\n@object-format=sha256\n@filter=blob:none\n-${b} base commit\n-${b}\n${b} HEAD\n${b} refs/heads/main\n\nPACK`;
    const header = parseBundleHeader(Buffer.from(text), 'x.bundle');
    expect(header).toEqual({
      version: 3,
      capabilities: { 'object-format': 'sha256', filter: 'blob:none' },
      objectFormat: 'sha256',
      prerequisites: [
        { sha: b, comment: 'base commit' },
        { sha: b, comment: '' },
      ],
      refs: [
        { sha: b, name: 'HEAD' },
        { sha: b, name: 'refs/heads/main' },
      ],
      length: text.length - 4,
    });
  });

  it.each([
    ['not a bundle', 'PK\u0003\u0004zipfile', /x\.bundle: not a git bundle/],
    ['an empty file', '', /x\.bundle: not a git bundle/],
    ['a truncated header', `# v2 git bundle\n${a} refs/heads/main\n${a.slice(0, 10)}`, /x\.bundle: truncated git bundle/],
    ['a short id', `# v2 git bundle\n${a.slice(1)} refs/heads/main\n\n`, /header line 2: expected a 40-digit sha1 object id/],
    ['a sha256 id without the capability', `# v3 git bundle\n${b} refs/heads/main\n\n`, /header line 2: expected a 40-digit sha1/],
    ['a capability in v2', `# v2 git bundle\n@object-format=sha1\n${a} HEAD\n\n`, /header line 2: capability lines are only allowed in v3/],
    ['an unknown object format', `# v3 git bundle\n@object-format=md5\n\n`, /unknown object format "md5"/],
    ['a bad ref name', `# v2 git bundle\n${a} main\n\n`, /header line 2: expected "<object id> <refname>"/],
    ['no refs at all', `# v2 git bundle\n\n`, /lists no refs/],
  ])('rejects %s with a clear error', (_, text, message) => {
    expect(() => parseBundleHeader(Buffer.from(text, 'latin1'), 'x.bundle')).toThrow(BundleHeaderError);
    expect(() => parseBundleHeader(Buffer.from(text, 'latin1'), 'x.bundle')).toThrow(message);
  });

  it('asks for more data when a partial read ends inside the header', () => {
    const text = `# v2 git bundle\n${a} refs/heads/main\n`;
    expect(parseBundleHeader(Buffer.from(text), 'x', false)).toBe('need-more');
    expect(parseBundleHeader(Buffer.from('# v2 git'), 'x', false)).toBe('need-more');
  });

  it('reports a truncated bundle file read from disk', async () => {
    const file = join(dir.path, 'cut.bundle');
    writeFileSync(file, `# v2 git bundle\n${a} refs/heads/main\n${a}`);
    await expect(readBundleHeader(host, file)).rejects.toThrow(`${file}: truncated git bundle`);
  });
});
