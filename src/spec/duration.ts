// The one duration grammar: a number and a unit of UNITS. A spec's durations (backend options,
// passed verbatim to the daemons) are a whole number and a unit: `500ms`, `30s`, `1m`, `2h`.
// Command-line flags (--lock-timeout, --interval) read the same units, and also a fraction
// (`1.5s`) and a bare `0`.
import { UsageError } from '../errors.js';

/** Milliseconds per unit. */
const UNITS = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 } as const;
const UNIT = `(${Object.keys(UNITS).join('|')})`;

/** The spec's form, as a JSON Schema pattern (and the key of its message in validate.ts). */
export const DURATION_PATTERN = `^[0-9]+${UNIT}$`;
export const DURATION_DESCRIPTION = 'A duration: a whole number followed by ms, s, m or h (e.g. 500ms, 30s, 1m, 2h).';
const SPEC_DURATION = new RegExp(DURATION_PATTERN);
const FLAG_DURATION = new RegExp(`^(\\d+(?:\\.\\d+)?)${UNIT}?$`);

/** Whether `value` is a duration as a spec writes it. */
export function isDuration(value: unknown): value is string {
  return typeof value === 'string' && SPEC_DURATION.test(value);
}

/** A flag's duration in milliseconds: `500ms`, `30s`, `5m`, `1h`, or `0`; a clear error names the flag otherwise. */
export function parseDuration(text: string, flag: string): number {
  const match = FLAG_DURATION.exec(text.trim());
  if (!match || (match[2] === undefined && Number(match[1]) !== 0)) {
    throw new UsageError(`${flag}: "${text}" is not a duration (expected a number with a unit: 500ms, 30s, 5m, 1h)`);
  }
  return Math.round(Number(match[1]) * UNITS[(match[2] ?? 's') as keyof typeof UNITS]);
}
