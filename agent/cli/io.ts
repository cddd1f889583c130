import type { ApiClient } from './http.js';
import type { Format } from './table.js';

/** What a `kith` client command is given: the API, the output format, the cluster domain, stdout and stderr. */
export interface Io {
  api: ApiClient;
  format: Format;
  domain: string;
  out(s: string): void;
  err(s: string): void;
  /** stdout is a terminal: long waits may redraw one progress line instead of printing a line per step. */
  tty?: boolean;
}

/** A command's parsed flags, as node:util parseArgs gives them. */
export type Values = Record<string, string | boolean | string[] | undefined>;

/**
 * One line of progress for a long wait: on a terminal it is redrawn in place
 * (cleared to its end); elsewhere a line is printed each time it changes.
 */
export class Progress {
  private last = '';
  private open = false;

  constructor(private readonly io: Io, private readonly write: (s: string) => void = io.out) {}

  show(line: string): void {
    if (line === this.last) return;
    this.last = line;
    if (this.io.tty) {
      this.write(`\r${line}\x1b[K`);
      this.open = true;
    } else this.write(`${line}\n`);
  }

  /** Ends a redrawn line, so what follows starts on a line of its own. */
  done(): void {
    if (this.open) this.write('\n');
    this.open = false;
  }
}
