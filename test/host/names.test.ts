// Names are bytes: a name that is not UTF-8 goes through the Host unchanged (host/names.ts), hard
// links and sparse copies (host/sparse.ts), on the real host and the in-memory one.
import { mkdtemp, open, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { MemoryHost } from '../../src/host/memory.js';
import { bytesOfName, fsPath, hasRawBytes, nameFromBytes } from '../../src/host/names.js';
import { samplePaths, showPath } from '../../src/output/format.js';
import { RealHost } from '../../src/host/real.js';
import { isSparse } from '../../src/host/sparse.js';
import { debugHost, guardedHost } from '../../src/host/wrappers.js';

const latin1 = Buffer.from([0x63, 0x61, 0x66, 0xe9, 0x2e, 0x74, 0x78, 0x74]); // "café.txt" in Latin-1

describe('names as bytes', () => {
  it('decodes UTF-8 as itself and every other byte as a lone surrogate, losslessly', () => {
    expect(nameFromBytes(Buffer.from('héllo 😀.md'))).toBe('héllo 😀.md');
    const name = nameFromBytes(latin1);
    expect(name).toBe('caf\uDCE9.txt');
    expect(hasRawBytes(name)).toBe(true);
    expect(hasRawBytes('héllo 😀 💀')).toBe(false); // U+1F480 is the pair D83D DC80: not a raw byte
    expect(bytesOfName(name).equals(latin1)).toBe(true);
    expect(showPath(name)).toBe('caf\\xE9.txt');
    expect(samplePaths([name, 'b'])).toBe('caf\\xE9.txt, b');
  });

  it('round-trips every byte sequence, including overlong forms, surrogates and truncated sequences', () => {
    const samples = [
      [0xc0, 0xaf], // overlong "/"
      [0xed, 0xa0, 0x80], // an encoded surrogate
      [0xe2, 0x82], // truncated
      [0xf4, 0x90, 0x80, 0x80], // above U+10FFFF
      [0xff, 0xfe, 0x41],
      [0xf0, 0x9f, 0x92, 0x80], // valid: U+1F480
    ];
    for (const bytes of samples) {
      const buffer = Buffer.from(bytes);
      expect(bytesOfName(nameFromBytes(buffer)).equals(buffer)).toBe(true);
    }
    for (let i = 0; i < 300; i++) {
      const buffer = Buffer.from(Array.from({ length: 1 + (i % 12) }, (_, j) => (i * 31 + j * 97) % 256 || 1));
      expect(bytesOfName(nameFromBytes(buffer)).equals(buffer)).toBe(true);
    }
  });

  it('two different names never decode to the same string', () => {
    const seen = new Map<string, string>();
    for (let a = 0x80; a < 0x100; a++) {
      for (const tail of [[], [0x80], [0xbf], [0x41]]) {
        const buffer = Buffer.from([0x61, a, ...tail]);
        const name = nameFromBytes(buffer);
        const hex = buffer.toString('hex');
        expect(seen.get(name) ?? hex).toBe(hex);
        seen.set(name, hex);
      }
    }
  });
});

describe('RealHost with names that are not UTF-8', () => {
  let dir: string;
  const host = new RealHost();
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'persist-names-'));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('lists names exactly and reads, writes, copies, links and renames them through strings', async () => {
    await writeFile(Buffer.concat([Buffer.from(`${dir}/`), latin1]), 'one');
    const [name] = await host.readdirNames(dir);
    expect(bytesOfName(name!).equals(latin1)).toBe(true);
    expect(await host.readdir(dir)).toEqual(['caf\uFFFD.txt']); // the string API as before
    const path = join(dir, name!);
    expect((await host.lstat(path))?.type).toBe('file');
    expect((await host.readFile(path)).toString()).toBe('one');
    const copy = join(dir, `copy-${nameFromBytes(latin1)}`);
    await host.copyFile(path, copy);
    await host.link(path, `${copy}.hard`);
    await host.symlink(nameFromBytes(latin1), `${copy}.sym`);
    expect(await host.readlink(`${copy}.sym`)).toBe(nameFromBytes(latin1));
    await host.writeFileAtomic(`${copy}.new`, 'two');
    await host.rename(`${copy}.new`, `${copy}.renamed`);
    const names = (await readdir(dir, { encoding: 'buffer' })).map((name) => name.toString('hex')).sort();
    const expected = [latin1, ...['', '.hard', '.sym', '.renamed'].map((suffix) => Buffer.concat([Buffer.from('copy-'), latin1, Buffer.from(suffix)]))].map((b) => b.toString('hex')).sort();
    expect(names).toEqual(expected);
    const [a, b] = [await host.lstat(path), await host.lstat(`${copy}.hard`)];
    expect(a?.ino).toBe(b?.ino);
    expect(a?.nlink).toBe(2);
    await host.remove(path);
    expect(await host.lstat(path)).toBeNull();
    expect(fsPath(path)).toBeInstanceOf(Buffer);
  });

  it('lists a folder exactly when a name holds a real U+FFFD, beside one that is not UTF-8 and beside none', async () => {
    const replacement = 'real-\uFFFD.txt'; // valid UTF-8 (EF BF BD): it decodes to U+FFFD as it is
    await writeFile(join(dir, replacement), 'r');
    await writeFile(join(dir, 'plain.txt'), 'p');
    expect(await host.readdirNames(dir)).toEqual(['plain.txt', replacement]);
    await writeFile(Buffer.concat([Buffer.from(`${dir}/`), latin1]), 'l');
    const names = await host.readdirNames(dir);
    expect(names).toEqual([nameFromBytes(latin1), 'plain.txt', replacement].sort());
    expect(names.map((name) => bytesOfName(name).toString('hex')).sort()).toEqual((await readdir(dir, { encoding: 'buffer' })).map((name) => name.toString('hex')).sort());
  });

  it('copies a sparse file sparsely: same bytes, holes kept, data blocks only', async () => {
    const source = join(dir, 'sparse');
    const handle = await open(source, 'w');
    await handle.write(Buffer.from('head'), 0, 4, 0);
    await handle.write(Buffer.alloc(5000, 7), 0, 5000, 6 * 1024 * 1024);
    await handle.write(Buffer.from('tail'), 0, 4, 16 * 1024 * 1024 - 4);
    await handle.close();
    expect(isSparse(await host.stat(source) ?? { size: 0 })).toBe(true);
    await host.copyFile(source, join(dir, 'dense'));
    await host.copyFile(source, join(dir, 'kept'), { sparse: true });
    const original = await stat(source);
    const dense = await stat(join(dir, 'dense'));
    const kept = await stat(join(dir, 'kept'));
    expect(kept.size).toBe(original.size);
    expect((await readFile(join(dir, 'kept'))).equals(await readFile(source))).toBe(true);
    expect(dense.blocks * 512).toBeGreaterThanOrEqual(original.size); // node's copy fills the holes
    expect(kept.blocks * 512).toBeLessThan(64 * 1024); // 3 runs of data, a few blocks each
    expect(kept.mode & 0o777).toBe(original.mode & 0o777);
  });
});

describe('MemoryHost and wrappers with byte paths', () => {
  it('stores a Buffer path under its lossless string, lists it back exactly, links share an inode', async () => {
    const host = new MemoryHost().addDir('/d');
    await host.writeFile(Buffer.concat([Buffer.from('/d/'), latin1]), 'x');
    const [name] = await host.readdirNames('/d');
    expect(bytesOfName(name!).equals(latin1)).toBe(true);
    expect((await host.readFile(`/d/${nameFromBytes(latin1)}`)).toString()).toBe('x');
    await host.link(`/d/${nameFromBytes(latin1)}`, '/d/other');
    const [a, b] = [await host.lstat(`/d/${nameFromBytes(latin1)}`), await host.lstat('/d/other')];
    expect(a?.ino).toBe(b?.ino);
    expect(a?.nlink).toBe(2);
  });

  it('the guarded host sees a Buffer path under the mount; the debug host shows raw bytes as \\xNN', async () => {
    const host = new MemoryHost().addDir('/mnt');
    let holds = false;
    const guarded = guardedHost(host, '/mnt', async () => holds, () => new Error('mount gone'));
    await expect(guarded.writeFile(Buffer.concat([Buffer.from('/mnt/'), latin1]), 'x')).rejects.toThrow('mount gone');
    holds = true;
    await guarded.writeFile(Buffer.concat([Buffer.from('/mnt/'), latin1]), 'x');
    const lines: string[] = [];
    await debugHost(host, (line) => lines.push(line)).lstat(`/mnt/${nameFromBytes(latin1)}`);
    expect(lines[0]).toContain('/mnt/caf\\xE9.txt');
  });
});
