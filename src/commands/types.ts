// What every command receives: parsed options plus its input/output. Commands are thin: they
// parse options, call the core, print through the output helpers and return an exit code.
export interface CommandIO {
  out(text: string): void;
  err(text: string): void;
  /** Standard output is a terminal wide enough for a live task list (a terminal of no size, as `script` gives, is not). */
  isTTY: boolean;
  /** Colour on (terminal, no --no-color, no NO_COLOR). */
  color: boolean;
  /** Standard input is a terminal (prompts allowed). */
  interactive: boolean;
  env: Record<string, string | undefined>;
  cwd: string;
  debug: boolean;
}

/** Options shared by commands that read a spec. */
export interface SpecOptions {
  file?: string;
  env?: string;
  json?: boolean;
}
