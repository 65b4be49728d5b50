// The bucket lease over real HTTP (the strict server enforces If-None-Match / If-Match) and as an
// exclusive file for a `local` bucket: create, renew, hold against another machine, release,
// take over after expiry (judged by the store's clock), two racing acquirers of which exactly one
// wins, and the write fence that keeps a holder frozen past its lease from writing when it wakes.
import { mkdir, mkdtemp, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { acquireLease, fileLeaseStore, LEASE_KEY, LeaseHeld, leaseHolder, LeaseKeeper, machineId, releaseLease, renewLease, s3LeaseStore, type LeaseStore } from '../../src/engine/lease.js';
import { Sensitive } from '../../src/spec/sensitive.js';
import type { ResolvedBucket, ResolvedEnvironment } from '../../src/spec/types.js';
import { storesFor } from '../../src/store/index.js';
import { hostWithState } from '../e2e/flow-helpers.js';
import { S3RVER_ACCESS_KEY, S3RVER_SECRET_KEY, startStrictS3Server, type StrictS3TestServer } from '../helpers/s3server.js';

const BUCKET = 'lease-test';
let server: StrictS3TestServer;
let work: string;

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'persist-lease-'));
  await mkdir(join(work, 'local-bucket')); // a `local` bucket's folder is made by its mount
  server = await startStrictS3Server([BUCKET]);
});
afterAll(async () => {
  await server?.stop();
  if (work) await rm(work, { recursive: true, force: true });
});

function bucket(prefix: string): ResolvedBucket {
  return {
    key: 'data', name: BUCKET, endpoint: server.endpoint, region: 'us-east-1', pathStyle: true, provider: 'other', prefix,
    credentials: { accessKeyId: new Sensitive(S3RVER_ACCESS_KEY), secretAccessKey: new Sensitive(S3RVER_SECRET_KEY) },
  };
}

function env(b: ResolvedBucket): ResolvedEnvironment {
  return { specFile: '/x/persist.yaml', specHash: '0', environment: 'test', workspace: '/x', buckets: { data: b }, links: {}, bundles: {}, syncs: {}, files: {} };
}

const machine = (name: string) => hostWithState(join(work, name));

describe('machine id', () => {
  it('is made once per state folder: one line of 32 hex characters, read back afterwards', async () => {
    const host = machine('id-a');
    const first = await machineId(host);
    expect(first).toMatch(/^[0-9a-f]{32}$/);
    expect(await readFile(join(work, 'id-a', 'machine-id'), 'utf8')).toBe(`${first}\n`);
    expect(await machineId(host)).toBe(first);
    const [x, y] = await Promise.all([machineId(machine('id-b')), machineId(machine('id-b'))]);
    expect(x).toBe(y);
    expect(x).not.toBe(first);
  });
});

for (const kind of ['s3', 'file'] as const) {
  describe(`the lease (${kind})`, () => {
    const storeFor = async (prefix: string): Promise<LeaseStore> => (kind === 's3' ? s3LeaseStore(bucket(prefix)) : fileLeaseStore(machine('unused'), join(work, 'local-bucket'), prefix));

    it('is created, renewed by its machine, refused to another until released, named by its holder', async () => {
      const a = machine(`${kind}-a`);
      const b = machine(`${kind}-b`);
      const store = await storeFor('p1/');
      if (kind === 's3') server.resetCounts();
      expect(await store.read()).toBeNull();
      const held = await acquireLease(a, store, { timeoutMs: 0 });
      expect(held.body.machine).toBe(await machineId(a));
      expect((await store.read())?.etag).toBe(held.etag);
      // Through S3 a read is one GET, body and ETag together, absent or present.
      if (kind === 's3') expect(server.stats().requests).toEqual({ GET: 3, PUT: 1 });
      if (kind === 's3') expect(await server.listObjects(BUCKET)).toContain(`p1/${LEASE_KEY}`);
      const renewed = await renewLease(a, held);
      expect(renewed.etag).not.toBe(held.etag);
      // Apply again on machine A (another process): renewed, not refused.
      await acquireLease(a, store, { timeoutMs: 0 });
      const started = Date.now();
      const refused = await acquireLease(b, store, { timeoutMs: 1_200 }).catch((error: unknown) => error);
      expect(refused).toBeInstanceOf(LeaseHeld);
      expect(Date.now() - started).toBeGreaterThanOrEqual(1_000);
      expect(String((refused as Error).message)).toContain(`machine ${await machineId(a)}`);
      expect((await leaseHolder(b, store))?.machine).toBe(await machineId(a));
      if (kind === 's3') {
        // B cannot release A's lease; A can.
        expect(await releaseLease(b, env(bucket('p1/')))).toEqual([]);
        expect(await releaseLease(a, env(bucket('p1/')))).toEqual([store.where]);
      } else {
        await store.remove((await store.read())!.etag);
      }
      expect(await leaseHolder(b, store)).toBeNull();
      const taken = await acquireLease(b, store, { timeoutMs: 0 });
      expect(taken.body.machine).toBe(await machineId(b));
      // A's stale handle cannot renew any more.
      await expect(renewLease(a, renewed)).rejects.toBeInstanceOf(LeaseHeld);
    });

    it('is taken over after its time to live, by one of two racing machines', async () => {
      const store = await storeFor('p2/');
      const old = await acquireLease(machine(`${kind}-old`), store, { timeoutMs: 0, ttlMs: 300 });
      // Expired by the store's clock: an S3 answer's dates count in whole seconds (up to two more than the ttl).
      await new Promise((resolve) => setTimeout(resolve, kind === 's3' ? 2_400 : 400));
      const racers = Array.from({ length: 4 }, (_, i) => machine(`${kind}-racer-${i}`));
      const results = await Promise.allSettled(racers.map((host) => acquireLease(host, store, { timeoutMs: 0 })));
      const won = results.filter((r) => r.status === 'fulfilled');
      expect(won).toHaveLength(1);
      const winner = (won[0] as PromiseFulfilledResult<Awaited<ReturnType<typeof acquireLease>>>).value;
      // Through S3 the winner replaced the stale version (If-Match); with a file it may also have
      // created it anew in the moment another taker had renamed the stale one aside.
      if (kind === 's3') expect(winner.tookOverFrom?.machine).toBe(old.body.machine);
      expect((await leaseHolder(racers[0]!, store))?.machine).toBe(winner.body.machine);
      for (const r of results) if (r.status === 'rejected') expect(r.reason).toBeInstanceOf(LeaseHeld);
    });

    it("is judged expired by the store's clock: a machine whose clock runs 90 s ahead waits for it like any other", async () => {
      const store = await storeFor('p-skew/');
      const holder = await acquireLease(machine(`${kind}-on-time`), store, { timeoutMs: 0, ttlMs: 2_000 });
      const ahead = machine(`${kind}-ahead`);
      const realNow = ahead.now.bind(ahead);
      ahead.now = () => new Date(realNow().getTime() + 90_000);
      // By its own clock the holder's expiresAt is long past; by the store's, the lease is 0-1 s old.
      await expect(acquireLease(ahead, store, { timeoutMs: 0 })).rejects.toBeInstanceOf(LeaseHeld);
      expect((await leaseHolder(ahead, store))?.expired).toBe(false);
      // Not renewed for its time to live (an S3 store's dates count in whole seconds): taken over.
      await new Promise((resolve) => setTimeout(resolve, kind === 's3' ? 4_100 : 2_100));
      expect((await acquireLease(ahead, store, { timeoutMs: 0 })).body.machine).not.toBe(holder.body.machine);
    });

    it('of a fresh key: two racing creators, exactly one wins', async () => {
      const store = await storeFor('p3/');
      const results = await Promise.allSettled([0, 1, 2].map((i) => acquireLease(machine(`${kind}-new-${i}`), store, { timeoutMs: 0 })));
      expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
    });

    it('is never seen free while its holder renews it: readers find it, another machine is refused', async () => {
      const store = await storeFor('p4/');
      const holder = machine(`${kind}-renewer`);
      let held = await acquireLease(holder, store, { timeoutMs: 0 });
      let renewing = true;
      const renewals = (async () => {
        for (let i = 0; i < (kind === 's3' ? 30 : 150) && renewing; i++) held = await renewLease(holder, held);
        renewing = false;
      })();
      const other = machine(`${kind}-newcomer`);
      let reads = 0;
      try {
        while (renewing) {
          expect((await store.read())?.body?.machine).toBe(held.body.machine);
          await expect(acquireLease(other, store, { timeoutMs: 0 })).rejects.toBeInstanceOf(LeaseHeld);
          reads++;
        }
      } finally {
        renewing = false;
        await renewals;
      }
      expect(reads).toBeGreaterThan(0);
    });
  });
}

describe('the lease as a file, read while its holder replaces it', () => {
  /** A lease held in a new local bucket folder `name`, by machine `name`-holder. */
  async function heldIn(name: string) {
    const folder = join(work, name);
    await mkdir(folder);
    const holder = machine(`${name}-holder`);
    const held = await acquireLease(holder, fileLeaseStore(holder, folder), { timeoutMs: 0 });
    return { folder, path: join(folder, LEASE_KEY), held };
  }
  /** The end of a renewal: the new version in place (here the same bytes), its aside gone. */
  async function endRenewal(path: string, aside: string) {
    await writeFile(path, await readFile(aside), { flag: 'wx' });
    await rm(aside);
  }

  it('is not seen free when the replacement ends between the read that missed it and the look for its aside', async () => {
    const { folder, path, held } = await heldIn('local-bucket-replacing');
    // The holder's renewal, half-way: the lease moved aside, the new version not yet in place.
    const aside = join(folder, `${LEASE_KEY}.taking-test`);
    await rename(path, aside);
    // The reader misses the file; right before it lists the folder, the renewal ends.
    const base = machine('replacing-reader');
    let finished = false;
    const reader = Object.assign(Object.create(base) as typeof base, {
      readdir: async (dir: string) => {
        if (!finished) {
          finished = true;
          await endRenewal(path, aside);
        }
        return base.readdir(dir);
      },
    });
    const seen = await fileLeaseStore(reader, folder).read();
    expect(finished).toBe(true);
    expect(seen?.body?.machine).toBe(held.body.machine);
  });

  it('is not seen free when one renewal ends and the next begins between its read and its look for an aside', async () => {
    const { folder, path, held } = await heldIn('local-bucket-renewing-twice');
    const first = join(folder, `${LEASE_KEY}.taking-first`);
    await rename(path, first); // the first renewal, half-way
    // The reader misses the file. Right before it lists the folder, the first renewal ends; right
    // after, the second one moves the lease aside, and puts it back 30 ms later.
    const base = machine('renewing-reader');
    let listings = 0;
    let second: Promise<void> | undefined;
    const reader = Object.assign(Object.create(base) as typeof base, {
      readdir: async (dir: string) => {
        listings++;
        if (listings > 1) return base.readdir(dir);
        await endRenewal(path, first);
        const listed = await base.readdir(dir);
        const aside = join(folder, `${LEASE_KEY}.taking-second`);
        await rename(path, aside);
        second = new Promise((resolve) => setTimeout(resolve, 30)).then(() => endRenewal(path, aside));
        return listed;
      },
    });
    const seen = await fileLeaseStore(reader, folder).read();
    await second;
    expect(listings).toBeGreaterThan(1);
    expect(seen?.body?.machine).toBe(held.body.machine);
  });

  it('is not seen free when every read misses it between renewals and every listing then shows it', async () => {
    const { folder, path, held } = await heldIn('local-bucket-tight-renewals');
    // A holder renewing in a tight loop: each read lands inside a replacement (the file moved
    // aside), each listing right after it, when the new version is back in place.
    const base = machine('tight-renewals-reader');
    let misses = 0;
    const reader = Object.assign(Object.create(base) as typeof base, {
      readFile: async (file: string) => {
        if (file === path && misses < 5) {
          misses++;
          throw Object.assign(new Error(`ENOENT: ${file}`), { code: 'ENOENT' });
        }
        return base.readFile(file);
      },
    });
    const seen = await fileLeaseStore(reader, folder).read();
    expect(misses).toBe(5);
    expect(seen?.body?.machine).toBe(held.body.machine);
  });

  it('never shows a renewal half-written: a newcomer that comes as the new version appears is refused', async () => {
    const { folder, path, held } = await heldIn('local-bucket-half-written');
    // The newcomer comes the moment the new version's name appears. A file written at that name
    // appears empty first (the kernel creates it, then the bytes come): that is modelled here, and
    // an empty lease reads as a damaged, so expired, one.
    const newcomer = machine('half-written-newcomer');
    let tried: Promise<unknown> | undefined;
    /** The newcomer's one try: 'taken', or the error it got. */
    const newcomerTries = () => (tried ??= acquireLease(newcomer, fileLeaseStore(newcomer, folder), { timeoutMs: 0 }).then(() => 'taken', (error: unknown) => error));
    const base = machine('local-bucket-half-written-holder');
    const holder = Object.assign(Object.create(base) as typeof base, {
      writeFile: async (file: string, data: string | Buffer, options?: { mode?: number; exclusive?: boolean }) => {
        if (file !== path) return base.writeFile(file, data, options);
        await writeFile(path, '', { flag: 'wx' });
        await newcomerTries();
        await writeFile(path, data);
      },
      link: async (existing: string, file: string) => {
        await base.link(existing, file);
        if (file === path) await newcomerTries();
      },
    });
    const renewed = await renewLease(holder, { ...held, store: fileLeaseStore(holder, folder) });
    expect(await tried).toBeInstanceOf(LeaseHeld);
    expect((await leaseHolder(newcomer, fileLeaseStore(newcomer, folder)))?.machine).toBe(renewed.body.machine);
  });
});

describe('the keeper (a command holding leases)', () => {
  const localBucket = (name: string, ttl: number): ResolvedBucket => ({
    key: name, name: `bucket-${name}`, pathStyle: true, provider: 'other', leaseTtlMs: ttl, mount: { backend: 'local', path: join(work, `keeper-${name}`), options: {} },
  });

  it('renews a lease a third of its time to live after each renewal, so it never lapses while held', async () => {
    const bucket = localBucket('renew', 900);
    await mkdir(bucket.mount!.path);
    const host = machine('keeper-a');
    const lost: string[] = [];
    const keeper = new LeaseKeeper(host, { onLost: (key, message) => lost.push(`${key}: ${message}`) });
    await keeper.take([bucket], 0);
    keeper.start();
    const store = fileLeaseStore(host, bucket.mount!.path);
    const first = (await store.read())!.body!;
    await new Promise((resolve) => setTimeout(resolve, 2_000));
    const later = (await store.read())!.body!;
    await keeper.stop();
    expect(lost).toEqual([]);
    expect(Date.parse(later.renewedAt)).toBeGreaterThan(Date.parse(first.renewedAt));
    expect(Date.parse(later.expiresAt)).toBeGreaterThan(Date.now());
    expect(later.acquiredAt).toBe(first.acquiredAt);
    // Another machine still cannot take it; stopping the keeper does not release it.
    await expect(acquireLease(machine('keeper-b'), store, { timeoutMs: 0 })).rejects.toBeInstanceOf(LeaseHeld);
  });

  it('reports a lease another machine took as lost, naming it, and stops renewing it', async () => {
    const bucket = localBucket('lost', 1_200);
    await mkdir(bucket.mount!.path);
    const lost: string[] = [];
    const keeper = new LeaseKeeper(machine('keeper-c'), { onLost: (key, message) => lost.push(`${key}: ${message}`) });
    await keeper.take([bucket], 0);
    keeper.start();
    // Another machine overwrites it (as one would after our lease had expired unseen).
    const thief = machine('keeper-d');
    const store = fileLeaseStore(thief, bucket.mount!.path);
    await store.remove((await store.read())!.etag);
    await acquireLease(thief, store, { timeoutMs: 0, ttlMs: 60_000 });
    await new Promise((resolve) => setTimeout(resolve, 1_000));
    await keeper.stop();
    expect(lost).toHaveLength(1);
    expect(lost[0]).toContain(`lost: the bucket lease ${store.where} was taken by machine ${await machineId(thief)}`);
    expect(keeper.heldBuckets()).toEqual([]);
    expect((await leaseHolder(thief, store))?.machine).toBe(await machineId(thief));
  });

  it("keep() takes what is free, renews its own, and says why for a bucket another machine holds", async () => {
    const mine = localBucket('keep-mine', 60_000);
    const theirs = localBucket('keep-theirs', 60_000);
    for (const b of [mine, theirs]) await mkdir(b.mount!.path);
    await acquireLease(machine('keeper-other'), fileLeaseStore(machine('keeper-other'), theirs.mount!.path), { timeoutMs: 0 });
    const keeper = new LeaseKeeper(machine('keeper-e'), { onLost: () => undefined });
    const refused = await keeper.keep([mine, theirs]);
    expect(keeper.heldBuckets()).toEqual(['keep-mine']);
    expect([...refused.keys()]).toEqual(['keep-theirs']);
    expect(refused.get('keep-theirs')).toMatchObject({ held: true, message: expect.stringContaining(`is held by machine ${await machineId(machine('keeper-other'))}`) });
    // A bucket whose folder its mount has not made yet is not created by the lease.
    const unmade = localBucket('unmade', 60_000);
    const why = await keeper.keep([unmade]);
    expect(why.get('unmade')).toMatchObject({ held: false, message: expect.stringContaining(`the bucket folder ${unmade.mount!.path} is not there yet`) });
    await keeper.stop();
  });
});

describe('lease: { ttl } in the spec', () => {
  it('sets the time to live per bucket (an environment may change it); without it the default is 60 s', async () => {
    const dir = join(work, 'spec-ttl');
    await mkdir(dir);
    const file = join(dir, 'persist.yaml');
    const { writeFile } = await import('node:fs/promises');
    await writeFile(file, ['version: 1', 'buckets:', '  data:', '    name: test-data-${environment}', '    mount: { backend: local, path: "./bucket-${environment}" }', '    lease: { ttl: 90s }', '  logs:', '    name: test-logs-${environment}', '    mount: { backend: local, path: "./logs-${environment}" }', 'environments:', '  dev: {}', '  prod:', '    buckets:', '      data:', '        lease: { ttl: 2m }', ''].join('\n'));
    const { loadEnvironment } = await import('../../src/spec/index.js');
    const { leaseTtlMs } = await import('../../src/engine/lease-policy.js');
    const dev = await loadEnvironment({ file, environment: 'dev', processEnv: {} });
    const prod = await loadEnvironment({ file, environment: 'prod', processEnv: {} });
    expect(leaseTtlMs(dev.buckets.data!)).toBe(90_000);
    expect(leaseTtlMs(prod.buckets.data!)).toBe(120_000);
    expect(leaseTtlMs(dev.buckets.logs!)).toBe(60_000);
  });
});

describe('the write fence of a held lease (a container frozen past its lease, then resumed)', () => {
  const localBucket = (name: string, ttl: number): ResolvedBucket => ({
    key: name, name: `bucket-${name}`, pathStyle: true, provider: 'other', leaseTtlMs: ttl, mount: { backend: 'local', path: join(work, `fence-${name}`), options: {} },
  });
  /** The bucket's store as the commands get it (fenced by the lease this process holds). */
  const storeOf = (host: ReturnType<typeof machine>, b: ResolvedBucket) => storesFor(env({ ...b, key: 'data' }), host)('data');

  it('refuses every write once another machine took the lease over, and lets writes go on after a late renewal that finds it still ours', async () => {
    const taken = localBucket('fence-taken', 1_000);
    const quiet = localBucket('fence-quiet', 1_000);
    for (const b of [taken, quiet]) await mkdir(b.mount!.path);
    const host = machine('fence-holder');
    const lost: string[] = [];
    const keeper = new LeaseKeeper(host, { onLost: (key, message) => lost.push(`${key}: ${message}`) });
    // Held but never renewed in the background: the process is frozen.
    await keeper.take([{ ...taken, key: 'data' }], 0);
    const store = storeOf(host, taken);
    await store.write('before.txt', 'written while held\n');
    await new Promise((resolve) => setTimeout(resolve, 2_200));
    const thief = machine('fence-thief');
    await acquireLease(thief, fileLeaseStore(thief, taken.mount!.path), { timeoutMs: 0, ttlMs: 60_000 });
    await expect(store.write('after.txt', 'the frozen holder wakes up\n')).rejects.toThrow(/the lease of bucket data was not renewed in time .*taken by machine/);
    await expect(store.remove('before.txt')).rejects.toThrow(/taken by machine/);
    expect(await readFile(join(taken.mount!.path, 'before.txt'), 'utf8')).toBe('written while held\n');
    await expect(readFile(join(taken.mount!.path, 'after.txt'))).rejects.toThrow(/ENOENT/);
    expect(lost).toHaveLength(1);

    // Nobody took it: the write renews it (compare-and-swap) and goes on.
    const other = machine('fence-holder-2');
    const keeper2 = new LeaseKeeper(other, { onLost: () => undefined });
    await keeper2.take([{ ...quiet, key: 'data' }], 0);
    await new Promise((resolve) => setTimeout(resolve, 1_200));
    await storeOf(other, quiet).write('late.txt', 'after a late renewal\n');
    expect(await readFile(join(quiet.mount!.path, 'late.txt'), 'utf8')).toBe('after a late renewal\n');
    expect((await leaseHolder(other, fileLeaseStore(other, quiet.mount!.path)))?.expired).toBe(false);
    await keeper.stop();
    await keeper2.stop();
  });
});
