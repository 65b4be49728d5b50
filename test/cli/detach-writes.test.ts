// `persist detach` while the agent goes on writing through the link: every file a real writer
// process (another node) managed to write during the detach is in the local folder afterwards, or
// named in the output as left in the mount. Before the last pass, the files written while the
// mount was copied stayed in the mount only and detach said "copied and verified", exit 0 (QA).
import { spawn } from 'node:child_process';
import { existsSync, lstatSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it, onTestFinished } from 'vitest';
import { converge, makeFixture, sleep, until } from './helpers.js';

/** A node process creating `new-<i>.txt` in `folder` every `everyMs`, logging each name once its write returned. */
function startWriter(folder: string, log: string, stop: string, everyMs: number) {
  const code = `
    const fs = require('node:fs');
    const [folder, log, stop, every] = process.argv.slice(1);
    let i = 0;
    const tick = () => {
      if (fs.existsSync(stop)) process.exit(0);
      i++;
      const name = 'new-' + i + '.txt';
      try {
        fs.writeFileSync(folder + '/' + name, 'written ' + i + '\\n');
        fs.appendFileSync(log, name + '\\n');
      } catch {}
      setTimeout(tick, Number(every));
    };
    tick();
  `;
  const child = spawn(process.execPath, ['-e', code, folder, log, stop, String(everyMs)], { stdio: 'ignore' });
  onTestFinished(() => {
    if (child.exitCode === null) child.kill('SIGKILL');
  });
  return new Promise<void>((resolve) => child.on('exit', () => resolve()));
}

describe('persist detach while the agent writes', () => {
  it('every file written through the link during the detach ends in the local folder (or is named)', async () => {
    const f = makeFixture({ links: ['memory'] });
    await converge(f);
    const mount = f.target('memory');
    mkdirSync(join(mount, 'old'), { recursive: true });
    for (let i = 0; i < 3000; i++) writeFileSync(join(mount, 'old', `n${i}.txt`), `note ${i}\n`);
    const log = join(f.dir, 'writer.log');
    const stop = join(f.dir, 'writer.stop');
    writeFileSync(log, '');
    const writer = startWriter(f.link('memory'), log, stop, 10);
    await until(() => readFileSync(log, 'utf8').split('\n').length > 20, 'the writer to start');

    const done = await f.run(['detach', '--auto-approve'], { timeoutMs: 120_000 });
    await sleep(200); // the writer goes on after the swap: those files land in the local folder
    writeFileSync(stop, '');
    await writer;

    expect(done.stderr).toBe('');
    expect(lstatSync(f.link('memory')).isDirectory()).toBe(true);
    const written = readFileSync(log, 'utf8').split('\n').filter(Boolean);
    expect(written.length).toBeGreaterThan(30);
    const missing = written.filter((name) => !existsSync(join(f.link('memory'), name)) && !done.stdout.includes(name));
    expect(missing).toEqual([]);
    for (const name of written) {
      if (existsSync(join(f.link('memory'), name))) expect(readFileSync(join(f.link('memory'), name), 'utf8')).toBe(`written ${name.slice(4, -4)}\n`);
    }
    expect(readFileSync(join(f.link('memory'), 'old', 'n2999.txt'), 'utf8')).toBe('note 2999\n');
    // The output says what the last pass took (the writer wrote during the copy, so not nothing).
    const lastPass = /link\.memory: last pass: ([\d,]+) files? written through the link during the copy (?:was|were) copied too/.exec(done.stdout);
    expect(lastPass, done.stdout).not.toBeNull();
    expect(Number(lastPass![1]!.replace(/,/g, ''))).toBeGreaterThan(0);
    if (done.code !== 0) expect(done.stdout).toMatch(/^warning: link\.memory: .* left in /m);
  }, 180_000);

  it('without a writer, the last pass takes nothing and the exit is 0', async () => {
    const f = makeFixture({ links: ['memory'] });
    await converge(f);
    writeFileSync(join(f.link('memory'), 'note.md'), 'remember\n');
    const done = await f.run(['detach', '--auto-approve']);
    expect(done.code).toBe(0);
    expect(done.stdout).toMatch(/link\.memory: detached: .* \(1 file, .* copied and verified\)/);
    expect(done.stdout).toContain('link.memory: last pass: 0 files written through the link during the copy were copied too');
    expect(readFileSync(join(f.link('memory'), 'note.md'), 'utf8')).toBe('remember\n');
  }, 60_000);
});
