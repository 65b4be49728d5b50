// Checks data against the JSON Schema (compiled at build time into src/generated, so ajv is not
// loaded at run time) and turns ajv's errors into messages a person can act on, each with the
// key path it concerns.
import schema from '../../schemas/persist.schema.json' with { type: 'json' };
import { optionsDefinition, refusal } from '../backends/options.js';
import { BACKEND_NAMES, backends, type BackendName } from '../backends/registry.js';
import validateSchema from '../generated/spec-validator.js';
import { DURATION_PATTERN } from './duration.js';
import { hasReference, isPlainObject } from './interpolate.js';
import type { KeyPath } from './load.js';
import { SENSITIVE_TEXT } from './sensitive.js';

export interface SchemaIssue {
  /** Path of the value at fault in the data that was checked. */
  path: KeyPath;
  /** Whether the key (unknown or badly named keys) or the value is at fault. */
  part: 'key' | 'value';
  message: string;
}

type SchemaNode = { [keyword: string]: unknown };
const NAME_RULE = 'names start with a letter or digit and hold only letters, digits, `_`, `.` and `-`';
const PATTERN_MESSAGES: Record<string, (shown: string) => string> = {
  '^[A-Za-z0-9][A-Za-z0-9_.-]*$': (shown) => `${shown} is not a valid name: ${NAME_RULE}`,
  [DURATION_PATTERN]: (shown) => `${shown} is not a duration; expected a whole number and a unit, such as 500ms, 30s, 1m or 2h`,
  '^0?[0-7]{3}$': (shown) =>
    /^"0?[0-7]{4}"$/.test(shown)
      ? `${shown} sets setuid, setgid or sticky bits, which a restored file does not get; expected permission bits only, such as "0600"`
      : `${shown} is not a file mode; expected octal digits in quotes, such as "0600"`,
  '\\S': () => 'must not be empty',
  '^https?://[^\\s]+$': (shown) => `${shown} is not a URL; expected https://host[:port]`,
};

/** Checks `data` (a whole spec, or one environment merged over it) against the schema. */
export function checkSchema(data: unknown): SchemaIssue[] {
  if (validateSchema(data)) return [];
  const issues: SchemaIssue[] = [];
  const seen = new Set<string>();
  for (const error of validateSchema.errors ?? []) {
    // Errors inside propertyNames repeat the propertyNames error; `if` only says `then` failed.
    if ('propertyName' in error || error.keyword === 'if') continue;
    const path = pointerToPath(error.instancePath, data);
    const value = valueAt(data, path);
    // A `${...}` reference is checked once it is interpolated (or reported as unresolvable).
    if (typeof value === 'string' && hasReference(value) && ['pattern', 'enum', 'const', 'not'].includes(error.keyword)) continue;
    for (const issue of describe(error.keyword, error.params as Record<string, unknown>, path, value, data)) {
      const key = `${issue.path.join('\u0000')}|${issue.message}`;
      if (seen.has(key)) continue;
      seen.add(key);
      issues.push(issue);
    }
  }
  return issues;
}

function describe(keyword: string, params: Record<string, unknown>, path: KeyPath, value: unknown, data: unknown): SchemaIssue[] {
  const shown = show(value, path);
  const at = (message: string): SchemaIssue[] => [{ path, part: 'value', message }];
  switch (keyword) {
    case 'type':
      return at(typeMessage(params.type as string | string[], value, path));
    case 'required':
      return [{ path, part: 'key', message: `missing required key "${String(params.missingProperty)}"` }];
    case 'additionalProperties': {
      const key = String(params.additionalProperty);
      const allowed = allowedKeys(path, data);
      const hint = allowed.length > 0 ? `; expected one of: ${allowed.join(', ')}` : '';
      const meant = closestKey(key, allowed);
      return [{ path: [...path, key], part: 'key', message: `unknown key "${key}"${meant ? ` (did you mean "${meant}"?)` : ''}${hint}` }];
    }
    case 'maxProperties': {
      // Only the options of a backend that takes none have a maximum (zero): point at each option given.
      const backend = String(valueAt(data, [...path.slice(0, -1), 'backend']));
      return Object.keys(isPlainObject(value) ? value : {}).map((key) => ({
        path: [...path, key],
        part: 'key' as const,
        message: `unknown key "${key}": the ${backend} backend takes no options`,
      }));
    }
    case 'propertyNames':
      return [{ path: [...path, String(params.propertyName)], part: 'key', message: `"${String(params.propertyName)}" is not a valid name: ${NAME_RULE}` }];
    case 'const':
      return path.join('.') === 'version'
        ? at(typeof value === 'string' ? `must be the number 1, not the string ${shown} (write version: 1, without quotes)` : `unsupported version ${shown}; this persist reads version 1`)
        : at(`must be ${JSON.stringify(params.allowedValue)}`);
    case 'enum':
      return at(`${shown} is not one of: ${(params.allowedValues as unknown[]).map(String).join(', ')}`);
    case 'pattern': {
      const message = PATTERN_MESSAGES[String(params.pattern)];
      return at(message ? message(shown) : `${shown} does not match ${String(params.pattern)}`);
    }
    case 'minimum':
      return at(`must be at least ${String(params.limit)} (got ${shown})`);
    case 'maximum':
      return at(`must be at most ${String(params.limit)} (got ${shown})`);
    case 'minProperties':
      return at(path.join('.') === 'buckets' ? 'declare at least one bucket' : 'must not be empty');
    case 'not':
      return at(refusedItem(path, value, data) ?? `${shown} is refused`);
    default:
      return at(`${shown} is not valid here (${keyword})`);
  }
}

/**
 * Why an item of a backend's list option (`mount.options.extraOptions[i]`) is refused: the rules
 * of that option (src/backends/options.ts), whose patterns are the schema's.
 */
function refusedItem(path: KeyPath, value: unknown, data: unknown): string | undefined {
  const [index, key, options, mount] = [...path].reverse();
  if (typeof index !== 'number' || typeof key !== 'string' || options !== 'options' || mount !== 'mount') return undefined;
  const backend = valueAt(data, [...path.slice(0, -3), 'backend']);
  if (!BACKEND_NAMES.includes(backend as BackendName)) return undefined;
  const rules = backends[backend as BackendName].options[key]?.refuse;
  return rules ? refusal(rules, String(value)) : undefined;
}

/** A value for a message; credentials never appear. */
function show(value: unknown, path: KeyPath): string {
  if (path.includes('credentials')) return SENSITIVE_TEXT;
  return JSON.stringify(value) ?? String(value);
}

const TYPE_NAMES: Record<string, string> = {
  object: 'a mapping',
  array: 'a list',
  string: 'a string',
  integer: 'a whole number',
  number: 'a number',
  boolean: 'true or false',
  null: 'nothing',
};

function typeMessage(expected: string | string[], value: unknown, path: KeyPath): string {
  const wanted = (Array.isArray(expected) ? expected : [expected]).map((type) => TYPE_NAMES[type] ?? type).join(' or ');
  if (path.at(-1) === 'mode' && typeof value === 'number') {
    return `expected a file mode in quotes, such as "0600" (unquoted, YAML reads ${value} as a number)`;
  }
  return `expected ${wanted}, got ${describeValue(value, path)}`;
}

function describeValue(value: unknown, path: KeyPath): string {
  if (value === null) return 'an empty value';
  if (Array.isArray(value)) return 'a list';
  if (typeof value === 'object') return 'a mapping';
  if (path.includes('credentials')) return `a ${typeof value} ${SENSITIVE_TEXT}`;
  if (typeof value === 'number' && !Number.isInteger(value)) return `the number ${value}`;
  if (typeof value === 'number') return `the whole number ${value}`;
  if (typeof value === 'boolean') return `${value}`;
  return `the string ${JSON.stringify(value)}`;
}

/** A JSON pointer as a key path; list indexes become numbers, as in the parsed document. */
export function pointerToPath(pointer: string, data: unknown): KeyPath {
  if (pointer === '') return [];
  const path: KeyPath = [];
  let node = data;
  for (const raw of pointer.slice(1).split('/')) {
    const segment = raw.replace(/~1/g, '/').replace(/~0/g, '~');
    if (Array.isArray(node)) {
      path.push(Number(segment));
      node = node[Number(segment)];
    } else {
      path.push(segment);
      node = isPlainObject(node) ? node[segment] : undefined;
    }
  }
  return path;
}

export function valueAt(data: unknown, path: KeyPath): unknown {
  let node = data;
  for (const segment of path) {
    if (Array.isArray(node)) node = node[Number(segment)];
    else if (isPlainObject(node) && Object.hasOwn(node, segment)) node = node[segment];
    else return undefined;
  }
  return node;
}

const defs = (schema as SchemaNode).$defs as Record<string, SchemaNode>;

function deref(node: SchemaNode): SchemaNode[] {
  const ref = typeof node.$ref === 'string' ? defs[node.$ref.replace('#/$defs/', '')] : undefined;
  return ref ? [node, ...deref(ref)] : [node];
}

/** Levenshtein distance between two keys (small strings: the plain table). */
export function editDistance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    const current = [i];
    for (let j = 1; j <= b.length; j++) current[j] = Math.min(previous[j]! + 1, current[j - 1]! + 1, previous[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    previous = current;
  }
  return previous[b.length]!;
}

/** The allowed key a typo most likely meant: the nearest within edit distance 2 (first in schema order on a tie). */
export function closestKey(key: string, allowed: string[]): string | undefined {
  let best: { key: string; distance: number } | undefined;
  for (const candidate of allowed) {
    const distance = editDistance(key.toLowerCase(), candidate.toLowerCase());
    if (distance <= 2 && distance < key.length && (!best || distance < best.distance)) best = { key: candidate, distance };
  }
  return best?.key;
}

/** The keys the schema allows at `path`, for "unknown key" messages. */
export function allowedKeys(path: KeyPath, data: unknown): string[] {
  let nodes: SchemaNode[] = deref(schema as SchemaNode);
  for (const [index, segment] of path.entries()) {
    if (segment === 'options' && path[index - 1] === 'mount') {
      const backend = valueAt(data, [...path.slice(0, index), 'backend']);
      const options = typeof backend === 'string' ? defs[optionsDefinition(backend)] : undefined;
      if (!options) return [];
      nodes = deref(options);
      continue;
    }
    // A definition and the ones it references may each describe the key: take them all.
    nodes = nodes.flatMap((node) => {
      const named = (node.properties as Record<string, unknown> | undefined)?.[String(segment)];
      if (named && typeof named === 'object') return deref(named as SchemaNode);
      return typeof node.additionalProperties === 'object' ? deref(node.additionalProperties as SchemaNode) : [];
    });
    if (nodes.length === 0) return [];
  }
  const keys = new Set<string>();
  for (const node of [...nodes].reverse()) for (const key of Object.keys((node.properties as object | undefined) ?? {})) keys.add(key);
  return [...keys];
}
