// `persist apply`: plan, approve, lock, execute, verify.
import { resolve } from 'node:path';
import { createInterface } from 'node:readline/promises';
import { UsageError } from '../errors.js';
import { executePlan } from '../engine/apply.js';
import { acquireLock } from '../engine/lock.js';
import { bucketsActedOn, bucketsWithoutLease, leaseGate, waitForHeldLeases, type LeaseGate } from '../engine/lease-policy.js';
import { unsavedWorkNotes } from '../engine/observe.js';
import { checkFresh, readSavedPlan } from '../engine/saved-plan.js';
import { stateDir } from '../host/paths.js';
import { deadBuildings } from '../host/state-leftovers.js';
import { killedRunFoldersRemoved } from '../output/status-view.js';
import { linesView, silentView, taskListView } from '../output/apply-view.js';
import { LEASE_REPLANNED, leaseLostStop, leaseTakenOverMessage, leaseWaitMessage, noLeaseNote, type LeaseHolderText } from '../output/lease-view.js';
import { applySummaryLine, NO_CHANGES, planJson, renderPlan } from '../output/render.js';
import { makeStyle } from '../output/style.js';
import { loadEnvironment, rememberSpec } from '../spec/index.js';
import { checkStateFolder, computePlan, header, makeHost, specInput } from './common.js';
import { parseDuration } from '../spec/duration.js';
import type { PlannedAction } from '../engine/types.js';
import type { Host } from '../host/types.js';
import type { CommandIO, SpecOptions } from './types.js';

export interface ApplyCommandOptions extends SpecOptions {
  planFile?: string;
  autoApprove?: boolean;
  target?: string[];
  lockTimeout?: string;
  allowShrink?: boolean;
  forcePush?: boolean;
}

/** The plan's actions, for telling whether planning again changed them. */
function describePlan(actions: PlannedAction[]): string {
  return actions.map((action) => `${action.address} ${action.action}${action.conflict ? ' conflict' : ''}`).join('\n');
}

async function confirm(io: CommandIO): Promise<boolean> {
  const rl = createInterface({ input: process.stdin, output: process.stdout });
  try {
    const answer = await rl.question("\nDo you want to perform these actions? Only 'yes' will be accepted: ");
    return answer.trim() === 'yes';
  } finally {
    rl.close();
    io.out('\n');
  }
}

export default async function apply(opts: ApplyCommandOptions, io: CommandIO): Promise<number> {
  const lockTimeoutMs = parseDuration(opts.lockTimeout ?? '0', '--lock-timeout');
  // Reading (the saved plan, the spec) and planning go through a read-only host; the writes start
  // after approval, on a host of their own.
  const reader = makeHost(io, { readOnly: true });
  await checkStateFolder(io, reader);
  const saved = opts.planFile ? await readSavedPlan(reader, resolve(io.cwd, opts.planFile), opts.planFile) : undefined;
  if (saved && opts.target?.length) throw new UsageError('--target cannot be combined with a saved plan (the plan has its own targets)');
  const input = specInput({ ...opts, file: opts.file ?? saved?.specFile, env: opts.env ?? saved?.environment }, io, reader);
  const env = await loadEnvironment(input);
  const options = saved?.options ?? { allowShrink: Boolean(opts.allowShrink), ...(opts.forcePush ? { forcePush: true } : {}) };
  const targets = saved?.targets ?? opts.target ?? [];
  const style = makeStyle(io.color);

  // Look before locking: an apply with nothing to do writes nothing at all.
  let planned = await computePlan(reader, env, options, targets);
  if (saved) checkFresh(saved, opts.planFile!, { specFile: env.specFile, specHash: env.specHash, environment: env.environment, fingerprints: planned.fingerprints });
  let { actions } = planned;

  const unsaved = unsavedWorkNotes(planned.observation, actions);
  if (actions.length === 0) {
    const swept = await sweepKilledRuns(io, env, reader);
    const extra = { ...(unsaved.length ? { notes: unsaved } : {}), ...(swept.length ? { killedRunFoldersRemoved: swept } : {}) };
    if (opts.json) io.out(`${JSON.stringify({ ...planJson(env.environment, [], extra), result: { applied: 0, failed: 0, skipped: 0 } }, null, 2)}\n`);
    else io.out(`${header(env, 'apply')}\n\n${NO_CHANGES}\n${unsaved.map((note) => `${style.yellow('note:')} ${note}\n`).join('')}${swept.length ? killedRunFoldersRemoved(swept) : ''}${applySummaryLine(0, 0, 0)}\n`);
    return 0;
  }

  if (!opts.json) {
    io.out(renderPlan(actions, style, header(env, 'apply')));
    for (const note of [...bucketsWithoutLease(env, bucketsActedOn(actions, planned.observation)).map(noLeaseNote), ...unsaved]) io.out(`${style.yellow('note:')} ${note}\n`);
  }
  if (!saved && !opts.autoApprove) {
    if (!io.interactive) throw new UsageError('apply needs --auto-approve or a saved plan file when not run on a terminal');
    if (!(await confirm(io))) {
      io.out('Apply cancelled.\n');
      return 1;
    }
  }

  const host = makeHost(io);
  const release = await acquireLock(host, stateDir(io.env), { spec: env.specFile, environment: env.environment, command: 'apply' }, lockTimeoutMs);
  const controller = new AbortController();
  const leaseEvents = {
    onLost: (_bucket: string, message: string) => {
      io.err(leaseLostStop(message));
      controller.abort();
    },
    onWait: (holder: LeaseHolderText | null, where: string) => io.err(leaseWaitMessage(where, holder, lockTimeoutMs)),
    onTakeOver: (from: LeaseHolderText, where: string) => io.err(leaseTakenOverMessage(where, from)),
  };
  let leases: LeaseGate | null = null;
  const onSignal = (signal: NodeJS.Signals) => {
    if (controller.signal.aborted) process.exit(1); // a second signal: stop now
    io.err(`\n${signal}: finishing the current action, then stopping.\n`);
    controller.abort();
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  try {
    // A redeploy: the old container holds the lease of a bucket this plan touches and pushes one
    // last time before it releases it. Wait for it first, then plan again: the plan made before
    // that push (a first save into an empty mirror, say) is not what the store now needs (a restore).
    const waited = await waitForHeldLeases(host, env, actions, planned.observation, lockTimeoutMs, leaseEvents);
    if (waited.waited) {
      const again = await computePlan(reader, env, options, targets);
      if (saved) checkFresh(saved, opts.planFile!, { specFile: env.specFile, specHash: env.specHash, environment: env.environment, fingerprints: again.fingerprints });
      if (describePlan(again.actions) !== describePlan(actions)) {
        if (!opts.json) io.out(again.actions.length ? `\n${LEASE_REPLANNED}\n${renderPlan(again.actions, style, header(env, 'apply'))}` : `\n${LEASE_REPLANNED}\n${NO_CHANGES}\n`);
        if (again.actions.length && !opts.autoApprove && !(await confirm(io))) {
          io.out('Apply cancelled.\n');
          return 1;
        }
      }
      planned = again;
      actions = again.actions;
    }
    // The bucket lease, before the first write and before the restores of a first boot. Taken
    // right before the first action on the bucket's data (each action re-observes the store after
    // it); held by the machine, not released here (shutdown does); renewed while this apply runs;
    // a lease lost meanwhile stops it.
    leases = leaseGate(host, env, actions, planned.observation, waited.remainingMs, leaseEvents);
    // This apply writes state anyway: keep the spec's parse so that later plans skip the YAML.
    await rememberSpec({ ...input, host }, env.specHash);
    const view = opts.json ? silentView() : io.isTTY ? taskListView() : linesView(io.out);
    if (!opts.json) io.out('\n');
    const report = await executePlan(actions, { host, env, options, view, signal: controller.signal, beforeAction: leases.before });
    if (opts.json) {
      const document = planJson(env.environment, actions);
      const withResults = {
        ...document,
        actions: document.actions.map((a) => ({ ...a, result: report.results.get(a.address) })),
        result: { applied: report.applied, failed: report.failed, skipped: report.skipped },
      };
      io.out(`${JSON.stringify(withResults, null, 2)}\n`);
    } else {
      for (const [address, result] of report.results) {
        if (result.status === 'failed') io.out(`${style.red('failed:')} ${address}: ${result.message}\n`);
        for (const note of result.notes) io.out(`${style.yellow('note:')} ${address}: ${note}\n`);
      }
      io.out(`\n${applySummaryLine(report.applied, report.failed, report.skipped)}\n`);
    }
    return report.failed > 0 || controller.signal.aborted ? 1 : 0;
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    await leases?.stop();
    await release();
  }
}

/**
 * An apply with nothing to do writes nothing, but the folders a killed rollback, detach or restore
 * left beside a local folder (possibly a whole copy of it) would then stay for good on a machine
 * that only boots: when there are some, it takes the lock (which removes them,
 * host/state-leftovers.ts) and lets go. A lock held by another command is left to it.
 */
async function sweepKilledRuns(io: CommandIO, env: { specFile: string; environment: string }, reader: Host): Promise<string[]> {
  const dir = stateDir(io.env);
  const killed = await deadBuildings(reader, dir);
  if (killed.length === 0) return [];
  let release: () => Promise<void>;
  try {
    release = await acquireLock(makeHost(io), dir, { spec: env.specFile, environment: env.environment, command: 'apply' }, 0);
  } catch {
    return [];
  }
  await release();
  const gone: string[] = [];
  for (const path of killed) if (!(await reader.lstat(path))) gone.push(path);
  return gone;
}
