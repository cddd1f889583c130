import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';

/** The kith version, from the package.json above this file (source tree or dist/). */
export function kithVersion(): string {
  let dir = import.meta.dirname;
  for (let i = 0; i < 4; i++) {
    const p = join(dir, 'package.json');
    if (existsSync(p)) {
      try {
        const pkg = JSON.parse(readFileSync(p, 'utf8')) as { name?: string; version?: string };
        if (pkg.name === 'kith' && pkg.version) return pkg.version;
      } catch {
        /* keep looking */
      }
    }
    dir = dirname(dir);
  }
  return 'unknown';
}
