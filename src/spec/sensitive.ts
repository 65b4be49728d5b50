// A secret read from the spec. It never turns into its value by accident: printing, string
// interpolation and JSON all give `(sensitive)`. Only `reveal()` gives the value, at the single
// place where it is handed to a backend (a 0600 file or a child's environment).
import { inspect } from 'node:util';

export const SENSITIVE_TEXT = '(sensitive)';

export class Sensitive {
  readonly #value: string;
  constructor(value: string) {
    this.#value = value;
  }
  reveal(): string {
    return this.#value;
  }
  toString(): string {
    return SENSITIVE_TEXT;
  }
  toJSON(): string {
    return SENSITIVE_TEXT;
  }
  [inspect.custom](): string {
    return SENSITIVE_TEXT;
  }
}
