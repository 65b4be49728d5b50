// Parses the text header of a git bundle file (formats v2 and v3) without spawning git:
//
//   # v3 git bundle
//   @object-format=sha256      (v3 only: capabilities)
//   -<id> <comment>            (prerequisites: commits the bundle needs but does not hold)
//   <id> <refname>             (refs, HEAD included as `<id> HEAD`)
//                              (an empty line, then the packfile)
import { PersistError } from '../../errors.js';

export interface BundlePrerequisite {
  sha: string;
  comment: string;
}

export interface BundleHeader {
  version: 2 | 3;
  /** v3 capabilities (`@name=value`, or `@name` → ''). */
  capabilities: Record<string, string>;
  objectFormat: 'sha1' | 'sha256';
  prerequisites: BundlePrerequisite[];
  /** Refs in file order; HEAD appears with the name `HEAD`. */
  refs: { sha: string; name: string }[];
  /** Bytes up to and including the empty line that ends the header. */
  length: number;
}

export class BundleHeaderError extends PersistError {}

const SIGNATURES: Record<string, 2 | 3> = { '# v2 git bundle': 2, '# v3 git bundle': 3 };
const ID_LENGTH = { sha1: 40, sha256: 64 } as const;
/** First read; doubled while the header is longer, up to the limit (a repo with 100,000 refs needs ~7 MB). */
const FIRST_READ = 64 * 1024;
const MAX_HEADER = 64 * 1024 * 1024;

/** Parse a header from the start of a bundle; `complete` says whether `data` is the whole file. */
export function parseBundleHeader(data: Buffer, where: string, complete = true): BundleHeader | 'need-more' {
  const end = data.indexOf('\n\n');
  const firstLineEnd = data.indexOf('\n');
  const signatureLine = data.subarray(0, firstLineEnd < 0 ? Math.min(data.length, 32) : firstLineEnd).toString('latin1');
  const version = SIGNATURES[signatureLine];
  if (version === undefined) {
    if (firstLineEnd < 0 && !complete && data.length < 32) return 'need-more';
    throw new BundleHeaderError(`${where}: not a git bundle (expected "# v2 git bundle" or "# v3 git bundle" on the first line, found ${JSON.stringify(signatureLine.slice(0, 40))})`);
  }
  if (end < 0) {
    if (!complete) return 'need-more';
    throw new BundleHeaderError(`${where}: truncated git bundle: the header does not end with an empty line`);
  }

  const lines = end === firstLineEnd ? [] : data.subarray(firstLineEnd + 1, end).toString('utf8').split('\n');
  const capabilities: Record<string, string> = {};
  const prerequisites: BundlePrerequisite[] = [];
  const refs: { sha: string; name: string }[] = [];
  let objectFormat: 'sha1' | 'sha256' = 'sha1';
  let lineNumber = 1;
  const fail = (message: string): never => {
    throw new BundleHeaderError(`${where}: header line ${lineNumber}: ${message}`);
  };
  const objectId = (text: string): string => {
    const length = ID_LENGTH[objectFormat];
    if (text.length !== length || !/^[0-9a-f]+$/.test(text)) fail(`expected a ${length}-digit ${objectFormat} object id, found ${JSON.stringify(text.slice(0, 80))}`);
    return text;
  };

  for (const line of lines) {
    lineNumber += 1;
    if (line.startsWith('@')) {
      if (version !== 3) fail('capability lines are only allowed in v3 bundles');
      if (prerequisites.length || refs.length) fail('capability lines must come before prerequisites and refs');
      const [name = '', value = ''] = splitOnce(line.slice(1), '=');
      capabilities[name] = value;
      if (name === 'object-format') {
        if (value !== 'sha1' && value !== 'sha256') fail(`unknown object format ${JSON.stringify(value)}`);
        objectFormat = value as 'sha1' | 'sha256';
      }
    } else if (line.startsWith('-')) {
      const [sha = '', comment = ''] = splitOnce(line.slice(1), ' ');
      prerequisites.push({ sha: objectId(sha), comment });
    } else {
      const [sha = '', name = ''] = splitOnce(line, ' ');
      objectId(sha);
      if (name !== 'HEAD' && !name.startsWith('refs/')) fail(`expected "<object id> <refname>", found ${JSON.stringify(line.slice(0, 120))}`);
      refs.push({ sha, name });
    }
  }
  if (refs.length === 0) throw new BundleHeaderError(`${where}: the git bundle lists no refs`);
  return { version, capabilities, objectFormat, prerequisites, refs, length: end + 2 };
}

function splitOnce(text: string, separator: string): [string, string] {
  const at = text.indexOf(separator);
  return at < 0 ? [text, ''] : [text.slice(0, at), text.slice(at + 1)];
}

/** Something that reads the first bytes of a file or object (the Host, or a Store). */
export interface HeadReader {
  readHead(path: string, bytes: number): Promise<Buffer>;
}

/**
 * Read and parse the header of the bundle at `path` (a local path for the Host, a key for a
 * Store), reading more while the header is longer; `where` names it in messages.
 */
export async function readBundleHeader(reader: HeadReader, path: string, where = path): Promise<BundleHeader> {
  for (let bytes = FIRST_READ; ; bytes *= 2) {
    const data = await reader.readHead(path, bytes);
    const parsed = parseBundleHeader(data, where, data.length < bytes);
    if (parsed !== 'need-more') return parsed;
    if (bytes >= MAX_HEADER) throw new BundleHeaderError(`${where}: git bundle header longer than ${MAX_HEADER} bytes`);
  }
}
