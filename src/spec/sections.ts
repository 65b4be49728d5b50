// The sections of a spec that declare resources, in the order they are resolved (buckets first:
// the other sections refer to them). This one table drives what an environment may overlay, the
// resolve loop, and the resolved sections of ResolvedEnvironment: a section of
// ResolvedEnvironment missing here, or one here that ResolvedEnvironment lacks, fails to compile.
import { resolveBundle } from '../resources/bundle/resolve.js';
import { resolveFile } from '../resources/file/resolve.js';
import { resolveLink } from '../resources/link/resolve.js';
import { resolveBucket } from '../resources/mount/resolve.js';
import { resolveSync } from '../resources/sync/resolve.js';
import type { Entry, ResolveContext } from './context.js';
import type { ResolvedEnvironment } from './types.js';

/** The keys of ResolvedEnvironment that hold resources by name (`buckets`, `links`...). */
export type SectionName = {
  [K in keyof ResolvedEnvironment]: ResolvedEnvironment[K] extends Record<string, object> ? K : never;
}[keyof ResolvedEnvironment];

/** Resolves one entry of a section; undefined when it cannot be (its problems are reported). */
export type SectionResolver<T> = (ctx: ResolveContext, name: string, value: Entry) => T | undefined;

export const SECTIONS = {
  buckets: resolveBucket,
  links: resolveLink,
  bundles: resolveBundle,
  syncs: resolveSync,
  files: resolveFile,
} as const satisfies { [K in SectionName]: SectionResolver<ResolvedEnvironment[K][string]> };

/** The sections, in resolve order. */
export const SECTION_NAMES = Object.keys(SECTIONS) as SectionName[];

/** The keys an environment may merge over the document. */
export const OVERLAY_KEYS = ['workspace', ...SECTION_NAMES] as const;
