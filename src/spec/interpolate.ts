// `${environment}`, `${env:NAME}` and `${env:NAME:-fallback}` in string values. Failures are
// collected, not thrown, so that every missing variable is reported at once.
import type { KeyPath } from './load.js';

export interface InterpolationContext {
  environment: string;
  processEnv: Record<string, string | undefined>;
}

export interface InterpolationFailure {
  path: KeyPath;
  message: string;
}

const REFERENCE = /\$\{([^}]*)\}/g;
const ENV_REFERENCE = /^env:([A-Za-z_][A-Za-z0-9_]*)(?::-(.*))?$/s;

/** Whether a string still holds a `${...}` reference (interpolation failed or was not done). */
export function hasReference(value: string): boolean {
  return value.includes('${');
}

/**
 * Replaces the references in one string. Returns the new string, or undefined with the failures
 * appended when a reference cannot be resolved. An empty variable counts as unset, as `:-` does
 * in the shell: an empty account id or key is never what was meant.
 */
export function interpolateString(
  value: string,
  path: KeyPath,
  ctx: InterpolationContext,
  failures: InterpolationFailure[],
): string | undefined {
  let failed = false;
  const result = value.replace(REFERENCE, (whole, inner: string) => {
    if (inner === 'environment') return ctx.environment;
    const env = ENV_REFERENCE.exec(inner);
    if (!env) {
      failed = true;
      failures.push({
        path,
        message: `unknown reference ${whole}; use \${environment}, \${env:NAME} or \${env:NAME:-fallback}`,
      });
      return whole;
    }
    const name = env[1] as string;
    const fallback = env[2];
    const set = ctx.processEnv[name];
    if (set !== undefined && set !== '') return set;
    if (fallback !== undefined) return fallback;
    failed = true;
    failures.push({ path, message: `environment variable ${name} is not set` });
    return whole;
  });
  return failed ? undefined : result;
}

/**
 * Interpolates every string value of a tree (keys are left alone). A string that fails keeps its
 * text, so later checks can tell it apart with hasReference(); `wrap` lets the caller turn
 * selected values (credentials) into something else at the moment they are interpolated.
 */
export function interpolateTree(
  tree: unknown,
  ctx: InterpolationContext,
  failures: InterpolationFailure[],
  wrap: (path: KeyPath, value: string) => unknown = (_path, value) => value,
  path: KeyPath = [],
): unknown {
  if (typeof tree === 'string') {
    const result = interpolateString(tree, path, ctx, failures);
    return result === undefined ? tree : wrap(path, result);
  }
  if (Array.isArray(tree)) return tree.map((item, index) => interpolateTree(item, ctx, failures, wrap, [...path, index]));
  if (isPlainObject(tree)) {
    const out: Record<string, unknown> = {};
    for (const [key, value] of Object.entries(tree)) setOwn(out, key, interpolateTree(value, ctx, failures, wrap, [...path, key]));
    return out;
  }
  return tree;
}

export function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value) && Object.getPrototypeOf(value) === Object.prototype;
}

/** Sets a key as an own property, so that a key named `__proto__` stays data. */
export function setOwn(target: Record<string, unknown>, key: string, value: unknown): void {
  Object.defineProperty(target, key, { value, enumerable: true, writable: true, configurable: true });
}
