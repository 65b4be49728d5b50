// The resource kinds: a kind is a folder beside this file (its module, its spec resolution, its
// helpers) and one line in `modules`. The record is keyed by ResourceKind, so a kind that is
// declared but not registered does not compile, and ResourceModule's required members make the
// compiler ask a new kind for everything the engine, status and watch need to know about it.
import type { ResourceKind, ResourceModule } from '../engine/types.js';
import { bundleModule } from './bundle/index.js';
import { fileModule } from './file/index.js';
import { linkModule } from './link/index.js';
import { mountModule } from './mount/index.js';
import { syncModule } from './sync/index.js';

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- modules differ in resource and observed types
export type AnyModule = ResourceModule<any, any, any>;

/** In declaration order: resources are listed (and plans ordered within a phase rank) this way. */
const modules: Record<ResourceKind, AnyModule> = { mount: mountModule, bundle: bundleModule, sync: syncModule, file: fileModule, link: linkModule };

export const resourceModules: AnyModule[] = Object.values(modules);
