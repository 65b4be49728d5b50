// Runs git through the Host (never a shell); a failure becomes an ActionError carrying git's stderr.
import { ActionError } from '../../errors.js';
import type { Host, RunOptions, RunResult } from '../../host/types.js';

export interface GitOptions extends RunOptions {
  /** Exit codes that count as success (default [0]). */
  okExitCodes?: number[];
  /** How the command is named in an error (default: `git <args>`); use it to keep a URL out of messages. */
  describe?: string;
}

export async function git(host: Host, args: string[], options: GitOptions = {}): Promise<RunResult> {
  const { okExitCodes = [0], describe, ...runOptions } = options;
  const result = await host.run('git', args, runOptions);
  if (!okExitCodes.includes(result.exitCode)) {
    const detail = result.timedOut ? 'timed out' : `exit ${result.exitCode}`;
    const stderr = result.stderr.trim();
    throw new ActionError(`${describe ?? `git ${args.join(' ')}`} failed (${detail})${stderr ? `: ${stderr}` : ''}`);
  }
  return result;
}

/** Split NUL-terminated output (`-z`) into entries. */
export function splitNul(output: string): string[] {
  return output.split('\0').filter((entry) => entry !== '');
}
