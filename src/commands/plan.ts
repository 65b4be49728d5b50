// `persist plan`: observe (read-only), diff, print the ordered plan. It runs at every container
// boot: what only --out and --diff need is loaded when they are given.
import { resolve } from 'node:path';
import { makeStyle } from '../output/style.js';
import { planJson, renderPlan } from '../output/render.js';
import { bucketsActedOn, bucketsWithoutLease } from '../engine/lease-policy.js';
import { unsavedWorkNotes } from '../engine/observe.js';
import { noLeaseNote } from '../output/lease-view.js';
import { computePlan, header, loadSpec, makeHost } from './common.js';
import type { CommandIO, SpecOptions } from './types.js';

export interface PlanCommandOptions extends SpecOptions {
  out?: string;
  detailedExitcode?: boolean;
  target?: string[];
  allowShrink?: boolean;
  /** Show a unified diff of each changed text file a sync push would send. */
  diff?: boolean;
  forcePush?: boolean;
}

export default async function plan(opts: PlanCommandOptions, io: CommandIO): Promise<number> {
  const host = makeHost(io, { readOnly: true });
  const env = await loadSpec(opts, io, host);
  const options = { allowShrink: Boolean(opts.allowShrink), ...(opts.forcePush ? { forcePush: true } : {}) };
  const targets = opts.target ?? [];
  const result = await computePlan(host, env, options, targets);
  const { actions } = result;

  if (opts.out) {
    const { sealPlan, writeSavedPlan } = await import('../engine/saved-plan.js');
    const saved = sealPlan({
      specFile: env.specFile,
      specHash: env.specHash,
      environment: env.environment,
      createdAt: host.now().toISOString(),
      options,
      targets,
      fingerprints: result.fingerprints,
      actions,
    });
    // The saved plan is the user's own output file, not machine state: the one write a plan
    // makes, through a host of its own (the one above stays read-only).
    await writeSavedPlan(makeHost(io), resolve(io.cwd, opts.out), opts.out, saved);
  }

  // A bucket the plan writes into that cannot hold a lease: nothing keeps a second container out.
  // Work that no action saves (a repo without commits): "No changes" is not "all saved".
  const notes = [...bucketsWithoutLease(env, bucketsActedOn(actions, result.observation)).map(noLeaseNote), ...unsavedWorkNotes(result.observation, actions)];
  if (opts.json) io.out(`${JSON.stringify(planJson(env.environment, actions, notes.length ? { notes } : {}), null, 2)}\n`);
  else {
    const style = makeStyle(io.color);
    io.out(renderPlan(actions, style, header(env, 'plan')));
    for (const note of notes) io.out(`${style.yellow('note:')} ${note}\n`);
    if (opts.diff) {
      const [{ renderPlanDiffs }, { syncDiffSource }] = await Promise.all([import('../output/file-diff.js'), import('./plan-diff.js')]);
      io.out(await renderPlanDiffs(actions, syncDiffSource(host, env, result.observation.ctx)));
    }
    if (opts.out) io.out(`Saved the plan to ${opts.out}; apply it with \`persist apply ${opts.out}\`.\n`);
  }

  if (actions.some((a) => a.action === 'conflict')) return 1;
  if (opts.detailedExitcode && actions.length > 0) return 2;
  return 0;
}
