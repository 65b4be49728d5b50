// The resource kinds, one module each. Adding a kind is one module and one line here.
import type { ResourceModule } from '../engine/types.js';
import { bundleModule } from './bundle/index.js';
import { fileModule } from './file/index.js';
import { linkModule } from './link/index.js';
import { mountModule } from './mount/index.js';
import { syncModule } from './sync/index.js';

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- modules differ in resource and observed types
export type AnyModule = ResourceModule<any, any>;

export const resourceModules: AnyModule[] = [mountModule, bundleModule, syncModule, fileModule, linkModule];
