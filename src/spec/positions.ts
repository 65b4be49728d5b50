// Where a value sits in the spec file: what a problem about it points at. Positions of an
// environment's merged tree are mapped back to the key that wrote them (the overlay, or the
// document under it), and computed only when a problem needs them.
import { formatKeyPath, type KeyPath, type SpecSource } from './load.js';
import { originOf } from './merge.js';

/** Where a value sits in the file. */
export interface Place {
  line: number;
  column: number;
  path: string;
}

/** Whether a problem points at a key (unknown or badly named keys) or at its value. */
export type Part = 'key' | 'value';

/** Where `path` of the document as written sits. */
export function placeInSource(source: SpecSource, path: KeyPath, part: Part = 'value'): Place {
  return { ...source.locate(path, part), path: formatKeyPath(path) };
}

/**
 * Where `path` of one environment's merged tree was written: in the environment's overlay (at
 * `overlayPath`) or in the document under it.
 */
export function placeInEnvironment(source: SpecSource, base: Record<string, unknown>, overlay: unknown, overlayPath: KeyPath) {
  return (path: KeyPath, part: Part = 'value'): Place => {
    const origin = originOf(path, base, overlay, overlayPath);
    // A path missing from the file (a default) maps to its parent: point at the parent's key.
    const exact = origin[0] === 'environments' ? origin.length === overlayPath.length + path.length : origin.length === path.length;
    return { ...source.locate(origin, exact ? part : 'key'), path: formatKeyPath(origin) };
  };
}

/**
 * A Place computed only when read: finding a key's position walks the YAML document, and every
 * resource records one for the isolation check, which almost never needs it.
 */
export function lazyPlace(compute: () => Place): Place {
  let cached: Place | undefined;
  const get = (): Place => (cached ??= compute());
  return {
    get line() {
      return get().line;
    },
    get column() {
      return get().column;
    },
    get path() {
      return get().path;
    },
  };
}
