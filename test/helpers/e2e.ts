// Whether real-FUSE end-to-end tests can run here, and cleanup of every mount a test made.
// Without the prerequisites the tests are skipped with the reason, unless PERSIST_E2E_REQUIRED=1
// (CI), where a missing prerequisite fails instead.
import { execFileSync } from 'node:child_process';
import { accessSync, closeSync, constants, openSync, readdirSync, readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { afterAll, afterEach, beforeAll, beforeEach, describe, it } from 'vitest';
import { parseMountinfo } from '../../src/host/mountinfo.js';

export const E2E_REQUIRED = process.env.PERSIST_E2E_REQUIRED === '1';

function onPath(command: string): boolean {
  return (process.env.PATH ?? '').split(delimiter).some((dir) => {
    try {
      accessSync(join(dir, command), constants.X_OK);
      return true;
    } catch {
      return false;
    }
  });
}

/** What is missing for real mounts with these binaries (empty when all is there). */
export function missingPrerequisites(binaries: string[]): string[] {
  const missing: string[] = [];
  if (process.platform !== 'linux') missing.push(`FUSE mounts need Linux (this is ${process.platform})`);
  if (process.getuid?.() !== 0) missing.push('not running as root');
  try {
    closeSync(openSync('/dev/fuse', 'r+'));
  } catch (error) {
    missing.push(`/dev/fuse cannot be opened (${(error as NodeJS.ErrnoException).code ?? String(error)})`);
  }
  for (const binary of ['fusermount', ...binaries]) if (!onPath(binary)) missing.push(`${binary} is not installed`);
  return missing;
}

/** `describe` that runs when the prerequisites are met; else skips, or fails under PERSIST_E2E_REQUIRED=1. */
export function describeE2E(title: string, binaries: string[], body: () => void): void {
  const missing = missingPrerequisites(binaries);
  if (missing.length === 0) {
    describe(title, body);
  } else if (E2E_REQUIRED) {
    describe(title, () => {
      it('has the prerequisites for real FUSE mounts', () => {
        throw new Error(`PERSIST_E2E_REQUIRED=1 but real mounts cannot run here: ${missing.join('; ')}`);
      });
    });
  } else {
    describe.skip(`${title} [skipped: ${missing.join('; ')}]`, body);
  }
}

function mountedPaths(): string[] {
  return parseMountinfo(readFileSync('/proc/self/mountinfo', 'utf8')).map((entry) => entry.mountPoint);
}

/** Pids of processes whose command line holds `arg` (e.g. a FUSE daemon serving a mount point). */
export function pidsWithArg(command: string, arg: string): number[] {
  const pids: number[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const argv = readFileSync(`/proc/${name}/cmdline`, 'utf8').split('\0');
      if (argv[0]?.endsWith(command) && argv.includes(arg)) pids.push(Number(name));
    } catch {
      // the process exited meanwhile
    }
  }
  return pids;
}

/**
 * Temporary folders and the mounts under them: `cleanup()` unmounts everything beneath the
 * folders (fusermount -u, then -u -z), and removes a folder only once nothing is mounted in it,
 * so that a failed unmount can never turn into deleting a bucket's content.
 */
export class MountSandbox {
  readonly #folders: string[] = [];

  async tempDir(prefix = 'persist-e2e-'): Promise<string> {
    const folder = await mkdtemp(join(tmpdir(), prefix));
    this.#folders.push(folder);
    return folder;
  }

  /** Mount points inside the sandbox's folders, deepest first. */
  mountsInside(): string[] {
    return mountedPaths()
      .filter((path) => this.#folders.some((folder) => path === folder || path.startsWith(`${folder}/`)))
      .sort((a, b) => b.length - a.length);
  }

  unmountAll(): void {
    for (let round = 0; round < 5; round++) {
      const mounted = this.mountsInside();
      if (mounted.length === 0) return;
      for (const path of mounted) {
        for (const args of [['-u', path], ['-u', '-z', path]]) {
          try {
            execFileSync('fusermount', args, { stdio: 'ignore', timeout: 20_000 });
            break;
          } catch {
            // try the lazy variant next
          }
        }
      }
    }
  }

  async cleanup(): Promise<void> {
    this.unmountAll();
    const stillMounted = this.mountsInside();
    for (const folder of this.#folders.splice(0)) {
      if (stillMounted.some((path) => path === folder || path.startsWith(`${folder}/`))) continue;
      await rm(folder, { recursive: true, force: true });
    }
    if (stillMounted.length) throw new Error(`could not unmount: ${stillMounted.join(', ')}`);
  }
}

/**
 * Inside a describe block: a loopback S3 server for the block and a fresh MountSandbox for each
 * test, stopped and cleaned up (unmounted, daemons stopped, folders removed) even when a test fails.
 */
export function e2eRig<S extends { stop(): Promise<void> }>(start: () => Promise<S>): { readonly server: S; readonly sandbox: MountSandbox } {
  let server: S | undefined;
  let sandbox: MountSandbox | undefined;
  beforeAll(async () => {
    server = await start();
  });
  afterAll(async () => {
    await server?.stop();
  });
  beforeEach(() => {
    sandbox = new MountSandbox();
  });
  afterEach(async () => {
    await sandbox?.cleanup();
  });
  return {
    get server() {
      return server!;
    },
    get sandbox() {
      return sandbox!;
    },
  };
}
