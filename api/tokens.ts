import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { z } from 'zod';

/**
 * API tokens (SPEC §9) as data: a secret of 256 random bits, shown once;
 * etcd keeps only its SHA-256 hash (a fast hash suits a secret this long, no
 * slow KDF is needed), with the token's name, role, expiry and creator.
 */

export const TOKEN_ROLES = ['view', 'edit', 'admin'] as const;
export type TokenRole = (typeof TOKEN_ROLES)[number];
const RANK: Record<TokenRole, number> = { view: 0, edit: 1, admin: 2 };

/** The tokens workers make for pods (SPEC §9): `pod.<pod name>`, deleted with the pod. */
export const POD_TOKEN_PREFIX = 'pod.';
export const podTokenName = (pod: string): string => `${POD_TOKEN_PREFIX}${pod}`;

/** Every secret starts so, for secret scanners and people. */
export const SECRET_PREFIX = 'kith_';
/** Longer Authorization headers are refused unread. */
export const MAX_AUTHORIZATION = 512;

export const tokenName = z
  .string()
  .regex(/^[a-z0-9]([a-z0-9.-]{0,61}[a-z0-9])?$/, 'must be lowercase letters, digits, dots and hyphens, at most 63, starting and ending with a letter or digit');

/** A token as stored at `token/<name>`. */
export const storedToken = z.object({
  name: tokenName,
  role: z.enum(TOKEN_ROLES),
  hash: z.string().regex(/^[0-9a-f]{64}$/),
  createdBy: z.string(),
  createdAt: z.string(),
  expiresAt: z.string().optional(),
});
export type StoredToken = z.infer<typeof storedToken>;

/** A token as the API shows it: never the secret, never the hash. */
export type TokenInfo = Omit<StoredToken, 'hash'>;
export const tokenInfo = ({ hash: _h, ...info }: StoredToken): TokenInfo => info;

/** `90`, `90s`, `10m`, `2h`, `7d` as seconds. */
export function parseDuration(s: string): number | undefined {
  const m = /^(\d{1,9})([smhd]?)$/.exec(s.trim());
  if (!m) return undefined;
  const n = Number(m[1]) * { '': 1, s: 1, m: 60, h: 3600, d: 86400 }[m[2] as '' | 's' | 'm' | 'h' | 'd'];
  return n > 0 && n <= 10 * 365 * 86400 ? n : undefined;
}

/** The body of `POST /tokens`. */
export const tokenRequest = z
  .object({
    // `pod.<pod>` names the token a worker makes for a pod (podTokenName): never one made over the API.
    name: tokenName.refine((n) => !n.startsWith(POD_TOKEN_PREFIX), `must not start with '${'pod.'}': those are pods' own tokens`).optional(),
    role: z.enum(TOKEN_ROLES),
    ttl: z
      .union([z.string(), z.number().int()])
      .optional()
      .refine((v) => v === undefined || parseDuration(String(v)) !== undefined, 'must be a duration such as 3600, 90s, 10m, 2h or 7d (at most 10 years)'),
  })
  .strict();
export type TokenRequest = z.infer<typeof tokenRequest>;

export const newSecret = (): string => SECRET_PREFIX + randomBytes(32).toString('base64url');
export const hashSecret = (secret: string): string => createHash('sha256').update(secret).digest('hex');

/** The token to store for a request, with its secret (returned once). */
export function makeToken(req: TokenRequest, createdBy: string, now = Date.now()): { secret: string; token: StoredToken } {
  const secret = newSecret();
  const ttl = req.ttl === undefined ? undefined : parseDuration(String(req.ttl));
  const token: StoredToken = {
    name: req.name ?? `token-${randomBytes(3).toString('hex')}`,
    role: req.role,
    hash: hashSecret(secret),
    createdBy,
    createdAt: new Date(now).toISOString(),
    ...(ttl === undefined ? {} : { expiresAt: new Date(now + ttl * 1000).toISOString() }),
  };
  return { secret, token };
}

export const expired = (t: StoredToken, now = Date.now()): boolean => t.expiresAt !== undefined && Date.parse(t.expiresAt) <= now;

export const allows = (have: TokenRole, need: TokenRole): boolean => RANK[have] >= RANK[need];

/** The dashboard's page and assets (api/ui/): open, as they hold no data; the page asks for a token itself. */
export const isDashboardPath = (path: string): boolean => path === '/ui' || path.startsWith('/ui/');

/** The role a request needs, or undefined for the open probes and the dashboard's page. */
export function requiredRole(method: string, path: string): TokenRole | undefined {
  if (path === '/healthz' || path === '/readyz' || isDashboardPath(path)) return undefined;
  if (path === '/tokens' || path.startsWith('/tokens/')) return 'admin';
  if (method === 'GET' || method === 'HEAD' || method === 'OPTIONS') return 'view';
  return 'edit';
}

/** The secret of `Authorization: Bearer <secret>`: undefined when absent, 'malformed' when not that shape. */
export function bearer(header: string | undefined): string | undefined | 'malformed' {
  if (header === undefined || header === '') return undefined;
  if (header.length > MAX_AUTHORIZATION) return 'malformed';
  const m = /^Bearer +([A-Za-z0-9._~+/-]+=*) *$/i.exec(header);
  return m ? m[1]! : 'malformed';
}

/** Hashes compared in constant time (a map lookup found the candidate). */
export function sameHash(a: string, b: string): boolean {
  const x = Buffer.from(a, 'hex');
  const y = Buffer.from(b, 'hex');
  return x.length === y.length && timingSafeEqual(x, y);
}
