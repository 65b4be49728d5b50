// Writes a new bundle of a local repository into the store without ever leaving it without a
// complete, good bundle: build and verify it on local disk, rotate the earlier generations (the
// current bundle stays in place throughout), write the new one whole over the current one (the
// store's writes are whole: a reader sees the old or the new bundle), then verify what the
// store now holds against the local build. The generation records follow each step through the
// hooks (generations.ts, which says why a kill at any step leaves history right).
import { join } from 'node:path';
import { ActionError } from '../../errors.js';
import type { Host } from '../../host/types.js';
import type { Store } from '../../store/types.js';
import { readBundleHeader, type BundleHeader } from './header.js';
import { git } from './git.js';
import { createBundle } from './bundle-create.js';
import { makeLocalTemp, removeLeftovers } from './scratch.js';

export interface WriteBundleRequest {
  /** Work tree of the repository. */
  repo: string;
  /** Key of the bundle in the store. */
  key: string;
  /** Earlier generations kept as `<file>.1` ... `<file>.<keep>`. */
  keep: number;
  /**
   * Exactly the refs the bundle holds, HEAD included when it resolves to a commit (the repo's
   * bundled refs, its stash entries and work tree snapshot under `refs/persist/`; see createBundle).
   */
  refs: Record<string, string>;
}

export interface WriteBundleResult {
  header: BundleHeader;
  size: number;
  sha256: string;
  /** Generations present after the rotation, e.g. [1, 2]. */
  generations: number[];
}

/** What the generation records do at each step (generations.ts, BundleUpdate). */
export interface BundleWriteHooks {
  /** The new bundle is built and verified locally; the store has not changed yet. */
  beforeRotate(built: { size: number; sha256: string; refs: number }): Promise<void>;
  /** `<file>.<from>` (0: a copy of `<file>`) is now `<file>.<to>`. */
  moved(from: number, to: number): Promise<void>;
  /**
   * Where the rotation starts when an interrupted update left it half done (null: the first
   * missing `<file>.<k>`): k shifts `<file>.<k-1>` ... `<file>.1` up; 0 means the current bundle
   * is already kept as `<file>.1` and nothing moves.
   */
  firstGap: number | null;
  /**
   * `persist verify` found the current bundle damaged: it is replaced without being kept as
   * `<file>.1` (a damaged file is no way back), and nothing rotates.
   */
  replacesDamaged?: boolean;
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
  store: Store,
  request: WriteBundleRequest,
  progress: (message: string) => void,
  signal?: AbortSignal,
  hooks?: BundleWriteHooks,
): Promise<WriteBundleResult> {
  const { repo, key, keep } = request;
  const where = store.where(key);
  const checkInterrupted = (): void => {
    if (signal?.aborted) throw new ActionError(`interrupted before ${where} was replaced; the previous bundle is unchanged`);
  };
  // The local build lives in persist's state folder, named after this process: what an update
  // killed before its cleanup left (a bundle as big as the repo) is removed by the next one.
  await removeLeftovers(host);
  const workDir = await makeLocalTemp(host, 'bundle');
  const local = join(workDir, 'repo.bundle');
  try {
    progress('creating the bundle on local disk');
    await createBundle(host, repo, local, request.refs, workDir);
    await git(host, ['-C', repo, 'bundle', 'verify', '-q', local]);
    const header = await readBundleHeader(host, local);
    const listed = Object.fromEntries(header.refs.map((ref) => [ref.name, ref.sha]));
    const asked = Object.keys(request.refs);
    if (header.refs.length !== asked.length || asked.some((name) => listed[name] !== request.refs[name])) {
      throw new ActionError(`the bundle made of ${repo} does not list the refs it was made of; the previous bundle is unchanged`);
    }
    const size = (await host.stat(local))?.size ?? 0;
    const sha256 = await host.hashFile(local);
    checkInterrupted();
    // The refs a history lists: branches, tags, notes (not HEAD, not persist's own).
    await hooks?.beforeRotate({ size, sha256, refs: header.refs.filter((ref) => ref.name !== 'HEAD' && !ref.name.startsWith('refs/persist/')).length });

    if (!hooks?.replacesDamaged) {
      progress('rotating earlier generations');
      await rotateGenerations(store, key, keep, hooks?.firstGap ?? null, hooks?.moved);
      checkInterrupted();
    }

    progress('copying the bundle into the store');
    const written = await store.upload(local, key, { mode: 0o644, mtimeMs: host.now().getTime() });

    progress('verifying the bundle in the store');
    const stored = await store.stat(key);
    const storedHeader = await readBundleHeader(store, key, where);
    if (written.size !== size || written.sha256 !== sha256 || stored?.size !== size || !sameRefs(storedHeader, header) || (await store.hash(key)) !== written.sha256) {
      const previous = keep > 0 ? `; the previous bundle is kept as ${generationPath(where, 1)}` : '';
      throw new ActionError(`${where} does not match the bundle just written (size, refs or sha256 differ)${previous}`);
    }
    const generations: number[] = [];
    for (let generation = 1; generation <= keep; generation++) {
      if (await store.stat(generationPath(key, generation))) generations.push(generation);
    }
    return { header, size, sha256: written.sha256, generations };
  } finally {
    await host.remove(workDir);
  }
}

/**
 * Makes room for the current bundle as `<file>.1`: `<file>.<k>` → `<file>.<k+1>` for every k
 * below the first gap among `<file>.1..keep` (a gap is where an interrupted rotation stopped; with
 * none, `<file>.<keep>`, the oldest, is replaced), then a copy of `<file>` becomes `<file>.1`.
 * `<file>` itself is never moved, so a complete bundle exists at every moment, and a rotation
 * killed at any step resumes without dropping a generation.
 */
async function rotateGenerations(store: Store, key: string, keep: number, firstGap: number | null, moved?: (from: number, to: number) => Promise<void>): Promise<void> {
  if (keep < 1 || firstGap === 0 || !(await store.stat(key))) return;
  let gap = firstGap ?? keep;
  for (let generation = 1; firstGap === null && generation < keep; generation++) {
    if (!(await store.stat(generationPath(key, generation)))) {
      gap = generation;
      break;
    }
  }
  for (let generation = gap - 1; generation >= 1; generation--) {
    await store.rename(generationPath(key, generation), generationPath(key, generation + 1));
    await moved?.(generation, generation + 1);
  }
  await store.copy(key, generationPath(key, 1));
  await moved?.(0, 1);
}
