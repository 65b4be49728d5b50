// What `persist verify` found damaged in a stored bundle, recorded on local disk (the state
// folder) with the stored file's size and mtime: `<state>/bundles/damaged-<id>.json`. While the
// stored file is still that one and no generation record describes its bytes (generations.ts,
// bundleFoundDamaged), the next plan writes the bundle again from the repo (verify.ts), and an
// update replaces it although it matches no record (BundleUpdate.begin). A file another machine
// wrote since verify has another size or mtime, and matches that machine's record by sha256.
// Kept apart from verify.ts so that generations.ts can read it (verify.ts reads generations.ts).
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { stateDir } from '../../host/paths.js';
import type { Host } from '../../host/types.js';
import type { Store } from '../../store/types.js';
import type { ResolvedBundle } from '../../spec/types.js';

/** `<state>/bundles/damaged-<id>.json`: verify's finding for one stored bundle. */
function damagePath(host: Host, bundle: ResolvedBundle): string {
  const id = createHash('sha256').update(`${bundle.bucket}\0${bundle.file}\0${bundle.relFile}\0${bundle.repo}`).digest('hex').slice(0, 16);
  return join(stateDir(host.env()), 'bundles', `damaged-${id}.json`);
}

/** After verify: the stored file found damaged (its size and mtime), or null when it was found whole. */
export async function recordBundleDamage(host: Host, bundle: ResolvedBundle, damaged: { size: number; mtimeMs: number } | null): Promise<void> {
  const path = damagePath(host, bundle);
  if (!damaged) {
    if (await host.lstat(path)) await host.remove(path);
    return;
  }
  await host.mkdir(join(stateDir(host.env()), 'bundles'), { mode: 0o700 });
  await host.writeFileAtomic(path, `${JSON.stringify({ key: bundle.relFile, size: damaged.size, mtimeMs: damaged.mtimeMs })}\n`, { mode: 0o600 });
}

/**
 * Whether verify found the stored bundle damaged and it is still that file: the same size and
 * mtime (one lstat when it found nothing). generations.ts, bundleFoundDamaged, also asks that no
 * generation record describes the file's bytes.
 */
export async function verifyFoundDamaged(host: Host, store: Store, bundle: ResolvedBundle): Promise<boolean> {
  const path = damagePath(host, bundle);
  if (!(await host.lstat(path))) return false;
  try {
    const found = JSON.parse((await host.readFile(path)).toString('utf8')) as { key?: unknown; size?: unknown; mtimeMs?: unknown };
    const info = await store.stat(bundle.relFile);
    return !!info && found.key === bundle.relFile && found.size === info.size && found.mtimeMs === info.mtimeMs;
  } catch {
    return false;
  }
}
