// Writes a new bundle of a local repository into the mount without ever leaving it without a
// complete, good bundle: build and verify it on local disk, copy it beside the target under a
// temporary name and check the copy, rotate the earlier generations (the current bundle stays in
// place throughout), rename the copy over the target, then verify what the mount now holds.
import { randomBytes } from 'node:crypto';
import { dirname, join } from 'node:path';
import { ActionError } from '../../errors.js';
import type { Host } from '../../host/types.js';
import { readBundleHeader, type BundleHeader } from './header.js';
import { git } from './git.js';

export interface WriteBundleRequest {
  /** Work tree of the repository. */
  repo: string;
  /** Absolute path of the bundle in the mount. */
  file: string;
  /** Earlier generations kept as `<file>.1` ... `<file>.<keep>`. */
  keep: number;
  /** Whether the repo's HEAD resolves to a commit (then the bundle records it). */
  includeHead: boolean;
}

export interface WriteBundleResult {
  header: BundleHeader;
  size: number;
  sha256: string;
  /** Generations present after the rotation, e.g. [1, 2]. */
  generations: number[];
}

/** The arguments after `git bundle create <file>`: the ref set persist bundles (see BUNDLED_REF_PREFIXES). */
export function bundleRevisionArgs(includeHead: boolean): string[] {
  return [...(includeHead ? ['HEAD'] : []), '--branches', '--tags'];
}

export function generationPath(file: string, generation: number): string {
  return `${file}.${generation}`;
}

function sameRefs(a: BundleHeader, b: BundleHeader): boolean {
  const text = (h: BundleHeader): string => h.refs.map((r) => `${r.sha} ${r.name}`).join('\n');
  return text(a) === text(b);
}

export async function writeBundle(
  host: Host,
  request: WriteBundleRequest,
  progress: (message: string) => void,
  signal?: AbortSignal,
): Promise<WriteBundleResult> {
  const { repo, file, keep } = request;
  const checkInterrupted = (): void => {
    if (signal?.aborted) throw new ActionError(`interrupted before ${file} was replaced; the previous bundle is unchanged`);
  };
  const workDir = join(host.env().TMPDIR ?? '/tmp', `persist-bundle-${host.pid()}-${randomBytes(6).toString('hex')}`);
  const local = join(workDir, 'repo.bundle');
  const mountTemp = `${file}.persist-tmp-${host.pid()}`;
  await host.mkdir(workDir, { mode: 0o700 });
  try {
    progress('creating the bundle on local disk');
    await git(host, ['-C', repo, 'bundle', 'create', '-q', local, ...bundleRevisionArgs(request.includeHead)]);
    await git(host, ['-C', repo, 'bundle', 'verify', '-q', local]);
    const header = await readBundleHeader(host, local);
    const size = (await host.stat(local))?.size ?? 0;
    const sha256 = await host.hashFile(local);
    checkInterrupted();

    progress('copying the bundle into the mount');
    await host.mkdir(dirname(file));
    await host.remove(mountTemp);
    await host.copyFile(local, mountTemp);
    await host.fsync(mountTemp);
    const copied = await host.stat(mountTemp);
    if (copied?.size !== size || (await host.hashFile(mountTemp)) !== sha256) {
      throw new ActionError(`the copy of the bundle at ${mountTemp} does not match the one written on local disk; ${file} is unchanged`);
    }
    checkInterrupted();

    progress('rotating earlier generations');
    await rotateGenerations(host, file, keep);
    checkInterrupted();
    await host.rename(mountTemp, file);

    progress('verifying the bundle in the mount');
    const stored = await host.stat(file);
    const storedHeader = await readBundleHeader(host, file);
    if (stored?.size !== size || !sameRefs(storedHeader, header) || (await host.hashFile(file)) !== sha256) {
      const previous = keep > 0 ? `; the previous bundle is kept as ${generationPath(file, 1)}` : '';
      throw new ActionError(`${file} does not match the bundle just written (size, refs or sha256 differ)${previous}`);
    }
    const generations: number[] = [];
    for (let generation = 1; generation <= keep; generation++) {
      if (await host.lstat(generationPath(file, generation))) generations.push(generation);
    }
    return { header, size, sha256, generations };
  } finally {
    await host.remove(mountTemp);
    await host.remove(workDir);
  }
}

/**
 * `<file>.<keep-1>` → `<file>.<keep>`, ..., `<file>.1` → `<file>.2`, then a copy of `<file>`
 * becomes `<file>.1`. `<file>` itself is never moved, so a complete bundle exists at every
 * moment (a crash leaves at worst a duplicate generation, never a missing bundle).
 */
async function rotateGenerations(host: Host, file: string, keep: number): Promise<void> {
  if (keep < 1 || !(await host.lstat(file))) return;
  for (let generation = keep - 1; generation >= 1; generation--) {
    const from = generationPath(file, generation);
    if (await host.lstat(from)) await host.rename(from, generationPath(file, generation + 1));
  }
  const first = generationPath(file, 1);
  const temp = `${first}.persist-tmp-${host.pid()}`;
  try {
    await host.copyFile(file, temp);
    await host.fsync(temp);
    const [source, copy] = await Promise.all([host.stat(file), host.stat(temp)]);
    if (source?.size !== copy?.size) throw new ActionError(`copying ${file} to ${temp} gave a different size; ${file} is unchanged`);
    await host.rename(temp, first);
  } finally {
    await host.remove(temp);
  }
}
