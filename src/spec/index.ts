// The spec language's public face: load, validate and resolve a spec file. The engine (plan,
// apply) calls loadEnvironment; `persist validate` calls validateSpec.
import { SpecError, type SpecProblem } from '../errors.js';
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
  /** Folder a relative `file` is read from; default process.cwd(). */
  cwd?: string;
  /** Parse cache folder (see cache.ts); without it the YAML is always parsed. */
  cacheDir?: string;
}

/**
 * Load, validate and resolve the selected environment (--env, else $ENVIRONMENT, else
 * defaultEnvironment); throws SpecError (all problems) or PersistError (file unreadable).
 * Isolation across every environment of the file is checked too.
 */
export async function loadEnvironment(input: SpecInput): Promise<ResolvedEnvironment> {
  const source = loadSpecSource(input.file, input.cwd ?? process.cwd(), input.cacheDir);
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
  const source = loadSpecSource(input.file, input.cwd ?? process.cwd());
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
export function rememberSpec(input: SpecInput & { cacheDir: string }, hash: string): void {
  const source = loadSpecSource(input.file, input.cwd ?? process.cwd());
  if (source.hash === hash && source.problems.length === 0 && source.data !== undefined) writeCachedSpecData(input.cacheDir, hash, source.data);
}

export { IMPLICIT_ENVIRONMENT } from './resolve.js';
