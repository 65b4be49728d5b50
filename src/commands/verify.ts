// `persist verify [--hash]`: every stored file of every sync against its manifest (size; with
// --hash, content) and every bundle against its header and generation record (size; with --hash,
// the recorded sha256, and git reading the whole pack where the store is a folder: see
// resources/bundle/verify.ts), a sync's manifest shards as stored (resources/sync/verify-manifest.ts:
// plan reads this machine's copies), and the kept generations of both (history, rollback; reported,
// not repairable). Exit 1 listing what is missing or damaged; the findings are recorded on local
// disk so that the next plan pushes those files (or manifest shards) again (a bundle: writes it again).
//
// A push rewrites files first and its manifest last, so a push under way makes files it already
// replaced mismatch the manifest read before it. So verify holds this machine's apply lock (an
// apply, watch round or shutdown of this machine runs before or after it, never during it: it
// waits up to VERIFY_LOCK_WAIT_MS for one), and a file that mismatches is checked again against the
// manifest as the store holds it then; while another machine holds the bucket's lease (it may be
// pushing), up to SETTLE_MS, until that manifest changes.
import { acquireLock } from '../engine/lock.js';
import type { Observation } from '../engine/observe.js';
import { LockError } from '../errors.js';
import { stateDir } from '../host/paths.js';
import type { Host } from '../host/types.js';
import { renderVerify, verifyJson, verifyLockWait, type VerifyRow } from '../output/verify-view.js';
import { makeStyle } from '../output/style.js';
import { errorMessage, formatDuration } from '../output/format.js';
import type { SyncDetail } from '../resources/sync/index.js';
import { recheckProblems, recordDamaged, verifyMirror } from '../resources/sync/verify.js';
import { recordStoredManifestDamage, verifyStoredManifest } from '../resources/sync/verify-manifest.js';
import { checkStoredBundle, recordBundleDamage } from '../resources/bundle/verify.js';
import { verifySyncGenerations } from '../resources/sync/generations.js';
import { verifyBundleGenerations } from '../resources/bundle/generations.js';
import type { ResolvedBundle, ResolvedSync } from '../spec/types.js';
import { otherLeaseHolder } from './other-lease.js';
import { computePlan, header, loadSpec, makeHost } from './common.js';
import type { CommandIO, SpecOptions } from './types.js';

/** How long verify waits for an apply (watch round, shutdown) of this machine to finish. */
export const VERIFY_LOCK_WAIT_MS = 60_000;
/** How long verify waits for another machine's push to end before calling what mismatches damaged. */
export const SETTLE_MS = 30_000;

export default async function verify(opts: SpecOptions & { hash?: boolean }, io: CommandIO): Promise<number> {
  const env = await loadSpec(opts, io);
  const host = makeHost(io, { readOnly: false }); // writes only its findings (and its lock), in the state folder
  const holder = { spec: env.specFile, environment: env.environment, command: 'verify' };
  const retry = `verify waited ${formatDuration(VERIFY_LOCK_WAIT_MS)} for it; run verify again once it is done`;
  let release: () => Promise<void>;
  try {
    release = await acquireLock(host, stateDir(io.env), holder, 0, retry);
  } catch (error) {
    if (!(error instanceof LockError)) throw error;
    io.err(verifyLockWait(VERIFY_LOCK_WAIT_MS));
    release = await acquireLock(host, stateDir(io.env), holder, VERIFY_LOCK_WAIT_MS, retry);
  }
  try {
    const { observation } = await computePlan(host, env, { allowShrink: false }, []);
    const rows = await checkStored(host, observation, opts.hash === true, { pushMayRun: await otherLeaseHolder(host, env), generations: true });
    if (opts.json) io.out(verifyJson(env.environment, rows));
    else io.out(renderVerify(header(env, 'verify'), rows, makeStyle(io.color), opts.hash === true));
    return rows.every((row) => row.problems.length === 0 && !row.note) ? 0 : 1;
  } finally {
    await release();
  }
}

/** A resource's kept generations as verify found them: counted, each problem named with its generation. */
function addGenerationProblems(row: VerifyRow, kept: { checked: number; problems: { generation: number | null; path: string; problem: string }[] }): void {
  row.checked += kept.checked;
  if (kept.problems.length === 0) return;
  for (const { generation, path, problem } of kept.problems) row.problems.push({ path: `${generation === null ? 'a kept generation' : `generation ${generation}`}: ${path}`, problem });
  row.damagedGenerations = [...new Set(kept.problems.map((p) => p.generation))];
}

export interface CheckOptions {
  /** Who may be pushing into the bucket now (null: nobody): mismatches wait for its manifest, up to SETTLE_MS. */
  pushMayRun?: (bucket: string) => Promise<string | null>;
  settleMs?: number;
  /**
   * Also check the kept generations (history, rollback): `persist verify` does; watch's periodic
   * check does not (they cannot be repaired, and reading every generation's manifest costs).
   */
  generations?: boolean;
}

/**
 * Check every stored file of every sync and bundle of an observation (size; with `hash`, content)
 * and record what a sync lacks, so that the next plan pushes it again (`push (repair)`). Also run
 * by watch every few rounds, without `hash`. What mismatches is checked again against the store's
 * manifest as it is then (see the top of this file) before it is called damaged.
 */
export async function checkStored(host: Host, observation: Observation, hash: boolean, options: CheckOptions = {}): Promise<VerifyRow[]> {
  const opts = { hash };
  const rows: VerifyRow[] = [];
  let deadline: number | null = null; // one wait for the whole run, from the first mismatch
  const waitFor = (bucket: string) => {
    deadline ??= host.now().getTime() + (options.settleMs ?? SETTLE_MS);
    return {
      pushMayRun: () => options.pushMayRun?.(bucket) ?? Promise.resolve(null),
      deadlineMs: deadline,
      now: () => host.now().getTime(),
      sleep: (ms: number) => host.sleep(ms),
    };
  };
  for (const r of observation.resources) {
    if (r.module.kind !== 'sync' && r.module.kind !== 'bundle') continue;
    const bucket = r.module.needsBucket(r.resource)!;
    const row: VerifyRow = { address: r.address, checked: 0, problems: [] };
    rows.push(row);
    if (observation.ctx.mountReady[bucket] !== true) {
      row.note = `mount.${bucket} is not mounted: nothing could be checked`;
      continue;
    }
    if (r.unobserved) {
      row.note = `${r.unobserved.message}: nothing could be checked. ${r.unobserved.fix}`;
      continue;
    }
    const store = observation.ctx.store(bucket);
    try {
      if (r.module.kind === 'sync') {
        const sync = r.resource as ResolvedSync;
        const manifest = (r.seen.detail as SyncDetail).manifest;
        if (!manifest) {
          // A manifest the store holds but no one can read (a damaged part): named, not "no manifest".
          const stored = await verifyStoredManifest(host, store, observation.ctx.env.buckets[bucket]!, sync, true, waitFor(bucket));
          if (stored.problems.length > 0) {
            row.problems = stored.problems.map(({ path, problem }) => ({ path, problem }));
            continue;
          }
          row.note = (await store.stat(sync.relTo)) ? 'the mirror has no manifest: nothing to check it against' : undefined;
          if (!row.note) delete row.note;
          continue;
        }
        const result = await verifyMirror(store, sync, manifest, opts.hash === true);
        row.checked = result.checked;
        row.problems = result.problems;
        if (row.problems.length) {
          const settled = await recheckProblems(store, sync, manifest, row.problems, opts.hash === true, waitFor(bucket));
          row.problems = settled.problems;
          if (settled.problems.length && settled.maybePushing) row.maybePushing = settled.maybePushing;
        }
        await recordDamaged(host, sync, row.problems.map((p) => p.path));
        // The manifest's shards as stored (plan reads this machine's copies of them).
        const stored = await verifyStoredManifest(host, store, observation.ctx.env.buckets[bucket]!, sync, opts.hash === true, waitFor(bucket));
        row.problems.push(...stored.problems.map(({ path, problem }) => ({ path, problem })));
        if (stored.maybePushing) row.maybePushing = stored.maybePushing;
        await recordStoredManifestDamage(host, observation.ctx.env.buckets[bucket]!, sync, manifest, stored.problems);
        if (row.problems.length) row.repair = true;
        // The kept generations (history, rollback): reported, not repairable.
        if (options.generations) addGenerationProblems(row, await verifySyncGenerations(sync, store, manifest, opts.hash === true));
      } else {
        const bundle = r.resource as ResolvedBundle;
        let info = await store.stat(bundle.relFile);
        if (!info) continue; // not made yet: plan shows the update
        row.checked = 1;
        row.problems = await checkStoredBundle(host, store, bundle, opts.hash);
        // Another machine's update may be writing it right now: checked again once it changed.
        if (row.problems.length) {
          const wait = waitFor(bucket);
          for (;;) {
            const now = await store.stat(bundle.relFile);
            if (now && (now.size !== info.size || now.mtimeMs !== info.mtimeMs)) {
              info = now;
              row.problems = await checkStoredBundle(host, store, bundle, opts.hash);
              if (row.problems.length === 0) break;
            }
            const who = await wait.pushMayRun();
            if (who === null) break;
            if (wait.now() >= wait.deadlineMs) {
              row.maybePushing = who;
              break;
            }
            await wait.sleep(Math.min(500, Math.max(10, wait.deadlineMs - wait.now())));
          }
        }
        // The next plan writes a damaged bundle again from the repo (`update (repair)`).
        await recordBundleDamage(host, bundle, row.problems.length ? info : null);
        if (row.problems.length) row.repair = true;
        if (options.generations) addGenerationProblems(row, await verifyBundleGenerations(store, bundle, opts.hash === true));
      }
    } catch (error) {
      row.problems.push({ path: r.address, problem: errorMessage(error) });
      delete row.repair; // what was recorded stands, but this run recorded nothing new
    }
  }
  return rows;
}
