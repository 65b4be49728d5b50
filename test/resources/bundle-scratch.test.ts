// The scratch folder's copy of a file that git keeps replacing (scratch.ts, copyIntoScratch). The
// race itself (an agent's git renaming a new index into place between cp's stat and its open)
// lasts microseconds; a `cp` put first on PATH answers as GNU cp does then, a set number of
// times, before it runs the real one.
import { chmod, mkdir, mkdtemp, readFile, rm, stat, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { RealHost } from '../../src/host/real.js';
import { copyIntoScratch } from '../../src/resources/bundle/scratch.js';

const host = new RealHost();
let root: string;
let savedPath: string | undefined;

/** `cp` answers `message` the first `failures` times (counted in `calls`), then copies. */
async function shimCp(failures: number, message: string): Promise<void> {
  const script = `#!/bin/sh
calls=$(cat "${root}/calls" 2>/dev/null || echo 0)
echo $((calls + 1)) > "${root}/calls"
if [ "$calls" -lt ${failures} ]; then echo "cp: ${message}" >&2; exit 1; fi
exec /bin/cp "$@"
`;
  await writeFile(join(root, 'bin', 'cp'), script);
  await chmod(join(root, 'bin', 'cp'), 0o755);
}

const calls = async () => Number((await readFile(join(root, 'calls'), 'utf8')).trim());

beforeEach(async () => {
  root = await mkdtemp(join(tmpdir(), 'persist-scratch-'));
  await writeFile(join(root, 'index'), 'the index');
  await utimes(join(root, 'index'), 1_700_000_000, 1_700_000_000);
  await mkdir(join(root, 'bin'));
  savedPath = process.env.PATH;
  process.env.PATH = `${join(root, 'bin')}:${savedPath ?? '/usr/bin:/bin'}`;
});

afterEach(async () => {
  process.env.PATH = savedPath;
  await rm(root, { recursive: true, force: true });
});

describe('copyIntoScratch', () => {
  const replaced = `skipping file '/repo/.git/index', as it was replaced while being copied`;

  it('copies again when the file was replaced while it was copied, keeping its mtime', async () => {
    await shimCp(2, replaced);
    await copyIntoScratch(host, join(root, 'index'), join(root, 'copy'));
    expect(await calls()).toBe(3);
    expect(await readFile(join(root, 'copy'), 'utf8')).toBe('the index');
    expect((await stat(join(root, 'copy'))).mtimeMs).toBe(1_700_000_000_000);
  });

  it('gives up after a few tries, naming the command and what it said', async () => {
    await shimCp(100, replaced);
    await expect(copyIntoScratch(host, join(root, 'index'), join(root, 'copy'))).rejects.toThrow(/^cp --preserve=timestamps -- .* failed \(exit 1\): cp: skipping file .* replaced while being copied$/);
    expect(await calls()).toBe(5);
  });

  it('any other failure is not tried again', async () => {
    await shimCp(100, `cannot open '/repo/.git/index' for reading: Permission denied`);
    await expect(copyIntoScratch(host, join(root, 'index'), join(root, 'copy'))).rejects.toThrow(/Permission denied/);
    expect(await calls()).toBe(1);
  });
});
