// The spec language's public face: load, validate and resolve a spec file. The engine (plan,
// apply) calls loadEnvironment; `persist validate` calls validateSpec.
import { SpecError, type SpecProblem } from '../errors.js';
import { RealHost } from '../host/real.js';
import type { Host } from '../host/types.js';
import { writeCachedSpecData } from './cache.js';
import { loadSpecSource } from './load.js';
import { analyze } from './resolve.js';
import type { ResolvedEnvironment } from './types.js';

export interface SpecInput {
  /** The spec file as the user gave it (messages name it this way). */
  file: string;
  /** --env, if given. */
  environment?: string;
  processEnv: Record<string, string | undefined>;
  /** Folder a relative `file` is read from; default the host's working directory. */
  cwd?: string;
  /** Parse cache folder (see cache.ts); without it the YAML is always parsed. */
  cacheDir?: string;
  /** What the spec and its cache are read (and the cache written) through; default a RealHost. Commands pass theirs. */
  host?: Host;
}

function sourceOf(input: SpecInput, cacheDir?: string) {
  const host = input.host ?? new RealHost();
  return loadSpecSource(host, input.file, input.cwd ?? host.cwd(), cacheDir);
}

/**
 * Load, validate and resolve the selected environment (--env, else $ENVIRONMENT, else
 * defaultEnvironment); throws SpecError (all problems) or PersistError (file unreadable).
 * Isolation across every environment of the file is checked too.
 */
export async function loadEnvironment(input: SpecInput): Promise<ResolvedEnvironment> {
  const source = sourceOf(input, input.cacheDir);
  const analysis = analyze(source, {
    processEnv: input.processEnv,
    select: { mode: 'one', requested: input.environment, useProcessEnv: true },
  });
  const [resolved] = analysis.resolved.values();
  if (analysis.problems.length > 0 || !resolved) throw new SpecError(analysis.problems);
  return resolved;
}

/**
 * Validate the whole file: every environment (or only `input.environment` when given), plus
 * isolation across all of them. Never throws for spec problems; throws PersistError when the
 * file cannot be read.
 */
export async function validateSpec(input: SpecInput): Promise<{ problems: SpecProblem[]; environments: string[] }> {
  const source = sourceOf(input);
  const analysis = analyze(source, {
    processEnv: input.processEnv,
    select: input.environment === undefined ? { mode: 'all' } : { mode: 'one', requested: input.environment, useProcessEnv: false },
  });
  return { problems: analysis.problems, environments: analysis.environments };
}

/**
 * Cache the parse of the spec whose bytes hash to `hash` (an apply that has work calls this, so
 * that later plans skip the YAML parse). Parses afresh; nothing is cached if the file changed
 * meanwhile or has a YAML-level problem.
 */
export async function rememberSpec(input: SpecInput & { cacheDir: string }, hash: string): Promise<void> {
  const host = input.host ?? new RealHost();
  const source = sourceOf({ ...input, host });
  if (source.hash === hash && source.problems.length === 0 && source.data !== undefined) await writeCachedSpecData(host, input.cacheDir, hash, source.data);
}

export { IMPLICIT_ENVIRONMENT } from './resolve.js';
