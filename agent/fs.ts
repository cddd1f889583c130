import { mkdirSync } from 'node:fs';
import { dirname, resolve } from 'node:path';

/**
 * `mkdir -p`, one level at a time. Node 20's `mkdirSync(path, { recursive: true })`
 * spins for ever on some paths (under /proc it keeps getting ENOENT and
 * trying again), so a bad `--data-dir` would stall the agent instead of
 * failing with its error.
 */
export function makeDirs(path: string, mode?: number): void {
  const full = resolve(path);
  const missing: string[] = [];
  // Bounded by the path's depth.
  for (let p = full; ; p = dirname(p)) {
    try {
      mkdirSync(p, mode === undefined ? undefined : { mode });
      break;
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'EEXIST') break;
      if (code !== 'ENOENT' || dirname(p) === p) throw err;
      missing.push(p);
    }
  }
  for (const p of missing.reverse()) {
    try {
      mkdirSync(p, mode === undefined ? undefined : { mode });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
  }
}
