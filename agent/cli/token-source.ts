import { readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';

/** Where the CLI found its API token, for the one line that says so when the API refuses it. */
export interface TokenSource {
  token?: string;
  source: string;
}

/** `--token`, then `KITH_TOKEN`, then `~/.config/kith/token`, then `<KITH_DATA_DIR or /var/lib/kith>/admin.token` (SPEC §9). */
export function findToken(flag: string | undefined, env: NodeJS.ProcessEnv): TokenSource {
  if (flag) return { token: flag.trim(), source: '--token' };
  if (env.KITH_TOKEN) return { token: env.KITH_TOKEN.trim(), source: 'KITH_TOKEN' };
  const files = [join(env.HOME ?? homedir(), '.config', 'kith', 'token'), join(env.KITH_DATA_DIR ?? '/var/lib/kith', 'admin.token')];
  for (const file of files) {
    try {
      const token = readFileSync(file, 'utf8').trim();
      if (token) return { token, source: file };
    } catch {
      /* the next source */
    }
  }
  return { source: `no token (none of --token, KITH_TOKEN, ${files.join(', ')})` };
}
