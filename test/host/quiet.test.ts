// When an empty read of a file is taken as a state of it (host/quiet.ts, mayBeEmptied), and
// readWhole's waits, on the in-memory host (its clock moves only when code sleeps on it).
import { describe, expect, it } from 'vitest';
import { EMPTIED_SETTLE_MS, mayBeEmptied, readWhole } from '../../src/host/quiet.js';
import { MemoryHost } from '../../src/host/memory.js';
import type { FileInfo } from '../../src/host/types.js';

const at = 1_800_000_000_000;
const file = (overrides: Partial<FileInfo>): FileInfo => ({ type: 'file', size: 0, mode: 0o644, mtimeMs: at, ctimeMs: at, ...overrides });

describe('mayBeEmptied', () => {
  it('a file with bytes, or one that changed EMPTIED_SETTLE_MS ago or more, is taken', () => {
    expect(mayBeEmptied(file({ size: 1, birthtimeMs: at - 5000 }), at, true)).toBe(false);
    expect(mayBeEmptied(file({ birthtimeMs: at - 5000 }), at + EMPTIED_SETTLE_MS, true)).toBe(false);
  });

  it('an empty file that changed lately waits when it had content: known, born before its last change, or of unknown birth', () => {
    expect(mayBeEmptied(file({ birthtimeMs: at }), at + 10, true)).toBe(true);
    expect(mayBeEmptied(file({ birthtimeMs: at - 40 }), at + 10, false)).toBe(true);
    expect(mayBeEmptied(file({}), at + 10, false)).toBe(true);
    // A chmod moves the ctime, not the mtime: still the file as created.
    expect(mayBeEmptied(file({ birthtimeMs: at, ctimeMs: at + 5 }), at + 10, false)).toBe(false);
  });
});

describe('readWhole', () => {
  const never = async () => null;

  it('reads an emptied file again once it stayed empty EMPTIED_SETTLE_MS, and says it retried', async () => {
    const host = new MemoryHost();
    host.addFile('/w/state.json', '');
    const started = host.now().getTime();
    const read = await readWhole(host, '/w/state.json', { maxBytes: 1024, look: never, hadContent: true });
    expect(read).toMatchObject({ retried: true, info: { size: 0 } });
    expect(host.now().getTime() - started).toBeGreaterThanOrEqual(EMPTIED_SETTLE_MS);
  });

  it('a file with content is read at once; a larger one than maxBytes is not read; a missing one is gone', async () => {
    const host = new MemoryHost();
    host.addFile('/w/a', 'abc');
    expect(await readWhole(host, '/w/a', { maxBytes: 3, look: never, hadContent: true })).toMatchObject({ retried: false, data: Buffer.from('abc') });
    expect(await readWhole(host, '/w/a', { maxBytes: 2, look: never, hadContent: true })).toBe('too large');
    expect(await readWhole(host, '/w/b', { maxBytes: 2, look: never, hadContent: true })).toBe('gone');
  });

  it('a file a writer holds open (not to append) is unsettled after STABLE_READS reads', async () => {
    const host = new MemoryHost();
    host.addFile('/w/a', 'abc');
    let looks = 0;
    const writer = async () => (looks++, { writers: [{ pid: 7, append: false }], complete: true });
    expect(await readWhole(host, '/w/a', { maxBytes: 10, look: writer, hadContent: true })).toBe('unsettled');
    expect(looks).toBe(3);
  });
});
