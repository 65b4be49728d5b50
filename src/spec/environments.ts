// Environment selection (--env, $ENVIRONMENT, defaultEnvironment) and the part of an environment
// that is merged over the document.
import { isPlainObject } from './interpolate.js';
import { OVERLAY_KEYS } from './sections.js';

/** The environment of a spec that declares none. */
export const IMPLICIT_ENVIRONMENT = 'default';

/**
 * Which environments to check fully: `all`, or a selection as for plan/apply (`--env`, then
 * `$ENVIRONMENT`, then defaultEnvironment), or one name given with --env only (`validate --env`).
 */
export type Selection = { mode: 'all' } | { mode: 'one'; requested?: string; useProcessEnv: boolean };

/** The part of an environment that may be merged (other keys are reported by the schema check). */
export function overlayOf(environment: unknown): Record<string, unknown> {
  if (!isPlainObject(environment)) return {};
  return Object.fromEntries(Object.entries(environment).filter(([key]) => (OVERLAY_KEYS as readonly string[]).includes(key)));
}

/** The selected environments (none when the selection is a problem, which is reported). */
export function selectEnvironments(
  select: Selection,
  declared: string[],
  defaultEnvironment: string | undefined,
  processEnv: Record<string, string | undefined>,
  report: (message: string) => void,
): string[] {
  if (select.mode === 'all') return declared.length > 0 ? declared : [IMPLICIT_ENVIRONMENT];
  if (declared.length === 0) {
    // $ENVIRONMENT may be set for other tools; only an explicit --env is checked against a spec
    // without environments.
    if (select.requested !== undefined && select.requested !== IMPLICIT_ENVIRONMENT) {
      report(`unknown environment "${select.requested}" (from --env): the spec declares no environments, so its only environment is "${IMPLICIT_ENVIRONMENT}"`);
      return [];
    }
    return [IMPLICIT_ENVIRONMENT];
  }
  const fromProcess = select.useProcessEnv && processEnv.ENVIRONMENT ? processEnv.ENVIRONMENT : undefined;
  const [name, origin] =
    select.requested !== undefined
      ? [select.requested, '--env']
      : fromProcess !== undefined
        ? [fromProcess, '$ENVIRONMENT']
        : [defaultEnvironment, 'defaultEnvironment'];
  const known = declared.join(', ');
  if (name === undefined) {
    report(`no environment selected: give --env NAME, set ENVIRONMENT, or set defaultEnvironment; known: ${known}`);
    return [];
  }
  if (!declared.includes(name)) {
    // An unknown defaultEnvironment is already reported where it is written.
    if (origin !== 'defaultEnvironment') report(`unknown environment "${name}" (from ${origin}); known: ${known}`);
    return [];
  }
  return [name];
}
