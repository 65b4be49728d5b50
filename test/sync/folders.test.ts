// Which folders of a walk a mirror records (folders.ts): non-default modes, and the empty ones.
import { describe, expect, it } from 'vitest';
import { recordedFolders } from '../../src/resources/sync/folders.js';

describe('recordedFolders', () => {
  it('records a folder with a mode other than 0755, and a folder with nothing in it; not one holding a file or a folder', () => {
    const folders = { a: 0o755, 'a/b': 0o755, 'a/b/empty': 0o755, c: 0o700, 'c/d': 0o755, e: 0o755, ab: 0o755 };
    const files = { 'a/b/x.txt': {}, 'c/d/y.txt': {}, 'ab/z': {}, 'top.txt': {} };
    expect(recordedFolders(folders, files)).toEqual({ 'a/b/empty': 0o755, c: 0o700, e: 0o755 });
  });

  it('leaves out what `keep` refuses (folders under an unreadable one), and an empty walk records nothing', () => {
    expect(recordedFolders({ x: 0o700, y: 0o755 }, {}, (path) => path !== 'x')).toEqual({ y: 0o755 });
    expect(recordedFolders(undefined, {})).toEqual({});
  });
});
