// A private local copy of an object, for programs that read a file (git reads a bundle): made
// under $TMPDIR with mode 0600; the caller removes it.
import type { Host } from '../host/types.js';
import { tempPathFor } from './temp-name.js';
import type { Store } from './types.js';

export async function downloadToTemp(host: Host, store: Store, key: string): Promise<string> {
  const dir = (host.env().TMPDIR || '/tmp').replace(/\/+$/, '') || '/';
  const path = tempPathFor(`${dir}/persist-${key.split('/').pop() ?? 'object'}`);
  try {
    await store.download(key, path, { mode: 0o600, mtimeMs: host.now().getTime() });
    return path;
  } catch (error) {
    await host.remove(path).catch(() => undefined);
    throw error;
  }
}
