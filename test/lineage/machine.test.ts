// The machine id: made once per state folder with an exclusive write, read back after; a damaged
// file is a clear error naming it; concurrent first calls agree on one id.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { RealHost } from '../../src/host/real.js';
import { readOnlyHost } from '../../src/host/wrappers.js';
import { ensureMachine, peekMachine } from '../../src/lineage/machine.js';
import { generationsToPrune } from '../../src/lineage/generation.js';

let dir: string;
let saved: string | undefined;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'persist-machine-'));
  saved = process.env.PERSIST_STATE_DIR;
  process.env.PERSIST_STATE_DIR = join(dir, 'state');
});
afterEach(() => {
  if (saved === undefined) delete process.env.PERSIST_STATE_DIR;
  else process.env.PERSIST_STATE_DIR = saved;
  rmSync(dir, { recursive: true, force: true });
});

describe('machine id', () => {
  it('is made once, 32 hex digits on one line at <state>/machine-id, and read back', async () => {
    const host = new RealHost();
    expect(await peekMachine(readOnlyHost(host))).toBeNull();
    const first = await ensureMachine(host);
    expect(first.id).toMatch(/^[0-9a-f]{32}$/);
    expect(readFileSync(join(dir, 'state', 'machine-id'), 'utf8')).toBe(`${first.id}\n`);
    expect((await ensureMachine(host)).id).toBe(first.id);
    expect((await peekMachine(readOnlyHost(host)))?.id).toBe(first.id);
  });

  it('concurrent first calls agree on one id (exclusive write)', async () => {
    const host = new RealHost();
    const ids = await Promise.all(Array.from({ length: 8 }, () => ensureMachine(host)));
    expect(new Set(ids.map((m) => m.id)).size).toBe(1);
  });

  it('a damaged file is an error naming it and what was expected', async () => {
    const host = new RealHost();
    await ensureMachine(host);
    writeFileSync(join(dir, 'state', 'machine-id'), 'not an id\n');
    await expect(ensureMachine(host)).rejects.toThrow(/machine-id: expected one line of 32 hex digits/);
  });
});

describe('pruning', () => {
  it('keeps the newest `keep` generations, the current one included', () => {
    expect(generationsToPrune([1, 2, 3, 4, 5], 5, 3)).toEqual([1, 2]);
    expect(generationsToPrune([0, 1, 2], 2, 10)).toEqual([]);
    expect(generationsToPrune([3, 1, 2], 3, 1)).toEqual([1, 2]);
  });
});
