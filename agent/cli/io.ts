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
