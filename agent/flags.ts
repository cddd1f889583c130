import { z } from 'zod';
import { nodeName } from '../api/schemas.js';
import { parseHostPort, type HostPort } from './address.js';
import { parseCidr, isIPv4 } from './ipv4.js';

/**
 * The flags of `kith agent`: how a flag is declared, and the agent's own
 * (SPEC §1.1). Each plugin declares its flags the same way in its folder's
 * `flags.ts`; the core merges them (agent/config.ts) and knows none of them.
 */

export interface Flag {
  /** The flag without its dashes, e.g. `pod-network`. */
  readonly flag: string;
  /** Validates (and converts) the string given; an optional schema for a flag without a default. */
  readonly schema: z.ZodType;
  readonly env?: string;
  /** The default, as it would be typed. */
  readonly default?: string;
  /** A default derived from the node's name when neither the flag nor its env is given. */
  readonly defaultFromName?: (name: string) => string;
  /** One line for `kith agent --help`. */
  readonly help: string;
  /** A switch: `--flag` alone means `true` (its env takes true/false, 1/0, yes/no). */
  readonly boolean?: true;
}

/** Flags by config key. */
export type FlagSet = Readonly<Record<string, Flag>>;

/** The config values a flag set gives. */
export type FlagValues<F extends FlagSet> = { -readonly [K in keyof F]: z.output<F[K]['schema']> };

/** Checks across the flags of a set, after each flag has parsed: the key of the flag at fault and why. */
export type CrossCheck<F extends FlagSet> = (values: FlagValues<F>) => { key: keyof F & string; message: string } | undefined;

export interface FlagGroup<F extends FlagSet = FlagSet> {
  /** Names the group in `--help`: `agent` or a plugin's name. */
  readonly title: string;
  readonly flags: F;
  /** Checks across the flags of the group, after each has parsed (a method, so any group is a FlagGroup). */
  check?(values: FlagValues<F>): ReturnType<CrossCheck<F>>;
}

/** Declares a group of flags, keeping their types. */
export const defineFlags = <const F extends FlagSet>(title: string, flags: F, check?: CrossCheck<F>): FlagGroup<F> => ({ title, flags, check });

// ---- value schemas shared by flags ---------------------------------------------------

/** A comma list of `item`, blanks dropped. */
export const list = <T extends z.ZodType<unknown, string>>(item: T) =>
  z.string().transform((s) => s.split(',').map((x) => x.trim()).filter(Boolean)).pipe(z.array(item));

export const hostPort = z.string().transform((s, ctx): HostPort => {
  const hp = parseHostPort(s);
  if (!hp) {
    ctx.addIssue({ code: 'custom', message: `'${s}' is not an IPv4 addr:port` });
    return z.NEVER;
  }
  return hp;
});

/** The value of a switch (`boolean: true`), from its flag or its env. */
export const switchValue = z
  .string()
  .transform((s) => s.trim().toLowerCase())
  .pipe(z.enum(['true', 'false', '1', '0', 'yes', 'no', ''], 'must be true or false (or 1/0, yes/no)'))
  .transform((s) => s === 'true' || s === '1' || s === 'yes');

export const ipv4 = z.string().refine((s) => isIPv4(s), 'must be an IPv4 address');
export const cidr = z.string().refine((s) => parseCidr(s) !== undefined, 'must be an IPv4 CIDR like 10.244.0.0/16');
export const seconds = z.coerce.number().int().min(1).max(86400);
/** Milliseconds of a period or back-off: at least 1. */
export const millis = z.coerce.number().int().min(1).max(3_600_000);

// ---- the agent's own flags -------------------------------------------------------------

export const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'] as const;

export const coreFlags = defineFlags(
  'agent',
  {
    name: { flag: 'name', schema: nodeName, env: 'KITH_NAME', help: 'node name, a lowercase DNS label of at most 28 characters (random and remembered in the data dir when not given)' },
    plugins: { flag: 'plugins', schema: z.string(), env: 'KITH_PLUGINS', default: 'all', help: 'comma list of dns,api,scheduler,worker,reaper,replicaset, or all' },
    etcdEndpoints: { flag: 'etcd-endpoints', schema: list(z.string().url()).optional(), env: 'KITH_ETCD_ENDPOINTS', help: 'comma list of etcd URLs; none: start and own an embedded etcd' },
    etcdCa: { flag: 'etcd-ca', schema: z.string().min(1).optional(), env: 'KITH_ETCD_CA', help: "CA certificate (PEM) that etcd's server certificate is checked against: TLS to https:// endpoints" },
    etcdCert: { flag: 'etcd-cert', schema: z.string().min(1).optional(), env: 'KITH_ETCD_CERT', help: 'client certificate (PEM) for etcd, with --etcd-key' },
    etcdKey: { flag: 'etcd-key', schema: z.string().min(1).optional(), env: 'KITH_ETCD_KEY', help: "the client certificate's private key (PEM)" },
    etcdPrefix: {
      flag: 'etcd-prefix',
      schema: z.string().regex(/^\/[^\s]*[^/\s]$|^\/$/, 'must start with / and not end with /'),
      env: 'KITH_ETCD_PREFIX',
      default: '/kith',
      help: 'root of every key',
    },
    dataDir: { flag: 'data-dir', schema: z.string().min(1), env: 'KITH_DATA_DIR', default: '/var/lib/kith', help: 'local state: the node name, the embedded etcd' },
    clusterDomain: {
      flag: 'cluster-domain',
      schema: z
        .string()
        .regex(/^([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)*[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/, 'must be a lowercase domain name without a trailing dot'),
      default: 'cluster.local',
      help: 'the cluster zone',
    },
    clusterAddress: { flag: 'cluster-address', schema: ipv4.optional(), help: "IPv4 that pods use to reach this agent (DNS :53, API :80); the pod network's gateway when worker runs" },
    clusterCidr: { flag: 'cluster-cidr', schema: cidr, default: '10.244.0.0/16', help: 'pod address space; each worker claims a free /24 of it' },
    podSubnet: { flag: 'pod-subnet', schema: cidr.optional(), help: "this worker's fixed pod subnet instead of a claimed /24" },
    healthyTtl: { flag: 'healthy-ttl', schema: seconds, default: '30', help: 'healthy heartbeat lease TTL, seconds' },
    aliveTtl: { flag: 'alive-ttl', schema: seconds, default: '300', help: 'alive heartbeat lease TTL, seconds' },
    eventTtl: { flag: 'event-ttl', schema: seconds, default: '3600', help: 'how long an event stays in etcd, seconds' },
    logLevel: { flag: 'log-level', schema: z.enum(LOG_LEVELS), env: 'KITH_LOG_LEVEL', default: 'info', help: 'JSON lines on stdout' },
  },
  (c) => {
    if (c.aliveTtl < c.healthyTtl) return { key: 'aliveTtl', message: 'must be at least --healthy-ttl' };
    if ((c.etcdCert === undefined) !== (c.etcdKey === undefined)) {
      return c.etcdCert === undefined ? { key: 'etcdKey', message: 'needs --etcd-cert' } : { key: 'etcdCert', message: 'needs --etcd-key' };
    }
    const tls = c.etcdCa !== undefined || c.etcdCert !== undefined;
    const endpoints = c.etcdEndpoints ?? [];
    if (tls && endpoints.length === 0) return { key: c.etcdCa !== undefined ? 'etcdCa' : 'etcdCert', message: 'needs --etcd-endpoints (the embedded etcd speaks plain HTTP on loopback)' };
    if (endpoints.some((u) => u.startsWith('https://')) && c.etcdCa === undefined) return { key: 'etcdEndpoints', message: 'https:// endpoints need --etcd-ca' };
    if (c.etcdCa !== undefined && endpoints.some((u) => !u.startsWith('https://'))) return { key: 'etcdEndpoints', message: 'with --etcd-ca, every endpoint must be https://' };
    return undefined;
  },
);

export type CoreConfig = Omit<FlagValues<typeof coreFlags['flags']>, 'plugins'> & {
  /** The plugins to run, by name (checked against the agent's plugins by agent/config.ts). */
  plugins: string[];
  /** The config keys given by a flag or its env (the others are defaults). */
  given: ReadonlySet<string>;
  /** True when `--plugins` was `all` (the default): plugins this build lacks are skipped, not refused. */
  pluginsAll: boolean;
};
