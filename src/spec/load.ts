// Reads a spec file and parses its YAML, keeping the parsed nodes so that every later problem
// (schema, resolution, isolation) can name the line and column of the value or key at fault.
//
// YAML anchors and aliases are refused outright: a spec is short, and refusing them removes
// alias bombs ("billion laughs") and the confusion of values shared between environments. The
// parser's own alias limit stays low as a second guard.
import { dirname, resolve } from 'node:path';
import { isAlias, isMap, isNode, isPair, isScalar, isSeq, LineCounter, parseAllDocuments, visit } from 'yaml';
import type { Document, Node as YamlNode } from 'yaml';
import { PersistError, type SpecProblem } from '../errors.js';
import type { Host } from '../host/types.js';
import { errorMessage } from '../output/format.js';
import { readCachedSpecData } from './cache.js';

/** A key path into the parsed document: mapping keys and list indexes. */
export type KeyPath = (string | number)[];

export interface SpecSource {
  /** The path as the user gave it, used in messages. */
  file: string;
  /** Absolute path of the spec file. */
  absPath: string;
  /** Folder that relative paths in the spec resolve against. */
  dir: string;
  /** sha256 of the file's bytes, hex (computed when first read: `validate` never needs it). */
  readonly hash: string;
  /** The document as plain data (mappings as objects); undefined when it could not be parsed. */
  data: unknown;
  /** Problems found while reading and parsing. */
  problems: SpecProblem[];
  /** Line and column (1-based) of the node at `path`: its key, or its value. */
  locate(path: KeyPath, part?: 'key' | 'value'): { line: number; column: number };
}

const MAX_ALIAS_COUNT = 0;

/** Formats a key path as `buckets.data.mount.path` (list items as `exclude[0]`). */
/** The key path of the last node of `chain` (a visit's ancestors, then the node): its pairs' keys and list indexes. */
function keyPathOf(chain: readonly unknown[]): KeyPath {
  const path: KeyPath = [];
  chain.forEach((item, i) => {
    if (isPair(item) && isScalar(item.key)) path.push(String(item.key.value));
    else if (isSeq(item)) {
      const index = item.items.indexOf(chain[i + 1] as (typeof item.items)[number]);
      if (index >= 0) path.push(index);
    }
  });
  return path;
}

export function formatKeyPath(path: KeyPath): string {
  let text = '';
  for (const segment of path) {
    if (typeof segment === 'number') text += `[${segment}]`;
    else text += text ? `.${segment}` : segment;
  }
  return text;
}

/** Read synchronously: the spec is read at every container boot, and it is one small local file. */
function readSpecBytes(host: Host, absPath: string, file: string): Buffer {
  try {
    return host.readFileNow(absPath);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw new PersistError(`spec file ${file} does not exist (give one with -f, or set PERSIST_SPEC)`);
    if (code === 'EISDIR') throw new PersistError(`spec file ${file} is a directory, expected a YAML file`);
    throw new PersistError(`cannot read spec file ${file}: ${errorMessage(error)}`, { cause: error });
  }
}

const YAML_ERROR_MESSAGES: Record<string, string> = {
  TAB_AS_INDENT: 'tabs are not allowed for indentation; indent with spaces',
  MULTIPLE_DOCS: 'a spec holds exactly one YAML document',
};

/**
 * Loads and parses a spec file. Throws PersistError only when the file cannot be read at all.
 * With `cacheDir`, a spec whose exact bytes parsed cleanly before (see cache.ts) skips the YAML
 * parse; positions for messages then come from parsing it only if a problem needs one.
 */
export function loadSpecSource(host: Host, file: string, cwd: string, cacheDir?: string): SpecSource {
  const absPath = resolve(cwd, file);
  const bytes = readSpecBytes(host, absPath, file);
  let digest: string | undefined;
  // node:crypto loaded only when the hash is read (5 ms of a start-up that validate does not pay).
  const hash = () => (digest ??= process.getBuiltinModule('node:crypto').createHash('sha256').update(bytes).digest('hex'));
  const cached = cacheDir === undefined ? undefined : readCachedSpecData(host, cacheDir, hash());
  if (cached === undefined) return parseSpec(file, absPath, hash, bytes.toString('utf8'));
  let parsed: SpecSource | undefined;
  return {
    file,
    absPath,
    dir: dirname(absPath),
    get hash() {
      return hash();
    },
    data: cached,
    problems: [],
    locate: (path, part) => (parsed ??= parseSpec(file, absPath, hash, bytes.toString('utf8'))).locate(path, part),
  };
}

function parseSpec(file: string, absPath: string, hash: () => string, text: string): SpecSource {
  const lineCounter = new LineCounter();
  const problems: SpecProblem[] = [];
  const at = (offset: number) => {
    const { line, col } = lineCounter.linePos(offset);
    return { line, column: col };
  };
  const report = (offset: number, message: string, path: KeyPath = []) =>
    problems.push({ file, ...at(offset), path: formatKeyPath(path), message });

  // Duplicate keys are found below, in one pass: the parser's own check compares every key with
  // every other key of its mapping, which dominates the parse of a spec with hundreds of links.
  const documents = parseAllDocuments(text, { lineCounter, prettyErrors: false, uniqueKeys: false, strict: true });
  const source: SpecSource = {
    file,
    absPath,
    dir: dirname(absPath),
    get hash() {
      return hash();
    },
    data: undefined,
    problems,
    locate: () => ({ line: 1, column: 1 }),
  };
  const docs = Array.isArray(documents) ? documents : [];
  const doc = docs[0];
  if (!doc || doc.contents === null) {
    report(0, 'the spec is empty; it needs at least `version: 1` and `buckets:` (run `persist init` for a starter)');
    return source;
  }
  for (const extra of docs.slice(1)) {
    report(extra.range[0], 'a spec holds exactly one YAML document; remove the `---` separator and what follows');
  }
  for (const error of [...doc.errors, ...doc.warnings]) {
    const known = YAML_ERROR_MESSAGES[error.code];
    const message = known ?? error.message;
    const lineText = text.split('\n')[lineCounter.linePos(error.pos[0]).line - 1] ?? '';
    // `{` and `}` end a plain value inside { } or [ ]: the usual cause is an unquoted ${...}.
    const hint = lineText.includes('${') && !known ? ' (a value holding ${...} inside { } or [ ] must be quoted)' : '';
    report(error.pos[0], message + hint);
  }

  // Aliases, anchors and keys that are lists or mappings stop the analysis: toJS() would
  // expand or stringify them.
  let unusable = false;
  const anchorCheck = (node: YamlNode) => {
    if (node.anchor) {
      unusable = true;
      report(node.range?.[0] ?? 0, `YAML anchors (&${node.anchor}) are not supported in a spec; write the value out`);
    }
  };
  visit(doc, {
    Map(_key, map, ancestors) {
      anchorCheck(map);
      const seen = new Set<string>();
      for (const pair of map.items) {
        if (!isScalar(pair.key)) continue;
        const identity = `${typeof pair.key.value}:${String(pair.key.value)}`;
        if (seen.has(identity)) {
          unusable = true;
          report(startOf(pair.key), `duplicate key ${quoteKeyAt(text, startOf(pair.key))}`, [...keyPathOf([...ancestors, map]), String(pair.key.value)]);
        }
        seen.add(identity);
      }
    },
    Pair(_key, pair) {
      if (pair.key !== null && !isScalar(pair.key)) {
        unusable = true;
        report(startOf(pair.key), 'keys must be plain text, not lists or mappings');
      }
    },
    Alias(_key, node) {
      unusable = true;
      report(node.range?.[0] ?? 0, 'YAML aliases (*name) are not supported in a spec; write the value out');
    },
    Node(_key, node) {
      anchorCheck(node);
    },
  });

  source.locate = (path, part = 'value') => at(offsetOf(doc, path, part));
  if (!isMap(doc.contents)) {
    report(doc.contents.range?.[0] ?? 0, `the spec must be a mapping of keys (version, buckets, ...), not ${describeNode(doc.contents)}`);
    return source;
  }
  if (unusable || doc.errors.length > 0) return source;
  source.data = doc.toJS({ maxAliasCount: MAX_ALIAS_COUNT });
  return source;
}

/** The duplicated key's text at `offset`, quoted, for a friendlier message than the parser's. */
function quoteKeyAt(text: string, offset: number): string {
  const match = /^("[^"]*"|'[^']*'|[^:\s][^:\n]*?)\s*:/.exec(text.slice(offset));
  return match?.[1] ? `"${match[1].replace(/^["']|["']$/g, '')}"` : '';
}

/** A scalar as shown in a message: at most 60 characters, control and non-UTF-8 bytes as `?` (a binary file given as the spec must not write raw bytes to the terminal). */
function printable(text: string): string {
  const clean = text.replace(/[\u0000-\u001f\u007f-\u009f\ufffd]/g, '?');
  return clean.length > 60 ? `${clean.slice(0, 57)}...` : clean;
}

function describeNode(node: unknown): string {
  if (isSeq(node)) return 'a list';
  if (isScalar(node)) return node.value === null ? 'null' : `a ${typeof node.value} (${printable(String(node.value))})`;
  return 'this';
}

/**
 * Offset of the node at `path`. When the path goes further than the document (a missing key, a
 * value merged from elsewhere), the deepest existing node stands in: the parent's key is the
 * best place to point at for a missing required key.
 */
function offsetOf(doc: Document, path: KeyPath, part: 'key' | 'value'): number {
  let node: unknown = doc.contents;
  let keyNode: YamlNode | undefined;
  for (const segment of path) {
    let next: unknown;
    let nextKey: YamlNode | undefined;
    if (isMap(node)) {
      const pair = node.items.find((item) => isPair(item) && isScalar(item.key) && String(item.key.value) === String(segment));
      if (pair) {
        next = pair.value;
        nextKey = isNode(pair.key) ? pair.key : undefined;
      }
    } else if (isSeq(node) && typeof segment === 'number') {
      next = node.items[segment];
    }
    if (next === undefined) return startOf(keyNode ?? node);
    node = next;
    keyNode = nextKey;
  }
  if (part === 'key' && keyNode) return startOf(keyNode);
  // An empty value (`links:`) has no node of its own: point at its key.
  if (node === null || (isScalar(node) && node.value === null && keyNode)) return startOf(keyNode ?? node);
  return startOf(node);
}

function startOf(node: unknown): number {
  if (isNode(node) || isAlias(node)) return node.range?.[0] ?? 0;
  return 0;
}
