// The bucket lease (docs/architecture.md, "The contracts the modules keep"): an object `.persist-lease.json`
// under the bucket's prefix naming the machine that may push. It belongs to the machine (the id in
// `<state>/machine-id`), not to a process: apply, watch and shutdown of one container share it.
//
// - created with `If-None-Match: *` (only one creator wins);
// - renewed with `If-Match: <etag>` (only the holder that read the current version wins);
// - released by deleting it, only while it is still ours;
// - taken over once its `expiresAt` has passed, with `If-Match` on the stale version's etag, so
//   that of two machines taking over the same stale lease only one wins.
//
// A `local` bucket (a folder standing in for one) keeps the same object as a file created with
// O_EXCL; a replace renames the file aside (one replacer wins), checks it is the version read,
// and creates the new one exclusively.
// A FUSE-mounted bucket with credentials takes the lease through the S3 API (a mount cannot do a
// compare-and-swap); one without credentials gets no lease.
//
// While a command holds leases, a LeaseKeeper renews each one a third of its time to live after
// its last renewal, so that a long apply (or watch's idle rounds) never lets it lapse; a lease
// found taken by another machine is reported to the command, which stops saving into that bucket.
import { createHash, randomBytes } from 'node:crypto';
import { basename, dirname, join } from 'node:path';
import { LockError } from '../errors.js';
import { ensureMachine } from '../lineage/machine.js';
import type { Host } from '../host/types.js';
import { errorMessage, PATH_TROUBLE } from '../output/format.js';
import { bucketFolderMissing, leaseFailedMessage, leaseHeldMessage, leaseTakenMessage } from '../output/lease-view.js';
import { closeWriteFence, setWriteFence } from '../store/fence.js';
import type { ResolvedBucket, ResolvedEnvironment } from '../spec/types.js';
import { DEFAULT_LEASE_TTL_MS, leaseTtlMs } from './lease-policy.js';

export const LEASE_KEY = '.persist-lease.json';
/** HTTP dates (`Date`, `Last-Modified`) count in whole seconds. */
const HTTP_DATE_RESOLUTION_MS = 1_000;
const POLL_MS = 1_000;
const RENEW_TICK_MS = 250;

export interface LeaseBody {
  machine: string;
  host: string;
  pid: number;
  acquiredAt: string;
  renewedAt: string;
  expiresAt: string;
}

export interface LeaseVersion {
  body: LeaseBody | null; // null: unreadable (half-written, foreign): treated as expired
  etag: string;
  /**
   * How long ago this version was written at least, by the store's own clock (an S3 answer's
   * `Date` less the object's `Last-Modified`, less a second for their resolution; a file's mtime
   * against this machine's clock), when it tells.
   * Expiry is judged by it: a machine whose clock runs ahead would take a live lease by `expiresAt`.
   */
  ageMs?: number;
}

/** Where a lease lives: conditional create, replace and delete of one object. */
export interface LeaseStore {
  /** For messages. */
  where: string;
  read(): Promise<LeaseVersion | null>;
  /** Create only if absent; null when someone else has it. */
  create(body: LeaseBody): Promise<string | null>;
  /** Replace only that version; null when it changed (or vanished). */
  replace(body: LeaseBody, etag: string): Promise<string | null>;
  /** Delete (only that version where the store can check). */
  remove(etag: string): Promise<void>;
}

// --- the machine id: src/lineage/machine.ts (one file per state folder, shared with lineage) ---

/** This machine's id, made once per state folder. */
export async function machineId(host: Host): Promise<string> {
  return (await ensureMachine(host)).id;
}


function parse(data: Buffer): LeaseBody | null {
  try {
    const body = JSON.parse(data.toString('utf8')) as LeaseBody;
    return typeof body.machine === 'string' && typeof body.expiresAt === 'string' ? body : null;
  } catch {
    return null;
  }
}

const text = (body: LeaseBody) => `${JSON.stringify(body)}\n`;

// --- stores ---

/** The lease as an S3 object (a bucket without a mount, or a mounted one with credentials). */
export async function s3LeaseStore(bucket: ResolvedBucket): Promise<LeaseStore> {
  const [{ clientFor, apiLabel }, { NoSuchKey, PreconditionFailed }] = await Promise.all([import('../store/api.js'), import('../store/s3/client.js')]);
  const client = await clientFor(bucket);
  const key = `${bucket.prefix ?? ''}${LEASE_KEY}`;
  const lost = (error: unknown): null => {
    if (error instanceof PreconditionFailed) return null;
    throw error;
  };
  const store: LeaseStore = {
    where: `${apiLabel(bucket)}/${LEASE_KEY}`,
    async read() {
      const got = await client.getTagged(key).catch((error: unknown) => (error instanceof NoSuchKey ? null : Promise.reject(error)));
      if (!got) return null;
      // HTTP dates count in whole seconds: the youngest the version can be.
      const ageMs = Date.parse(got.date) - Date.parse(got.lastModified) - HTTP_DATE_RESOLUTION_MS;
      return { body: parse(got.data), etag: got.etag, ...(Number.isFinite(ageMs) ? { ageMs } : {}) };
    },
    async create(body) {
      try {
        return (await client.put(key, Buffer.from(text(body)), { ifNoneMatch: '*', contentType: 'application/json' })).etag;
      } catch (error) {
        // An earlier attempt without an answer may have been ours.
        if (error instanceof PreconditionFailed && error.ambiguous) {
          const now = await store.read();
          if (now?.body && now.body.machine === body.machine && now.body.renewedAt === body.renewedAt) return now.etag;
        }
        return lost(error);
      }
    },
    async replace(body, etag) {
      try {
        return (await client.put(key, Buffer.from(text(body)), { ifMatch: etag, contentType: 'application/json' })).etag;
      } catch (error) {
        return lost(error);
      }
    },
    async remove() {
      await client.delete(key);
    },
  };
  return store;
}

/** How many listings in a row, with neither the lease nor an aside in them, make a file lease free (fileLeaseStore's read). */
const FREE_AFTER_MISSES = 3;

/** The lease as a file in a `local` bucket's folder, put in place only where none is (a hard link: see placeExclusive). */
export function fileLeaseStore(host: Host, folder: string, prefix = ''): LeaseStore {
  const path = join(folder, prefix, LEASE_KEY);
  const etagOf = (data: Buffer) => createHash('sha256').update(data).digest('hex');
  const versionOf = (data: Buffer) => ({ body: parse(data), etag: etagOf(data) });
  const readRaw = async (): Promise<Buffer | null> => {
    try {
      return await host.readFile(path);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw error;
    }
  };
  /**
   * The version read, with its age by its mtime (a version is put in place whole, just written:
   * placeExclusive). Stat'ed after the read: a newer version in between only makes it look younger.
   */
  const agedVersionOf = async (data: Buffer): Promise<LeaseVersion> => {
    const info = await host.stat(path).catch(() => null);
    return info ? { ...versionOf(data), ageMs: host.now().getTime() - info.mtimeMs } : versionOf(data);
  };
  const asidePrefix = `${LEASE_KEY}.taking-`;
  /**
   * One listing of the lease's folder: the lease there, moved aside by a replacement (below) whose
   * new version is not in place yet, or neither. While a lease is held, one of the two names is
   * there at every moment (a rename moves a name in one step, and the aside goes only after the
   * new version is in place), and a listing of a folder is one snapshot of it.
   */
  const listed = async (): Promise<'lease' | 'aside' | 'neither'> => {
    const names = await host.readdir(dirname(path)).catch(() => [] as string[]);
    if (names.includes(basename(path))) return 'lease';
    return names.some((name) => name.startsWith(asidePrefix)) ? 'aside' : 'neither';
  };
  /**
   * Put `data` at the lease's name unless something is there (false then). Written whole under a
   * name of its own first and linked into place: a file created in place is empty for a moment,
   * and a reader that took that for a damaged (so expired) lease would take it over.
   */
  const placeExclusive = async (data: Buffer): Promise<boolean> => {
    const written = join(dirname(path), `${LEASE_KEY}.writing-${randomBytes(6).toString('hex')}`);
    await host.writeFile(written, data, { exclusive: true, mode: 0o644 });
    try {
      await host.link(written, path);
      return true;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'EEXIST') return false;
      throw error;
    } finally {
      await host.remove(written);
    }
  };
  return {
    where: path,
    async read() {
      // Absent while it is being replaced, for a moment: waited for, or a held lease would look free.
      // A miss is no proof (a replacement may end right after it and the next begin right after
      // the next read: a holder renewing in a tight loop), so it is followed by a listing: the
      // lease back in it is read again; free means FREE_AFTER_MISSES listings in a row, 5 ms apart,
      // with neither the lease nor an aside in them. An aside a killed replacer left stops the
      // waiting after a second.
      let misses = 0;
      for (let waited = 0; ; waited += 5) {
        const data = await readRaw();
        if (data) return agedVersionOf(data);
        if (waited >= 1_000) return null;
        const found = await listed();
        if (found === 'lease') continue;
        misses = found === 'aside' ? 0 : misses + 1;
        if (misses >= FREE_AFTER_MISSES) return null;
        await host.sleep(5);
      }
    },
    async create(body) {
      const data = Buffer.from(text(body));
      try {
        // The bucket's folder is made by its mount action, never here; a prefix inside it may be new.
        if ((await host.stat(folder))?.type !== 'dir') throw new LockError(bucketFolderMissing(folder));
        if (prefix) await host.mkdir(join(folder, prefix));
        return (await placeExclusive(data)) ? etagOf(data) : null;
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code === 'EEXIST') return null;
        throw error;
      }
    },
    async replace(body, etag) {
      // Renamed aside first: of several replacers only one moves the file (the others find it
      // gone), so only one gets to create the new version exclusively.
      const aside = join(dirname(path), `${asidePrefix}${randomBytes(6).toString('hex')}`);
      try {
        await host.rename(path, aside);
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code === 'ENOENT') return null;
        throw error;
      }
      const taken = await host.readFile(aside);
      const data = etagOf(taken) === etag ? Buffer.from(text(body)) : taken; // not the version we read: put it back
      try {
        if (!(await placeExclusive(data))) return null; // a creator came in between: theirs stands
      } finally {
        await host.remove(aside);
      }
      return data === taken ? null : etagOf(data);
    },
    async remove(etag) {
      const current = await readRaw();
      if (current && etagOf(current) === etag) await host.remove(path);
    },
  };
}

/** The lease store of a bucket, or null when it can have none (a FUSE mount without credentials). */
export async function leaseStoreFor(host: Host, bucket: ResolvedBucket): Promise<LeaseStore | null> {
  if (bucket.mount?.backend === 'local') return fileLeaseStore(host, bucket.mount.path, bucket.prefix ?? '');
  if (bucket.credentials) return s3LeaseStore(bucket);
  return null;
}

// --- acquire, renew, release ---

export interface LeaseOptions {
  /** How long to wait for another machine's lease (--lock-timeout). */
  timeoutMs: number;
  ttlMs?: number;
  /** Called once when another machine's lease makes this one wait. */
  onWait?: (holder: LeaseBody | null, where: string) => void;
}

export interface HeldLease {
  store: LeaseStore;
  etag: string;
  body: LeaseBody;
  /** Set when the lease was taken over from an expired holder. */
  tookOverFrom?: LeaseBody;
}

export class LeaseHeld extends LockError {}

/**
 * Take (or renew, when already ours) the lease of `store`, waiting up to `timeoutMs` for another
 * machine's lease to be released or to expire. Throws LeaseHeld naming the holder.
 */
export async function acquireLease(host: Host, store: LeaseStore, options: LeaseOptions): Promise<HeldLease> {
  const ttl = options.ttlMs ?? DEFAULT_LEASE_TTL_MS;
  const { id: machine, host: name } = await ensureMachine(host);
  const deadline = host.now().getTime() + options.timeoutMs;
  let waited = false;
  for (;;) {
    const now = host.now();
    const body: LeaseBody = {
      machine, host: name, pid: host.pid(), acquiredAt: now.toISOString(), renewedAt: now.toISOString(), expiresAt: new Date(now.getTime() + ttl).toISOString(),
    };
    const current = await store.read();
    if (!current) {
      const etag = await store.create(body);
      if (etag) return { store, etag, body };
      continue; // someone created it meanwhile: look at theirs
    }
    const ours = current.body?.machine === machine;
    const expired = isExpired(current, now.getTime());
    if (ours || expired) {
      const next = ours && current.body ? { ...body, acquiredAt: current.body.acquiredAt } : body;
      const etag = await store.replace(next, current.etag);
      if (etag) return { store, etag, body: next, ...(!ours && current.body ? { tookOverFrom: current.body } : {}) };
      continue; // it changed between our read and our write: read again
    }
    if (now.getTime() >= deadline) {
      throw new LeaseHeld(leaseHeldMessage(store.where, current.body, machine));
    }
    if (!waited) options.onWait?.(current.body, store.where);
    waited = true;
    await host.sleep(Math.min(POLL_MS, Math.max(10, deadline - now.getTime())));
  }
}

/** Renew a held lease (watch, each round); throws LeaseHeld when another machine took it. */
export async function renewLease(host: Host, held: HeldLease, ttlMs = DEFAULT_LEASE_TTL_MS): Promise<HeldLease> {
  const now = host.now();
  const body = { ...held.body, pid: host.pid(), renewedAt: now.toISOString(), expiresAt: new Date(now.getTime() + ttlMs).toISOString() };
  const etag = await held.store.replace(body, held.etag);
  if (etag) return { ...held, etag, body };
  // Our etag is stale (another process of this machine renewed it): renew what is there if it is still ours.
  const current = await held.store.read();
  if (current?.body?.machine === held.body.machine) {
    const again = await held.store.replace({ ...body, acquiredAt: current.body.acquiredAt }, current.etag);
    if (again) return { ...held, etag: again, body };
  }
  throw new LeaseHeld(leaseTakenMessage(held.store.where, current?.body ?? null));
}

/** Who holds the lease of a store (for status): null when nobody does. */
export async function leaseHolder(host: Host, store: LeaseStore): Promise<(LeaseBody & { expired: boolean }) | null> {
  const current = await store.read();
  if (!current?.body) return null;
  return { ...current.body, expired: isExpired(current, host.now().getTime()) };
}


/**
 * Whether a lease version may be taken over: unreadable, or not renewed for its holder's time to
 * live (`expiresAt` less `renewedAt`: both the holder's clock, so their difference is not skewed),
 * measured by the store's clock where it tells the version's age, else by `expiresAt` against
 * this machine's clock.
 */
export function isExpired(version: LeaseVersion, nowMs: number): boolean {
  const body = version.body;
  if (!body) return true;
  const expiresAt = Date.parse(body.expiresAt);
  const ttl = expiresAt - Date.parse(body.renewedAt);
  if (!Number.isFinite(ttl)) return true;
  if (version.ageMs !== undefined) return version.ageMs >= ttl;
  return expiresAt <= nowMs;
}

/**
 * Release this machine's lease of every bucket of `env` (for shutdown): deleted only while it is
 * still ours. Returns the leases released. With `onFailure`, a lease that cannot be read or
 * deleted (the store unreachable) is said there and the others are still released; without it,
 * the error is thrown.
 */
export async function releaseLease(host: Host, env: ResolvedEnvironment, onFailure?: (where: string, message: string) => void): Promise<string[]> {
  const machine = await machineId(host);
  const released: string[] = [];
  for (const bucket of Object.values(env.buckets)) {
    const store = await leaseStoreFor(host, bucket);
    if (!store) continue;
    let current: Awaited<ReturnType<LeaseStore['read']>>;
    try {
      current = await store.read();
      if (current?.body?.machine !== machine) continue;
      await store.remove(current.etag);
      released.push(store.where);
    } catch (error) {
      // A local bucket's folder that cannot be read (a symbolic link loop, no permission): plan and
      // apply name it (its mount's conflict); no lease can be read there, so none is released, and
      // one this machine took before expires after its time to live.
      const code = (error as NodeJS.ErrnoException).code;
      if (bucket.mount?.backend === 'local' && code !== undefined && Object.hasOwn(PATH_TROUBLE, code)) continue;
      if (!onFailure) throw error;
      onFailure(store.where, errorMessage(error));
    }
  }
  return released;
}

// --- the keeper: the leases one command holds ---

/**
 * The leases a command (apply, watch, shutdown) holds, renewed in the background a third of their
 * time to live after their last renewal. It never releases them: a machine's lease outlives its
 * commands until `persist shutdown` releases it or it expires.
 */
export class LeaseKeeper {
  readonly #held = new Map<string, { lease: HeldLease; ttlMs: number }>();
  #timer: NodeJS.Timeout | undefined;
  #renewing: Promise<void> | null = null;

  constructor(
    private readonly host: Host,
    private readonly events: {
      /** A lease found taken by another machine (or that could not be renewed before it expired). */
      onLost: (bucket: string, message: string) => void;
      onWait?: LeaseOptions['onWait'];
      /** A lease taken over from another machine that had let it expire (killed without shutdown). */
      onTakeOver?: (from: LeaseBody, where: string) => void;
    },
  ) {}

  /** Bucket keys whose lease this keeper holds. */
  heldBuckets(): string[] {
    return [...this.#held.keys()];
  }

  /**
   * Take (or renew) the lease of each bucket, waiting up to `timeoutMs` for another machine's.
   * Throws LeaseHeld naming the holder, or a LockError saying why the lease could not be taken.
   */
  async take(buckets: ResolvedBucket[], timeoutMs: number): Promise<void> {
    for (const bucket of buckets) {
      const ttlMs = leaseTtlMs(bucket);
      let store: LeaseStore | null;
      try {
        store = await leaseStoreFor(this.host, bucket);
        if (!store) continue;
        const lease = await acquireLease(this.host, store, { timeoutMs, ttlMs, ...(this.events.onWait ? { onWait: this.events.onWait } : {}) });
        this.#hold(bucket.key, { lease, ttlMs });
        if (lease.tookOverFrom) this.events.onTakeOver?.(lease.tookOverFrom, store.where);
      } catch (error) {
        if (error instanceof LeaseHeld) throw error;
        throw new LockError(leaseFailedMessage(bucket.key, errorMessage(error)));
      }
    }
  }

  /**
   * watch: take or renew what can be had now, without waiting. Returns, per bucket that is not
   * ours, why (another machine holds it, or the lease could not be reached).
   */
  async keep(buckets: ResolvedBucket[]): Promise<Map<string, { message: string; held: boolean }>> {
    const refused = new Map<string, { message: string; held: boolean }>();
    for (const bucket of buckets) {
      const held = this.#held.get(bucket.key);
      try {
        if (held && !this.#due(held)) continue;
        await this.take([bucket], 0);
      } catch (error) {
        this.#held.delete(bucket.key);
        if (error instanceof LeaseHeld) closeWriteFence(bucket.key, errorMessage(error));
        refused.set(bucket.key, { message: errorMessage(error), held: error instanceof LeaseHeld });
      }
    }
    return refused;
  }

  /** Renew in the background until stop(). */
  start(): void {
    if (this.#timer) return;
    // A tick only compares times; a lease is written when it is due (a third of its time to live).
    this.#timer = setInterval(() => {
      this.#renewing ??= this.#renewDue().finally(() => (this.#renewing = null));
    }, RENEW_TICK_MS);
    this.#timer.unref();
  }

  /** Stop renewing (waits for a renewal in flight). The leases stay held until they expire. */
  async stop(): Promise<void> {
    clearInterval(this.#timer);
    this.#timer = undefined;
    await this.#renewing;
  }

  /** Hold `entry` for `bucket`; writes into it may start until its `expiresAt`, then once a renewal confirms it (store/fence.ts). */
  #hold(bucket: string, entry: { lease: HeldLease; ttlMs: number }): void {
    this.#held.set(bucket, entry);
    setWriteFence(bucket, Date.parse(entry.lease.body.expiresAt), async () => {
      const now = this.#held.get(bucket);
      if (!now) return 'the lease is not held';
      try {
        await this.#renew(bucket, now);
        return null;
      } catch (error) {
        return errorMessage(error);
      }
    });
  }

  /**
   * Renew the lease of `bucket`. A lease another machine took is lost for good (said once through
   * onLost, and no write into the bucket starts any more); a store that does not answer throws, and
   * the lease is lost only once it has expired.
   */
  async #renew(bucket: string, held: { lease: HeldLease; ttlMs: number }): Promise<void> {
    try {
      this.#hold(bucket, { ...held, lease: await renewLease(this.host, held.lease, held.ttlMs) });
    } catch (error) {
      const expired = this.host.now().getTime() >= Date.parse(held.lease.body.expiresAt);
      if ((error instanceof LeaseHeld || expired) && this.#held.has(bucket)) {
        this.#held.delete(bucket);
        closeWriteFence(bucket, errorMessage(error));
        this.events.onLost(bucket, errorMessage(error));
      }
      throw error;
    }
  }

  #due(held: { lease: HeldLease; ttlMs: number }): boolean {
    return this.host.now().getTime() - Date.parse(held.lease.body.renewedAt) >= held.ttlMs / 3;
  }

  async #renewDue(): Promise<void> {
    for (const [bucket, held] of [...this.#held]) {
      if (!this.#due(held)) continue;
      await this.#renew(bucket, held).catch(() => undefined); // tried again at the next tick
    }
  }
}
