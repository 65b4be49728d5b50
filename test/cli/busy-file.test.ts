// A synced file the agent rewrites without pause (found by test/e2e/kill-under-watch.test.ts: a
// JSON rewritten every ~100 ms by truncate + write was never pushed, push after push, because every
// read of it came within the settle window of its last change). A push must store a whole version
// of it, and still never a half-written one.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { makeFixture } from './helpers.js';

const children: ChildProcess[] = [];
afterEach(() => {
  for (const child of children.splice(0)) child.kill('SIGKILL');
});

/** `{"n":N,"pad":"xxx..."}`: sizes vary, so a torn copy shows. */
const body = (n: number) => `${JSON.stringify({ n, pad: 'x'.repeat((n * 37) % 900) })}\n`;

function writer(file: string, script: string): void {
  const child = spawn(process.execPath, ['-e', `const fs=require('fs');const file=${JSON.stringify(file)};const body=${body.toString()};${script}`], { stdio: 'ignore' });
  children.push(child);
}

function stored(bucket: string): { n: number; text: string } {
  const text = readFileSync(join(bucket, 'state', 'settings.json'), 'utf8');
  const n = (JSON.parse(text) as { n: number }).n;
  return { n, text };
}

describe('a synced file the agent rewrites without pause', () => {
  it('rewritten every 60 ms (truncate + write + close): each push stores a whole, newer version', async () => {
    const f = makeFixture({ sync: true });
    const file = join(f.dir, 'state', 'settings.json');
    writer(file, 'let n=1;fs.writeFileSync(file,body(0));setInterval(()=>fs.writeFileSync(file,body(n++)),60);');
    await new Promise((resolve) => setTimeout(resolve, 300));
    let last = -1;
    for (let push = 1; push <= 3; push++) {
      const result = await f.run(['apply', '--auto-approve']);
      expect(result.code, result.stdout + result.stderr).toBe(0);
      expect(result.stdout).not.toMatch(/changed at every read/);
      const { n, text } = stored(f.bucket);
      expect(text).toBe(body(n));
      expect(n, `push ${push} stored a newer version`).toBeGreaterThan(last);
      last = n;
      await new Promise((resolve) => setTimeout(resolve, 300));
    }
  });

  it('written in two parts with the file held open 400 ms in between: the half-written state is never stored', async () => {
    const f = makeFixture({ sync: true });
    const file = join(f.dir, 'state', 'settings.json');
    // The first 8 bytes, then 400 ms with the file open (longer than any settle time), then the
    // rest; closed for 300 ms; again. Before, a read in the pause stored the 8 bytes.
    writer(
      file,
      'let n=1;fs.writeFileSync(file,body(0));const sleep=(ms)=>Atomics.wait(new Int32Array(new SharedArrayBuffer(4)),0,0,ms);' +
        'for(;;){const text=body(n++);const fd=fs.openSync(file,"w");fs.writeSync(fd,text.slice(0,8));sleep(400);fs.writeSync(fd,text.slice(8));fs.closeSync(fd);sleep(300);}',
    );
    await new Promise((resolve) => setTimeout(resolve, 300));
    let storedOnce = false;
    for (let push = 1; push <= 4; push++) {
      const result = await f.run(['apply', '--auto-approve']);
      expect(result.code, result.stdout + result.stderr).toBe(0);
      if (!existsSync(join(f.bucket, 'state', 'settings.json'))) {
        // Not stored yet, and said so: the next push tries again.
        expect(result.stdout).toMatch(/changed at every read and was not stored/);
        continue;
      }
      const { n, text } = stored(f.bucket);
      expect(text, `push ${push}`).toBe(body(n));
      storedOnce = true;
    }
    expect(storedOnce, 'a whole version was stored by one of the pushes').toBe(true);
  });
});
