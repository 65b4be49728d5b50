import { UsageError } from '../errors.js';

const UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/** `500ms`, `30s`, `5m`, `1h`, or `0`; a clear error names the flag otherwise. */
export function parseDuration(text: string, flag: string): number {
  const match = /^(\d+(?:\.\d+)?)(ms|s|m|h)?$/.exec(text.trim());
  if (!match || (match[2] === undefined && Number(match[1]) !== 0)) {
    throw new UsageError(`${flag}: "${text}" is not a duration (expected a number with a unit: 500ms, 30s, 5m, 1h)`);
  }
  return Math.round(Number(match[1]) * UNITS[match[2] ?? 's']!);
}
