// The machine's identity: a random id made once per state folder (`<state>/machine-id`, one line
// of 32 hex digits, created with an exclusive write so that two processes starting at once agree
// on one id), plus the host name. Generations record it; the bucket lease uses the same file.
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { PersistError } from '../errors.js';
import { stateDir } from '../host/paths.js';
import type { Host } from '../host/types.js';

export interface MachineIdentity {
  /** 32 hex digits. */
  id: string;
  /** The host name (`$HOSTNAME`, else /etc/hostname, else `unknown`). */
  host: string;
}

const ID_PATTERN = /^[0-9a-f]{32}$/;

export function machineIdPath(env: Record<string, string | undefined>): string {
  return join(stateDir(env), 'machine-id');
}

async function readId(host: Host, path: string): Promise<string | null> {
  if (!(await host.stat(path))) return null;
  const text = (await host.readFile(path)).toString('utf8').trim();
  if (!ID_PATTERN.test(text)) throw new PersistError(`${path}: expected one line of 32 hex digits (this machine's id); found ${JSON.stringify(text.slice(0, 40))}. Remove the file to make a new id.`);
  return text;
}

async function hostName(host: Host): Promise<string> {
  const fromEnv = host.env().HOSTNAME;
  if (fromEnv) return fromEnv;
  try {
    const text = (await host.readFile('/etc/hostname')).toString('utf8').trim();
    if (text) return text;
  } catch {
    // no /etc/hostname
  }
  return 'unknown';
}

/**
 * The id without creating it (read-only hosts: plan, status): null when none was made yet.
 */
export async function peekMachine(host: Host): Promise<MachineIdentity | null> {
  const id = await readId(host, machineIdPath(host.env()));
  return id ? { id, host: await hostName(host) } : null;
}

/** The id, made now if this state folder has none (exclusive write; a lost race reads the winner's). */
export async function ensureMachine(host: Host): Promise<MachineIdentity> {
  const path = machineIdPath(host.env());
  let id = await readId(host, path);
  if (!id) {
    await host.mkdir(stateDir(host.env()), { mode: 0o700 });
    try {
      await host.writeFile(path, `${randomBytes(16).toString('hex')}\n`, { mode: 0o644, exclusive: true });
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    }
    id = await readId(host, path);
    if (!id) throw new PersistError(`${path}: could not be created`);
  }
  return { id, host: await hostName(host) };
}

/** `host (1a2b3c4d)`: how messages name a machine. */
export function describeMachine(machine: { id: string | null; host: string | null }): string {
  const short = machine.id ? machine.id.slice(0, 8) : null;
  if (machine.host && short) return `${machine.host} (${short})`;
  return machine.host ?? short ?? 'an unknown machine';
}
