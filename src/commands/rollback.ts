// `persist rollback ADDR --to GENERATION`: one sync's local folder becomes an earlier generation's
// content; what was there is kept aside and the store is not changed (the rollback can be undone).
import { createInterface } from 'node:readline/promises';
import { acquireLock } from '../engine/lock.js';
import { UsageError } from '../errors.js';
import { stateDir } from '../host/paths.js';
import { formatBytes, plural } from '../output/format.js';
import type { ResolvedSync } from '../spec/types.js';
import type { SyncDetail } from '../resources/sync/index.js';
import { rollbackSync } from '../resources/sync/rollback.js';
import { storesFor } from '../store/index.js';
import { computePlan, header, loadSpec, makeHost } from './common.js';
import type { CommandIO, SpecOptions } from './types.js';

export interface RollbackOptions extends SpecOptions {
  address: string;
  to: string;
  autoApprove?: boolean;
}

async function confirm(io: CommandIO): Promise<boolean> {
  const rl = createInterface({ input: process.stdin, output: process.stdout });
  try {
    const answer = await rl.question("Do you want to roll back? Only 'yes' will be accepted: ");
    return answer.trim() === 'yes';
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
  if (resource.module.kind === 'bundle') throw new UsageError(`${opts.address}: rollback of a bundle is not supported yet; its earlier generations are the files <file>.1 ... (git clone or fetch from one)`);
  const sync = resource.resource as ResolvedSync;
  if (observation.mountReady[sync.bucket] !== true) throw new UsageError(`mount.${sync.bucket} is not mounted: run persist apply first`);

  if (!opts.json) io.out(`${header(env, 'rollback')}\n\n${opts.address}: ${sync.from} becomes generation ${generation}'s content; the folder as it is now is kept aside, the store is not changed.\n`);
  if (!opts.autoApprove) {
    if (!io.interactive) throw new UsageError('rollback needs --auto-approve when not run on a terminal');
    if (!(await confirm(io))) {
      io.out('Rollback cancelled.\n');
      return 1;
    }
  }
  const host = makeHost(io);
  const release = await acquireLock(host, stateDir(io.env), { spec: env.specFile, environment: env.environment }, 0);
  try {
    const store = storesFor(env, host)(sync.bucket);
    const result = await rollbackSync(host, env, sync, store, (resource.seen.detail as SyncDetail).manifest, generation, () => {});
    if (opts.json) {
      io.out(`${JSON.stringify({ formatVersion: 1, environment: env.environment, address: opts.address, ...result }, null, 2)}\n`);
    } else {
      io.out(`${opts.address}: rolled back to generation ${result.generation} (${plural(result.files, 'file')}, ${formatBytes(result.bytes)}).\n`);
      if (result.keptAside) io.out(`The previous local folder is kept in ${result.keptAside}.\n`);
      io.out(`The store still holds generation ${result.current} as current${result.generation === result.current ? '' : `; the next apply pushes this folder as generation ${result.current + 1} (parent ${result.current})`}.\n`);
    }
    return 0;
  } finally {
    await release();
  }
}
