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

export class RestoreRun {
  private readonly tokens: Record<string, { token: string; sha256: string }> = {};

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

  /** Right after `path` was written: a database loses the sidecars of the state it replaced. */
  async restored(path: string, sha256: string): Promise<void> {
    const target = join(this.sync.from, path);
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
