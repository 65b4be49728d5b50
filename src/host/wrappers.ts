// Host wrappers composed once at start-up: read-only for plan and status (any write is a bug and
// throws), recording for tests (every write is listed).
import { ReadOnlyViolation, type Host, type RunOptions, type RunResult } from './types.js';

const WRITE_METHODS = ['mkdir', 'writeFile', 'writeFileAtomic', 'copyFile', 'symlink', 'rename', 'remove', 'chmod', 'utimes', 'fsync'] as const;
type WriteMethod = (typeof WRITE_METHODS)[number];

/** The path a write creates or changes: symlink, copyFile and rename name it second. */
function writtenPath(method: WriteMethod, args: unknown[]): string {
  return String(method === 'symlink' || method === 'copyFile' || method === 'rename' ? args[1] : args[0]);
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
