// A saved plan (`plan --out FILE`): the spec's hash, the environment, the actions and a fingerprint
// of every resource observed, sealed with a checksum. `apply FILE` refuses it when it was tampered
// with, made for another spec or environment, or when any resource changed since.
import { createHash } from 'node:crypto';
import { PersistError, StalePlanError } from '../errors.js';
import { errorCode } from '../output/format.js';
import type { Host } from '../host/types.js';
import type { PlannedAction, PlanOptions } from './types.js';

export const SAVED_PLAN_KIND = 'persist-plan' as const;

export interface SavedPlan {
  kind: typeof SAVED_PLAN_KIND;
  formatVersion: 1;
  specFile: string;
  specHash: string;
  environment: string;
  createdAt: string;
  options: PlanOptions;
  targets: string[];
  /** Address -> sha256 of its observed state. */
  fingerprints: Record<string, string>;
  actions: PlannedAction[];
  checksum: string;
}

function checksumOf(plan: Omit<SavedPlan, 'checksum'>): string {
  return createHash('sha256').update(JSON.stringify(plan)).digest('hex');
}

export function sealPlan(plan: Omit<SavedPlan, 'checksum' | 'kind' | 'formatVersion'>): SavedPlan {
  const body = { kind: SAVED_PLAN_KIND, formatVersion: 1 as const, ...plan };
  return { ...body, checksum: checksumOf(body) };
}

/** Parse and check a saved plan file's text; `file` is named in every error. */
export function parseSavedPlan(text: string, file: string): SavedPlan {
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch {
    throw new PersistError(`${file}: not a saved plan (it is not valid JSON; was it truncated?)`);
  }
  const plan = data as Partial<SavedPlan> | null;
  if (!plan || typeof plan !== 'object' || plan.kind !== SAVED_PLAN_KIND) {
    throw new PersistError(`${file}: not a saved plan (write one with \`persist plan --out ${file}\`)`);
  }
  if (plan.formatVersion !== 1) throw new PersistError(`${file}: saved plan format ${String(plan.formatVersion)} is not supported (expected 1)`);
  const { checksum, ...body } = plan as SavedPlan;
  if (typeof checksum !== 'string' || checksumOf(body) !== checksum) {
    throw new PersistError(`${file}: the saved plan was modified after it was written (checksum mismatch); run \`persist plan --out\` again`);
  }
  return plan as SavedPlan;
}

/** Write a sealed plan to `path` (mode 0600: it names paths and buckets). */
/** Write the saved plan to `path`; `file` (as the user gave it) is named in an error. */
export async function writeSavedPlan(host: Host, path: string, file: string, plan: SavedPlan): Promise<void> {
  try {
    await host.writeFile(path, `${JSON.stringify(plan, null, 2)}\n`, { mode: 0o600 });
  } catch (error) {
    const code = errorCode(error);
    const why = code === 'ENOENT' || code === 'ENOTDIR' ? 'its folder does not exist' : code === 'EISDIR' ? 'it is a directory, expected a file name' : code === 'EACCES' || code === 'EPERM' ? 'permission denied' : code;
    throw new PersistError(`--out ${file}: cannot write the saved plan (${why})`);
  }
}

/** Read and check the saved plan at `path`; `file` (as the user gave it) is named in every error. */
export async function readSavedPlan(host: Host, path: string, file: string): Promise<SavedPlan> {
  let text: string;
  try {
    text = (await host.readFile(path)).toString('utf8');
  } catch (error) {
    const code = errorCode(error);
    throw new PersistError(`${file}: cannot read the saved plan (${code === 'ENOENT' ? 'no such file' : code === 'EISDIR' ? 'it is a directory' : code})`);
  }
  return parseSavedPlan(text, file);
}

/** Refuse a plan made for another spec or environment, or whose observed resources changed since. */
export function checkFresh(plan: SavedPlan, file: string, current: { specFile: string; specHash: string; environment: string; fingerprints: Record<string, string> }): void {
  if (plan.specFile !== current.specFile) {
    throw new StalePlanError(`${file}: the plan was made for the spec ${plan.specFile}, not ${current.specFile}; apply it without -f, or run \`persist plan --out\` with this spec`, []);
  }
  if (plan.environment !== current.environment) {
    throw new StalePlanError(`${file}: the plan was made for environment "${plan.environment}", not "${current.environment}"`, []);
  }
  if (plan.specHash !== current.specHash) {
    throw new StalePlanError(`${file}: the spec ${plan.specFile} changed since the plan was made; run \`persist plan --out\` again`, []);
  }
  const changed = Object.keys({ ...plan.fingerprints, ...current.fingerprints })
    .filter((address) => plan.fingerprints[address] !== current.fingerprints[address])
    .sort();
  if (changed.length > 0) {
    throw new StalePlanError(`${file}: the plan is stale; these resources changed since it was made: ${changed.join(', ')}. Run \`persist plan --out\` again.`, changed);
  }
}
