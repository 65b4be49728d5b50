// A small glob matcher for sync excludes (no dependency). Paths are relative to the synced
// folder, `/`-separated, without a leading `/`.
//
// Rules:
// - A pattern without `/` matches the last component (basename) at any depth: `*.lock` excludes
//   `a.lock` and `deep/dir/b.lock`; `cache` excludes every file or folder named `cache`.
// - A pattern with `/` matches the whole relative path: `cache/**` excludes everything under the
//   top-level `cache`. A leading `/` anchors a pattern to the top: `/x` matches the top-level `x` only.
// - A trailing `/` is dropped: `logs/` matches `logs` like `logs` does (folders are matched
//   by name too, and an excluded folder is not walked at all).
// - `*` matches any run of characters except `/` (including a leading dot: `*.tmp` matches
//   `.x.tmp`), `?` one character except `/`, `**` any run including `/`; `**/` at the start or
//   in the middle also matches nothing (`a/**/b` matches `a/b`). Everything else is literal.

export type PathMatcher = (relativePath: string) => boolean;

function escapeLiteral(char: string): string {
  return /[\\^$.|+()[\]{}*?]/.test(char) ? `\\${char}` : char;
}

/** The regular expression of one glob, anchored at both ends. */
export function globToRegExp(glob: string): RegExp {
  let source = '';
  for (let i = 0; i < glob.length; i++) {
    const char = glob[i]!;
    if (char === '*') {
      if (glob[i + 1] === '*') {
        const atSegmentStart = i === 0 || glob[i - 1] === '/';
        if (atSegmentStart && glob[i + 2] === '/') {
          source += '(?:.*/)?'; // `**/`: zero or more whole folders
          i += 2;
        } else {
          source += '.*';
          i += 1;
        }
      } else {
        source += '[^/]*';
      }
    } else if (char === '?') {
      source += '[^/]';
    } else {
      source += escapeLiteral(char);
    }
  }
  return new RegExp(`^${source}$`);
}

interface CompiledPattern {
  regexp: RegExp;
  /** Match against the basename (pattern had no `/`) or the whole relative path. */
  basenameOnly: boolean;
}

function compile(pattern: string): CompiledPattern | null {
  const anchored = pattern.startsWith('/');
  const trimmed = pattern.replace(/^\/+/, '').replace(/\/+$/, '');
  if (!trimmed) return null;
  return { regexp: globToRegExp(trimmed), basenameOnly: !anchored && !trimmed.includes('/') };
}

/** A matcher that is true when any pattern matches the relative path. Empty patterns are ignored. */
export function createPathMatcher(patterns: readonly string[]): PathMatcher {
  const compiled = patterns.map(compile).filter((p): p is CompiledPattern => p !== null);
  return (relativePath) => {
    const base = relativePath.slice(relativePath.lastIndexOf('/') + 1);
    return compiled.some((p) => p.regexp.test(p.basenameOnly ? base : relativePath));
  };
}
