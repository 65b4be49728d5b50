// Lineage of a bundle (docs/architecture.md, lineage): generations, history, and the rules that
// keep an update from replacing what this machine has not seen.
//
// Beside the bundle, one small record per kept file:
//   <file>.lineage.json            the record of <file> (the current generation)
//   <file>.<k>.lineage.json        the record of the rotated <file>.<k>
//   <file>.pending.lineage.json    the record of an update in progress
// A record holds the generation, its parent, time, machine and host, the refs (`files`), the size
// (`bytes`) and the sha256 of the bundle it describes.
//
// Crash safety. An update writes the pending record, then rotates (`<file>.<k>` renamed to
// `<file>.<k+1>` and its record written there right after, down to a copy of `<file>` as
// `<file>.1`), writes the new bundle whole over `<file>`, writes its record, and removes the
// pending one. A kill at any step leaves every bundle file whole and every generation's record
// somewhere among the records, but a record's position may be one off from its file's. So which
// generation a file holds is read from content, not position: the one record whose size matches
// the file's, or when several do, the one whose sha256 does (so reading history costs the records
// and the files' sizes; a file is hashed only to tell two records of one size apart). The next
// update first puts the records back beside their files and resumes the rotation where it
// stopped (update.ts: only the first gap among `<file>.1..keep` is filled), so no generation is
// dropped twice and none is kept twice. The plan reads `<file>.lineage.json` as it is unless a
// pending record is there.
import { createHash } from 'node:crypto';
import { ActionError } from '../../errors.js';
import type { Change, Decision, ObserveContext, PlanOptions } from '../../engine/types.js';
import type { Host } from '../../host/types.js';
import type { Store } from '../../store/types.js';
import type { ResolvedBundle, ResolvedEnvironment } from '../../spec/types.js';
import { describeMachine, ensureMachine, peekMachine } from '../../lineage/machine.js';
import { describeStore, parseRecord, sameStore, storeIdentity, type GenerationRecord, type StoreIdentity } from '../../lineage/generation.js';
import { readLocalRecords, writeLocalRecord } from '../../lineage/record.js';
import { formatAge, plural } from '../../output/format.js';
import { generationPath } from './update.js';
import { verifyFoundDamaged } from './damage.js';

/** A bundle's generation record: a generation record plus the sha256 of the bundle it describes. */
export interface BundleRecord extends GenerationRecord {
  /** null in records written before persist recorded it. */
  sha256: string | null;
}

export interface HistoryEntry extends GenerationRecord {
  current: boolean;
}

export function metadataKey(file: string, rotation = 0): string {
  return rotation === 0 ? `${file}.lineage.json` : `${file}.${rotation}.lineage.json`;
}

export function pendingKey(file: string): string {
  return `${file}.pending.lineage.json`;
}

function bundleKey(file: string, rotation: number): string {
  return rotation === 0 ? file : generationPath(file, rotation);
}

function serialize(record: BundleRecord): string {
  const { generation, parent, time, machine, host, files, bytes, sha256 } = record;
  return `${JSON.stringify({ generation, parent, time, machine, host, files, bytes, sha256 })}\n`;
}

async function readRecord(store: Store, key: string): Promise<BundleRecord | null> {
  if (!(await store.stat(key))) return null;
  try {
    const value = JSON.parse((await store.read(key)).toString('utf8')) as { sha256?: unknown };
    const record = parseRecord(value);
    if (!record) return null;
    const sha256 = typeof value.sha256 === 'string' && /^[0-9a-f]{64}$/.test(value.sha256) ? value.sha256 : null;
    return { ...record, sha256 };
  } catch {
    return null;
  }
}

const sameRecord = (a: BundleRecord, b: BundleRecord): boolean => a.generation === b.generation && a.sha256 === b.sha256;

// --- which generation each kept file holds ---

export interface KeptBundle {
  /** 0 for `<file>`, k for `<file>.<k>`. */
  rotation: number;
  key: string;
  size: number;
  /** The generation it holds (null: no record describes it, e.g. written before lineage). */
  record: BundleRecord | null;
}

export interface BundleSlots {
  /** The bundle files present, `<file>` first. */
  kept: KeptBundle[];
  /** The record found at each position (index = rotation), as stored. */
  stored: (BundleRecord | null)[];
  pending: BundleRecord | null;
}

/** The record of the file in `slot`: by size among all records, by sha256 when several sizes match. */
async function recordOf(store: Store, slot: Omit<KeptBundle, 'record'>, own: BundleRecord | null, candidates: BundleRecord[]): Promise<BundleRecord | null> {
  const sized: BundleRecord[] = [];
  for (const candidate of candidates) if (candidate.bytes === slot.size && !sized.some((other) => sameRecord(other, candidate))) sized.push(candidate);
  if (sized.length <= 1) return sized[0] ?? null;
  const sha256 = await store.hash(slot.key);
  const matching = sized.filter((candidate) => candidate.sha256 === sha256);
  if (own && matching.some((candidate) => sameRecord(candidate, own))) return own;
  if (matching.length > 0) return matching.sort((a, b) => b.generation - a.generation)[0]!;
  // Records written before the sha256 was: the one at the file's own position, if its size fits.
  return own && own.sha256 === null && own.bytes === slot.size ? own : null;
}

/**
 * `damagedCurrent`: `<file>` is one `persist verify` found damaged (bundleFoundDamaged). Its size
 * then tells nothing: it holds the generation recorded at its position, which it was written as.
 * Without that finding, a `<file>` that matches no record (damaged, or put there by something
 * other than persist) holds no known generation.
 */
export async function readBundleSlots(store: Store, bundle: ResolvedBundle, damagedCurrent = false): Promise<BundleSlots> {
  const files: Omit<KeptBundle, 'record'>[] = [];
  const stored: (BundleRecord | null)[] = [];
  for (let rotation = 0; rotation <= bundle.keep; rotation++) {
    const key = bundleKey(bundle.relFile, rotation);
    const info = await store.stat(key);
    if (info?.type === 'file') files.push({ rotation, key, size: info.size });
    stored.push(await readRecord(store, metadataKey(bundle.relFile, rotation)));
  }
  const pending = await readRecord(store, pendingKey(bundle.relFile));
  const candidates = [...stored, pending].filter((record): record is BundleRecord => record !== null);
  const kept: KeptBundle[] = [];
  for (const file of files) {
    const own = stored[file.rotation] ?? null;
    kept.push({ ...file, record: file.rotation === 0 && damagedCurrent ? own : await recordOf(store, file, own, candidates) });
  }
  return { kept, stored, pending };
}

/**
 * The current bundle's record (null: none, e.g. written before lineage). One stat more than reading
 * it, unless an update was interrupted; then `damaged` (asked only then) says whether verify found
 * `<file>` damaged (readBundleSlots).
 */
export async function currentBundleRecord(store: Store, bundle: ResolvedBundle, damaged?: () => Promise<boolean>): Promise<BundleRecord | null> {
  if (!(await store.stat(pendingKey(bundle.relFile)))) return readRecord(store, metadataKey(bundle.relFile));
  const slots = await readBundleSlots(store, bundle, (await damaged?.()) ?? false);
  return slots.kept.find((slot) => slot.rotation === 0)?.record ?? null;
}

/**
 * Whether `persist verify` found the stored bundle damaged, it is still that file (its size and
 * mtime, damage.ts), and no generation record (current, pending or kept) has its sha256: a file
 * that one describes is whole, whoever wrote it. Costs one lstat unless verify found damage; then
 * the records and a hash of the file.
 */
export async function bundleFoundDamaged(host: Host, store: Store, bundle: ResolvedBundle): Promise<boolean> {
  if (!(await verifyFoundDamaged(host, store, bundle))) return false;
  const records: BundleRecord[] = [];
  for (const key of [pendingKey(bundle.relFile), ...Array.from({ length: bundle.keep + 1 }, (_, rotation) => metadataKey(bundle.relFile, rotation))]) {
    const record = await readRecord(store, key);
    if (record?.sha256) records.push(record);
  }
  if (records.length === 0) return true;
  const sha256 = await store.hash(bundle.relFile);
  return !records.some((record) => record.sha256 === sha256);
}

/** Generations kept: each bundle file whose generation is known, oldest first (a generation held twice is listed once). */
export async function bundleHistory(bundle: ResolvedBundle, store: Store): Promise<HistoryEntry[]> {
  const entries: HistoryEntry[] = [];
  for (const slot of (await readBundleSlots(store, bundle)).kept) {
    if (!slot.record || entries.some((entry) => entry.generation === slot.record!.generation)) continue;
    const { sha256: _sha256, ...record } = slot.record;
    entries.push({ ...record, current: slot.rotation === 0 });
  }
  return entries.sort((a, b) => a.generation - b.generation);
}

/** The file holding generation `generation` (the lowest rotation holding it), or null when it is not kept. */
export async function findGeneration(store: Store, bundle: ResolvedBundle, generation: number): Promise<{ found: KeptBundle | null; current: BundleRecord | null }> {
  const { kept } = await readBundleSlots(store, bundle);
  return { found: kept.find((slot) => slot.record?.generation === generation) ?? null, current: kept.find((slot) => slot.rotation === 0)?.record ?? null };
}

// --- an update's new generation ---

function whoWrote(record: GenerationRecord): string {
  return `${describeMachine({ id: record.machine, host: record.host })} at ${record.time}`;
}

/**
 * One update's generation: created before the bundle is built (it repairs what an interrupted
 * update left), handed to writeBundle as its hooks, committed once the new bundle is in place.
 */
export class BundleUpdate {
  private pending: BundleRecord | null = null;

  private constructor(
    private readonly host: Host,
    private readonly store: Store,
    private readonly bundle: ResolvedBundle,
    /** The record of each position after the repair (index = rotation). */
    private readonly records: (BundleRecord | null)[],
    private readonly machine: { id: string; host: string },
    /** Where an interrupted update left the rotation (update.ts, BundleWriteHooks.firstGap). */
    readonly firstGap: number | null,
    /** verify found `<file>` damaged: it is replaced, not kept as `<file>.1` (update.ts, BundleWriteHooks.replacesDamaged). */
    readonly replacesDamaged: boolean,
  ) {}

  /**
   * `expected`: the generation the action was decided on (the store's current one, null for none).
   *
   * A `<file>` that `persist verify` found damaged (and that is still that file: same size and
   * mtime, damage.ts) holds the generation recorded beside it, whose bytes it no longer has: the
   * update goes on from that generation, and the damaged file is not kept. That is no way around
   * the lineage guard: another machine's update writes its record (pending, then current) around
   * its upload, so its bundle matches a record and is another file than the one verify saw; a
   * file that matches no record and was not found damaged is still refused.
   */
  static async begin(host: Host, store: Store, bundle: ResolvedBundle, expected: number | null): Promise<BundleUpdate> {
    const machine = await ensureMachine(host);
    const damaged = await bundleFoundDamaged(host, store, bundle);
    const slots = await readBundleSlots(store, bundle, damaged);
    const records: (BundleRecord | null)[] = [];
    for (let rotation = 0; rotation <= bundle.keep; rotation++) records.push(slots.kept.find((slot) => slot.rotation === rotation)?.record ?? null);
    let firstGap: number | null = null;
    if (slots.pending) {
      // An update was interrupted: every record back beside its file, then the pending one gone.
      for (const [rotation, record] of records.entries()) {
        const stored = slots.stored[rotation] ?? null;
        if (record && !(stored && sameRecord(stored, record) && stored.bytes === record.bytes)) await store.write(metadataKey(bundle.relFile, rotation), serialize(record));
        else if (!record && stored) await store.remove(metadataKey(bundle.relFile, rotation));
      }
      await store.remove(pendingKey(bundle.relFile));
      // Resume the rotation: a missing file, or one the same as the file above it (a move through
      // a store whose rename is a copy and a delete), is where it stopped; <file>.1 the same as
      // <file>: the copy was made, nothing is left to move.
      const twins = (a: BundleRecord | null | undefined, b: BundleRecord | null | undefined) => !!a && !!b && sameRecord(a, b);
      const present = (rotation: number) => slots.kept.some((slot) => slot.rotation === rotation);
      if (twins(records[0], records[1])) firstGap = 0;
      else {
        for (let rotation = 1; rotation < bundle.keep; rotation++) {
          if (!present(rotation) || twins(records[rotation], records[rotation + 1])) {
            firstGap = rotation;
            break;
          }
        }
      }
    }
    const update = new BundleUpdate(host, store, bundle, records, machine, firstGap, damaged);
    const unmatched = !damaged && !records[0] && slots.kept.some((slot) => slot.rotation === 0) ? (slots.stored[0] ?? null) : null;
    if (unmatched && unmatched.generation === expected) {
      throw new ActionError(
        `bundle.${bundle.name}: ${bundle.relFile} is not what generation ${unmatched.generation} recorded in ${metadataKey(bundle.relFile)} (its size or sha256 differs: damaged, or put there by something other than persist); nothing was written. Run persist verify: a bundle it finds damaged is written again by the next apply.`,
      );
    }
    update.check(records[0] ?? null, expected, 'when the update began');
    return update;
  }

  private check(now: BundleRecord | null, expected: number | null, when: string): void {
    if ((now?.generation ?? null) === expected) return;
    const holds = now ? `generation ${now.generation}, written by ${whoWrote(now)}` : 'no recorded generation';
    throw new ActionError(
      `bundle.${this.bundle.name}: ${this.bundle.relFile} now holds ${holds} (${when}), not generation ${expected ?? 'none'} this update was planned on; nothing was written. Run persist plan to see what to do.`,
    );
  }

  /** After the new bundle was built and verified locally, before the store changes: check again, write the pending record. */
  readonly beforeRotate = async (built: { size: number; sha256: string; refs: number }): Promise<void> => {
    const base = this.records[0] ?? null;
    this.check(await currentBundleRecord(this.store, this.bundle), base?.generation ?? null, 'right before the rotation');
    this.pending = {
      generation: (base?.generation ?? 0) + 1,
      parent: base?.generation ?? null,
      time: this.host.now().toISOString(),
      machine: this.machine.id,
      host: this.machine.host,
      files: built.refs,
      bytes: built.size,
      sha256: built.sha256,
    };
    await this.store.write(pendingKey(this.bundle.relFile), serialize(this.pending));
  };

  /** `<file>.<from>` (0: a copy of `<file>`) now is `<file>.<to>`: its record follows it. */
  readonly moved = async (from: number, to: number): Promise<void> => {
    const record = this.records[from] ?? null;
    if (record) await this.store.write(metadataKey(this.bundle.relFile, to), serialize(record));
    else await this.store.remove(metadataKey(this.bundle.relFile, to));
    this.records[to] = record;
  };

  /** The new bundle is in place: its record becomes the current one. */
  async commit(): Promise<BundleRecord> {
    const record = this.pending!;
    await this.store.write(metadataKey(this.bundle.relFile), serialize(record));
    await this.store.remove(pendingKey(this.bundle.relFile));
    return record;
  }
}

// --- lineage rules for bundles (the same as a sync's, where a repo allows them) ---

export interface BundleLineage {
  store: StoreIdentity;
  /** The store's current generation (null: no record, e.g. written before lineage). */
  current: GenerationRecord | null;
  /** The generation this environment's bundle last saw in this store. */
  seen: number | null;
  /** The repo was last saved to or restored from another store. */
  foreign: { store: StoreIdentity; environment: string; event: string; at: string } | null;
  /** This machine's id, when it has one. */
  me: string | null;
  /** The repo's refs are those it had right after this machine last saved, restored or rolled it back. */
  unchangedSinceSeen?: boolean;
  /** The repo is as `persist rollback` left it (or changed since), and the store still holds the generation it was rolled back from. */
  rolledBack?: boolean;
}

/** A digest of a ref map (HEAD, refs, stash and work tree snapshot): did the repo change since? */
export function refsDigest(refs: Record<string, string>): string {
  const text = Object.keys(refs)
    .sort()
    .map((name) => `${refs[name]} ${name}`)
    .join('\n');
  return createHash('sha256').update(text).digest('hex');
}

/** `repoRefs`: the repo's ref map as a bundle of it would list it (null: no commits). */
export async function observeBundleLineage(bundle: ResolvedBundle, ctx: Pick<ObserveContext, 'host' | 'env'>, store: Store | null, repoRefs: Record<string, string> | null): Promise<BundleLineage> {
  const { host, env } = ctx;
  const identity = storeIdentity(env.buckets[bundle.bucket]!, bundle.relFile);
  const records = await readLocalRecords(host, env.environment, `bundle.${bundle.name}`, bundle.repo);
  const record = await (store ? currentBundleRecord(store, bundle, () => bundleFoundDamaged(host, store, bundle)) : null);
  const current = record ? (({ sha256: _sha256, ...rest }) => rest)(record) : null;
  const me = await peekMachine(host);
  const mine = records.resource && sameStore(records.resource.store, identity) ? records.resource : null;
  let seen = mine ? mine.generation : null;
  if (current && me && current.machine === me.id && (seen === null || seen < current.generation)) seen = current.generation;
  const folder = records.folder;
  const foreign = folder && !sameStore(folder.store, identity) ? { store: folder.store, environment: folder.environment, event: folder.event, at: folder.at } : null;
  const lineage: BundleLineage = { store: identity, current, seen, foreign, me: me?.id ?? null };
  if (mine?.tree && repoRefs && refsDigest(repoRefs) === mine.tree) lineage.unchangedSinceSeen = true;
  if (mine?.event === 'rollback' && current && mine.generation === current.generation) lineage.rolledBack = true;
  return lineage;
}

/** What lineage decides for a repo with commits; `decision` unset: the bundle's own rules decide. */
export interface BundleVerdict {
  decision?: Decision;
  /** A restore over the existing repo (it is kept aside first): its reason, note and changes. */
  restore?: { reason: string; note?: string; changes: Change[]; recordOnly?: boolean };
  /** The update may drop commits only the current bundle holds: it stays in history. */
  mayDrop?: string;
}

/**
 * Pure. `bundleExists`: the store holds the bundle file; `differing`: how many refs (HEAD, the
 * stash entries and the work tree snapshot included) differ between it and the repo.
 */
export function bundleLineageVerdict(bundle: ResolvedBundle, lineage: BundleLineage | undefined, bundleExists: boolean, differing: number, options: PlanOptions): BundleVerdict {
  if (!lineage) return {};
  const address = `bundle.${bundle.name}`;
  const conflict = (message: string, fix: string, overrideFlag?: string): BundleVerdict => ({
    decision: { address: address as Decision['address'], kind: 'bundle', action: 'conflict', phase: 'push', reason: message, changes: [], conflict: { message, fix, ...(overrideFlag ? { overrideFlag } : {}) } },
  });
  if (lineage.foreign) {
    const { foreign } = lineage;
    return conflict(
      `${bundle.repo} holds the repo of ${describeStore(foreign.store)} (environment ${foreign.environment}, last ${foreign.event} ${foreign.at}); it is never saved into ${describeStore(lineage.store)}`,
      `To start clean, move the repo aside (mv ${bundle.repo} ${bundle.repo}.${foreign.environment}) and apply again: it is restored from ${bundle.relFile} if that exists.`,
    );
  }
  const current = lineage.current;
  if (!bundleExists || !current) return {}; // a first save, or a bundle written before lineage (the bundle's own rules)

  const generationChange: Change = { field: 'generation', before: lineage.seen === null ? 'never seen' : String(lineage.seen), after: String(current.generation) };
  const differ = `${plural(differing, 'ref')} ${differing === 1 ? 'differs' : 'differ'}`;
  const asideChange: Change = { field: 'local repo', before: `${bundle.repo} (${differ} from the bundle)`, after: 'kept aside in the backups' };
  const note = `local repo kept aside: ${differ}`;
  if (differing === 0) {
    if (lineage.seen === current.generation) return {};
    return { restore: { reason: `${bundle.repo} already holds generation ${current.generation} of ${bundle.relFile} (written by ${whoWrote(current)}): recorded as seen here, nothing else changes`, changes: [generationChange], recordOnly: true } };
  }
  if (lineage.seen === null) {
    return {
      restore: {
        reason: `${bundle.relFile} holds generation ${current.generation} (written by ${whoWrote(current)}), which this machine has never restored or saved: restored, never saved over`,
        note,
        changes: [generationChange, asideChange],
      },
    };
  }
  const takeIt = `persist rollback ${address} --to ${current.generation}`;
  const forced = `--force-push: saving over generation ${current.generation}, written by ${whoWrote(current)} (it stays as ${bundle.relFile}.1)`;
  if (lineage.seen < current.generation) {
    if (options.forcePush) return { mayDrop: forced };
    if (lineage.unchangedSinceSeen) {
      return { restore: { reason: `${bundle.repo} is unchanged since generation ${lineage.seen}; ${bundle.relFile} holds generation ${current.generation}, written by ${whoWrote(current)}: restore it`, note, changes: [generationChange, asideChange] } };
    }
    return conflict(
      `${bundle.relFile} holds generation ${current.generation}, written by ${whoWrote(current)}, newer than generation ${lineage.seen} this machine last saw; ${bundle.repo} changed since, and an update would replace the other machine's commits`,
      `To take the store's (the local repo kept aside in the backups): ${takeIt}. To save this repo over it (generation ${current.generation} stays as ${bundle.relFile}.1): persist apply --force-push.`,
      '--force-push',
    );
  }
  if (lineage.seen > current.generation) {
    if (options.forcePush) return { mayDrop: forced };
    return conflict(
      `${bundle.relFile} holds generation ${current.generation}, older than generation ${lineage.seen} this machine saved: the bundle was rolled back or replaced since`,
      `To take the store's (the local repo kept aside in the backups): ${takeIt}. To save this repo over it: persist apply --force-push.`,
      '--force-push',
    );
  }
  if (lineage.rolledBack) return { mayDrop: `${bundle.repo} was rolled back from generation ${current.generation}: the update drops what only that generation holds (it stays as ${bundle.relFile}.1)` };
  return {};
}

/** After an update, a restore or a rollback: this machine has seen the bundle's current generation; `refs`: the repo's refs right after. */
export async function recordBundleSeen(host: Host, env: ResolvedEnvironment, bundle: ResolvedBundle, record: GenerationRecord | null, event: 'push' | 'restore' | 'rollback', refs: Record<string, string> | null): Promise<void> {
  await ensureMachine(host);
  await writeLocalRecord(host, {
    environment: env.environment,
    address: `bundle.${bundle.name}`,
    local: bundle.repo,
    store: storeIdentity(env.buckets[bundle.bucket]!, bundle.relFile),
    generation: record?.generation ?? 0,
    stamp: record ? { generation: record.generation, parent: record.parent, time: record.time, machine: record.machine, host: record.host } : null,
    tree: refs ? refsDigest(refs) : null,
    at: host.now().toISOString(),
    event,
  });
}

/** status: the store's generation, this machine's, and who wrote a newer one. */
export function bundleLineageFacts(lineage: BundleLineage | undefined, now: Date): Record<string, string | number | null> {
  if (!lineage) return {};
  const facts: Record<string, string | number | null> = { generation: lineage.current?.generation ?? null, seenHere: lineage.seen };
  const current = lineage.current;
  if (current && lineage.seen !== null && current.generation > lineage.seen) facts.newerBy = `${describeMachine({ id: current.machine, host: current.host })}, ${formatAge(Date.parse(current.time), now)}`;
  if (lineage.foreign) facts.holds = describeStore(lineage.foreign.store);
  return facts;
}

// --- verify and history: kept generations that cannot be read back ---

export interface BundleGenerationProblem {
  /** The generation (null: unknown, its record cannot be read). */
  generation: number | null;
  /** The store key: a kept bundle file or a record. */
  path: string;
  problem: string;
}

/**
 * Records of kept bundle files (`<file>.<k>.lineage.json`, k >= 1) that are in the store but cannot
 * be read: the file beside it holds a generation nobody can name, which history would otherwise
 * leave out without a word. `onlyKept`: only those whose bundle file is there (history).
 */
export async function damagedBundleRecords(store: Store, bundle: ResolvedBundle, onlyKept = true): Promise<BundleGenerationProblem[]> {
  const problems: BundleGenerationProblem[] = [];
  for (let rotation = 1; rotation <= bundle.keep; rotation++) {
    const key = metadataKey(bundle.relFile, rotation);
    if (!(await store.stat(key)) || (await readRecord(store, key))) continue;
    const file = bundleKey(bundle.relFile, rotation);
    const kept = (await store.stat(file))?.type === 'file';
    if (onlyKept && !kept) continue;
    problems.push({ generation: null, path: key, problem: `the record of ${file}${kept ? '' : ' (itself not there)'} cannot be read (not JSON, or not a generation record): which generation ${file} holds is unknown` });
  }
  return problems;
}

/**
 * Check the kept generations of a bundle (`<file>.1` .. `<file>.<keep>`): each record stored beside
 * them is readable, each generation a record names is held by a file of its recorded size (with
 * `hash`: its recorded sha256). Skipped while an update is unfinished (a pending record: records
 * may be one off from their files until the next update puts them back).
 */
export async function verifyBundleGenerations(store: Store, bundle: ResolvedBundle, hash: boolean): Promise<{ checked: number; problems: BundleGenerationProblem[] }> {
  const slots = await readBundleSlots(store, bundle);
  const problems = await damagedBundleRecords(store, bundle, false);
  const older = slots.kept.filter((slot) => slot.rotation >= 1);
  if (slots.pending) return { checked: older.length, problems };
  const current = slots.kept.find((slot) => slot.rotation === 0)?.record ?? slots.stored[0] ?? null;
  const held = new Set(slots.kept.flatMap((slot) => (slot.record ? [slot.record.generation] : [])));
  for (let rotation = 1; rotation < slots.stored.length; rotation++) {
    const record = slots.stored[rotation];
    if (!record || held.has(record.generation) || record.generation === current?.generation) continue;
    const file = bundleKey(bundle.relFile, rotation);
    const info = await store.stat(file);
    const recordedIn = metadataKey(bundle.relFile, rotation);
    const what = !info
      ? 'missing'
      : info.type !== 'file'
        ? `a ${info.type}, not a bundle file`
        : info.size !== record.bytes
          ? `damaged: ${info.size} bytes, not the ${record.bytes} recorded in ${recordedIn}`
          : `damaged: its content is not what was written as generation ${record.generation} (sha256 in ${recordedIn})`;
    problems.push({ generation: record.generation, path: file, problem: what });
  }
  if (hash) {
    for (const slot of older) {
      if (!slot.record?.sha256) continue;
      const sha256 = await store.hash(slot.key);
      if (sha256 !== slot.record.sha256) problems.push({ generation: slot.record.generation, path: slot.key, problem: `damaged: its content (sha256 ${sha256.slice(0, 16)}…) is not what was written as generation ${slot.record.generation} (sha256 ${slot.record.sha256.slice(0, 16)}…)` });
    }
  }
  return { checked: older.length, problems: problems.sort((a, b) => (a.generation ?? -1) - (b.generation ?? -1)) };
}
