// What the commands share: composing the host, finding the spec, loading the environment, observing.
import { assemblePlan } from '../engine/plan.js';
import { fingerprint, observeEnvironment, type Observation } from '../engine/observe.js';
import type { PlannedAction, PlanOptions } from '../engine/types.js';
import { UsageError } from '../errors.js';
import { specCacheDir, stateDir } from '../host/paths.js';
import type { Host } from '../host/types.js';
import { loadEnvironment, type SpecInput } from '../spec/index.js';
import type { ResolvedEnvironment } from '../spec/types.js';
import { makeHost } from './host.js';
import type { CommandIO, SpecOptions } from './types.js';

export { makeHost };

export function specInput(opts: SpecOptions, io: CommandIO, host: Host): SpecInput & { cacheDir: string } {
  return { file: opts.file ?? io.env.PERSIST_SPEC ?? 'persist.yaml', environment: opts.env, processEnv: io.env, cwd: io.cwd, cacheDir: specCacheDir(io.env), host };
}

/** Refuses a state folder that is not a folder: read as missing, it would make a known machine look new. */
export async function checkStateFolder(io: CommandIO, host: Host): Promise<void> {
  const state = stateDir(io.env);
  const info = await host.stat(state);
  if (info && info.type !== 'dir') {
    throw new UsageError(`persist's state folder ${state} is a ${info.type}, not a folder (it comes from ${io.env.PERSIST_STATE_DIR ? 'PERSIST_STATE_DIR' : io.env.XDG_STATE_HOME ? 'XDG_STATE_HOME' : 'HOME'}); move it aside, or point PERSIST_STATE_DIR at a folder`);
  }
}

/** Load the selected environment, reading through `host` (by default a read-only one of its own). */
export async function loadSpec(opts: SpecOptions, io: CommandIO, host: Host = makeHost(io, { readOnly: true })): Promise<ResolvedEnvironment> {
  await checkStateFolder(io, host);
  return loadEnvironment(specInput(opts, io, host));
}

export interface PlanResult {
  env: ResolvedEnvironment;
  observation: Observation;
  actions: PlannedAction[];
  fingerprints: Record<string, string>;
}

/** Observe the machine and assemble the ordered plan (read-only if `host` is). */
export async function computePlan(host: Host, env: ResolvedEnvironment, options: PlanOptions, targets: string[]): Promise<PlanResult> {
  const observation = await observeEnvironment(host, env, options);
  const diffs = observation.resources.flatMap((r) => (r.diff ? [r.diff] : []));
  const actions = assemblePlan(diffs, observation.refs, targets);
  return {
    env,
    observation,
    actions,
    // Hashed only when read: only a saved plan needs them, and a plan of 500 links would hash 500 states.
    get fingerprints() {
      return Object.fromEntries(observation.resources.map((r) => [r.address, fingerprint(r.seen.state)]));
    },
  };
}

export function header(env: ResolvedEnvironment, verb: string): string {
  return `persist ${verb}: environment "${env.environment}" (${env.specFile})`;
}
