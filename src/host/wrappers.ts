// Host wrappers composed once at start-up: read-only for plan and status (any write is a bug and
// throws), recording for tests (every write is listed), debug for `--debug` (every call is logged).
import { errorCode, formatBytes, formatDuration, plural, showPath } from '../output/format.js';
import { pathString } from './names.js';
import { ReadOnlyViolation, type FileInfo, type Host, type HostPath, type ProbeResult, type RunOptions, type RunResult } from './types.js';

const WRITE_METHODS = ['mkdir', 'writeFile', 'writeFileAtomic', 'copyFile', 'symlink', 'link', 'rename', 'remove', 'chmod', 'utimes', 'fsync'] as const;
type WriteMethod = (typeof WRITE_METHODS)[number];

/** A path argument as persist's string (a Buffer path decoded losslessly). */
function pathArg(value: unknown): string {
  return Buffer.isBuffer(value) ? pathString(value) : String(value);
}

/** The path a write creates or changes: symlink, link, copyFile and rename name it second. */
function writtenPath(method: WriteMethod, args: unknown[]): string {
  return pathArg(method === 'symlink' || method === 'link' || method === 'copyFile' || method === 'rename' ? args[1] : args[0]);
}

/** Every method of `inner`, bound, with the write methods replaced by `write`. */
function withWrites(inner: Host, write: (method: WriteMethod, args: unknown[]) => Promise<void>, run: Host['run']): Host {
  const host = Object.create(null) as Record<string, unknown>;
  let proto: object | null = inner;
  while (proto && proto !== Object.prototype) {
    for (const name of Object.getOwnPropertyNames(proto)) {
      if (name === 'constructor' || name in host) continue;
      const value = (inner as unknown as Record<string, unknown>)[name];
      if (typeof value === 'function') host[name] = value.bind(inner);
    }
    proto = Object.getPrototypeOf(proto) as object | null;
  }
  for (const method of WRITE_METHODS) host[method] = (...args: unknown[]) => write(method, args);
  host.run = run;
  return host as unknown as Host;
}

/** Plan and status: reads pass through; any write throws ReadOnlyViolation. */
export function readOnlyHost(inner: Host): Host {
  return withWrites(
    inner,
    async (method, args) => {
      throw new ReadOnlyViolation(method, writtenPath(method, args));
    },
    async (command: string, args: string[], options?: RunOptions): Promise<RunResult> => {
      if (!options?.readOnly) throw new ReadOnlyViolation('run', [command, ...args].join(' '));
      return inner.run(command, args, options);
    },
  );
}

/**
 * An action's host while it writes into a mounted bucket: before every write under `root`, the
 * mount must still be the one the action was checked against (`holds`); otherwise the write is
 * refused with `breach()`, so a mount that dies or is unmounted mid-action never lets a write
 * land in the bare mount point underneath. Subprocesses pass through.
 */
export function guardedHost(inner: Host, root: string, holds: () => Promise<boolean>, breach: () => Error): Host {
  const under = (arg: unknown) => {
    if (typeof arg !== 'string' && !Buffer.isBuffer(arg)) return false;
    const path = pathArg(arg);
    return path === root || path.startsWith(`${root}/`);
  };
  return withWrites(
    inner,
    async (method, args) => {
      if (args.some(under) && !(await holds())) throw breach();
      await (inner[method] as (...a: unknown[]) => Promise<void>)(...args);
    },
    (command, args, options) => inner.run(command, args, options),
  );
}

export interface RecordedWrite {
  method: string;
  path: string;
}

/** Tests: writes and subprocesses pass through and are recorded in `writes`. */
export function recordingHost(inner: Host): Host & { writes: RecordedWrite[] } {
  const writes: RecordedWrite[] = [];
  const host = withWrites(
    inner,
    async (method, args) => {
      writes.push({ method, path: writtenPath(method, args) });
      await (inner[method] as (...a: unknown[]) => Promise<void>)(...args);
    },
    async (command, args, options) => {
      if (!options?.readOnly) writes.push({ method: 'run', path: [command, ...args].join(' ') });
      return inner.run(command, args, options);
    },
  );
  return Object.assign(host, { writes });
}

// --- debug ---

/** How one Host method is logged: what it was asked (`args`) and what it answered (`result`). */
type Describer<M extends keyof Host> = Host[M] extends (...args: infer A) => infer R
  ? { args: (...args: A) => string; result: (value: Awaited<R>) => string }
  : never;

/** A path as a person reads it: a byte that is not UTF-8 as `\xE9`. */
const shown = (path: HostPath) => showPath(pathString(path));
const mode = (value: number | undefined) => (value === undefined ? '' : ` mode 0${value.toString(8)}`);
const size = (data: string | Buffer) => formatBytes(typeof data === 'string' ? Buffer.byteLength(data) : data.length);
const ok = () => 'ok';
const bytes = (data: Buffer) => formatBytes(data.length);
const fileInfo = (info: FileInfo | null) => (info ? `${info.type}, ${formatBytes(info.size)}${mode(info.mode)}` : 'missing');
const probeResult = (probe: ProbeResult) =>
  probe.state === 'ok' ? `ok, ${plural(probe.entries, 'entry', 'entries')}` : probe.state === 'dead' ? `dead: ${probe.reason}` : 'missing';
/** Never the child's environment or input: they carry the credentials. */
const runArgs = (command: string, args: string[], options: RunOptions = {}) =>
  [
    [command, ...args].join(' '),
    options.cwd === undefined ? '' : ` (in ${options.cwd})`,
    options.readOnly ? ' [read-only]' : '',
    options.env === undefined ? '' : ` [own environment of ${plural(Object.keys(options.env).length, 'variable')}]`,
    options.input === undefined ? '' : ` [input ${size(options.input)}]`,
  ].join('');
const runResult = (result: RunResult) =>
  `${result.timedOut ? 'timed out' : `exit ${result.exitCode}`}, stdout ${formatBytes(Buffer.byteLength(result.stdout))}, stderr ${formatBytes(Buffer.byteLength(result.stderr))}`;

/**
 * Every Host method, described: a method added to Host without a line here does not compile.
 * Paths, commands and arguments are shown; file contents, hashes, environment values and a
 * child's environment or input never are (secrets travel there).
 */
const DESCRIBE: { [M in keyof Host]-?: Describer<M> } = {
  lstat: { args: shown, result: fileInfo },
  stat: { args: shown, result: fileInfo },
  readlink: { args: shown, result: (target) => `-> ${showPath(target)}` },
  readdir: { args: shown, result: (names) => plural(names.length, 'entry', 'entries') },
  readdirNames: { args: shown, result: (names) => plural(names.length, 'entry', 'entries') },
  readFile: { args: shown, result: bytes },
  readFileNow: { args: (path) => path, result: bytes },
  readHead: { args: (path, count) => `${shown(path)} (first ${formatBytes(count)})`, result: bytes },
  hashFile: { args: shown, result: ok },
  mounts: { args: () => '', result: (entries) => plural(entries.length, 'mount') },
  probe: { args: (path, timeoutMs) => `${path} (within ${formatDuration(timeoutMs)})`, result: probeResult },
  isExecutable: { args: (path) => path, result: (yes) => (yes ? 'yes' : 'no') },
  openReadWrite: { args: (path) => path, result: ok },
  env: { args: () => '', result: (env) => plural(Object.keys(env).length, 'variable') },
  cwd: { args: () => '', result: (dir) => dir },
  now: { args: () => '', result: (date) => date.toISOString() },
  sleep: { args: (ms) => formatDuration(ms), result: ok },
  pid: { args: () => '', result: String },
  processAlive: { args: (pid) => String(pid), result: (alive) => (alive ? 'alive' : 'not running') },
  openersOf: { args: (folder) => folder, result: (found) => plural(found.length, 'process', 'processes') },
  writersOf: { args: (path) => path, result: (found) => `${plural(found.writers.length, 'writer')}${found.complete ? '' : ' (not every process seen)'}` },
  mkdir: { args: (path, options) => `${shown(path)}${mode(options?.mode)}`, result: ok },
  writeFile: { args: (path, data, options) => `${shown(path)} (${size(data)}${mode(options?.mode)}${options?.exclusive ? ', exclusive' : ''}${options?.durable ? ', durable' : ''})`, result: ok },
  writeFileAtomic: { args: (path, data, options) => `${shown(path)} (${size(data)}${mode(options?.mode)})`, result: ok },
  copyFile: { args: (from, to, options) => `${shown(from)} -> ${shown(to)}${options?.sparse ? ' (sparse)' : ''}`, result: ok },
  symlink: { args: (target, path) => `${shown(path)} -> ${shown(target)}`, result: ok },
  link: { args: (existing, path) => `${shown(path)} = ${shown(existing)}`, result: ok },
  rename: { args: (from, to) => `${shown(from)} -> ${shown(to)}`, result: ok },
  remove: { args: shown, result: ok },
  chmod: { args: (path, value) => `${shown(path)}${mode(value)}`, result: ok },
  utimes: { args: (path, mtimeMs) => `${shown(path)} ${new Date(mtimeMs).toISOString()}`, result: ok },
  fsync: { args: (path, options) => `${shown(path)}${options?.fileSystem ? ' (its file system)' : ''}`, result: ok },
  run: { args: runArgs, result: runResult },
};

/**
 * `--debug`: every call of `inner` goes through unchanged and is logged as one line,
 * `METHOD ARGS (DURATION) -> RESULT` or `... -> error CODE` (like chezmoi's debug system).
 */
export function debugHost(inner: Host, log: (line: string) => void): Host {
  const host = Object.create(null) as Record<string, unknown>;
  for (const name of Object.keys(DESCRIBE) as (keyof Host)[]) {
    const describe = DESCRIBE[name] as { args: (...args: unknown[]) => string; result: (value: unknown) => string };
    const method = (inner[name] as (...args: unknown[]) => unknown).bind(inner);
    host[name] = (...args: unknown[]) => {
      const started = performance.now();
      const line = (outcome: string) => {
        const subject = describe.args(...args);
        log(`${name}${subject ? ` ${subject}` : ''} (${formatDuration(performance.now() - started)}) -> ${outcome}`);
      };
      const failed = (error: unknown) => {
        line(`error ${errorCode(error)}`);
        throw error;
      };
      let value: unknown;
      try {
        value = method(...args);
      } catch (error) {
        return failed(error);
      }
      if (value instanceof Promise) {
        return value.then((settled: unknown) => {
          line(describe.result(settled));
          return settled;
        }, failed);
      }
      line(describe.result(value));
      return value;
    };
  }
  return host as unknown as Host;
}
