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
  it('always excludes the manifest at the top, the folder modes and temporary copies', () => {
    const excluded = syncExcluder([]);
    expect(excluded('.persist-sync.json')).toBe(true);
    // The restore marker lives in the state folder now: a user's file of that name is an ordinary file.
    expect(excluded('.persist-restore-incomplete')).toBe(false);
    expect(excluded('.persist-sync-folders.json')).toBe(true);
    expect(excluded('.state.db.persist-tmp-123')).toBe(true);
    expect(excluded('sub/.x.persist-tmp-9-abcd1234')).toBe(true);
    expect(excluded('sub/.persist-sync.json')).toBe(false); // only the top-level one is ours
    expect(excluded('state.db')).toBe(false);
  });

  it('adds the user patterns', () => {
    const excluded = syncExcluder(['*.lock']);
    expect(excluded('a/b.lock')).toBe(true);
    expect(excluded('a/b.db')).toBe(false);
  });
});
