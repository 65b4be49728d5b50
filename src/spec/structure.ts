// Structure errors (a wrong indentation) reported as the cause, with what follows from them folded
// under it. One mistake the schema alone reports as many problems: a bucket's `mount:` written
// two spaces too far left becomes a bucket named `mount`, so the real bucket lacks its mount, the
// new "bucket" lacks a name and has unknown keys, and every link, bundle, sync and file is told that
// `bucket:` is required because the spec now has two buckets. Here such an entry is recognised
// (an entry of a named section whose name is a key of the section's entries and whose value has
// keys no entry takes), reported once at its key, and the problems it explains become its
// `consequences`.
import type { SpecProblem } from '../errors.js';
import { formatKeyPath, type SpecSource } from './load.js';
import { isPlainObject } from './interpolate.js';
import { placeInSource } from './positions.js';
import { allowedKeys } from './validate.js';

/** Sections whose entries are named by the user, with the word for one entry. */
const NAMED_SECTIONS: Record<string, string> = { buckets: 'bucket', links: 'link', bundles: 'bundle', syncs: 'sync', files: 'file' };

interface Misplaced {
  section: string;
  name: string;
  owner: string | undefined;
}

function findMisplaced(raw: Record<string, unknown>): Misplaced[] {
  const found: Misplaced[] = [];
  for (const section of Object.keys(NAMED_SECTIONS)) {
    const entries = raw[section];
    if (!isPlainObject(entries)) continue;
    const entryKeys = allowedKeys([section, '\u0000entry'], raw);
    const names = Object.keys(entries);
    names.forEach((name, index) => {
      const value = entries[name];
      if (!entryKeys.includes(name) || !isPlainObject(value)) return;
      if (Object.keys(value).every((key) => entryKeys.includes(key))) return; // a well-formed entry that happens to have that name
      found.push({ section, name, owner: index > 0 ? names[index - 1] : undefined });
    });
  }
  return found;
}

/** Whether `problem` follows from `misplaced`. */
function explainedBy(problem: SpecProblem, misplaced: Misplaced): boolean {
  const entry = `${misplaced.section}.${misplaced.name}`;
  if (problem.path === entry || problem.path.startsWith(`${entry}.`)) return true;
  if (misplaced.owner !== undefined && problem.path === `${misplaced.section}.${misplaced.owner}` && problem.message === `missing required key "${misplaced.name}"`) return true;
  // An outdented `mount:` leaves its bucket without one: read as a bucket for the S3 API.
  if (misplaced.owner !== undefined && misplaced.name === 'mount' && problem.path === `${misplaced.section}.${misplaced.owner}` && problem.message.startsWith(`bucket ${misplaced.owner} has no mount:`)) return true;
  // `bucket: is required because the spec has 2 buckets (data, mount)`: only because of the extra bucket.
  if (misplaced.section === 'buckets') {
    const listed = /because the spec has \d+ buckets \(([^)]*)\)/.exec(problem.message);
    if (listed && listed[1]!.split(', ').includes(misplaced.name)) return true;
  }
  return false;
}

/** Replaces the problems a structure error explains by one problem at it, holding them as consequences. */
export function foldStructureErrors(source: SpecSource, raw: Record<string, unknown>, problems: SpecProblem[]): SpecProblem[] {
  let remaining = problems;
  const causes: SpecProblem[] = [];
  for (const misplaced of findMisplaced(raw)) {
    const consequences = remaining.filter((problem) => explainedBy(problem, misplaced));
    if (consequences.length === 0) continue;
    remaining = remaining.filter((problem) => !consequences.includes(problem));
    const kind = NAMED_SECTIONS[misplaced.section]!;
    const place = placeInSource(source, [misplaced.section, misplaced.name], 'key');
    const under = misplaced.owner !== undefined ? `indent it under ${kind} "${misplaced.owner}" above it` : `indent it under the ${kind} it belongs to`;
    causes.push({
      file: source.file,
      ...place,
      path: formatKeyPath([misplaced.section, misplaced.name]),
      message: `"${misplaced.name}" is indented as a ${kind} of its own, but it is a key of a ${kind}: ${under}`,
      consequences,
    });
  }
  return causes.length === 0 ? problems : [...remaining, ...causes];
}
