// `npm run install-cli` (scripts/install-cli.mjs) puts `persist` on PATH from a clone: installed
// into a temporary prefix, the command runs from another folder; a foreign file is never replaced;
// --uninstall removes only its own link.
import { execFileSync, spawnSync } from 'node:child_process';
import { lstatSync, mkdirSync, mkdtempSync, readFileSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';

const ROOT = join(import.meta.dirname, '..');
const SCRIPT = join(ROOT, 'scripts', 'install-cli.mjs');
const VERSION = (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string }).version;

describe('npm run install-cli', () => {
  const folders: string[] = [];
  const temp = (): string => {
    const folder = mkdtempSync(join(tmpdir(), 'persist-install-'));
    folders.push(folder);
    return folder;
  };
  afterEach(() => {
    for (const folder of folders.splice(0)) rmSync(folder, { recursive: true, force: true });
  });

  it('links bin/persist.js into PREFIX/bin, and `persist --version` works from another folder', () => {
    const prefix = temp();
    const elsewhere = temp();
    const out = execFileSync(process.execPath, [SCRIPT, '--prefix', prefix], { encoding: 'utf8', env: { PATH: '/usr/bin:/bin' } });
    expect(out).toContain(`install-cli: ${join(prefix, 'bin', 'persist')} -> ${join(ROOT, 'bin', 'persist.js')}`);
    expect(out).toContain(`${join(prefix, 'bin')} is not on PATH`);
    expect(readlinkSync(join(prefix, 'bin', 'persist'))).toBe(join(ROOT, 'bin', 'persist.js'));
    const run = spawnSync('persist', ['--version'], { cwd: elsewhere, encoding: 'utf8', env: { PATH: `${join(prefix, 'bin')}:${process.env.PATH}`, HOME: elsewhere } });
    expect(run.stderr).toBe('');
    expect(run.stdout.trim()).toBe(VERSION);
    expect(run.status).toBe(0);
    // Installing again replaces its own link; --uninstall removes it.
    execFileSync(process.execPath, [SCRIPT, '--prefix', prefix], { encoding: 'utf8' });
    expect(execFileSync(process.execPath, [SCRIPT, '--prefix', prefix, '--uninstall'], { encoding: 'utf8' })).toBe(`install-cli: removed ${join(prefix, 'bin', 'persist')}\n`);
    expect(() => lstatSync(join(prefix, 'bin', 'persist'))).toThrow();
  });

  it('takes $PREFIX, and refuses to replace a file it did not make', () => {
    const prefix = temp();
    mkdirSync(join(prefix, 'bin'));
    writeFileSync(join(prefix, 'bin', 'persist'), '#!/bin/sh\necho another persist\n');
    const run = spawnSync(process.execPath, [SCRIPT], { encoding: 'utf8', env: { PATH: '/usr/bin:/bin', PREFIX: prefix } });
    expect(run.status).toBe(1);
    expect(run.stderr).toBe(`install-cli: ${join(prefix, 'bin', 'persist')} exists and is not a link to a persist launcher; move it away first\n`);
    expect(readFileSync(join(prefix, 'bin', 'persist'), 'utf8')).toContain('another persist');
  });
});
