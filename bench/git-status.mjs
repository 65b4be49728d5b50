// Why git stays on local disk: `git status` in the managed workspace (repo on local disk, its
// data folders memory/config/logs symlinked into an s3fs mount by `persist apply`) against the
// same repo copied INTO the s3fs mount, both served by s3rver on loopback, interleaved in one run
// with `node -e 0` as a reference. Usage: node bench/git-status.mjs [rounds] [files]
import { execFileSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { interleave, row } from './lib.mjs';
import { fillerText, inSandbox, makeRepo, persistEnv, runPersist, s3fsBucketYaml, skipUnlessFuse, startS3rver, track } from './s3.mjs';

skipUnlessFuse('git-status');

const rounds = Number(process.argv[2] ?? 10);
const fileCount = Number(process.argv[3] ?? 2000);
const node = process.execPath;

await inSandbox('persist-bench-git-', async (dir) => {
  const mountPath = join(dir, 'mnt');
  const server = await startS3rver(['bench-git']);

  // The agent's repo is its workspace; the data folders are links into the bucket, ignored by git.
  const workspace = join(dir, 'workspace');
  const paths = makeRepo(workspace, fileCount);
  writeFileSync(join(workspace, '.gitignore'), '/memory\n/config\n/logs\n');
  execFileSync('git', ['-C', workspace, '-c', 'user.name=b', '-c', 'user.email=b@b', 'add', '.gitignore']);
  execFileSync('git', ['-C', workspace, '-c', 'user.name=b', '-c', 'user.email=b@b', 'commit', '-qm', 'ignore data folders']);
  writeFileSync(paths[7], fillerText(7, 3000)); // a modified file and an untracked one, as mid-session
  writeFileSync(join(workspace, 'NOTES.md'), 'work in progress\n');

  const spec = join(dir, 'persist.yaml');
  writeFileSync(
    spec,
    `version: 1
workspace: ./workspace
${s3fsBucketYaml(server, 'bench-git', mountPath)}links:
  memory: workspace/memory
  config: workspace/config
  logs: workspace/logs
`,
  );
  const env = persistEnv(join(dir, 'state'));
  track(mountPath);
  runPersist(['apply', '-f', spec, '--auto-approve'], env);
  for (const name of ['memory', 'config', 'logs']) {
    for (let i = 0; i < 30; i++) writeFileSync(join(workspace, name, `${name}-${i}.md`), fillerText(i, 1500));
  }

  // Case B: the same repo (work tree, .git, links) inside the mount.
  const inMount = join(mountPath, 'repo-in-mount');
  mkdirSync(inMount);
  const copyStart = Date.now();
  execFileSync('cp', ['-r', `${workspace}/.`, inMount]);
  const copySeconds = (Date.now() - copyStart) / 1000;
  execFileSync('git', ['-C', inMount, 'status'], { stdio: 'pipe' }); // refreshes the copied index once

  const gitStatus = (cwd) => ({ command: 'git', args: ['-C', cwd, 'status'], options: { expectStatus: 0 } });
  const results = interleave(
    [
      { name: 'node -e 0', command: node, args: ['-e', '0'] },
      { name: 'A', ...gitStatus(workspace) },
      { name: 'B', ...gitStatus(inMount) },
    ],
    rounds,
  );
  const a = results.A;
  const b = results.B;
  console.log(`git status, ${fileCount + 1} tracked files in nested folders, 6 commits (packed), 1 modified + 1 untracked;`);
  console.log(`median of ${rounds} interleaved runs; s3fs 1.90 -> s3rver on loopback (copying the repo into the mount took ${copySeconds.toFixed(1)} s)`);
  console.log('ratios are relative to A');
  console.log(row('node -e 0 (reference)', results['node -e 0'], a));
  console.log(row('A: repo on local disk, data linked to s3fs', a, a));
  console.log(row('B: repo inside the s3fs mount', b, a));
  console.log(`B/A: ${(b / a).toFixed(1)}x slower with the repo on s3fs`);
});
