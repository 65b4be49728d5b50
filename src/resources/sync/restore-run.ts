// What a restore does besides writing files (index.ts writes them): its marker lives in the
// local trust state (never a file in the user's folder), a restored SQLite database gets no stale
// `-wal`/`-journal`/`-shm` beside it and its change token recorded (so the next plan does not see
// a change), folder modes come back (deepest folders last, after their files), the ETags of large
// objects are recorded (known-objects.ts), a resumed restore first removes the temporary files
// of the one that was killed, and a local file in the way that is not the mirror's is kept aside in
// the backups, never overwritten. Each file is stat-ed once written, so that the lineage record's
// digest of the restored folder needs no second lstat of every file (docs/architecture.md,
// "Transfers").
import { join } from 'node:path';
import type { Host } from '../../host/types.js';
import { moveExactly, newAsideFolder } from '../../lineage/aside.js';
import type { ResolvedSync } from '../../spec/types.js';
import { mapLimit } from '../../store/limit.js';
import { isTempName } from '../../store/temp-name.js';
import type { Store, Transferred } from '../../store/types.js';
import type { TreeFile } from './tree.js';
import { noteTransfer, readKnownObjects, writeKnownObjects, type KnownObjects } from './known-objects.js';
import { readFolderModes } from './folders.js';
import { isSqliteHeader, removeStaleSidecars, SQLITE_HEADER_BYTES } from './sqlite.js';
import { databaseToken } from './sqlite-sync.js';
import { readTrustState, updateTrustState } from './trust-state.js';
import type { ManifestEntry } from './manifest.js';
import { restoreHardLinks } from './hardlinks.js';
import { restoreHoles } from './sparse.js';

export class RestoreRun {
  private readonly tokens: Record<string, { token: string; sha256: string }> = {};
  /** Later names of hard-linked files: linked once every file is written (hardlinks.ts). */
  private readonly links: [string, ManifestEntry][] = [];
  private known: KnownObjects = {};
  /** Files written, not yet flushed to disk (downloads with `flushLater`). */
  private readonly written: string[] = [];
  /** Each restored file as stat-ed right after it was written, by relative path (see finish). */
  readonly statted = new Map<string, TreeFile>();
  /** The backup folder of this restore's files kept aside (made on first use), and those files. */
  private aside: Promise<string> | null = null;
  readonly keptAside: string[] = [];

  constructor(
    private readonly host: Host,
    private readonly sync: ResolvedSync,
    private readonly store: Store,
    private readonly workspace: string,
    private readonly address: string,
  ) {}

  /**
   * `resuming`: an interrupted restore left its marker. A restore killed mid-download left its
   * temporary files (`.<name>.persist-tmp-<random>`) beside the files it was writing: in the
   * folders this restore writes (`folders`, relative), they are removed.
   */
  async begin(resuming: boolean, folders: Iterable<string>): Promise<void> {
    await updateTrustState(this.host, this.sync, (state) => {
      state.restoring = `restore started by pid ${this.host.pid()} at ${this.host.now().toISOString()}`;
    });
    this.known = await readKnownObjects(this.host, this.sync);
    if (!resuming) return;
    for (const folder of new Set(folders)) {
      const absolute = join(this.sync.from, folder);
      const names = await this.host.readdir(absolute).catch(() => [] as string[]);
      for (const name of names.filter(isTempName)) await this.host.remove(join(absolute, name));
    }
  }

  /**
   * A local file at `path` that is not the mirror's (the agent's, in a folder an interrupted
   * restore left half-done): moved into this restore's backup folder before the mirror's file is
   * written there (see asideFolder).
   */
  async keepAside(path: string): Promise<void> {
    this.aside ??= newAsideFolder(this.host, this.workspace, this.address, this.sync.from);
    await moveExactly(this.host, join(this.sync.from, path), join(await this.aside, path));
    this.keptAside.push(path);
  }

  /** Where the files kept aside went (null: none were). */
  async asideFolder(): Promise<string | null> {
    return this.aside;
  }

  /** A hard link's later name is not downloaded: it is linked at the end. Returns whether `path` is one. */
  later(path: string, entry: Partial<ManifestEntry>): boolean {
    if (entry.link === undefined) return false;
    this.links.push([path, entry as ManifestEntry]);
    return true;
  }

  /**
   * Right after `path` was written: holes come back, the file is stat-ed as it now is (`statted`),
   * a database loses the sidecars of the state it replaced.
   */
  async restored(path: string, transferred: Transferred, entry: Pick<ManifestEntry, 'mode' | 'mtimeMs'> & Partial<ManifestEntry>): Promise<void> {
    this.written.push(path);
    noteTransfer(this.known, path, transferred);
    const sha256 = transferred.sha256;
    const target = join(this.sync.from, path);
    await restoreHoles(this.host, target, entry);
    const info = await this.host.lstat(target);
    if (info?.type === 'file') this.statted.set(path, { size: info.size, mtimeMs: info.mtimeMs, mode: info.mode });
    await this.noteDatabase(path, sha256, transferred.head);
  }

  /**
   * A file an interrupted restore had written whole already (kept, not downloaded again): a
   * database among them gets what one written now gets (no stale sidecars, its change token).
   */
  async kept(path: string, sha256: string): Promise<void> {
    await this.noteDatabase(path, sha256);
  }

  /** A restored database: the sidecars of the state it replaced removed, its change token recorded. */
  private async noteDatabase(path: string, sha256: string, head?: Buffer): Promise<void> {
    const target = join(this.sync.from, path);
    try {
      head ??= await this.host.readHead(target, SQLITE_HEADER_BYTES);
    } catch {
      return;
    }
    if (!isSqliteHeader(head)) return;
    await removeStaleSidecars(this.host, target);
    this.tokens[path] = { token: await databaseToken(this.host, target), sha256 };
  }

  /**
   * After every file: they reach the disk before the marker goes (see flushWritten). `alongside`
   * (a read of the restored folder, which can take `statted` for its files) runs while they do,
   * mostly a wait for `sync -f`, as do the read of the folder modes and the write of the known
   * objects; `alongside`'s result is returned. The folder modes are asked for first: a local walk
   * runs without yielding to the event loop, so a request started after it would wait for the
   * whole walk before it went out.
   */
  async finish<T>(alongside: () => Promise<T>): Promise<T> {
    await restoreHardLinks(this.host, this.sync, this.store, this.links);
    const [modes, , result] = await Promise.all([
      readFolderModes(this.store, this.sync.relTo),
      this.flushWritten(),
      alongside(),
      writeKnownObjects(this.host, this.sync, this.known),
    ]);
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
    return result;
  }

  /**
   * The restored files were renamed into place without an fsync each: one syncfs of the local file
   * system (`sync -f`) makes them all durable at once (2,000 fsyncs cost more than the downloads on
   * a busy disk). Without `sync`, an fsync each. Until then the marker stays, and a restore resumed
   * after a crash keeps a present file only when its content hashes as the manifest says.
   */
  private async flushWritten(): Promise<void> {
    if (this.written.length === 0) return;
    const synced = await this.host.fsync(this.sync.from, { fileSystem: true }).then(() => true, () => false);
    if (synced) return;
    await mapLimit(this.written, 16, (path) => this.host.fsync(join(this.sync.from, path)));
  }
}
