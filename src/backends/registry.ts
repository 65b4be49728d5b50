// Backend name -> driver. Adding a backend: one file beside this one and one line here, then
// `npm run schema` to regenerate the schema's backend parts from its options table.
import type { MountEntry } from '../host/types.js';
import { goofys } from './goofys.js';
import { local } from './local.js';
import { rclone } from './rclone.js';
import { s3fs } from './s3fs.js';
import type { Backend } from './types.js';

export const backends = { s3fs, rclone, goofys, local } satisfies Record<string, Backend>;

/** The backends' names, in registry order (the order of the schema's enum). */
export type BackendName = keyof typeof backends;
export const BACKEND_NAMES = Object.keys(backends) as BackendName[];

export function getBackend(name: BackendName): Backend {
  const backend: Backend | undefined = backends[name];
  if (!backend) throw new Error(`unknown mount backend ${JSON.stringify(name)}; known: ${Object.keys(backends).join(', ')}`);
  return backend;
}

/** The backend that made a mountinfo entry, if it is one of ours. */
export function backendOwning(entry: MountEntry): BackendName | undefined {
  return BACKEND_NAMES.find((name) => backends[name].owns(entry));
}
