// `persist watch`: plan every interval. Without --auto-approve it reports drift; with it, it applies
// only the safe actions (mount, remount, create a missing link, push, restore into an empty place)
// and reports the rest. Backs off on errors, never runs two applies at once (the apply lock), and
// stops cleanly on SIGTERM/SIGINT.
import { UsageError } from '../errors.js';
import { executePlan } from '../engine/apply.js';
import { acquireLock } from '../engine/lock.js';
import type { PlannedAction } from '../engine/types.js';
import { stateDir } from '../host/paths.js';
import { RealHost } from '../host/real.js';
import type { Host } from '../host/types.js';
import { readOnlyHost } from '../host/wrappers.js';
import { renderPlan } from '../output/render.js';
import { makeStyle } from '../output/style.js';
import type { ResolvedEnvironment } from '../spec/types.js';
import { computePlan, loadSpec } from './common.js';
import { parseDuration } from '../spec/duration.js';
import type { CommandIO, SpecOptions } from './types.js';

export interface WatchCommandOptions extends SpecOptions {
  interval: string;
  autoApprove?: boolean;
}

const ALWAYS_SAFE = new Set(['mount', 'remount', 'create', 'push']);

/** Whether watch may apply an action unattended: it never overwrites or moves local data. */
export async function isSafe(action: PlannedAction, env: ResolvedEnvironment, host: Host): Promise<boolean> {
  if (action.conflict) return false;
  if (ALWAYS_SAFE.has(action.action)) return true;
  if (action.action !== 'restore') return false;
  // Bundle and sync restores only ever fill a missing or empty place; a file restore is safe only
  // when there is no local file yet.
  if (action.kind === 'file') {
    const file = env.files[action.address.slice('file.'.length)];
    return Boolean(file) && (await host.lstat(file!.to)) === null;
  }
  return action.kind === 'bundle' || action.kind === 'sync';
}

export default async function watch(opts: WatchCommandOptions, io: CommandIO): Promise<number> {
  const intervalMs = parseDuration(opts.interval, '--interval');
  if (intervalMs < 1000) throw new UsageError('--interval must be at least 1s');
  const style = makeStyle(io.color);
  const controller = new AbortController();
  const stop = () => controller.abort();
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
  const log = (text: string) => io.out(`[${new Date().toISOString()}] ${text}\n`);
  let failures = 0;
  try {
    while (!controller.signal.aborted) {
      try {
        const env = await loadSpec(opts, io);
        const { actions } = await computePlan(readOnlyHost(new RealHost()), env, { allowShrink: false }, []);
        if (actions.length === 0) log('no changes');
        else if (!opts.autoApprove) log(`drift:\n${renderPlan(actions, style)}`);
        else {
          const host = new RealHost();
          const safe: PlannedAction[] = [];
          for (const action of actions) if (await isSafe(action, env, host)) safe.push(action);
          const unsafe = actions.filter((a) => !safe.includes(a));
          if (unsafe.length) log(`needs a person (not applied): ${unsafe.map((a) => `${a.address} ${a.action}`).join(', ')}`);
          if (safe.length) {
            const release = await acquireLock(host, stateDir(io.env), { spec: env.specFile, environment: env.environment }, intervalMs);
            try {
              const report = await executePlan(safe, { host, env, options: { allowShrink: false }, renderer: 'lines', signal: controller.signal, print: io.out });
              log(`applied ${report.applied}, failed ${report.failed}, skipped ${report.skipped}`);
              if (report.failed > 0) throw new Error(`${report.failed} action(s) failed`);
            } finally {
              await release();
            }
          }
        }
        failures = 0;
      } catch (error) {
        failures++;
        log(`error: ${error instanceof Error ? error.message : String(error)}`);
      }
      // Back off on repeated errors: 1x, 2x, 4x, at most 8x the interval.
      const wait = intervalMs * Math.min(8, 2 ** Math.max(0, failures - 1));
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
  }
}
