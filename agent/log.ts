import { pino, type Logger } from 'pino';

/** JSON lines on stdout (SPEC §1.1 `--log-level`). */
export function createLogger(level: string, name: string): Logger {
  return pino({ level, base: { node: name }, timestamp: pino.stdTimeFunctions.isoTime });
}
