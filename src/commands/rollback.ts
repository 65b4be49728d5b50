// `persist rollback ADDR --to GENERATION`: one sync's local folder, or one bundle's repo, becomes
// an earlier generation's content; what was there is kept aside and the store is not changed (the
// rollback can be undone).
import { createInterface } from 'node:readline/promises';
import { acquireLock } from '../engine/lock.js';
import { lineageHistory } from '../lineage/history.js';
import { UsageError } from '../errors.js';
import { stateDir } from '../host/paths.js';
import { ROLLBACK_CANCELLED, ROLLBACK_QUESTION, bundleContent, rollbackDone, rollbackIntro, syncContent } from '../output/lineage-view.js';
import type { ResolvedBundle, ResolvedSync } from '../spec/types.js';
import type { SyncDetail } from '../resources/sync/index.js';
import type { BundleObserved } from '../resources/bundle/index.js';
import { storesFor } from '../store/index.js';
import { computePlan, header, loadSpec, makeHost } from './common.js';
import type { CommandIO, SpecOptions } from './types.js';

export interface RollbackOptions extends SpecOptions {
  address: string;
  to: string;
  autoApprove?: boolean;
}

async function confirm(): Promise<boolean> {
  const rl = createInterface({ input: process.stdin, output: process.stdout });
  try {
    return (await rl.question(ROLLBACK_QUESTION)).trim() === 'yes';
  } finally {
    rl.close();
  }
}

export default async function rollback(opts: RollbackOptions, io: CommandIO): Promise<number> {
  if (!/^\d+$/.test(opts.to)) throw new UsageError(`--to ${opts.to}: expected a generation number (persist history lists them)`);
  const generation = Number(opts.to);
  const env = await loadSpec(opts, io);
  const reader = makeHost(io, { readOnly: true });
  const { observation } = await computePlan(reader, env, { allowShrink: false }, []);
  const resource = observation.resources.find((r) => r.address === opts.address);
  if (!resource || (resource.module.kind !== 'sync' && resource.module.kind !== 'bundle')) {
    const known = observation.resources.filter((r) => r.module.kind === 'sync' || r.module.kind === 'bundle').map((r) => r.address);
    throw new UsageError(`${opts.address}: no sync or bundle of that name in environment ${env.environment} (known: ${known.join(', ') || 'none'})`);
  }
  const kind = resource.module.kind;
  const target = resource.resource as ResolvedSync | ResolvedBundle;
  if (observation.mountReady[target.bucket] !== true) throw new UsageError(`mount.${target.bucket} is not mounted: run persist apply first`);
  if (resource.unobserved) throw resource.unobserved;
  const local = kind === 'sync' ? (target as ResolvedSync).from : (target as ResolvedBundle).repo;
  // Before saying what the rollback will do: a generation that is not kept stops it here.
  const history = await lineageHistory(resource, observation.ctx);
  const kept = history.generations.map((g) => g.generation);
  if (!kept.includes(generation)) {
    // A generation whose record cannot be read is damaged, not gone (history and verify say so too).
    const readable = `kept and readable: ${kept.join(', ') || 'none'}; persist history lists them`;
    const damaged = history.damaged?.find((entry) => entry.generation === generation);
    if (damaged) throw new UsageError(`${opts.address}: generation ${generation} cannot be rolled back to: ${damaged.path}: ${damaged.problem} (${readable})`);
    const unknown = history.damaged?.find((entry) => entry.generation === null);
    if (unknown) throw new UsageError(`${opts.address}: generation ${generation} is not among the readable ones, and ${unknown.path} may hold it but cannot be read: ${unknown.problem} (${readable})`);
    throw new UsageError(`${opts.address}: generation ${generation} is not kept in the store (kept: ${kept.join(', ') || 'none'}; persist history lists them)`);
  }

  if (!opts.json) io.out(`${header(env, 'rollback')}\n\n${rollbackIntro(opts.address, local, generation, kind)}`);
  if (!opts.autoApprove) {
    if (!io.interactive) throw new UsageError('rollback needs --auto-approve when not run on a terminal');
    if (!(await confirm())) {
      io.out(ROLLBACK_CANCELLED);
      return 1;
    }
  }
  const host = makeHost(io);
  const release = await acquireLock(host, stateDir(io.env), { spec: env.specFile, environment: env.environment, command: 'rollback' }, 0, 'wait for it to finish, then run this rollback again');
  try {
    const store = storesFor(env, host)(target.bucket);
    let json: Record<string, unknown>;
    let text: string;
    if (kind === 'sync') {
      const { rollbackSync } = await import('../resources/sync/rollback.js');
      const result = await rollbackSync(host, env, target as ResolvedSync, store, (resource.seen.detail as SyncDetail).manifest, generation, () => {});
      json = { ...result };
      text = rollbackDone({ address: opts.address, generation, current: result.current, keptAside: result.keptAside, content: syncContent(result.files, result.bytes) });
    } else {
      const { rollbackBundle } = await import('../resources/bundle/rollback.js');
      const result = await rollbackBundle(host, env, target as ResolvedBundle, store, (resource.seen.state as BundleObserved).repo, generation, () => {});
      json = { ...result };
      text = rollbackDone({ address: opts.address, generation, current: result.current, keptAside: result.keptAside, content: bundleContent(result.refs, result.head), notes: result.notes });
    }
    io.out(opts.json ? `${JSON.stringify({ formatVersion: 1, environment: env.environment, address: opts.address, ...json }, null, 2)}\n` : text);
    return 0;
  } finally {
    await release();
  }
}
