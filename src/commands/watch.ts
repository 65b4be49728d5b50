// `persist watch`: plan every interval. Without --auto-approve it reports drift; with it, it
// applies only what each resource's module says may run unattended (mount, remount, a missing
// link, a push, a bundle update that drops no commit, a restore into an empty place) and logs
// the rest. A resource whose action fails backs off alone (1x, 2x, 4x, at most 8x the interval)
// while the others keep their rhythm; a failure to plan at all backs off the whole round. It never
// runs two applies at once (the apply lock), survives a closed output, and stops cleanly on
// SIGTERM/SIGINT.
//
// With --auto-approve it holds the machine's bucket leases (docs/architecture.md, "The lease"):
// each round takes or renews them (a write only when a third of the time to live has passed) and a
// keeper renews them between rounds; it does not release them when it stops (shutdown does). The
// actions on a bucket whose lease another machine holds are left alone and logged.
//
// Every --verify-every rounds (default 12) it runs verify's size check of what is stored; the
// plan of the same round then pushes again what is missing or damaged (`push (repair)`).
import { resolvingCommand } from '../lineage/resolve.js';
import { UsageError } from '../errors.js';
import { executePlan } from '../engine/apply.js';
import { acquireLock } from '../engine/lock.js';
import { bucketsActedOn, leasableBuckets } from '../engine/lease-policy.js';
import type { LeaseKeeper } from '../engine/lease.js';
import type { PlannedAction } from '../engine/types.js';
import { stateDir } from '../host/paths.js';
import { linesView } from '../output/apply-view.js';
import { errorMessage } from '../output/format.js';
import { leaseWaitLine } from '../output/lease-view.js';
import { renderPlan } from '../output/render.js';
import { makeStyle } from '../output/style.js';
import { WATCH_NO_CHANGES, WATCH_STOPPED, watchApplied, watchBackingOff, watchDrift, watchError, watchNeedsPerson, watchStamp, watchUnreachable, watchVerified } from '../output/watch-view.js';
import { computePlan, loadSpec, makeHost, type PlanResult } from './common.js';
import { parseDuration } from '../spec/duration.js';
import type { CommandIO, SpecOptions } from './types.js';

export interface WatchCommandOptions extends SpecOptions {
  interval: string;
  autoApprove?: boolean;
  verifyEvery?: string;
}

/** Rounds between two size checks of what is stored, unless --verify-every says otherwise. */
export const DEFAULT_VERIFY_EVERY = 12;

/** Rounds to wait after `failures` failures in a row: 1, 2, 4, at most 8. */
function backoffRounds(failures: number): number {
  return Math.min(8, 2 ** Math.max(0, failures - 1));
}

function parseRounds(text: string | undefined): number {
  if (text === undefined) return DEFAULT_VERIFY_EVERY;
  if (!/^\d+$/.test(text.trim())) throw new UsageError(`--verify-every: "${text}" is not a number of rounds (0 turns the size check off)`);
  return Number(text);
}

export default async function watch(opts: WatchCommandOptions, io: CommandIO): Promise<number> {
  const intervalMs = parseDuration(opts.interval, '--interval');
  if (intervalMs < 1000) throw new UsageError('--interval must be at least 1s');
  const verifyEvery = parseRounds(opts.verifyEvery);
  const style = makeStyle(io.color);
  const controller = new AbortController();
  const stop = () => controller.abort();
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
  // A closed stdout (the log reader went away) must not kill the process that keeps saving.
  const ignore = () => undefined;
  process.stdout.on('error', ignore);
  const out = (text: string) => {
    try {
      io.out(text);
    } catch {
      // as above
    }
  };
  let round = 0;
  const log = (text: string) => out(`${watchStamp(new Date(), round)}${text}\n`);
  /** Per resource: failures in a row, and the round before which it is not tried again. */
  const failing = new Map<string, { failures: number; until: number }>();
  let planFailures = 0;
  let keeper: LeaseKeeper | null = null;
  try {
    for (; !controller.signal.aborted; round++) {
      try {
        const env = await loadSpec(opts, io);
        const reader = makeHost(io, { readOnly: true });
        let planned: PlanResult = await computePlan(reader, env, { allowShrink: false }, []);
        if (verifyEvery > 0 && round > 0 && round % verifyEvery === 0) {
          // Lazily: the check and its findings' store live with `persist verify`.
          const { checkStored } = await import('./verify.js');
          const rows = await checkStored(makeHost(io), planned.observation, false);
          log(watchVerified(rows, verifyEvery));
          if (rows.some((row) => row.problems.length > 0)) planned = await computePlan(reader, env, { allowShrink: false }, []);
        }
        const { actions, observation } = planned;
        let refused = new Map<string, { message: string; held: boolean }>();
        if (opts.autoApprove) {
          if (!keeper) {
            const { LeaseKeeper } = await import('../engine/lease.js');
            keeper = new LeaseKeeper(makeHost(io), { onLost: (bucket, message) => log(watchError(`lease of bucket ${bucket} lost: ${message}`)) });
            keeper.start();
          }
          refused = await keeper.keep(leasableBuckets(env));
        }
        if (actions.length === 0) log(WATCH_NO_CHANGES);
        else if (!opts.autoApprove) log(watchDrift(renderPlan(actions, style)));
        else {
          const byAddress = new Map(observation.resources.map((r) => [r.address, r]));
          const safe: PlannedAction[] = [];
          const unsafe: PlannedAction[] = [];
          /** Not looked into this round: their store did not answer (a passing outage, not a conflict). */
          const unreachable: PlannedAction[] = [];
          const waiting: { address: string; failures: number; nextRound: number }[] = [];
          const notOurs = new Map<string, string[]>();
          for (const action of actions) {
            const observed = byAddress.get(action.address);
            const bucket = bucketsActedOn([action], observation)[0];
            const backoff = failing.get(action.address);
            if (action.conflict && observed?.unobserved?.transient) unreachable.push(action);
            else if (action.conflict || !observed || !observed.module.unattended(action, observed.seen.state)) unsafe.push(action);
            else if (bucket !== undefined && refused.has(bucket)) notOurs.set(bucket, [...(notOurs.get(bucket) ?? []), `${action.address} ${action.action}`]);
            else if (backoff && backoff.until > round) waiting.push({ address: action.address, failures: backoff.failures, nextRound: backoff.until });
            else safe.push(action);
          }
          if (unreachable.length) log(watchUnreachable(unreachable.map((a) => `${a.address}: ${a.conflict!.message}`)));
          if (unsafe.length) log(watchNeedsPerson(unsafe.map((a) => `${a.address} ${a.action}${a.conflict ? `: ${a.conflict.message}` : ''}${resolvingCommand(a) ? ` (run: ${resolvingCommand(a)})` : ''}`)));
          for (const [bucket, addresses] of notOurs) log(leaseWaitLine(bucket, refused.get(bucket)!.message, addresses));
          if (waiting.length) log(watchBackingOff(waiting));
          if (safe.length) {
            const host = makeHost(io);
            const release = await acquireLock(host, stateDir(io.env), { spec: env.specFile, environment: env.environment, command: 'watch' }, intervalMs);
            try {
              const report = await executePlan(safe, { host, env, options: { allowShrink: false }, view: linesView(out), signal: controller.signal, unattendedOnly: true });
              const saved: string[] = [];
              const failed: string[] = [];
              for (const action of safe) {
                const result = report.results.get(action.address);
                if (result?.status === 'failed') {
                  log(`failed: ${action.address}: ${result.message}`);
                  const failures = (failing.get(action.address)?.failures ?? 0) + 1;
                  failing.set(action.address, { failures, until: round + backoffRounds(failures) });
                  failed.push(`${action.address} ${action.action}`);
                } else {
                  failing.delete(action.address);
                  if (result?.status === 'applied') saved.push(`${action.address} ${action.action}`);
                }
              }
              log(watchApplied(report.applied, report.failed, report.skipped, saved, failed));
            } finally {
              await release();
            }
          }
        }
        planFailures = 0;
      } catch (error) {
        planFailures++;
        log(watchError(errorMessage(error)));
      }
      const wait = intervalMs * backoffRounds(planFailures);
      // The listener goes with the pause: one left per round would pile up on the signal.
      await new Promise<void>((resolve) => {
        const wake = () => (clearTimeout(timer), resolve());
        const timer = setTimeout(() => (controller.signal.removeEventListener('abort', wake), resolve()), wait);
        controller.signal.addEventListener('abort', wake, { once: true });
      });
    }
    log(WATCH_STOPPED);
    return 0;
  } finally {
    await keeper?.stop();
    process.off('SIGTERM', stop);
    process.off('SIGINT', stop);
    process.stdout.off('error', ignore);
  }
}
