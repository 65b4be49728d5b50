// `persist verify [--hash]`: every stored file of every sync against its manifest (size; with
// --hash, content) and every bundle against its header and generation record (size; with --hash,
// the recorded sha256, and git reading the whole pack where the store is a folder: see
// resources/bundle/verify.ts). Exit 1 listing what is missing or damaged; the findings are recorded
// on local disk so that the next plan pushes those files again (a bundle: writes it again).
import type { Observation } from '../engine/observe.js';
import type { Host } from '../host/types.js';
import { renderVerify, verifyJson, type VerifyRow } from '../output/verify-view.js';
import { makeStyle } from '../output/style.js';
import { errorMessage } from '../output/format.js';
import type { SyncDetail } from '../resources/sync/index.js';
import { recordDamaged, verifyMirror } from '../resources/sync/verify.js';
import { checkStoredBundle, recordBundleDamage } from '../resources/bundle/verify.js';
import type { ResolvedBundle, ResolvedSync } from '../spec/types.js';
import { computePlan, header, loadSpec, makeHost } from './common.js';
import type { CommandIO, SpecOptions } from './types.js';

export default async function verify(opts: SpecOptions & { hash?: boolean }, io: CommandIO): Promise<number> {
  const env = await loadSpec(opts, io);
  const host = makeHost(io, { readOnly: false }); // writes only its findings, in the state folder
  const { observation } = await computePlan(host, env, { allowShrink: false }, []);
  const rows = await checkStored(host, observation, opts.hash === true);
  if (opts.json) io.out(verifyJson(env.environment, rows));
  else io.out(renderVerify(header(env, 'verify'), rows, makeStyle(io.color), opts.hash === true));
  return rows.every((row) => row.problems.length === 0 && !row.note) ? 0 : 1;
}

/**
 * Check every stored file of every sync and bundle of an observation (size; with `hash`, content)
 * and record what a sync lacks, so that the next plan pushes it again (`push (repair)`). Also run
 * by watch every few rounds, without `hash`.
 */
export async function checkStored(host: Host, observation: Observation, hash: boolean): Promise<VerifyRow[]> {
  const opts = { hash };
  const rows: VerifyRow[] = [];
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
          row.note = (await store.stat(sync.relTo)) ? 'the mirror has no manifest: nothing to check it against' : undefined;
          if (!row.note) delete row.note;
          continue;
        }
        const result = await verifyMirror(store, sync, manifest, opts.hash === true);
        row.checked = result.checked;
        row.problems = result.problems;
        await recordDamaged(host, sync, result.problems.map((p) => p.path));
      } else {
        const bundle = r.resource as ResolvedBundle;
        const info = await store.stat(bundle.relFile);
        if (!info) continue; // not made yet: plan shows the update
        row.checked = 1;
        row.problems = await checkStoredBundle(host, store, bundle, opts.hash);
        // The next plan writes a damaged bundle again from the repo (`update (repair)`).
        await recordBundleDamage(host, bundle, row.problems.length ? info : null);
      }
    } catch (error) {
      row.problems.push({ path: r.address, problem: errorMessage(error) });
    }
  }
  return rows;
}
