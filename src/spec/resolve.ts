// From a parsed spec to ResolvedEnvironment, the driver: select the environments, merge each
// one's overlay, interpolate, check the merged result against the schema, resolve each section
// with its kind's resolver (sections.ts), check claims, then isolation across every environment
// of the file. Problems are collected, never thrown, so that a user sees all of them at once.
import type { SpecProblem } from '../errors.js';
import { checkLocalClaims, checkMountClaims } from './claims.js';
import { ResolveContext } from './context.js';
import { IMPLICIT_ENVIRONMENT, overlayOf, selectEnvironments, type Selection } from './environments.js';
import { interpolateTree, isPlainObject, type InterpolationContext } from './interpolate.js';
import { isolationProblems, type EnvironmentProblem, type IsolationFacts } from './isolation.js';
import type { KeyPath, SpecSource } from './load.js';
import { deepMerge } from './merge.js';
import { lazyPlace, placeInEnvironment, placeInSource, type Part, type Place } from './positions.js';
import { SECTION_NAMES, SECTIONS, type SectionName } from './sections.js';
import { Sensitive, SENSITIVE_TEXT } from './sensitive.js';
import type { ResolvedEnvironment } from './types.js';
import { foldStructureErrors } from './structure.js';
import { checkSchema } from './validate.js';

export { IMPLICIT_ENVIRONMENT } from './environments.js';

interface EnvironmentOutcome {
  name: string;
  problems: EnvironmentProblem[];
  facts: IsolationFacts;
  resolved: ResolvedEnvironment;
}

export interface Analysis {
  /** Every environment of the file, in order (`default` when it declares none). */
  environments: string[];
  problems: SpecProblem[];
  /** The checked environments, resolved (meaningful only when there are no problems). */
  resolved: Map<string, ResolvedEnvironment>;
}

export interface AnalyzeOptions {
  processEnv: Record<string, string | undefined>;
  /**
   * Which environments to check fully (see Selection). Other environments are resolved only for
   * the isolation check, their own problems ignored.
   */
  select: Selection;
}

/** Checks a parsed spec and resolves the selected environment(s). */
export function analyze(source: SpecSource, options: AnalyzeOptions): Analysis {
  const problems: SpecProblem[] = [...source.problems];
  const analysis: Analysis = { environments: [], problems, resolved: new Map() };
  const raw = source.data;
  if (!isPlainObject(raw)) return finish(analysis);

  const placeOf = (path: KeyPath, part: Part = 'value'): Place => placeInSource(source, path, part);
  const fileProblem = (place: Place, message: string) => problems.push({ file: source.file, ...place, message });
  for (const issue of checkSchema(raw)) fileProblem(placeOf(issue.path, issue.part), issue.message);

  const declared = isPlainObject(raw.environments) ? Object.keys(raw.environments) : [];
  const environments = declared.length > 0 ? declared : [IMPLICIT_ENVIRONMENT];
  analysis.environments = environments;
  const known = environments.join(', ');

  const defaultEnvironment = typeof raw.defaultEnvironment === 'string' ? raw.defaultEnvironment : undefined;
  if (defaultEnvironment !== undefined && !environments.includes(defaultEnvironment)) {
    fileProblem(
      placeOf(['defaultEnvironment']),
      declared.length > 0
        ? `unknown environment "${defaultEnvironment}"; known: ${known}`
        : `unknown environment "${defaultEnvironment}": the spec declares no environments, so its only environment is "${IMPLICIT_ENVIRONMENT}"`,
    );
  }

  const selected = selectEnvironments(options.select, declared, defaultEnvironment, options.processEnv, (message) =>
    fileProblem(placeOf(declared.length > 0 ? ['environments'] : [], 'key'), message),
  );

  const base: Record<string, unknown> = { ...raw };
  delete base.environments;
  const outcomes = environments.map((name) => {
    const overlay = declared.length > 0 ? overlayOf((raw.environments as Record<string, unknown>)[name]) : undefined;
    return resolveEnvironment(source, name, base, overlay, options.processEnv);
  });

  // Problems of the checked environments; one found in several environments is reported once,
  // naming the environments only when it does not concern all the checked ones.
  const checked = outcomes.filter((outcome) => selected.includes(outcome.name));
  const reported = new Set(problems.map(problemKey));
  const grouped = new Map<string, { problem: EnvironmentProblem; environments: string[] }>();
  for (const outcome of checked) {
    for (const problem of outcome.problems) {
      const key = problemKey({ ...problem.place, message: problem.message });
      // Already reported by the check of the document as written.
      if (reported.has(key)) continue;
      const group = grouped.get(key);
      if (group) group.environments.push(outcome.name);
      else grouped.set(key, { problem, environments: [outcome.name] });
    }
  }
  for (const { problem, environments: where } of grouped.values()) {
    const suffix = declared.length > 0 && where.length < checked.length ? ` (environment ${where.join(', ')})` : '';
    fileProblem(problem.place, `${problem.message}${suffix}`);
  }
  for (const problem of isolationProblems(outcomes)) fileProblem(problem.place, problem.message);
  for (const outcome of checked) analysis.resolved.set(outcome.name, outcome.resolved);
  finish(analysis);
  analysis.problems = foldStructureErrors(source, raw, analysis.problems);
  return finish(analysis);
}

function problemKey(problem: { line: number; column: number; path: string; message: string }): string {
  return `${problem.line}:${problem.column}:${problem.path}:${problem.message}`;
}

function finish(analysis: Analysis): Analysis {
  const seen = new Set<string>();
  analysis.problems = analysis.problems
    .filter((problem) => {
      const key = problemKey(problem);
      if (seen.has(key)) return false;
      seen.add(key);
      return true;
    })
    .sort((a, b) => a.line - b.line || a.column - b.column);
  return analysis;
}

/** Resolves one environment, collecting its problems and the facts the isolation check needs. */
function resolveEnvironment(
  source: SpecSource,
  environment: string,
  base: Record<string, unknown>,
  overlay: unknown,
  processEnv: Record<string, string | undefined>,
): EnvironmentOutcome {
  const overlayPath: KeyPath = overlay === undefined ? [] : ['environments', environment];
  const place = placeInEnvironment(source, base, overlay, overlayPath);
  const problems: EnvironmentProblem[] = [];
  const problem = (path: KeyPath, message: string, part: Part = 'value') => problems.push({ place: place(path, part), message });

  const ctx: InterpolationContext = { environment, processEnv };
  const failures: { path: KeyPath; message: string }[] = [];
  const merged = interpolateTree(deepMerge(base, overlay ?? {}), ctx, failures, (path, value) => (isCredential(path) ? new Sensitive(value) : value));
  for (const failure of failures) problem(failure.path, failure.message);
  for (const issue of checkSchema(withoutSecrets(merged))) problem(issue.path, issue.message, issue.part);

  const resolver = new ResolveContext(source.dir, isPlainObject(merged) ? merged : {}, problem, place);
  return { name: environment, problems, facts: resolver.facts, resolved: resolveSections(resolver, source, environment) };
}

/** The workspace, then every section through its resolver, then the claims of the environment. */
function resolveSections(ctx: ResolveContext, source: SpecSource, environment: string): ResolvedEnvironment {
  const workspace = ctx.localPath(['workspace']);
  if (workspace !== undefined) {
    ctx.workspace = workspace;
    ctx.facts.localPaths.push({ label: 'workspace', path: workspace, place: lazyPlace(() => ctx.place(['workspace'])) });
  }
  const sections = Object.fromEntries(SECTION_NAMES.map((section) => [section, {}])) as Pick<ResolvedEnvironment, SectionName>;
  ctx.buckets = sections.buckets;
  for (const section of SECTION_NAMES) {
    const resolved = sections[section] as Record<string, unknown>;
    const resolve = SECTIONS[section] as (ctx: ResolveContext, name: string, value: Record<string, unknown> | string) => unknown;
    for (const [name, value] of ctx.entries(section)) {
      const entry = resolve(ctx, name, value);
      if (entry !== undefined) resolved[name] = entry;
    }
  }
  const locate = (at: KeyPath): string => `${source.file}:${ctx.place(at).line}`;
  checkMountClaims(ctx.mountClaims, ctx.report, locate);
  checkLocalClaims(ctx.localClaims, ctx.facts.mounts, { path: ctx.workspace, at: ctx.tree.workspace === undefined ? [] : ['workspace'] }, ctx.report, locate);
  return {
    specFile: source.absPath,
    get specHash() {
      return source.hash; // read only by plan and apply (see SpecSource.hash)
    },
    environment,
    workspace: ctx.workspace,
    ...sections,
  };
}

function isCredential(path: KeyPath): boolean {
  return path.length === 4 && path[0] === 'buckets' && path[2] === 'credentials';
}

/** The merged tree with Sensitive values replaced by a placeholder string, for the schema check. */
function withoutSecrets(tree: unknown): unknown {
  if (tree instanceof Sensitive) return SENSITIVE_TEXT;
  if (Array.isArray(tree)) return tree.map(withoutSecrets);
  if (isPlainObject(tree)) return Object.fromEntries(Object.entries(tree).map(([key, value]) => [key, withoutSecrets(value)]));
  return tree;
}

