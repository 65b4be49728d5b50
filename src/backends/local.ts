// `local`: the mount path is a plain directory standing in for the bucket. Nothing is mounted,
// no credentials, no root: the backend for tests, laptops and the embedded default.
import { ActionError } from '../errors.js';
import { checkOptions } from './options.js';
import type { Backend } from './types.js';

export const local: Backend = {
  name: 'local',
  fuse: false,
  options: {},
  validateOptions: (given) => checkOptions('local', given, {}),
  matches: () => false,
  owns: () => false,
  async mountCommand(bucket) {
    throw new ActionError(`bucket ${bucket.key} uses the local backend: there is nothing to mount at ${bucket.mount.path}`);
  },
  async unmount() {
    // Nothing was mounted.
  },
};
