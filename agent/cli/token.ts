import { ApiClient } from './http.js';
import { UsageError } from './run.js';
import { data, table } from './table.js';
import type { Io, Values } from './io.js';

/**
 * `kith token create|list|delete` (SPEC §9), through `/tokens` (an admin
 * token's routes). `create` prints the secret once, on its own line, so that
 * `kith token create --role view > file` keeps just the secret.
 */


export const TOKEN_ARGS = 'create --role view|edit|admin [--name N] [--ttl D] | list | delete NAME';
export const TOKEN_OPTIONS = {
  role: { type: 'string' },
  name: { type: 'string' },
  ttl: { type: 'string' },
} as const;

interface TokenInfo {
  name: string;
  role: string;
  createdBy?: string;
  createdAt?: string;
  expiresAt?: string;
}

export async function runToken(io: Io, values: Values, pos: string[]): Promise<number> {
  const [verb, ...rest] = pos;
  const str = (k: string) => (typeof values[k] === 'string' ? (values[k] as string) : undefined);
  if (verb === 'create') {
    if (rest.length > 0) throw new UsageError(`token create takes no arguments, got '${rest[0]}'`);
    const role = str('role');
    if (!role) throw new UsageError('token create needs --role view|edit|admin');
    const body = { role, ...(str('name') ? { name: str('name') } : {}), ...(str('ttl') ? { ttl: str('ttl') } : {}) };
    const made = (await io.api.request('POST', '/tokens', body)).body as TokenInfo & { token: string };
    if (io.format === 'table') {
      io.err(`token ${made.name} (${made.role}${made.expiresAt ? `, expires ${made.expiresAt}` : ''}); the secret is shown only now:\n`);
      io.out(`${made.token}\n`);
    } else io.out(data(made, io.format));
    return 0;
  }
  if (verb === 'list') {
    if (rest.length > 0) throw new UsageError(`token list takes no arguments, got '${rest[0]}'`);
    const list = (await io.api.request('GET', '/tokens')).body as TokenInfo[];
    if (io.format !== 'table') io.out(data(list, io.format));
    else io.out(table(['NAME', 'ROLE', 'CREATED BY', 'CREATED', 'EXPIRES'], list.map((t) => [t.name, t.role, t.createdBy ?? '', t.createdAt ?? '', t.expiresAt ?? 'never'])));
    return 0;
  }
  if (verb === 'delete') {
    if (rest.length !== 1) throw new UsageError('usage: kith token delete NAME');
    await io.api.request('DELETE', ApiClient.path('tokens', rest[0]!));
    if (io.format === 'table') io.out(`token/${rest[0]} deleted\n`);
    return 0;
  }
  throw new UsageError(verb ? `token: no such command '${verb}' (create, list, delete)` : 'usage: kith token create|list|delete');
}
