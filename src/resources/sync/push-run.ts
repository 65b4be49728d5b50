// One push's handling of each file it copies (index.ts drives the manifest and the order):
// stable reads and SQLite snapshots (stable.ts), files that moved, vanished, never settled or
// cannot be read (reported once, the mirror's copy kept), type changes (a file that became a
// folder, or back), folder modes, and the trust state the next plan relies on.
import { join } from 'node:path';
import type { NotSaved } from '../../engine/types.js';
import type { Host } from '../../host/types.js';
import { plural, samplePaths } from '../../output/format.js';
import type { ResolvedSync } from '../../spec/types.js';
import type { Store } from '../../store/types.js';
import { stateDir } from '../../host/paths.js';
import { writeFolderModes, sameModes, readFolderModes } from './folders.js';
import type { ManifestEntry, SyncManifest } from './manifest.js';
import { noteTransfer, readKnownObjects, writeKnownObjects, type KnownObjects } from './known-objects.js';
import { isFresh, SETTLE_MS } from '../../host/quiet.js';
import { pushFile, Stage } from './stable.js';
import { readTrustState, writeTrustState, type TrustState } from './trust-state.js';
import { unreadableNotSaved, verifyPushed, type TrustDetail } from './trust.js';
import type { ShardCache } from './manifest-cache.js';
import type { TreeFile } from './tree.js';
import { mirrorKey } from './names.js';
import { linkedEntry } from './hardlinks.js';

export class PushRun {
  copied = 0;
  bytes = 0;
  /** Of `bytes`, those copied within the store instead of sent (files that only grew). */
  bytesCopiedInStore = 0;
  /** Files stored as read although they changed since the plan looked, or while they were read. */
  moved = 0;
  /** What this push left out of the store (ApplyOutcome.notSaved), known after finish(). */
  readonly notSaved: NotSaved[] = [];
  /** Mirror paths removed before the copies (a type change): the later deletions leave them alone. */
  readonly cleared = new Set<string>();
  private readonly stage: Stage;
  private readonly unsettled: string[] = [];
  /** Files removed (or no longer files) since the plan: nothing of them to store. */
  private readonly vanished: string[] = [];
  private readonly unreadable: string[] = [];
  private readonly failed: string[] = [];
  private readonly uploaded: Record<string, ManifestEntry> = {};
  private readonly tokens: Record<string, { token: string; sha256: string }> = {};
  private readonly unreadableStamps: NonNullable<TrustState['unreadable']> = {};
  private readonly startedMs: number;
  private known: KnownObjects = {};
  /** Whether a file may be written in place (no temporary name): set by the push (index.ts). */
  inPlace: (path: string) => boolean = () => false;
  /** The mirror's local manifest cache, for the check of what was stored (set by the push). */
  shardCache?: ShardCache;

  constructor(
    private readonly host: Host,
    private readonly sync: ResolvedSync,
    private readonly store: Store,
    private readonly trust: TrustDetail | undefined,
    private readonly manifest: SyncManifest | null,
  ) {
    this.stage = new Stage(host);
    this.startedMs = host.now().getTime();
  }

  /**
   * Before any copy: stages left by a killed push are removed, and mirror paths that stand in the
   * way of a type change are removed (a file `a` the manifest drops where `a/b` is pushed, or a
   * folder `a/` whose files it drops where a file `a` is pushed); their entries are among the
   * removed ones, so no shard written afterwards lists them.
   */
  async begin(removed: readonly string[], toCopy: ReadonlySet<string>, listed: Record<string, TreeFile> = {}): Promise<void> {
    // Files changed within the last moments may be mid-write: one wait for all of them up front,
    // rather than one per file (each is still checked when it is read).
    this.known = await readKnownObjects(this.host, this.sync);
    const now = this.host.now().getTime();
    if ([...toCopy].some((path) => listed[path] && isFresh(listed[path]!, now))) await this.host.sleep(SETTLE_MS);
    const stages = join(stateDir(this.host.env()), 'stage');
    for (const name of await this.host.readdir(stages).catch(() => [] as string[])) {
      const pid = Number(/^push-(\d+)-/.exec(name)?.[1]);
      if (Number.isInteger(pid) && pid !== this.host.pid() && !this.host.processAlive(pid)) await this.host.remove(join(stages, name));
    }
    if (removed.length === 0 || toCopy.size === 0) return;
    const removedSet = new Set(removed);
    const blocking = new Set<string>();
    for (const path of toCopy) {
      const parts = path.split('/');
      for (let i = 1; i < parts.length; i++) {
        const parent = parts.slice(0, i).join('/');
        if (removedSet.has(parent)) blocking.add(parent);
      }
    }
    for (const path of removed) {
      const parts = path.split('/');
      for (let i = 1; i < parts.length; i++) {
        const parent = parts.slice(0, i).join('/');
        if (toCopy.has(parent)) blocking.add(parent);
      }
    }
    for (const path of [...blocking].sort()) {
      await this.store.remove(mirrorKey(this.sync, path));
      this.cleared.add(path);
    }
  }

  /** Whether `path` (or a folder above it) was removed from the mirror before the copies. */
  isCleared(path: string): boolean {
    const parts = path.split('/');
    return parts.some((_, i) => this.cleared.has(parts.slice(0, i + 1).join('/')));
  }

  /** Push one file; returns its manifest entry, or the previous one when it could not be stored now (null: none). */
  async pushOne(path: string, file: TreeFile, mirrorHash?: () => Promise<string>): Promise<ManifestEntry | null> {
    const previous = this.manifest?.files[path];
    if (file.linkOf !== undefined) return (await linkedEntry(this.host, this.sync, path, file)) ?? previous ?? null; // its bytes go in under its first name
    const sqlite = this.trust?.databases.has(path) ?? false;
    const options: Parameters<typeof pushFile>[6] = { sqlite };
    // A stored copy verify found damaged is uploaded again even when the local file has its hash;
    // so is a former hard link, which had no stored copy of its own.
    // (A path listed only because its manifest shard was found damaged keeps its stored copy.)
    const damagedFile = (this.trust?.state.damaged ?? []).includes(path) && !(this.trust?.state.damagedManifest?.paths ?? []).includes(path);
    if (previous && previous.link === undefined && !damagedFile) options.previous = previous;
    if (mirrorHash) options.mirrorHash = mirrorHash;
    if (this.known[path]) options.known = this.known[path];
    if (this.inPlace(path)) options.inPlace = true;
    const result = await pushFile(this.host, this.store, this.stage, join(this.sync.from, path), mirrorKey(this.sync, path), file, options);
    switch (result.kind) {
      case 'stored':
        if (result.moved) this.moved += 1;
        if (result.uploaded) {
          this.copied += 1;
          this.bytes += result.bytes;
          this.bytesCopiedInStore += result.copied ?? 0;
          this.uploaded[path] = result.entry;
          noteTransfer(this.known, path, { size: result.entry.size, sha256: result.entry.sha256, ...(result.etag === undefined ? {} : { etag: result.etag }) });
        }
        if (result.token !== undefined) this.tokens[path] = { token: result.token, sha256: result.entry.sha256 };
        return file.sparse ? { ...result.entry, sparse: true } : result.entry;
      case 'gone':
        this.vanished.push(path);
        return previous ?? null;
      case 'unsettled':
        this.unsettled.push(path);
        return previous ?? null;
      case 'unreadable':
        this.unreadable.push(`${path} (${result.reason})`);
        this.unreadableStamps[path] = { ...result.stamp, reason: result.reason };
        return previous ?? null;
      case 'failed':
        this.failed.push(`${path}: ${result.reason}`);
        return previous ?? null;
    }
  }

  /** After the manifest's root: folder modes, the trust state, the module's own check of what it stored. Returns the notes. */
  async finish(): Promise<string[]> {
    try {
      if (this.trust) {
        const recorded = await readFolderModes(this.store, this.sync.relTo);
        if (!sameModes(recorded, this.trust.folderModes)) await writeFolderModes(this.store, this.sync.relTo, this.trust.folderModes);
      }
      const state = await readTrustState(this.host, this.sync);
      state.pushStartedMs = this.startedMs;
      delete state.restoring;
      // The root is written: every shard verify found damaged was written again (ManifestWriter).
      const manifestOnly = new Set(state.damagedManifest?.paths ?? []);
      delete state.damagedManifest;
      if (state.damaged) state.damaged = state.damaged.filter((path) => !manifestOnly.has(path) && !(path in this.uploaded) && this.manifest?.files[path] !== undefined && !this.trust?.listing.files[path]);
      if (state.damaged?.length === 0) delete state.damaged;
      const sqlite: NonNullable<TrustState['sqlite']> = {};
      for (const db of this.trust?.databases ?? []) {
        const entry = this.tokens[db] ?? state.sqlite?.[db];
        if (entry) sqlite[db] = entry;
      }
      state.sqlite = sqlite;
      const unreadable: NonNullable<TrustState['unreadable']> = { ...this.unreadableStamps };
      for (const path of this.trust?.unreadableFiles ?? []) {
        const recorded = state.unreadable?.[path] ?? this.trust?.probed[path];
        if (recorded) unreadable[path] = recorded;
      }
      state.unreadable = unreadable;
      await writeTrustState(this.host, this.sync, state);
      for (const path of Object.keys(this.known)) if (!this.trust?.listing.files[path]) delete this.known[path];
      await writeKnownObjects(this.host, this.sync, this.known);
      await verifyPushed(this.store, this.sync.relTo, this.uploaded, this.shardCache);
    } finally {
      await this.stage.cleanup();
    }
    const was = (count: number) => (count === 1 ? 'was' : 'were');
    if (this.unsettled.length) {
      const message = `${plural(this.unsettled.length, 'file')} changed at every read and ${was(this.unsettled.length)} not stored (the mirror keeps the version it had, if any; the next push tries again): ${samplePaths(this.unsettled)}`;
      this.notSaved.push({ message, transient: true });
    }
    if (this.failed.length) {
      // A snapshot that failed on a lock can succeed soon; without sqlite3 none can.
      this.notSaved.push({ message: `${plural(this.failed.length, 'SQLite database')} not pushed: ${samplePaths(this.failed)}`, transient: !this.trust?.observed.sqliteMissing });
    }
    // Unreadable files and folders are left out: not saved, and not a cause that passes by itself
    // (someone must make them readable), so shutdown counts the sync as not saved. Those found now
    // and those an earlier push found (unchanged since: not tried again), and unreadable folders.
    const unreadable = [
      ...(this.trust?.listing.unreadable ?? []).map((entry) => `${entry.path}/ (${entry.reason})`),
      ...[...(this.trust?.unreadableFiles ?? [])].map((path) => `${path} (${(this.trust!.probed[path] ?? this.trust!.state.unreadable?.[path])?.reason ?? 'unreadable'})`),
      ...this.unreadable,
    ];
    if (unreadable.length) this.notSaved.push({ message: unreadableNotSaved(unreadable), transient: false });
    const notes = this.notSaved.map((left) => left.message);
    if (this.vanished.length) notes.push(`${plural(this.vanished.length, 'file')} vanished during the push (not stored; the next push takes what is there then): ${samplePaths(this.vanished)}`);
    return notes;
  }
}
