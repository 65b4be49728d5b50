// Odd contents through the CLI on real FUSE mounts (issue 12): names that are not UTF-8, a user's
// files named like persist's own, hard links, sparse files and relative symlinks, in an adopted
// folder and in a sync, saved by one apply and back in a new container. s3fs keeps symlinks in
// the mount; rclone 1.60 keeps none (reported, the originals in the backup). Neither keeps hard
// links (each name gets a copy in an adopted folder, reported; a sync restores them as links).
import { createHash } from 'node:crypto';
import { link, mkdir, open, readdir, readFile, readlink, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { expect, it } from 'vitest';
import { describeE2E, e2eRig } from '../helpers/e2e.js';
import { startS3Server } from '../helpers/s3server.js';
import { bucketYaml, FUSE_BACKENDS, Machine, rcloneSettled, unmountLikeShutdown } from './flow-helpers.js';

const MiB = 1024 * 1024;
const raw = (...parts: (string | number[])[]): Buffer => Buffer.concat(parts.map((part) => (typeof part === 'string' ? Buffer.from(part) : Buffer.from(part))));
const sha = (data: Buffer) => createHash('sha256').update(data).digest('hex');

/** Every file and symlink under `dir`: hex of its path's bytes -> sha256 of its content, or `-> target`. */
async function tree(dir: Buffer, prefix: Buffer = Buffer.alloc(0)): Promise<Record<string, string>> {
  const result: Record<string, string> = {};
  for (const entry of await readdir(dir, { withFileTypes: true, encoding: 'buffer' })) {
    const name = entry.name as unknown as Buffer;
    const path: Buffer = Buffer.concat([dir, Buffer.from('/'), name]);
    const rel: Buffer = prefix.length ? Buffer.concat([prefix, Buffer.from('/'), name]) : name;
    if (entry.isDirectory()) Object.assign(result, await tree(path, rel));
    else if (entry.isSymbolicLink()) result[rel.toString('hex')] = `-> ${await readlink(path)}`;
    else result[rel.toString('hex')] = sha(await readFile(path));
  }
  return result;
}

function spec(server: { endpoint: string }, backend: 's3fs' | 'rclone', bucket: string): string {
  return [
    'version: 1',
    'workspace: ./ws',
    'buckets:',
    '  data:',
    bucketYaml(server as never, backend, bucket, './mnt', '    ', '1s'),
    'links:',
    '  memory: workspace/memory',
    'syncs:',
    '  state:',
    '    from: ./state',
    '    to: state',
    '',
  ].join('\n');
}

async function sparseFile(path: string): Promise<Buffer> {
  const handle = await open(path, 'w');
  await handle.write(Buffer.from('head'), 0, 4, 0);
  await handle.write(Buffer.from('tail'), 0, 4, 8 * MiB - 4);
  await handle.close();
  return readFile(path);
}

for (const backend of FUSE_BACKENDS) {
  describeE2E(`odd contents through ${backend}`, [backend], () => {
    const rig = e2eRig(() => startS3Server([`odd-${backend}`]));

    it('names that are not UTF-8, look-alikes of persist names, hard links, sparse files, relative symlinks: saved and back in a new container', { timeout: 240_000 }, async () => {
      const machine = new Machine(await rig.sandbox.tempDir(`persist-odd-${backend}-`));
      await mkdir(machine.ws, { recursive: true });
      await writeFile(machine.spec, spec(rig.server, backend, `odd-${backend}`));
      const memory = join(machine.ws, 'memory');
      await mkdir(join(memory, '2024'), { recursive: true });
      await writeFile(raw(`${memory}/caf`, [0xe9], '.md'), 'a Latin-1 name');
      await writeFile(join(memory, '2024', 'day.md'), 'a day');
      await writeFile(join(memory, '.persist-sync.json'), 'not a manifest');
      await writeFile(join(memory, 'notes.md'), 'notes');
      await link(join(memory, 'notes.md'), join(memory, 'notes-again.md'));
      await symlink('2024/day.md', join(memory, 'today'));
      await writeFile(join(machine.ws, 'settings.json'), '{"a":1}');
      await symlink('../settings.json', join(memory, 'settings'));
      await mkdir(machine.state, { recursive: true });
      await writeFile(raw(`${machine.state}/d`, [0xff], '.bin'), 'state under a name that is not UTF-8');
      await writeFile(join(machine.state, '.persist-sync.json'), 'my file, not a manifest');
      await writeFile(join(machine.state, '.persist-sync-folders.json'), '{}');
      await writeFile(join(machine.state, 'a'), 'shared');
      await link(join(machine.state, 'a'), join(machine.state, 'b'));
      const sparse = await sparseFile(join(machine.state, 'disk.img'));
      const stateBefore = await tree(Buffer.from(machine.state));

      const applied = await machine.persist(['apply', '--auto-approve']);
      expect(applied.code, applied.output).toBe(0);
      expect(applied.output).toContain(`${memory}/caf\\xE9.md is not a UTF-8 name, which a bucket cannot hold: it is in the mount as ${machine.mnt}/workspace/memory/%persist%caf%E9.md`);
      expect(applied.output).toContain('1 hard link could not be kept as links in the mount');
      const plan = await machine.persist(['plan', '--detailed-exitcode']);
      expect(plan.code, plan.output).toBe(0);

      // Through the link: every byte is there; names the bucket cannot hold under their escaped key.
      expect(await readFile(join(memory, '%persist%caf%E9.md'), 'utf8')).toBe('a Latin-1 name');
      expect(await readFile(join(memory, '.persist-sync.json'), 'utf8')).toBe('not a manifest');
      expect(await readFile(join(memory, 'notes-again.md'), 'utf8')).toBe('notes');
      if (backend === 's3fs') {
        expect(await readFile(join(memory, 'today'), 'utf8')).toBe('a day');
        expect(await readFile(join(memory, 'settings'), 'utf8')).toBe('{"a":1}');
        expect(applied.output).toContain(`the relative symlink ${memory}/settings points outside the folder`);
      } else {
        // rclone keeps no symlinks: reported, the originals in the backup.
        expect(applied.output).toMatch(/memory\/today was not copied into the mount \(symlink not supported/);
        const backups = join(machine.ws, '.persist-backups');
        const [backup] = (await readdir(backups)).filter((name) => name.startsWith('memory-'));
        expect(await readlink(join(backups, backup!, 'today'))).toBe('2024/day.md');
      }

      // A new container: the workspace's link, the sync folder and persist's state are gone.
      await rcloneSettled(machine);
      await unmountLikeShutdown(machine);
      await rm(memory, { force: true });
      await rm(machine.state, { recursive: true, force: true });
      // A new container waits for the old one's lease (1 s here) to expire.
      machine.newStateDir('second');
      const restored = await machine.persist(['apply', '--auto-approve', '--lock-timeout', '30s']);
      expect(restored.code, restored.output).toBe(0);
      expect(await tree(Buffer.from(machine.state))).toEqual(stateBefore);
      expect((await stat(join(machine.state, 'b'))).ino).toBe((await stat(join(machine.state, 'a'))).ino);
      const image = await stat(join(machine.state, 'disk.img'));
      expect(image.size).toBe(8 * MiB);
      expect(image.blocks * 512).toBeLessThan(MiB);
      expect(sha(await readFile(join(machine.state, 'disk.img')))).toBe(sha(sparse));
      expect(await readFile(join(memory, '%persist%caf%E9.md'), 'utf8')).toBe('a Latin-1 name');
      const after = await machine.persist(['plan', '--detailed-exitcode']);
      expect(after.code, after.output).toBe(0);
    });
  });
}
