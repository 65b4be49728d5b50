// `persist clean`: list persist's own leftovers in the bucket (conflict copies made by adopt,
// partial files of interrupted writes; see leftovers.ts) and remove them after asking (or with
// --auto-approve). Nothing else is ever removed: every key is matched against persist's own
// naming patterns again right before it is removed.
import { createInterface } from 'node:readline/promises';
import { posix } from 'node:path';
import { UsageError } from '../errors.js';
import { storesFor } from '../store/index.js';
import { computePlan, header, loadSpec, makeHost } from './common.js';
import { findLeftovers, leftoverKind, renderLeftovers } from './leftovers.js';
import type { CommandIO, SpecOptions } from './types.js';

export interface CleanCommandOptions extends SpecOptions {
  autoApprove?: boolean;
}

async function confirm(io: CommandIO, count: number): Promise<boolean> {
  const rl = createInterface({ input: process.stdin, output: process.stdout });
  try {
    const answer = await rl.question(`\nRemove ${count === 1 ? 'this file' : `these ${count} files`}? Only 'yes' will be accepted: `);
    return answer.trim() === 'yes';
  } finally {
    rl.close();
    io.out('\n');
  }
}

export default async function clean(opts: CleanCommandOptions, io: CommandIO): Promise<number> {
  const readOnly = makeHost(io, { readOnly: true });
  const env = await loadSpec(opts, io, readOnly);
  const { observation } = await computePlan(readOnly, env, { allowShrink: false }, []);
  const leftovers = await findLeftovers(env, observation.ctx);
  io.out(`${header(env, 'clean')}\n\n`);
  const unready = Object.entries(observation.mountReady).filter(([, ready]) => !ready).map(([bucket]) => bucket);
  if (unready.length) io.out(`not looked into (not mounted): bucket ${unready.join(', ')}\n`);
  if (leftovers.length === 0) {
    io.out('No leftovers of persist in the bucket.\n');
    return 0;
  }
  io.out(renderLeftovers(leftovers));
  if (!opts.autoApprove) {
    if (!io.interactive) throw new UsageError('clean needs --auto-approve when not run on a terminal');
    if (!(await confirm(io, leftovers.length))) {
      io.out('Clean cancelled; nothing removed.\n');
      return 1;
    }
  }
  const storeOf = storesFor(env, makeHost(io));
  let removed = 0;
  for (const leftover of leftovers) {
    if (leftoverKind(posix.basename(leftover.key)) === null) continue; // never anything persist did not name
    const store = storeOf(leftover.bucket);
    const info = await store.stat(leftover.key);
    if (!info || info.type !== 'file') continue;
    await store.remove(leftover.key);
    removed += 1;
  }
  io.out(`Clean complete: removed ${removed === 1 ? '1 file' : `${removed} files`}.\n`);
  return 0;
}
