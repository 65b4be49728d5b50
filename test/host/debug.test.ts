// The --debug wrapper: every Host call logged as one line, nothing secret in it.
import { describe, expect, it } from 'vitest';
import { MemoryHost } from '../../src/host/memory.js';
import { ReadOnlyViolation } from '../../src/host/types.js';
import { debugHost, readOnlyHost } from '../../src/host/wrappers.js';

const LINE = /^(\w+)( .*)? \((\d+(\.\d)?) ms\) -> (.+)$/;

function debugged(memory = new MemoryHost()) {
  const lines: string[] = [];
  return { host: debugHost(memory, (line) => lines.push(line)), memory, lines };
}

describe('debugHost', () => {
  it('logs each call with its path, duration and result, and passes results through', async () => {
    const { host, lines } = debugged(new MemoryHost().addFile('/w/a.txt', 'hello').addSymlink('/w/l', '/w/a.txt'));
    expect((await host.lstat('/w/l'))?.type).toBe('symlink');
    expect(await host.lstat('/w/missing')).toBeNull();
    expect(await host.readlink('/w/l')).toBe('/w/a.txt');
    expect(await host.readdir('/w')).toEqual(['a.txt', 'l']);
    expect(host.readFileNow('/w/a.txt').toString()).toBe('hello');
    await host.mkdir('/w/d', { mode: 0o700 });
    await host.symlink('/w/a.txt', '/w/d/l2');
    await host.rename('/w/d/l2', '/w/d/l3');
    expect(host.now().toISOString()).toBe('2026-01-01T00:00:00.000Z');
    expect(lines).toHaveLength(9);
    for (const line of lines) expect(line).toMatch(LINE);
    const strip = (line: string) => line.replace(/ \([\d.]+ ms\)/, '');
    expect(lines.map(strip)).toEqual([
      'lstat /w/l -> symlink, 0 B mode 0777',
      'lstat /w/missing -> missing',
      'readlink /w/l -> -> /w/a.txt',
      'readdir /w -> 2 entries',
      'readFileNow /w/a.txt -> 5 B',
      'mkdir /w/d mode 0700 -> ok',
      'symlink /w/d/l2 -> /w/a.txt -> ok',
      'rename /w/d/l2 -> /w/d/l3 -> ok',
      'now -> 2026-01-01T00:00:00.000Z',
    ]);
  });

  it('logs the error code of a failed call (sync or async) and rethrows the same error', async () => {
    const { host, lines } = debugged();
    await expect(host.readFile('/nope')).rejects.toMatchObject({ code: 'ENOENT' });
    expect(() => host.readFileNow('/nope')).toThrow(/ENOENT/);
    const refused = debugHost(readOnlyHost(new MemoryHost()), (line) => lines.push(line));
    await expect(refused.writeFile('/x', 'y')).rejects.toBeInstanceOf(ReadOnlyViolation);
    expect(lines.map((line) => line.replace(/ \([\d.]+ ms\)/, ''))).toEqual([
      'readFile /nope -> error ENOENT',
      'readFileNow /nope -> error ENOENT',
      'writeFile /x (1 B) -> error ReadOnlyViolation',
    ]);
  });

  it('never logs file contents, hashes, environment values or a child\'s environment and input', async () => {
    const SECRET = 'SECRET-DEBUG-TEST-42';
    const memory = new MemoryHost().addDir('/state');
    memory.environment = { AWS_SECRET_ACCESS_KEY: SECRET };
    memory.runHandler = () => ({ exitCode: 0, stdout: `token ${SECRET}\n`, stderr: '', timedOut: false });
    const { host, lines } = debugged(memory);
    await host.writeFile('/state/passwd', `bucket:AKIA:${SECRET}\n`, { mode: 0o600 });
    await host.writeFileAtomic('/state/copy', SECRET);
    expect((await host.readFile('/state/passwd')).toString()).toContain(SECRET);
    const hash = await host.hashFile('/state/passwd');
    expect(host.env().AWS_SECRET_ACCESS_KEY).toBe(SECRET);
    const result = await host.run('s3fs', ['bucket', '/mnt', '-o', 'passwd_file=/state/passwd'], {
      env: { AWSSECRETACCESSKEY: SECRET },
      input: SECRET,
      timeoutMs: 1000,
    });
    expect(result.stdout).toContain(SECRET);
    const text = lines.join('\n');
    expect(text).not.toContain(SECRET);
    expect(text).not.toContain(hash);
    expect(text).not.toContain('AWSSECRETACCESSKEY');
    expect(lines.map((line) => line.replace(/ \([\d.]+ ms\)/, ''))).toEqual([
      'writeFile /state/passwd (33 B mode 0600) -> ok',
      'writeFileAtomic /state/copy (20 B) -> ok',
      'readFile /state/passwd -> 33 B',
      'hashFile /state/passwd -> ok',
      'env -> 1 variable',
      'run s3fs bucket /mnt -o passwd_file=/state/passwd [own environment of 1 variable] [input 20 B] -> exit 0, stdout 27 B, stderr 0 B',
    ]);
  });

  it('describes every Host method, so a wrapped host has them all', () => {
    const memory = new MemoryHost();
    const host = debugHost(memory, () => undefined);
    const methods = Object.getOwnPropertyNames(MemoryHost.prototype).filter(
      (name) => name !== 'constructor' && !name.startsWith('add') && typeof (memory as unknown as Record<string, unknown>)[name] === 'function',
    );
    for (const name of methods) expect(typeof (host as unknown as Record<string, unknown>)[name], name).toBe('function');
  });
});
