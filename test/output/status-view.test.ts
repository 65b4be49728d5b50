import { describe, expect, it } from 'vitest';
import { renderStatus } from '../../src/output/status-view.js';
import { makeStyle } from '../../src/output/style.js';

describe('renderStatus', () => {
  const style = makeStyle(false);
  it('puts facts on the line of an ok row, and on a line of their own under a !! row', () => {
    const text = renderStatus('h', [
      { address: 'sync.a', ok: true, state: 'ok', facts: { files: 3, age: null } },
      { address: 'sync.b', ok: false, state: 'conflict: x', facts: { files: 1 } },
    ], style);
    expect(text).toBe('h\n\nok  sync.a  files=3\n!!  sync.b  conflict: x\n      files=1\n');
  });

  it('a !! row without facts has no empty line under it', () => {
    expect(renderStatus('h', [{ address: 'mount.data', ok: false, state: 'conflict: cannot be looked into', facts: {} }], style)).toBe('h\n\n!!  mount.data  conflict: cannot be looked into\n');
  });
});
