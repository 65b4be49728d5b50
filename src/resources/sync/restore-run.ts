// What a restore does besides writing files (index.ts writes them): its marker lives in the
// local trust state (never a file in the user's folder), a restored SQLite database gets no stale
// `-wal`/`-journal`/`-shm` beside it and its change token recorded (so the next plan does not see
// a change), and folder modes come back (deepest folders last, after their files).
import { join } from 'node:path';
import type { Host } from '../../host/types.js';
import type { ResolvedSync } from '../../spec/types.js';
import type { Store } from '../../store/types.js';
import { readFolderModes } from './folders.js';
import { isSqliteHeader, removeStaleSidecars } from './sqlite.js';
import { databaseToken } from './sqlite-sync.js';
import { readTrustState, updateTrustState } from './trust-state.js';
import type { ManifestEntry } from './manifest.js';
import { restoreHardLinks } from './hardlinks.js';
import { restoreHoles } from './sparse.js';

export class RestoreRun {
  private readonly tokens: Record<string, { token: string; sha256: string }> = {};
  /** Later names of hard-linked files: linked once every file is written (hardlinks.ts). */
  private readonly links: [string, ManifestEntry][] = [];

  constructor(
    private readonly host: Host,
    private readonly sync: ResolvedSync,
    private readonly store: Store,
  ) {}

  async begin(): Promise<void> {
    await updateTrustState(this.host, this.sync, (state) => {
      state.restoring = `restore started by pid ${this.host.pid()} at ${this.host.now().toISOString()}`;
    });
  }

  /** A hard link's later name is not downloaded: it is linked at the end. Returns whether `path` is one. */
  later(path: string, entry: Partial<ManifestEntry>): boolean {
    if (entry.link === undefined) return false;
    this.links.push([path, entry as ManifestEntry]);
    return true;
  }

  /** Right after `path` was written: holes come back, a database loses the sidecars of the state it replaced. */
  async restored(path: string, sha256: string, entry: Pick<ManifestEntry, 'mode' | 'mtimeMs'> & Partial<ManifestEntry>): Promise<void> {
    const target = join(this.sync.from, path);
    await restoreHoles(this.host, target, entry);
    let head: Buffer;
    try {
      head = await this.host.readHead(target, 16);
    } catch {
      return;
    }
    if (!isSqliteHeader(head)) return;
    await removeStaleSidecars(this.host, target);
    this.tokens[path] = { token: await databaseToken(this.host, target), sha256 };
  }

  async finish(): Promise<void> {
    await restoreHardLinks(this.host, this.sync, this.store, this.links);
    const modes = await readFolderModes(this.store, this.sync.relTo);
    const deepestFirst = Object.keys(modes).sort((a, b) => b.split('/').length - a.split('/').length || (a < b ? -1 : 1));
    for (const path of deepestFirst) {
      const target = join(this.sync.from, path);
      const info = await this.host.lstat(target);
      if (info && info.type !== 'dir') continue;
      if (!info) await this.host.mkdir(target);
      await this.host.chmod(target, modes[path]!);
    }
    const before = await readTrustState(this.host, this.sync);
    await updateTrustState(this.host, this.sync, (state) => {
      delete state.restoring;
      state.sqlite = { ...(before.sqlite ?? {}), ...this.tokens };
    });
  }
}
