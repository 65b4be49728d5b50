// persist's own leftovers in a bucket: conflict copies written beside a file by adopt
// (`<name>.persist-conflict-<stamp>`), partial files of an interrupted adopt
// (`.<name>.persist-partial-<token>`), and temporaries of an interrupted copy (`.<name>.persist-tmp-<random>`,
// see src/store/temp-name.ts). Looked for only where persist writes (link targets and sync mirrors,
// recursively; the folders of bundle files and restored files), and only in buckets that are ready.
// `status` lists them; `persist clean` removes them (nothing else).
import { posix } from 'node:path';
import type { ObserveContext } from '../engine/types.js';
import type { ResolvedEnvironment } from '../spec/types.js';
import { isTempName } from '../store/temp-name.js';

export type LeftoverKind = 'conflict copy' | 'partial file';

export interface Leftover {
  bucket: string;
  /** The key in the bucket. */
  key: string;
  /** Where it is, for messages (a path in the mount). */
  where: string;
  kind: LeftoverKind;
}

const CONFLICT_COPY = /\.persist-conflict-\d{8}T\d{6}Z(-\d+)?$/;
/** An adopt's partial copy: `.<name>.persist-partial-<its 12-hex token>` (link/merge.ts). */
const PARTIAL = /^\..+\.persist-partial-[0-9a-f]{12}$/s;

/** What a base name left by persist is, or null for anything else. */
export function leftoverKind(base: string): LeftoverKind | null {
  if (CONFLICT_COPY.test(base)) return 'conflict copy';
  if (isTempName(base) || PARTIAL.test(base)) return 'partial file';
  return null;
}

export async function findLeftovers(env: ResolvedEnvironment, ctx: ObserveContext): Promise<Leftover[]> {
  // Per bucket: folders listed recursively, and folders whose direct entries are looked at.
  const deep = new Map<string, Set<string>>();
  const shallow = new Map<string, Set<string>>();
  const add = (map: Map<string, Set<string>>, bucket: string, key: string) => (map.get(bucket) ?? map.set(bucket, new Set()).get(bucket)!).add(key);
  for (const link of Object.values(env.links)) add(deep, link.bucket, link.relTarget);
  for (const sync of Object.values(env.syncs)) add(deep, sync.bucket, sync.relTo);
  for (const bundle of Object.values(env.bundles)) add(shallow, bundle.bucket, posix.dirname(bundle.relFile));
  for (const file of Object.values(env.files)) add(shallow, file.bucket, posix.dirname(file.relFrom));

  const found = new Map<string, Leftover>();
  const note = (bucket: string, key: string, kind: LeftoverKind | null) => {
    if (kind) found.set(`${bucket}\u0000${key}`, { bucket, key, where: ctx.store(bucket).where(key), kind });
  };
  for (const bucket of new Set([...deep.keys(), ...shallow.keys()])) {
    if (ctx.mountReady[bucket] !== true) continue;
    const store = ctx.store(bucket);
    for (const root of deep.get(bucket) ?? []) {
      if (!(await store.stat(root))) continue;
      const listing = await store.list(root, () => false);
      for (const path of Object.keys(listing.files)) note(bucket, posix.join(root, path), leftoverKind(posix.basename(path)));
    }
    for (const folder of shallow.get(bucket) ?? []) {
      const key = folder === '.' ? '' : folder;
      for (const name of await store.readdir(key)) note(bucket, key ? `${key}/${name}` : name, leftoverKind(name));
    }
  }
  return [...found.values()].sort((a, b) => (a.where < b.where ? -1 : a.where > b.where ? 1 : 0));
}

/** The command that clears them, for this spec and environment. */
export function cleanCommand(specFile: string, environment: string): string {
  return `persist clean -f ${specFile}${environment === 'default' ? '' : ` --env ${environment}`}`;
}

/** The lines status and clean print about leftovers ('' when there are none). */
export function renderLeftovers(leftovers: Leftover[]): string {
  if (leftovers.length === 0) return '';
  const lines = leftovers.map((l) => `  ${l.where}  (${l.kind}${l.kind === 'conflict copy' ? ' made by adopt' : ' of an interrupted write'})`);
  return `${leftovers.length === 1 ? '1 leftover' : `${leftovers.length} leftovers`} of persist in the bucket:\n${lines.join('\n')}\n`;
}
