// `persist watch`: plan every interval. Without --auto-approve it reports drift; with it, it
// applies only what each resource's module says may run unattended (mount, remount, a missing
// link, a push, a bundle update that drops no commit, a restore into an empty place) and logs
// the rest. A resource whose action fails backs off alone (1x, 2x, 4x, at most 8x the interval)
// while the others keep their rhythm; a failure to plan at all backs off the whole round. It never
// runs two applies at once (the apply lock), survives a closed output, and stops cleanly on
// SIGTERM/SIGINT.
import { resolvingCommand } from '../lineage/resolve.js';
import { UsageError } from '../errors.js';
import { executePlan } from '../engine/apply.js';
import { acquireLock } from '../engine/lock.js';
import { takeLeases } from '../engine/lease-policy.js';
import type { PlannedAction } from '../engine/types.js';
import { stateDir } from '../host/paths.js';
import { linesView } from '../output/apply-view.js';
import { errorMessage } from '../output/format.js';
import { renderPlan } from '../output/render.js';
import { makeStyle } from '../output/style.js';
import { computePlan, loadSpec, makeHost } from './common.js';
import { parseDuration } from '../spec/duration.js';
import type { CommandIO, SpecOptions } from './types.js';

export interface WatchCommandOptions extends SpecOptions {
  interval: string;
  autoApprove?: boolean;
}

/** Rounds to wait after `failures` failures in a row: 1, 2, 4, at most 8. */
function backoffRounds(failures: number): number {
  return Math.min(8, 2 ** Math.max(0, failures - 1));
}

export default async function watch(opts: WatchCommandOptions, io: CommandIO): Promise<number> {
  const intervalMs = parseDuration(opts.interval, '--interval');
  if (intervalMs < 1000) throw new UsageError('--interval must be at least 1s');
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
  const log = (text: string) => out(`[${new Date().toISOString()}] ${text}\n`);
  /** Per resource: failures in a row, and the round before which it is not tried again. */
  const failing = new Map<string, { failures: number; until: number }>();
  let planFailures = 0;
  try {
    for (let round = 0; !controller.signal.aborted; round++) {
      try {
        const env = await loadSpec(opts, io);
        const { actions, observation } = await computePlan(makeHost(io, { readOnly: true }), env, { allowShrink: false }, []);
        if (actions.length === 0) log('no changes');
        else if (!opts.autoApprove) log(`drift:\n${renderPlan(actions, style)}`);
        else {
          const byAddress = new Map(observation.resources.map((r) => [r.address, r]));
          const safe: PlannedAction[] = [];
          const unsafe: PlannedAction[] = [];
          const waiting: string[] = [];
          for (const action of actions) {
            const observed = byAddress.get(action.address);
            if (action.conflict || !observed || !observed.module.unattended(action, observed.seen.state)) unsafe.push(action);
            else if ((failing.get(action.address)?.until ?? 0) > round) waiting.push(action.address);
            else safe.push(action);
          }
          if (unsafe.length) log(`needs a person (not applied): ${unsafe.map((a) => `${a.address} ${a.action}${resolvingCommand(a) ? ` (run: ${resolvingCommand(a)})` : ''}`).join(', ')}`);
          if (waiting.length) log(`backing off after failures: ${waiting.join(', ')}`);
          if (safe.length) {
            const host = makeHost(io);
            const release = await acquireLock(host, stateDir(io.env), { spec: env.specFile, environment: env.environment }, intervalMs);
            try {
              await takeLeases(host, env, 0);
              const report = await executePlan(safe, { host, env, options: { allowShrink: false }, view: linesView(out), signal: controller.signal, unattendedOnly: true });
              const saved: string[] = [];
              for (const action of safe) {
                const result = report.results.get(action.address);
                if (result?.status === 'failed') {
                  log(`failed: ${action.address}: ${result.message}`);
                  const failures = (failing.get(action.address)?.failures ?? 0) + 1;
                  failing.set(action.address, { failures, until: round + backoffRounds(failures) });
                } else {
                  failing.delete(action.address);
                  if (result?.status === 'applied') saved.push(`${action.address} ${action.action}`);
                }
              }
              log(`applied ${report.applied}, failed ${report.failed}, skipped ${report.skipped}${saved.length ? `: ${saved.join(', ')}` : ''}`);
            } finally {
              await release();
            }
          }
        }
        planFailures = 0;
      } catch (error) {
        planFailures++;
        log(`error: ${errorMessage(error)}`);
      }
      const wait = intervalMs * backoffRounds(planFailures);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, wait);
        controller.signal.addEventListener('abort', () => (clearTimeout(timer), resolve()), { once: true });
      });
    }
    log('stopped');
    return 0;
  } finally {
    process.off('SIGTERM', stop);
    process.off('SIGINT', stop);
    process.stdout.off('error', ignore);
  }
}
