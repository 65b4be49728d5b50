// A bucket's `prefix:` in one form: `a/b/` (no leading slash, one trailing slash) or ''.
export function normalizePrefix(prefix: string | undefined): string {
  const trimmed = (prefix ?? '').replace(/^\/+|\/+$/g, '').replace(/\/{2,}/g, '/');
  return trimmed ? `${trimmed}/` : '';
}
