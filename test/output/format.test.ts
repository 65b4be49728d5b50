import { describe, expect, it } from 'vitest';
import { errorCode, errorMessage, formatAge, formatBytes, formatDuration, plural, samplePaths, showPath } from '../../src/output/format.js';

describe('format', () => {
  it('formats byte sizes in binary units', () => {
    expect(formatBytes(0)).toBe('0 B');
    expect(formatBytes(14)).toBe('14 B');
    expect(formatBytes(1023)).toBe('1023 B');
    expect(formatBytes(1024)).toBe('1.0 KiB');
    expect(formatBytes(1536)).toBe('1.5 KiB');
    expect(formatBytes(5 * 1024 * 1024)).toBe('5.0 MiB');
    expect(formatBytes(3 * 1024 ** 3)).toBe('3.0 GiB');
    expect(formatBytes(2 * 1024 ** 5)).toBe('2048.0 TiB');
  });

  it('counts nouns', () => {
    expect(plural(0, 'file')).toBe('0 files');
    expect(plural(1, 'file')).toBe('1 file');
    expect(plural(2, 'conflict')).toBe('2 conflicts');
    expect(plural(2000, 'file')).toBe('2,000 files');
    // The thousands grouped as toLocaleString('en-US') groups them (without its 19 ms first call).
    for (const count of [999, 1000, 12345, 123456, 1234567, 100000000, -4321]) expect(plural(count, 'file')).toBe(`${count.toLocaleString('en-US')} files`);
    expect(plural(1, 'entry', 'entries')).toBe('1 entry');
    expect(plural(3, 'entry', 'entries')).toBe('3 entries');
  });

  it('samples path lists', () => {
    expect(samplePaths([])).toBe('');
    expect(samplePaths(['a', 'b', 'c'])).toBe('a, b, c');
    expect(samplePaths(['n1', 'c1', 'c2', 'r1', 'r2'])).toBe('n1, c1, c2 and 2 more');
    expect(samplePaths(['a', 'b', 'c'], 1)).toBe('a and 2 more');
  });

  it('formats durations', () => {
    expect(formatDuration(0)).toBe('0 ms');
    expect(formatDuration(0.04)).toBe('0 ms');
    expect(formatDuration(0.36)).toBe('0.4 ms');
    expect(formatDuration(3)).toBe('3 ms');
    expect(formatDuration(12.4)).toBe('12 ms');
    expect(formatDuration(999)).toBe('999 ms');
    expect(formatDuration(1500)).toBe('1.5 s');
    expect(formatDuration(5000)).toBe('5 s');
    expect(formatDuration(90_000)).toBe('90 s');
    expect(formatDuration(180_000)).toBe('3 min');
    expect(formatDuration(2 * 3_600_000)).toBe('2 h');
    expect(formatDuration(-5)).toBe('0 ms');
  });

  it('formats ages compactly', () => {
    const now = new Date('2026-01-01T00:00:00Z');
    const ago = (seconds: number) => formatAge(now.getTime() - seconds * 1000, now);
    expect(ago(0)).toBe('0s');
    expect(ago(119)).toBe('119s');
    expect(ago(180)).toBe('3m');
    expect(ago(5 * 3600)).toBe('5h');
    expect(ago(3 * 86400)).toBe('3d');
    expect(ago(-30)).toBe('0s'); // a clock that went back
  });

  it('gives the text and the code of anything thrown', () => {
    const enoent = Object.assign(new Error('ENOENT: no such file'), { code: 'ENOENT' });
    expect(errorMessage(enoent)).toBe('ENOENT: no such file');
    expect(errorMessage('plain')).toBe('plain');
    expect(errorMessage(undefined)).toBe('undefined');
    expect(errorCode(enoent)).toBe('ENOENT');
    expect(errorCode(new TypeError('x'))).toBe('TypeError');
    expect(errorCode('x')).toBe('string');
    expect(errorCode(null)).toBe('object');
  });
});

describe('showPath', () => {
  it('keeps a name on one line: control characters as escapes, a byte that is not UTF-8 as \\xNN', () => {
    expect(showPath('notes/a\nb\tc\r.md')).toBe('notes/a\\nb\\tc\\r.md');
    expect(showPath('esc\u001b[31m')).toBe('esc\\x1B[31m');
    expect(showPath('del\u007f')).toBe('del\\x7F');
    expect(showPath('caf\udce9.txt')).toBe('caf\\xE9.txt');
    expect(showPath('plain ünïcode/ok.md')).toBe('plain ünïcode/ok.md');
  });
});
