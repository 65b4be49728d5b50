// Entry point: parse the command line with commander and hand over to a command module, loaded
// lazily so that each command pays only for what it uses. Errors are mapped to exit codes here.
import { Command, Option } from 'commander';
import { PathError, PersistError, SpecError, StoreError } from './errors.js';
import { errorMessage } from './output/format.js';
import type { CommandIO } from './commands/types.js';

const VERSION = '0.1.0';
/** The narrowest terminal a live task list is drawn on. */
const MIN_LIVE_COLUMNS = 20;

function makeIO(program: Command): CommandIO {
  const globals = program.opts<{ color: boolean; debug?: boolean }>();
  const isTTY = Boolean(process.stdout.isTTY);
  return {
    out: (text) => void process.stdout.write(text),
    err: (text) => void process.stderr.write(text),
    // A live task list redraws lines of the terminal's width: with none (0 columns), one line per action.
    isTTY: isTTY && (process.stdout.columns ?? 0) >= MIN_LIVE_COLUMNS,
    color: isTTY && globals.color !== false && !process.env.NO_COLOR,
    interactive: Boolean(process.stdin.isTTY && process.stdout.isTTY),
    env: process.env,
    cwd: process.cwd(),
    debug: Boolean(globals.debug),
  };
}

const collect = (value: string, previous: string[] = []) => [...previous, value];
const example = (text: string) => `\nExample:\n  ${text}\n`;

type CommandModule<O> = { default: (opts: O, io: CommandIO) => Promise<number> };

/**
 * A command's action: commander hands over its positional arguments, then the parsed options
 * (shaped by the option definitions above, which is what the command module's type describes);
 * `positional` names the positional arguments merged into the options.
 */
function action<O>(load: () => Promise<CommandModule<O>>, ...positional: string[]) {
  return async (...args: unknown[]) => {
    const io = makeIO(program);
    const module = await load();
    const options = { ...(args[positional.length] as object) } as Record<string, unknown>;
    positional.forEach((name, i) => (options[name] = args[i]));
    process.exitCode = await module.default(options as O, io);
  };
}

const program = new Command('persist');
program
  .description('Keep a throwaway container\'s workspace durable on object storage (S3, R2), declaratively.')
  .version(VERSION)
  .option('--no-color', 'plain output without colour (NO_COLOR works too)')
  .option('--debug', 'show stack traces of errors, and log every file, mount, clock and process call on stderr')
  .showHelpAfterError('(run with --help for usage)');

const fileOption = () => new Option('-f, --file <spec>', 'spec file (default: $PERSIST_SPEC, else ./persist.yaml)');
const envOption = () => new Option('--env <name>', 'environment (default: $ENVIRONMENT, else the spec\'s defaultEnvironment)');
const jsonOption = () => new Option('--json', 'print one JSON document');

program
  .command('validate')
  .description('check a spec: format, names, paths, claims and isolation across environments')
  .addOption(fileOption()).addOption(envOption()).addOption(jsonOption())
  .addHelpText('after', example('persist validate -f specs/moltbot.yaml --env production'))
  .action(action(() => import('./commands/validate.js')));

program
  .command('plan')
  .description('show the ordered actions that would make this machine match the spec (changes nothing)')
  .addOption(fileOption()).addOption(envOption()).addOption(jsonOption())
  .option('--out <planfile>', 'save the plan for `persist apply PLANFILE`')
  .option('--detailed-exitcode', 'exit 0 when there are no changes, 2 when there are, 1 on error')
  .option('--target <address>', 'limit to this resource and what it needs (repeatable)', collect)
  .option('--allow-shrink', 'let a sync push delete more than maxDeleteRatio of its mirror (and a bundle drop commits)')
  .option('--diff', 'show a unified diff of each changed text file a sync push would send (up to 64 KiB)')
  .option('--force-push', 'push over a newer generation another machine wrote (it stays in history: persist history, rollback)')
  .addHelpText('after', example('ENVIRONMENT=development persist plan -f specs/moltbot.yaml --out boot.plan'))
  .action(action(() => import('./commands/plan.js')));

program
  .command('apply')
  .description('carry out the plan: mount, restore, link, push')
  .argument('[planfile]', 'a plan saved by `persist plan --out`')
  .addOption(fileOption()).addOption(envOption()).addOption(jsonOption())
  .option('--auto-approve', 'do not ask for confirmation (needed when not on a terminal, unless a PLANFILE is given)')
  .option('--target <address>', 'limit to this resource and what it needs (repeatable)', collect)
  .option('--lock-timeout <duration>', 'wait this long for another apply to finish', '0')
  .option('--allow-shrink', 'let a sync push delete more than maxDeleteRatio of its mirror (and a bundle drop commits)')
  .option('--force-push', 'push over a newer generation another machine wrote (it stays in history: persist history, rollback)')
  .addHelpText('after', example('persist apply -f examples/quickstart.yaml --auto-approve'))
  .action(action(() => import('./commands/apply.js'), 'planFile'));

program
  .command('status')
  .description('report the health of every resource without changing anything')
  .addOption(fileOption()).addOption(envOption()).addOption(jsonOption())
  .addHelpText('after', example('persist status -f specs/moltbot.yaml --json'))
  .action(action(() => import('./commands/status.js')));

program
  .command('clean')
  .description("remove persist's own leftovers in the bucket (conflict copies, partial files, incomplete multipart uploads over an hour old), after listing them")
  .addOption(fileOption()).addOption(envOption())
  .option('--auto-approve', 'remove them without asking')
  .addHelpText('after', example('persist clean -f specs/moltbot.yaml --env production'))
  .action(action(() => import('./commands/clean.js')));

program
  .command('verify')
  .description('check every stored file of every sync and bundle against its manifest or header; exit 1 listing what is missing or damaged')
  .addOption(fileOption()).addOption(envOption()).addOption(jsonOption())
  .option('--hash', 'compare content too (reads every stored file), not only sizes')
  .addHelpText('after', example('persist verify -f specs/moltbot.yaml --hash'))
  .action(action(() => import('./commands/verify.js')));

program
  .command('watch')
  .description('plan every interval; with --auto-approve apply the safe actions, else report drift')
  .addOption(fileOption()).addOption(envOption())
  .requiredOption('--interval <duration>', 'time between plans, e.g. 5m')
  .option('--auto-approve', 'apply safe actions (mount, remount, create a missing link, push, restore into an empty place)')
  .option('--verify-every <rounds>', "every N rounds, check what is stored (verify's size check) and push again what is missing; 0: never", '12')
  .addHelpText('after', example('persist watch -f specs/moltbot.yaml --interval 5m --auto-approve'))
  .action(action(() => import('./commands/watch.js')));

program
  .command('shutdown')
  .description('before the container stops: push every sync, update every bundle, wait until the store holds everything, unmount')
  .addOption(fileOption()).addOption(envOption()).addOption(jsonOption())
  .option('--timeout <duration>', 'bound on the whole; past it, exit 1 naming what is not saved', '60s')
  .option('--keep-mounted', 'leave the mounts mounted')
  .addHelpText('after', example('persist shutdown -f specs/moltbot.yaml --timeout 50s'))
  .action(action(() => import('./commands/shutdown.js')));

program
  .command('history')
  .description('list, per sync and bundle, the generations kept in the store (who wrote each, when, files, bytes)')
  .addOption(fileOption()).addOption(envOption()).addOption(jsonOption())
  .option('--target <address>', 'only this sync or bundle (repeatable)', collect)
  .addHelpText('after', example('persist history -f specs/moltbot.yaml --target sync.clawdbot'))
  .action(action(() => import('./commands/history.js')));

program
  .command('rollback')
  .description("bring a sync's local folder or a bundle's repo back to an earlier generation (what is there kept aside, the store unchanged)")
  .argument('<address>', 'the sync or bundle, e.g. sync.clawdbot or bundle.clawd')
  .requiredOption('--to <generation>', 'the generation to bring back (persist history lists them)')
  .addOption(fileOption()).addOption(envOption()).addOption(jsonOption())
  .option('--auto-approve', 'do not ask for confirmation (needed when not on a terminal)')
  .addHelpText('after', example('persist rollback sync.clawdbot --to 3'))
  .action(action(() => import('./commands/rollback.js'), 'address'));

program
  .command('detach')
  .description('turn linked folders back into local folders (copied from the mount, verified; nothing deleted in the bucket)')
  .addOption(fileOption()).addOption(envOption())
  .option('--target <address>', 'only this link (repeatable)', collect)
  .option('--auto-approve', 'do not ask for confirmation (needed when not on a terminal)')
  .addHelpText('after', example('persist detach --target link.memory'))
  .action(action(() => import('./commands/detach.js')));

program
  .command('init')
  .description('write a commented starter persist.yaml (local backend)')
  .option('-f, --file <spec>', 'where to write it', 'persist.yaml')
  .option('--force', 'overwrite an existing file')
  .addHelpText('after', example('persist init && persist plan'))
  .action(action(() => import('./commands/init.js')));

program
  .command('doctor')
  .description('check FUSE, backend binaries, credentials, the endpoint and the mount path')
  .addOption(fileOption()).addOption(envOption()).addOption(jsonOption())
  .addHelpText('after', example('persist doctor -f specs/moltbot.yaml --env production'))
  .action(action(() => import('./commands/doctor.js')));

program
  .command('schema')
  .description('print the JSON Schema of the spec format')
  .addHelpText('after', example('persist schema > persist.schema.json'))
  .action(action(() => import('./commands/schema.js')));

/** Parse and run; map errors to one line and an exit code (a stack trace only with --debug). */
export async function main(argv: string[]): Promise<void> {
  // Node exits, with code 0, once nothing is left to wait for, even while a command still awaits
  // a promise nothing can settle (a stalled stream, say): that must not pass for success.
  const stalled = (): void => {
    process.stderr.write('persist: internal error: the command stopped before it finished (it waited for something that can no longer happen); nothing after that point was done\n');
    process.exitCode = 1;
  };
  process.once('beforeExit', stalled);
  try {
    await program.parseAsync(argv);
  } catch (error) {
    const debug = argv.includes('--debug');
    if (error instanceof SpecError) {
      process.stderr.write(`${error.message}\n`);
    } else if (error instanceof StoreError || error instanceof PathError) {
      process.stderr.write(`persist: ${error.message}\n${error.fix}\n`);
    } else if (error instanceof PersistError) {
      process.stderr.write(`persist: ${error.message}\n`);
    } else {
      process.stderr.write(`persist: internal error: ${errorMessage(error)}\n${debug ? '' : '(run with --debug for details)\n'}`);
    }
    if (debug && error instanceof Error && error.stack) process.stderr.write(`${error.stack}\n`);
    process.exitCode = 1; // every error exits 1; only plan --detailed-exitcode returns 2, and not by throwing
  } finally {
    process.off('beforeExit', stalled);
  }
}
