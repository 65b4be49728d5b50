// The resource kinds, one module each. Adding a kind is one module and one line here.
import type { ResourceModule } from '../engine/types.js';
import { bundleModule } from './bundle.js';
import { fileModule } from './file.js';
import { linkModule } from './link.js';
import { mountModule } from './mount.js';
import { syncModule } from './sync.js';

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- modules differ in resource and observed types
export type AnyModule = ResourceModule<any, any>;

export const resourceModules: AnyModule[] = [mountModule, bundleModule, syncModule, fileModule, linkModule];
