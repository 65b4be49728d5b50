// Typed errors, mapped to exit codes and one clear line at the top of the CLI (src/cli.ts).

/** An error the user can act on: printed as one line (no stack unless --debug), exit code 1. */
export class PersistError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
  }
}

/** A problem located in a spec file. */
export interface SpecProblem {
  file: string;
  line: number;
  column: number;
  /** Key path such as `buckets.data.mount.path` (empty for the document itself). */
  path: string;
  message: string;
  /** Problems that follow from this one (a structure error): shown folded under it. */
  consequences?: SpecProblem[];
}

/** How many consequences are shown under a cause; the rest are counted. */
const CONSEQUENCES_SHOWN = 3;

export function formatProblem(p: SpecProblem): string {
  const line = `${p.file}:${p.line}:${p.column}: ${p.path ? `${p.path}: ` : ''}${p.message}`;
  if (!p.consequences?.length) return line;
  const shown = p.consequences.slice(0, CONSEQUENCES_SHOWN).map((c) => `    ${formatProblem({ ...c, consequences: [] })}`);
  const more = p.consequences.length - shown.length;
  const count = p.consequences.length === 1 ? '1 problem follows' : `${p.consequences.length} problems follow`;
  return [line, `  ${count} from it:`, ...shown, ...(more > 0 ? [`    ... and ${more} more`] : [])].join('\n');
}

/** All problems found in a spec, reported at once. */
export class SpecError extends PersistError {
  constructor(readonly problems: SpecProblem[]) {
    super(problems.map(formatProblem).join('\n'));
  }
}

/** A command-line usage problem (unknown target, missing file, bad duration...). */
export class UsageError extends PersistError {}

/** A saved plan that no longer matches the machine or the spec. */
export class StalePlanError extends PersistError {
  constructor(message: string, readonly changed: string[]) {
    super(message);
  }
}

/** Another apply holds the lock. */
export class LockError extends PersistError {}

/** An action failed while applying. */
export class ActionError extends PersistError {}

/**
 * A bucket's store refused a request or could not be reached (the keys, the bucket's name, the
 * endpoint, an outage): `fix` says what to check. Only the resources of that bucket stop on it.
 */
export class StoreError extends PersistError {
  constructor(
    message: string,
    readonly fix: string,
    /** A passing outage (the endpoint unreachable, 5xx answers): the same request may succeed soon. */
    readonly transient = false,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/**
 * A file or folder that a resource's observation had to read answered with an error of the file
 * system (a symbolic link loop, permission denied, a file where a folder belongs, an I/O error):
 * `path` is the one the system named, `code` its errno code, `fix` what to do. Only the resource
 * that reads it stops on it (engine/observe.ts), as with a StoreError.
 */
export class PathError extends PersistError {
  constructor(
    message: string,
    readonly path: string,
    readonly code: string,
    readonly fix: string,
    /** The path changed while it was looked at (it went away): the next run may find it whole. */
    readonly transient = false,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** Why a resource could not be observed: its bucket's store, or a path it reads. */
export type UnobservedError = StoreError | PathError;

/** Whether `error`, or an error it was caused by, is a StoreError of a passing outage (or a PathError of a path that changed while it was read). */
export function isTransientStoreFailure(error: unknown): boolean {
  for (let e: unknown = error, depth = 0; e instanceof Error && depth < 5; e = e.cause, depth++) {
    if (e instanceof StoreError || e instanceof PathError) return e.transient;
  }
  return false;
}
