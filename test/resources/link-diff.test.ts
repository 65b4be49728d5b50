// diffLink on plain observed states: every state gives the right action, reason and changes.
import { describe, expect, it } from 'vitest';
import { diffLink, type LinkObserved } from '../../src/resources/link/index.js';
import type { ResolvedLink } from '../../src/spec/types.js';

const link: ResolvedLink = {
  name: 'memory',
  bucket: 'data',
  path: '/root/clawd/memory',
  relTarget: 'workspace/memory',
  target: '/data/moltbot-development/workspace/memory',
};
const journalPresent = {
  state: 'present' as const,
  target: link.target,
  backup: '/root/clawd/.persist-backups/memory-20260101T000000Z',
  backupExists: true,
  startedAt: '2026-01-01T00:00:00.000Z',
};

function diff(observed: Partial<LinkObserved> & Pick<LinkObserved, 'path'>) {
  return diffLink(link, { target: 'dir', journal: null, ...observed });
}

describe('diffLink', () => {
  it('a correct link is no change; before its FUSE mount is up, its target is looked for after the mount', () => {
    expect(diff({ path: { state: 'symlink', linkTo: link.target } })).toBeNull();
    expect(diff({ path: { state: 'symlink', linkTo: link.target }, target: 'unknown' })).toEqual({
      address: 'link.memory',
      kind: 'link',
      phase: 'link',
      action: 'create',
      reason: `the mount of bucket ${link.bucket} is not ready yet: the target directory is made after the mount if it is missing`,
      changes: [],
    });
  });

  it('a correct link whose target directory is missing creates the directory', () => {
    expect(diff({ path: { state: 'symlink', linkTo: link.target }, target: 'missing' })).toEqual({
      address: 'link.memory',
      kind: 'link',
      phase: 'link',
      action: 'create',
      reason: 'target directory missing in the mount',
      changes: [{ field: 'target directory', before: null, after: link.target }],
    });
  });

  it('a missing path is created, saying whether the target directory exists', () => {
    const created = diff({ path: { state: 'missing' } });
    expect(created).toMatchObject({ action: 'create', reason: '/root/clawd/memory does not exist' });
    expect(created?.changes).toEqual([{ field: 'target', before: null, after: link.target }]);
    expect(diff({ path: { state: 'missing' }, target: 'missing' })?.reason).toBe('/root/clawd/memory does not exist, nor does its target directory');
    expect(diff({ path: { state: 'missing' }, target: 'unknown' })?.action).toBe('create');
  });

  it('an empty directory is replaced by the link', () => {
    expect(diff({ path: { state: 'dir', entries: 0 } })).toMatchObject({
      action: 'create',
      reason: '/root/clawd/memory is an empty directory: it is replaced by the link',
      changes: [{ field: 'target', before: '(empty directory)', after: link.target }],
    });
  });

  it('a directory with content is adopted', () => {
    expect(diff({ path: { state: 'dir', entries: 1 } })?.reason).toBe(
      '/root/clawd/memory is a directory with 1 entry: copy it into the mount, verify, keep a backup, link it',
    );
    expect(diff({ path: { state: 'dir', entries: 12 } })).toMatchObject({
      action: 'adopt',
      changes: [{ field: 'target', before: '(directory, 12 entries)', after: link.target }],
    });
  });

  it('a link elsewhere is relinked, showing both targets', () => {
    const other = '/data/moltbot-production/workspace/memory';
    expect(diff({ path: { state: 'symlink', linkTo: other } })).toMatchObject({
      action: 'relink',
      reason: `the link points at ${other}`,
      changes: [{ field: 'target', before: other, after: link.target }],
    });
  });

  it('a relative link to the right place is made absolute', () => {
    expect(diff({ path: { state: 'symlink', linkTo: '../../data/moltbot-development/workspace/memory' } })).toMatchObject({
      action: 'relink',
      reason: 'the link is relative; it is made absolute',
    });
  });

  it('a regular file or a special file is a conflict that says what to do', () => {
    const file = diff({ path: { state: 'file', size: 42 } });
    expect(file).toMatchObject({
      action: 'conflict',
      conflict: {
        message: '/root/clawd/memory is a regular file (42 bytes) where the link belongs',
        fix: `move it away (into ${link.target} if it belongs with the data), then run persist apply again`,
      },
    });
    expect(file?.reason).toBe(file?.conflict?.message);
    const other = diff({ path: { state: 'other' } });
    expect(other?.action).toBe('conflict');
    expect(other?.conflict?.message).toContain('neither a directory nor a symlink');
    // A file is a conflict even when a journal is there.
    expect(diff({ path: { state: 'file', size: 1 }, journal: journalPresent })?.action).toBe('conflict');
  });

  it('a target in the mount that is not a directory is a conflict', () => {
    expect(diff({ path: { state: 'missing' }, target: 'not-dir' })?.conflict?.message).toBe(`${link.target} in the mount is not a directory`);
  });

  it('an interrupted adopt is resumed, whatever is at the path', () => {
    const resumed = diff({ path: { state: 'missing' }, journal: journalPresent });
    expect(resumed).toMatchObject({
      action: 'adopt',
      reason: `resume an interrupted adopt of /root/clawd/memory (original kept at ${journalPresent.backup})`,
    });
    expect(diff({ path: { state: 'dir', entries: 3 }, journal: { ...journalPresent, backupExists: false } })?.reason).toBe(
      'resume an interrupted adopt of /root/clawd/memory',
    );
    expect(diff({ path: { state: 'symlink', linkTo: '/elsewhere' }, journal: journalPresent })?.action).toBe('adopt');
  });

  it('a finished adopt whose journal is left is finished, not reported as no change', () => {
    const finished = diff({ path: { state: 'symlink', linkTo: link.target }, journal: journalPresent });
    expect(finished?.action).toBe('adopt');
    expect(finished?.reason).toContain('finish an interrupted adopt: the link is in place');
    expect(finished?.changes).toEqual([]);
  });

  it('an unreadable journal is a conflict', () => {
    const unreadable = diff({ path: { state: 'symlink', linkTo: link.target }, journal: { state: 'unreadable', problem: 'not valid JSON' } });
    expect(unreadable?.action).toBe('conflict');
    expect(unreadable?.conflict?.message).toBe('the adopt journal /root/clawd/.persist-backups/memory.adopt.json is unreadable: not valid JSON');
  });
});
