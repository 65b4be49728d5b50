#!/usr/bin/env node
// Puts `persist` on PATH from a clone: a symlink PREFIX/bin/persist -> <clone>/bin/persist.js
// (offline; no registry, no copy: a `git pull && npm ci` in the clone updates the command).
//
//   npm run install-cli                       # PREFIX: $PREFIX, else /usr/local when writable, else ~/.local
//   npm run install-cli -- --prefix DIR       # DIR/bin/persist
//   npm run install-cli -- --uninstall [--prefix DIR]
//
// An existing PREFIX/bin/persist that is not a link to a persist launcher is left alone (error).
import { accessSync, constants, existsSync, lstatSync, mkdirSync, readlinkSync, symlinkSync, unlinkSync } from 'node:fs';
import { homedir } from 'node:os';
import { delimiter, dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const launcher = resolve(dirname(fileURLToPath(import.meta.url)), '..', 'bin', 'persist.js');
const args = process.argv.slice(2);
let prefix = process.env.PREFIX || null;
let uninstall = false;
for (let i = 0; i < args.length; i++) {
  if (args[i] === '--prefix' && args[i + 1]) prefix = args[++i];
  else if (args[i] === '--uninstall') uninstall = true;
  else fail(`unknown argument ${args[i]} (expected --prefix DIR or --uninstall)`);
}

function fail(message) {
  process.stderr.write(`install-cli: ${message}\n`);
  process.exit(1);
}

function writable(folder) {
  try {
    accessSync(existsSync(folder) ? folder : dirname(folder), constants.W_OK);
    return true;
  } catch {
    return false;
  }
}

if (!prefix) prefix = writable('/usr/local/bin') ? '/usr/local' : join(homedir(), '.local');
const binDir = resolve(prefix, 'bin');
const target = join(binDir, 'persist');

let existing = null;
try {
  existing = lstatSync(target);
} catch {
  // nothing there yet
}
const ours = existing?.isSymbolicLink() && readlinkSync(target).endsWith(join('bin', 'persist.js'));
if (existing && !ours) fail(`${target} exists and is not a link to a persist launcher; move it away first`);

if (uninstall) {
  if (existing) unlinkSync(target);
  process.stdout.write(existing ? `install-cli: removed ${target}\n` : `install-cli: ${target} was not installed\n`);
  process.exit(0);
}
if (!existsSync(join(dirname(launcher), '..', 'dist', 'persist.cjs'))) fail('dist/persist.cjs is missing; run `npm ci` (or `npm run build`) in the clone first');
mkdirSync(binDir, { recursive: true });
if (existing) unlinkSync(target);
try {
  symlinkSync(launcher, target);
} catch (error) {
  fail(`cannot write ${target} (${error.code ?? error.message}); pass --prefix DIR (e.g. --prefix ~/.local) or run as root`);
}
const onPath = (process.env.PATH ?? '').split(delimiter).some((dir) => resolve(dir) === binDir);
process.stdout.write(`install-cli: ${target} -> ${launcher}\n`);
if (!onPath) process.stdout.write(`install-cli: ${binDir} is not on PATH; add it: export PATH="${binDir}:$PATH"\n`);
