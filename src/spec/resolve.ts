// From a parsed spec to ResolvedEnvironment: environment selection, overlay merge, interpolation,
// schema check of the merged result, path resolution, bucket references, claims, and isolation
// across every environment of the file. Problems are collected, never thrown, so that a user
// sees all of them at once.
import { isAbsolute, posix, resolve as resolvePath, sep } from 'node:path';
import type { SpecProblem } from '../errors.js';
import { interpolateTree, isPlainObject, type InterpolationContext, hasReference } from './interpolate.js';
import { formatKeyPath, type KeyPath, type SpecSource } from './load.js';
import { deepMerge, originOf } from './merge.js';
import { Sensitive, SENSITIVE_TEXT } from './sensitive.js';
import {
  BACKEND_NAMES,
  type BackendName,
  type Provider,
  type ResolvedBucket,
  type ResolvedBundle,
  type ResolvedEnvironment,
  type ResolvedFile,
  type ResolvedLink,
  type ResolvedSync,
} from './types.js';
import { checkSchema } from './validate.js';

/** The environment of a spec that declares none. */
export const IMPLICIT_ENVIRONMENT = 'default';

const DEFAULT_KEEP = 2;
const DEFAULT_MAX_DELETE_RATIO = 0.5;
const DEFAULT_FILE_MODE = 0o600;
const S3_BUCKET_NAME = /^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/;

/** Where a value sits in the file: what a problem about it points at. */
interface Place {
  line: number;
  column: number;
  path: string;
}

/**
 * A Place computed only when read: finding a key's position walks the YAML document, and every
 * resource records one for the isolation check, which almost never needs it.
 */
function lazyPlace(compute: () => Place): Place {
  let cached: Place | undefined;
  const get = (): Place => (cached ??= compute());
  return {
    get line() {
      return get().line;
    },
    get column() {
      return get().column;
    },
    get path() {
      return get().path;
    },
  };
}

interface EnvironmentProblem {
  place: Place;
  message: string;
}

/** What the isolation check across environments needs from one environment. */
interface IsolationFacts {
  buckets: { key: string; name: string; endpoint?: string; place: Place }[];
  mounts: { key: string; path: string; place: Place }[];
  localPaths: { label: string; path: string; place: Place }[];
}

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
   * Which environments to check fully: `all`, or a selection as for plan/apply (`--env`, then
   * `$ENVIRONMENT`, then defaultEnvironment), or one name given with --env only (`validate --env`).
   * Other environments are resolved only for the isolation check, their own problems ignored.
   */
  select: { mode: 'all' } | { mode: 'one'; requested?: string; useProcessEnv: boolean };
}

/** Checks a parsed spec and resolves the selected environment(s). */
export function analyze(source: SpecSource, options: AnalyzeOptions): Analysis {
  const problems: SpecProblem[] = [...source.problems];
  const analysis: Analysis = { environments: [], problems, resolved: new Map() };
  const raw = source.data;
  if (!isPlainObject(raw)) return finish(analysis);

  const placeOf = (path: KeyPath, part: 'key' | 'value' = 'value'): Place => ({ ...source.locate(path, part), path: formatKeyPath(path) });
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
  return finish(analysis);
}

const OVERLAY_KEYS = ['workspace', 'buckets', 'links', 'bundles', 'syncs', 'files'];

/** The part of an environment that may be merged (other keys are reported by the schema check). */
function overlayOf(environment: unknown): Record<string, unknown> {
  if (!isPlainObject(environment)) return {};
  return Object.fromEntries(Object.entries(environment).filter(([key]) => OVERLAY_KEYS.includes(key)));
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

function selectEnvironments(
  select: AnalyzeOptions['select'],
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

/** Resolves one environment, collecting its problems and the facts the isolation check needs. */
function resolveEnvironment(
  source: SpecSource,
  environment: string,
  base: Record<string, unknown>,
  overlay: unknown,
  processEnv: Record<string, string | undefined>,
): EnvironmentOutcome {
  const overlayPath: KeyPath = overlay === undefined ? [] : ['environments', environment];
  const place = (path: KeyPath, part: 'key' | 'value' = 'value'): Place => {
    const origin = originOf(path, base, overlay, overlayPath);
    // A path missing from the file (a default) maps to its parent: point at the parent's key.
    const exact = origin[0] === 'environments' ? origin.length === overlayPath.length + path.length : origin.length === path.length;
    return { ...source.locate(origin, exact ? part : 'key'), path: formatKeyPath(origin) };
  };
  const problems: EnvironmentProblem[] = [];
  const problem = (path: KeyPath, message: string, part: 'key' | 'value' = 'value') => problems.push({ place: place(path, part), message });

  const ctx: InterpolationContext = { environment, processEnv };
  const failures: { path: KeyPath; message: string }[] = [];
  const merged = interpolateTree(deepMerge(base, overlay ?? {}), ctx, failures, (path, value) => (isCredential(path) ? new Sensitive(value) : value));
  for (const failure of failures) problem(failure.path, failure.message);
  for (const issue of checkSchema(withoutSecrets(merged))) problem(issue.path, issue.message, issue.part);

  const resolver = new EnvironmentResolver(source, environment, merged, problem, place);
  return { name: environment, problems, facts: resolver.facts, resolved: resolver.resolve() };
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

type Report = (path: KeyPath, message: string, part?: 'key' | 'value') => void;

/** A resource's claim on a path inside a mount, or on the local disk. */
interface MountClaim {
  address: string;
  bucket: string;
  /** Relative paths claimed (a bundle also claims its rotated generations). */
  paths: string[];
  at: KeyPath;
}
interface LocalClaim {
  address: string;
  kind: 'link' | 'sync' | 'file' | 'repo';
  path: string;
  at: KeyPath;
}

class EnvironmentResolver {
  readonly facts: IsolationFacts = { buckets: [], mounts: [], localPaths: [] };
  private readonly tree: Record<string, unknown>;
  private readonly mountClaims: MountClaim[] = [];
  private readonly localClaims: LocalClaim[] = [];
  private readonly env: ResolvedEnvironment;

  constructor(
    private readonly source: SpecSource,
    environment: string,
    merged: unknown,
    private readonly report: Report,
    private readonly place: (path: KeyPath, part?: 'key' | 'value') => Place,
  ) {
    this.tree = isPlainObject(merged) ? merged : {};
    this.env = {
      specFile: source.absPath,
      specHash: source.hash,
      environment,
      workspace: source.dir,
      buckets: {},
      links: {},
      bundles: {},
      syncs: {},
      files: {},
    };
  }

  resolve(): ResolvedEnvironment {
    const workspace = this.localPath(['workspace']);
    if (workspace !== undefined) {
      this.env.workspace = workspace;
      this.facts.localPaths.push({ label: 'workspace', path: workspace, place: lazyPlace(() => this.place(['workspace'])) });
    }
    for (const [key, value] of this.entries('buckets')) this.resolveBucket(key, value);
    for (const [name, value] of this.entries('links')) this.resolveLink(name, value);
    for (const [name, value] of this.entries('bundles')) this.resolveBundle(name, value);
    for (const [name, value] of this.entries('syncs')) this.resolveSync(name, value);
    for (const [name, value] of this.entries('files')) this.resolveFile(name, value);
    this.checkMountClaims();
    this.checkLocalClaims();
    return this.env;
  }

  private entries(section: string): [string, Record<string, unknown> | string][] {
    const value = this.tree[section];
    if (!isPlainObject(value)) return [];
    return Object.entries(value).filter((entry): entry is [string, Record<string, unknown> | string] => isPlainObject(entry[1]) || typeof entry[1] === 'string');
  }

  /** A usable string at `path`: undefined when absent, of another type, or not interpolated. */
  private text(path: KeyPath): string | undefined {
    let node: unknown = this.tree;
    for (const segment of path) node = isPlainObject(node) ? node[String(segment)] : undefined;
    return typeof node === 'string' && !hasReference(node) && node.trim() !== '' ? node : undefined;
  }

  private value(path: KeyPath): unknown {
    let node: unknown = this.tree;
    for (const segment of path) node = isPlainObject(node) ? node[String(segment)] : undefined;
    return node;
  }

  /** A local path, absolute; relative ones resolve against the spec's folder. */
  private localPath(path: KeyPath): string | undefined {
    const value = this.text(path);
    if (value === undefined) return undefined;
    if (value.startsWith('~')) {
      this.report(path, `"${value}": ~ is not expanded; write the full path or \${env:HOME}/...`);
      return undefined;
    }
    return resolvePath(this.source.dir, value);
  }

  /** A path inside a mount: relative, normalised, and not leaving the mount. */
  private inMountPath(path: KeyPath, bucket: string | undefined): string | undefined {
    const value = this.text(path);
    if (value === undefined) return undefined;
    const mount = bucket ? `the mount of bucket ${bucket}` : 'the mount';
    if (isAbsolute(value)) {
      this.report(path, `"${value}" must be relative to ${mount}, not an absolute path`);
      return undefined;
    }
    const normalised = posix.normalize(value.replace(/\\/g, '/')).replace(/\/+$/, '');
    if (normalised === '..' || normalised.startsWith('../')) {
      this.report(path, `"${value}" leaves ${mount} (..); paths in a mount must stay inside it`);
      return undefined;
    }
    if (normalised === '.' || normalised === '') {
      this.report(path, `"${value}" is the mount itself; name a path inside it`);
      return undefined;
    }
    return normalised;
  }

  private resolveBucket(key: string, value: Record<string, unknown> | string): void {
    if (typeof value === 'string') return;
    const at: KeyPath = ['buckets', key];
    const name = this.text([...at, 'name']);
    if (name !== undefined && !S3_BUCKET_NAME.test(name)) {
      this.report(
        [...at, 'name'],
        `"${name}" is not a valid bucket name: 3 to 63 characters, lowercase letters, digits, "." and "-", starting and ending with a letter or digit`,
      );
    }
    const endpoint = this.text([...at, 'endpoint']);
    const region = this.text([...at, 'region']);
    const pathStyle = this.value([...at, 'pathStyle']);
    const provider = this.value([...at, 'provider']);
    const backend = this.value([...at, 'mount', 'backend']);
    const mountPath = this.localPath([...at, 'mount', 'path']);
    const options = this.value([...at, 'mount', 'options']);
    const accessKeyId = this.value([...at, 'credentials', 'accessKeyId']);
    const secretAccessKey = this.value([...at, 'credentials', 'secretAccessKey']);

    if (name !== undefined) this.facts.buckets.push({ key, name, endpoint, place: lazyPlace(() => this.place([...at, 'name'])) });
    if (mountPath !== undefined) {
      if (mountPath === '/') this.report([...at, 'mount', 'path'], 'the mount path may not be / (the whole file system)');
      this.facts.mounts.push({ key, path: mountPath, place: lazyPlace(() => this.place([...at, 'mount', 'path'])) });
    }
    this.env.buckets[key] = {
      key,
      name: name ?? '',
      ...(endpoint !== undefined && { endpoint }),
      ...(region !== undefined && { region }),
      pathStyle: typeof pathStyle === 'boolean' ? pathStyle : true,
      provider: provider === 'r2' || provider === 'aws' || provider === 'other' ? provider : inferProvider(endpoint),
      ...(accessKeyId instanceof Sensitive && secretAccessKey instanceof Sensitive && { credentials: { accessKeyId, secretAccessKey } }),
      mount: {
        backend: BACKEND_NAMES.includes(backend as BackendName) ? (backend as BackendName) : 'local',
        path: mountPath ?? '',
        options: this.mountOptions(backend, options),
      },
    } satisfies ResolvedBucket;
  }

  /** Options as given, with rclone's cache folder resolved like every other local path. */
  private mountOptions(backend: unknown, options: unknown): Record<string, unknown> {
    if (!isPlainObject(options)) return {};
    const copy = { ...options };
    if (backend === 'rclone' && typeof copy.cacheDir === 'string' && !hasReference(copy.cacheDir)) copy.cacheDir = resolvePath(this.source.dir, copy.cacheDir);
    return copy;
  }

  /** The bucket a resource lives in: its `bucket:`, or the only bucket of the spec. */
  private bucketOf(at: KeyPath, value: Record<string, unknown> | string): ResolvedBucket | undefined {
    const keys = Object.keys(this.env.buckets);
    const given = typeof value === 'string' ? undefined : value.bucket;
    if (typeof given === 'string') {
      const bucket = this.env.buckets[given];
      if (!bucket) this.report([...at, 'bucket'], `unknown bucket "${given}"; known: ${keys.join(', ') || '(none)'}`);
      return bucket;
    }
    if (given !== undefined) return undefined;
    if (keys.length === 1) return this.env.buckets[keys[0] as string];
    if (keys.length > 1) this.report(at, `bucket: is required because the spec has ${keys.length} buckets (${keys.join(', ')})`, 'key');
    return undefined;
  }

  private mountTarget(bucket: ResolvedBucket, rel: string): string {
    return bucket.mount.path ? posix.join(bucket.mount.path, rel) : '';
  }

  private resolveLink(name: string, value: Record<string, unknown> | string): void {
    const at: KeyPath = ['links', name];
    const bucket = this.bucketOf(at, value);
    const relTarget = typeof value === 'string' ? this.inMountPath(at, bucket?.key) : this.inMountPath([...at, 'path'], bucket?.key);
    const path = resolvePath(this.env.workspace, name);
    this.localClaims.push({ address: `link.${name}`, kind: 'link', path, at });
    this.facts.localPaths.push({ label: `link.${name}`, path, place: lazyPlace(() => this.place(at, 'key')) });
    if (!bucket || relTarget === undefined) return;
    const targetAt = typeof value === 'string' ? at : [...at, 'path'];
    this.mountClaims.push({ address: `link.${name}`, bucket: bucket.key, paths: [relTarget], at: targetAt });
    this.env.links[name] = { name, bucket: bucket.key, path, relTarget, target: this.mountTarget(bucket, relTarget) } satisfies ResolvedLink;
  }

  private resolveBundle(name: string, value: Record<string, unknown> | string): void {
    if (typeof value === 'string') return;
    const at: KeyPath = ['bundles', name];
    const bucket = this.bucketOf(at, value);
    const repo = this.localPath([...at, 'repo']);
    const relFile = this.inMountPath([...at, 'file'], bucket?.key);
    const keep = Number.isInteger(value.keep) && (value.keep as number) >= 0 ? (value.keep as number) : DEFAULT_KEEP;
    const remote = this.text([...at, 'remote']);
    if (repo !== undefined) {
      this.localClaims.push({ address: `bundle.${name}`, kind: 'repo', path: repo, at: [...at, 'repo'] });
      this.facts.localPaths.push({ label: `bundle.${name}`, path: repo, place: lazyPlace(() => this.place([...at, 'repo'])) });
    }
    if (!bucket || relFile === undefined || repo === undefined) return;
    const generations = Array.from({ length: keep }, (_, index) => `${relFile}.${index + 1}`);
    this.mountClaims.push({ address: `bundle.${name}`, bucket: bucket.key, paths: [relFile, ...generations], at: [...at, 'file'] });
    this.env.bundles[name] = {
      name,
      bucket: bucket.key,
      repo,
      relFile,
      file: this.mountTarget(bucket, relFile),
      keep,
      ...(remote !== undefined && { remote }),
    } satisfies ResolvedBundle;
  }

  private resolveSync(name: string, value: Record<string, unknown> | string): void {
    if (typeof value === 'string') return;
    const at: KeyPath = ['syncs', name];
    const bucket = this.bucketOf(at, value);
    const from = this.localPath([...at, 'from']);
    const relTo = this.inMountPath([...at, 'to'], bucket?.key);
    if (from !== undefined) {
      this.localClaims.push({ address: `sync.${name}`, kind: 'sync', path: from, at: [...at, 'from'] });
      this.facts.localPaths.push({ label: `sync.${name}`, path: from, place: lazyPlace(() => this.place([...at, 'from'])) });
    }
    if (!bucket || relTo === undefined || from === undefined) return;
    this.mountClaims.push({ address: `sync.${name}`, bucket: bucket.key, paths: [relTo], at: [...at, 'to'] });
    const exclude = Array.isArray(value.exclude) ? value.exclude.filter((item): item is string => typeof item === 'string') : [];
    const ratio = value.maxDeleteRatio;
    this.env.syncs[name] = {
      name,
      bucket: bucket.key,
      from,
      relTo,
      to: this.mountTarget(bucket, relTo),
      delete: value.delete === true,
      exclude,
      maxDeleteRatio: typeof ratio === 'number' && ratio >= 0 && ratio <= 1 ? ratio : DEFAULT_MAX_DELETE_RATIO,
    } satisfies ResolvedSync;
  }

  private resolveFile(name: string, value: Record<string, unknown> | string): void {
    if (typeof value === 'string') return;
    const at: KeyPath = ['files', name];
    const bucket = this.bucketOf(at, value);
    const relFrom = this.inMountPath([...at, 'from'], bucket?.key);
    const to = this.localPath([...at, 'to']);
    const modeText = this.text([...at, 'mode']);
    const mode = modeText !== undefined && /^0?[0-7]{3}$/.test(modeText) ? Number.parseInt(modeText, 8) : DEFAULT_FILE_MODE;
    if (to !== undefined) {
      this.localClaims.push({ address: `file.${name}`, kind: 'file', path: to, at: [...at, 'to'] });
      this.facts.localPaths.push({ label: `file.${name}`, path: to, place: lazyPlace(() => this.place([...at, 'to'])) });
    }
    if (!bucket || relFrom === undefined || to === undefined) return;
    this.mountClaims.push({ address: `file.${name}`, bucket: bucket.key, paths: [relFrom], at: [...at, 'from'] });
    this.env.files[name] = { name, bucket: bucket.key, relFrom, from: this.mountTarget(bucket, relFrom), to, mode } satisfies ResolvedFile;
  }

  /** No two resources may claim the same or nested paths inside one mount. */
  private checkMountClaims(): void {
    const entries = this.mountClaims.flatMap((claim, index) => claim.paths.map((path) => ({ key: `${claim.bucket}:${path}`, owner: index })));
    for (const [first, second] of overlappingOwners(entries)) {
      const earlier = this.mountClaims[first]!;
      const claim = this.mountClaims[second]!;
      const clash = findOverlap(earlier.paths, claim.paths, posixContains);
      if (clash) this.report(claim.at, `${claim.address} and ${earlier.address} claim ${describeOverlap(clash, 'in the mount of bucket ' + claim.bucket)}`);
    }
  }

  /**
   * Local claims. Links, syncs and restored files may not share or nest paths with each other.
   * A bundle's repo is different: links and restored files inside the repo's folder are
   * legitimate (the repo ignores or tracks them; the moltbot spec links /root/clawd/memory and
   * restores /root/clawd/.credentials.env inside the repo /root/clawd), and so is a sync of a
   * folder inside it. What is refused is a link, sync or file at the repo itself or around it
   * (it would replace or mirror the whole repo), and two repos that are equal or nested. Nothing
   * local may lie in a mount of the environment, nor contain one.
   */
  private checkLocalClaims(): void {
    for (const [first, second] of overlappingOwners(this.localClaims.map((claim, index) => ({ key: claim.path, owner: index })))) {
      const earlier = this.localClaims[first]!;
      const claim = this.localClaims[second]!;
      const repo = claim.kind === 'repo' ? claim : earlier.kind === 'repo' ? earlier : undefined;
      const other = repo === claim ? earlier : claim;
      let clash: Overlap | undefined;
      if (!repo || other.kind === 'repo') clash = findOverlap([earlier.path], [claim.path], pathContains);
      else if (other.path === repo.path || pathContains(other.path, repo.path)) {
        clash = { a: other.path, b: repo.path, relation: other.path === repo.path ? 'same' : 'contains' };
      }
      if (clash) this.report(claim.at, `${claim.address} and ${earlier.address} claim ${describeOverlap(clash, 'on local disk')}`);
    }
    for (const claim of this.localClaims) {
      for (const mount of this.facts.mounts) {
        if (claim.path === mount.path || pathContains(mount.path, claim.path)) {
          this.report(claim.at, `${claim.address} (${claim.path}) lies in the mount path of bucket ${mount.key} (${mount.path}); local paths must stay outside mounts`);
        } else if (pathContains(claim.path, mount.path)) {
          this.report(claim.at, `${claim.address} (${claim.path}) contains the mount path of bucket ${mount.key} (${mount.path})`);
        }
      }
    }
    const workspace = this.env.workspace;
    for (const mount of this.facts.mounts) {
      if (workspace === mount.path || pathContains(mount.path, workspace)) {
        this.report(this.tree.workspace === undefined ? [] : ['workspace'], `the workspace ${workspace} lies in the mount path of bucket ${mount.key} (${mount.path}); links would be created inside the mount`);
      }
    }
    this.facts.mounts.forEach((mount, index) => {
      for (const earlier of this.facts.mounts.slice(0, index)) {
        if (mount.path === earlier.path || pathContains(mount.path, earlier.path) || pathContains(earlier.path, mount.path)) {
          this.report(['buckets', mount.key, 'mount', 'path'], `buckets ${earlier.key} and ${mount.key} have the same or nested mount paths (${earlier.path}, ${mount.path})`);
        }
      }
    });
  }
}

/**
 * Pairs of owners [earlier, later] whose keys (paths) are equal or nested, in the order a
 * comparison of every pair would find them, but found by sorting: with '/' sorted before every
 * other character, everything inside a path comes right after it. O(n log n) instead of O(n²).
 */
function overlappingOwners(entries: { key: string; owner: number }[]): [number, number][] {
  const sorted = entries.map((e) => ({ key: e.key.replaceAll('/', '\u0000'), owner: e.owner })).sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  const pairs = new Map<string, [number, number]>();
  for (let a = 0; a < sorted.length; a++) {
    const outer = sorted[a]!;
    const prefix = outer.key.endsWith('\u0000') ? outer.key : `${outer.key}\u0000`;
    for (let b = a + 1; b < sorted.length; b++) {
      const inner = sorted[b]!;
      if (inner.key !== outer.key && !inner.key.startsWith(prefix)) break;
      if (inner.owner === outer.owner) continue;
      const pair: [number, number] = outer.owner < inner.owner ? [outer.owner, inner.owner] : [inner.owner, outer.owner];
      pairs.set(`${pair[0]},${pair[1]}`, pair);
    }
  }
  return [...pairs.values()].sort((x, y) => x[1] - y[1] || x[0] - y[0]);
}

interface Overlap {
  a: string;
  b: string;
  relation: 'same' | 'contains' | 'inside';
}

function findOverlap(first: string[], second: string[], contains: (outer: string, inner: string) => boolean): Overlap | undefined {
  for (const a of first) {
    for (const b of second) {
      if (a === b) return { a, b, relation: 'same' };
      if (contains(a, b)) return { a, b, relation: 'contains' };
      if (contains(b, a)) return { a, b, relation: 'inside' };
    }
  }
  return undefined;
}

function describeOverlap(overlap: Overlap, where: string): string {
  if (overlap.relation === 'same') return `the same path ${where}: ${overlap.a}`;
  return `nested paths ${where}: ${overlap.a} and ${overlap.b}`;
}

function posixContains(outer: string, inner: string): boolean {
  return inner.startsWith(`${outer}/`);
}

/** Whether absolute path `inner` lies strictly inside `outer`. */
function pathContains(outer: string, inner: string): boolean {
  const prefix = outer.endsWith(sep) ? outer : `${outer}${sep}`;
  return inner.startsWith(prefix);
}

function inferProvider(endpoint: string | undefined): Provider {
  if (endpoint === undefined) return 'aws';
  let host: string;
  try {
    host = new URL(endpoint).hostname;
  } catch {
    return 'other';
  }
  if (host === 'r2.cloudflarestorage.com' || host.endsWith('.r2.cloudflarestorage.com')) return 'r2';
  if (host === 'amazonaws.com' || host.endsWith('.amazonaws.com')) return 'aws';
  return 'other';
}

/**
 * Isolation across all environments of the file: no two environments may use the same bucket
 * (name and endpoint) or the same or nested mount paths, and no local path of one may point into
 * another's mount. Values that could not be resolved (a missing variable) are left out here.
 */
function isolationProblems(outcomes: EnvironmentOutcome[]): EnvironmentProblem[] {
  const problems: EnvironmentProblem[] = [];
  const sharing = <T extends { place: Place }>(pick: (facts: IsolationFacts) => T[], identity: (item: T) => string, describe: (names: string, item: T) => string) => {
    const groups = new Map<string, { environments: Set<string>; items: T[] }>();
    for (const outcome of outcomes) {
      for (const item of pick(outcome.facts)) {
        const group = groups.get(identity(item)) ?? { environments: new Set<string>(), items: [] };
        group.environments.add(outcome.name);
        group.items.push(item);
        groups.set(identity(item), group);
      }
    }
    for (const { environments, items } of groups.values()) {
      if (environments.size < 2) continue;
      const names = `${listNames([...environments])} ${environments.size === 2 ? 'both' : 'all'}`;
      for (const item of items) problems.push({ place: item.place, message: describe(names, item) });
    }
  };
  sharing(
    (facts) => facts.buckets,
    (bucket) => `${bucket.name}\u0000${bucket.endpoint ?? ''}`,
    (names, bucket) =>
      `environments ${names} use bucket "${bucket.name}"${bucket.endpoint ? ` at ${bucket.endpoint}` : ''}; each environment needs its own bucket (use \${environment} in the name)`,
  );
  sharing(
    (facts) => facts.mounts,
    (mount) => mount.path,
    (names, mount) => `environments ${names} mount at ${mount.path}; each environment needs its own mount path`,
  );
  outcomes.forEach((b, index) => {
    for (const a of outcomes.slice(0, index)) {
      for (const mountB of b.facts.mounts) {
        const nested = a.facts.mounts.find((mountA) => pathContains(mountA.path, mountB.path) || pathContains(mountB.path, mountA.path));
        if (nested) problems.push({ place: mountB.place, message: `environments ${a.name} and ${b.name} have nested mount paths (${nested.path}, ${mountB.path})` });
      }
      for (const [from, to] of [
        [a, b],
        [b, a],
      ] as const) {
        for (const local of from.facts.localPaths) {
          const mount = to.facts.mounts.find((m) => local.path === m.path || pathContains(m.path, local.path));
          if (mount) {
            problems.push({
              place: local.place,
              message: `${local.label} of environment ${from.name} (${local.path}) points into the mount path of environment ${to.name} (${mount.path})`,
            });
          }
        }
      }
    }
  });
  return problems;
}

/** `a and b`, `a, b and c`. */
function listNames(names: string[]): string {
  return names.length < 2 ? names.join('') : `${names.slice(0, -1).join(', ')} and ${names.at(-1)}`;
}
