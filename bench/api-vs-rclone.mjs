// The S3 API store (a bucket without a mount) against `rclone copy --transfers 16` of the same tree
// (2,000 files of 1-8 KiB + a 30 MiB file), first save and cold restore, on the strict loopback
// server in one run. Needs the helper bundled first:
//   npx esbuild test/helpers/s3server.ts --bundle --platform=node --format=esm --outfile=bench/.tmp-s3store/server.mjs --external:s3rver
// (inside the worktree so that s3rver resolves), then `npm run build && node bench/api-vs-rclone.mjs`.
import { execFileSync, spawnSync, spawn } from 'node:child_process';
import { mkdirSync, writeFileSync, rmSync, mkdtempSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { createRequire } from 'node:module';
const { startStrictS3Server } = await import('./.tmp-s3store/server.mjs');
const root = mkdtempSync('/tmp/persist-bench-');
const server = await startStrictS3Server(['bench-api', 'bench-rclone']);
const tree = join(root, 'tree');
for (let i = 0; i < 2000; i++) { mkdirSync(join(tree, `d${i % 20}`), { recursive: true }); writeFileSync(join(tree, `d${i % 20}`, `f${i}.txt`), randomBytes(1024 + ((i * 7919) % 7168))); }
writeFileSync(join(tree, 'big.bin'), randomBytes(30 * 1024 * 1024));
const run = (cmd, args, env) => new Promise((res) => { const t = Date.now(); const c = spawn(cmd, args, { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] }); let out=''; c.stdout.on('data', d => out += d); c.stderr.on('data', d => out += d); c.on('close', (code) => res({ code, ms: Date.now() - t, out })); });
const spec = (from) => `version: 1\nbuckets:\n  data:\n    name: bench-api\n    endpoint: ${server.endpoint}\n    region: us-east-1\n    provider: other\n    credentials: { accessKeyId: S3RVER, secretAccessKey: S3RVER }\nsyncs:\n  tree: { from: ${from}, to: tree }\n`;
writeFileSync(join(root, 'a.yaml'), spec(tree));
const bin = new URL('../bin/persist.js', import.meta.url).pathname;
const save = await run(process.execPath, [bin, 'apply', '--auto-approve', '-f', join(root, 'a.yaml')], { PERSIST_STATE_DIR: join(root, 'st-a') });
writeFileSync(join(root, 'b.yaml'), spec(join(root, 'restored')));
mkdirSync(join(root, 'st-b'), { recursive: true }); execFileSync('cp', [join(root, 'st-a', 'machine-id'), join(root, 'st-b', 'machine-id')]);
const restore = await run(process.execPath, [bin, 'apply', '--auto-approve', '-f', join(root, 'b.yaml')], { PERSIST_STATE_DIR: join(root, 'st-b') });
const renv = { RCLONE_CONFIG_S_TYPE: 's3', RCLONE_CONFIG_S_PROVIDER: 'Other', RCLONE_CONFIG_S_ENDPOINT: server.endpoint, RCLONE_CONFIG_S_ACCESS_KEY_ID: 'S3RVER', RCLONE_CONFIG_S_SECRET_ACCESS_KEY: 'S3RVER', RCLONE_CONFIG_S_FORCE_PATH_STYLE: 'true', RCLONE_CONFIG_S_REGION: 'us-east-1', AWS_CA_BUNDLE: '' };
delete process.env.AWS_CA_BUNDLE;
const rup = await run('rclone', ['copy', '--transfers', '16', tree, 's:bench-rclone/tree'], renv);
const rdown = await run('rclone', ['copy', '--transfers', '16', '--fast-list', 's:bench-rclone/tree', join(root, 'rclone-restored')], renv);
const diff = spawnSync('diff', ['-r', tree, join(root, 'restored')]).status;
const rdiff = spawnSync('diff', ['-r', tree, join(root, 'rclone-restored')]).status;
console.log(JSON.stringify({ persistSave: [save.code, save.ms], persistRestore: [restore.code, restore.ms, diff], rcloneUp: [rup.code, rup.ms], rcloneDown: [rdown.code, rdown.ms, rdiff], load: (await import('node:os')).loadavg() }));
if (save.code || restore.code) console.log(save.out.slice(-300), restore.out.slice(-800));
if (rup.code || rdown.code) console.log(rup.out.slice(-500), rdown.out.slice(-500));
await server.stop();
rmSync(root, { recursive: true, force: true });
