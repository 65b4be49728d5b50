// Backend name -> driver. Adding a backend: one file beside this one and one line here.
import type { MountEntry } from '../host/types.js';
import type { BackendName } from '../spec/types.js';
import { goofys } from './goofys.js';
import { local } from './local.js';
import { rclone } from './rclone.js';
import { s3fs } from './s3fs.js';
import type { Backend } from './types.js';

export const backends: Record<BackendName, Backend> = { s3fs, rclone, goofys, local };

export function getBackend(name: BackendName): Backend {
  const backend = backends[name];
  if (!backend) throw new Error(`unknown mount backend ${JSON.stringify(name)}; known: ${Object.keys(backends).join(', ')}`);
  return backend;
}

/** The backend that made a mountinfo entry, if it is one of ours. */
export function backendOwning(entry: MountEntry): BackendName | undefined {
  return (Object.keys(backends) as BackendName[]).find((name) => backends[name].owns(entry));
}
