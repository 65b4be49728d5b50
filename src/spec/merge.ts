// Environment overlays: an environment's mapping is deep-merged over the document. Mappings
// merge key by key; scalars and lists replace. originOf() tells, for any path of the merged tree,
// where in the file the value came from, so that problems point at the right line.
import { isPlainObject, setOwn } from './interpolate.js';
import type { KeyPath } from './load.js';

export function deepMerge(base: unknown, overlay: unknown): unknown {
  if (!isPlainObject(base) || !isPlainObject(overlay)) return overlay === undefined ? base : overlay;
  const merged: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(base)) setOwn(merged, key, value);
  for (const [key, value] of Object.entries(overlay)) setOwn(merged, key, Object.hasOwn(base, key) ? deepMerge(base[key], value) : value);
  return merged;
}

export function hasPath(tree: unknown, path: KeyPath): boolean {
  let node = tree;
  for (const segment of path) {
    if (Array.isArray(node) && typeof segment === 'number') node = node[segment];
    else if (isPlainObject(node) && Object.hasOwn(node, String(segment))) node = node[String(segment)];
    else return false;
  }
  return true;
}

/**
 * The path in the file of a merged value: inside the overlay when the overlay holds it (the
 * overlay wins, and a scalar it sets replaces everything below), else in the base document. A
 * path that exists in neither maps to its parent's origin.
 */
export function originOf(path: KeyPath, base: unknown, overlay: unknown, overlayPath: KeyPath): KeyPath {
  if (path.length === 0) return [];
  if (overlayPath.length > 0 && hasPath(overlay, path)) return [...overlayPath, ...path];
  if (hasPath(base, path)) return path;
  return originOf(path.slice(0, -1), base, overlay, overlayPath);
}
