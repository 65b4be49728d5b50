// Entry point: parse the command line with commander and hand over to a command module, loaded
// lazily so that each command pays only for what it uses.
import { Command } from 'commander';

const program = new Command('persist');
program.description('Keep a container workspace durable on object storage.').version('0.1.0');
await program.parseAsync(process.argv);
