// The timestamp tick of a folder's file system (src/host/timestamps.ts): the short tick only for a
// local file system known to keep nanoseconds, with the folder's and its files' ctimes showing a
// fraction of a second. Real folders and the real mountinfo; a Host that reports another file
// system type for the folder's device stands in for file systems this machine does not have.
import { readFileSync, statSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { MemoryHost } from '../../src/host/memory.js';
import { parseMountinfo } from '../../src/host/mountinfo.js';
import { RealHost } from '../../src/host/real.js';
import { COARSE_TICK_MS, deviceName, FINE_TICK_MS, timestampTickMs } from '../../src/host/timestamps.js';
import type { Host, MountEntry } from '../../src/host/types.js';

const realHost = new RealHost();
let dir: string;

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'persist-timestamps-'));
});

afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** The real host, with the folder's device reported as a file system of type `fsType`. */
function hostSeeing(fsType: string, device = deviceName(statSync(dir).dev)!): Host {
  const entry: MountEntry = { mountId: 1, parentId: 0, device, mountPoint: '/', root: '/', fsType, source: 'test', options: 'rw', superOptions: 'rw' };
  return Object.assign(Object.create(realHost) as RealHost, { mounts: async () => [entry] });
}

describe('deviceName', () => {
  it("decodes st_dev as mountinfo's major:minor", () => {
    expect(deviceName(8 * 256 + 1)).toBe('8:1'); // makedev(8, 1)
    expect(deviceName(0x2c + 0x100 * 4096)).toBe('0:300'); // makedev(0, 300): minor bits 8+ go above bit 20
    expect(deviceName(2 ** 32)).toBeNull();
  });

  it("gives this machine's root folder the device its mountinfo entry names", () => {
    const entries = parseMountinfo(readFileSync('/proc/self/mountinfo', 'utf8')).filter((entry) => entry.mountPoint === '/');
    expect(entries.length).toBeGreaterThan(0);
    expect(deviceName(statSync('/').dev)).toBe(entries.at(-1)!.device);
  });
});

describe('timestampTickMs', () => {
  it('is short on a local file system that keeps nanoseconds', async () => {
    expect(await timestampTickMs(hostSeeing('ext4'), dir)).toBe(FINE_TICK_MS);
    expect(await timestampTickMs(hostSeeing('overlay'), dir, [{ ctimeMs: 1_733_000_000_123.456 }])).toBe(FINE_TICK_MS);
  });

  it('is long on FAT, a network or FUSE file system, ext3, or a device mountinfo does not list', async () => {
    for (const fsType of ['vfat', 'nfs4', 'fuse.sshfs', 'virtiofs', 'ext3']) expect(await timestampTickMs(hostSeeing(fsType), dir)).toBe(COARSE_TICK_MS);
    expect(await timestampTickMs(hostSeeing('ext4', '254:254'), dir)).toBe(COARSE_TICK_MS);
  });

  it('is long when a file of the folder has a ctime of a whole second (times kept in seconds: ext4 with small inodes)', async () => {
    expect(await timestampTickMs(hostSeeing('ext4'), dir, [{ ctimeMs: 1_733_000_000_123.456 }, { ctimeMs: 1_733_000_001_000 }])).toBe(COARSE_TICK_MS);
  });

  it('is long when the folder is missing or its stats carry no ctime or device (the in-memory host)', async () => {
    expect(await timestampTickMs(hostSeeing('ext4'), join(dir, 'missing'))).toBe(COARSE_TICK_MS);
    const memory = new MemoryHost();
    memory.addFile('/data/a.txt', 'a');
    expect(await timestampTickMs(memory, '/data')).toBe(COARSE_TICK_MS);
  });
});
