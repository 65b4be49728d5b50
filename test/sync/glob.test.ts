import { describe, expect, it } from 'vitest';
import { createPathMatcher, globToRegExp } from '../../src/resources/sync/glob.js';
import { syncExcluder } from '../../src/resources/sync/tree.js';

describe('globToRegExp', () => {
  it('`*` stays inside one path component and matches a leading dot', () => {
    const re = globToRegExp('*.lock');
    expect(re.test('a.lock')).toBe(true);
    expect(re.test('.hidden.lock')).toBe(true);
    expect(re.test('dir/a.lock')).toBe(false);
    expect(re.test('a.lock.bak')).toBe(false);
  });

  it('`?` matches exactly one character other than /', () => {
    const re = globToRegExp('log?.txt');
    expect(re.test('log1.txt')).toBe(true);
    expect(re.test('log.txt')).toBe(false);
    expect(re.test('log12.txt')).toBe(false);
    expect(globToRegExp('a?b').test('a/b')).toBe(false);
  });

  it('`**` crosses folders; `**/` may match no folder at all', () => {
    expect(globToRegExp('cache/**').test('cache/a')).toBe(true);
    expect(globToRegExp('cache/**').test('cache/a/b/c')).toBe(true);
    expect(globToRegExp('cache/**').test('cache')).toBe(false);
    expect(globToRegExp('a/**/b').test('a/b')).toBe(true);
    expect(globToRegExp('a/**/b').test('a/x/y/b')).toBe(true);
    expect(globToRegExp('**/b').test('b')).toBe(true);
    expect(globToRegExp('**/b').test('x/b')).toBe(true);
    expect(globToRegExp('a**').test('ab/c')).toBe(true);
  });

  it('treats regular-expression characters literally', () => {
    const re = globToRegExp('a+(b).[c]$');
    expect(re.test('a+(b).[c]$')).toBe(true);
    expect(re.test('aa(b)x[c]')).toBe(false);
    expect(globToRegExp('x.db').test('xadb')).toBe(false);
  });
});

describe('createPathMatcher', () => {
  it('a pattern without / matches the basename at any depth', () => {
    const match = createPathMatcher(['*.tmp', 'cache']);
    expect(match('x.tmp')).toBe(true);
    expect(match('deep/down/x.tmp')).toBe(true);
    expect(match('cache')).toBe(true);
    expect(match('sub/cache')).toBe(true);
    expect(match('cache.db')).toBe(false);
    expect(match('x.tmp/y')).toBe(false);
  });

  it('a pattern with / matches the whole relative path', () => {
    const match = createPathMatcher(['cache/**', 'logs/*.log']);
    expect(match('cache/a/b')).toBe(true);
    expect(match('sub/cache/a')).toBe(false);
    expect(match('logs/a.log')).toBe(true);
    expect(match('logs/old/a.log')).toBe(false);
  });

  it('a leading / anchors to the top; a trailing / is dropped; empty patterns are ignored', () => {
    const match = createPathMatcher(['/top.db', 'tmp/', '', '/']);
    expect(match('top.db')).toBe(true);
    expect(match('sub/top.db')).toBe(false);
    expect(match('tmp')).toBe(true);
    expect(match('a/tmp')).toBe(true);
    expect(match('other')).toBe(false);
  });

  it('matches nothing without patterns', () => {
    expect(createPathMatcher([])('anything')).toBe(false);
  });
});

describe('syncExcluder', () => {
  it("excludes only the temporaries an interrupted restore leaves: a user's file named like persist's own is a file", () => {
    const excluded = syncExcluder([]);
    expect(excluded('.state.db.persist-tmp-0123456789ab')).toBe(true);
    expect(excluded('sub/.persist-tmp-0123456789abcdef-0123456789ab')).toBe(true);
    // persist's own files live in the mirror only, under keys no user file gets (sync/names.ts).
    for (const name of ['.persist-sync.json', '.persist-sync-folders.json', '.persist-sync/0-of-1.json', '.persist-restore-incomplete', '.notes.persist-tmp-draft', 'a.persist-conflict-20260101T000000Z', 'state.db']) {
      expect(excluded(name)).toBe(false);
    }
  });

  it('adds the user patterns', () => {
    const excluded = syncExcluder(['*.lock']);
    expect(excluded('a/b.lock')).toBe(true);
    expect(excluded('a/b.db')).toBe(false);
  });
});
