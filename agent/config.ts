import { readFileSync, writeFileSync } from 'node:fs';
import { isIPv4 } from 'node:net';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { z } from 'zod';
import { makeDirs } from './fs.js';
import { generateName } from './names.js';
import { PLUGIN_NAMES, type PluginName } from './plugin.js';

/** A lowercase DNS label of at most 28 characters (it also names iptables chains). */
export const nodeNameSchema = z
  .string()
  .regex(/^[a-z]([a-z0-9-]{0,26}[a-z0-9])?$/, 'must be a lowercase DNS label (a-z, 0-9, -), start with a letter, not end with -, at most 28 characters');

const hostPort = z.string().transform((s, ctx) => {
  const m = /^(.+):(\d{1,5})$/.exec(s);
  const port = m ? Number(m[2]) : NaN;
  if (!m || !isIPv4(m[1]!) || port < 0 || port > 65535) {
    ctx.addIssue({ code: 'custom', message: `'${s}' is not an IPv4 addr:port` });
    return z.NEVER;
  }
  return { host: m[1]!, port };
});
export type HostPort = { host: string; port: number };

/** When the worker pulls a container's image (podman's `--pull`): `missing` as Kubernetes' IfNotPresent. */
export const IMAGE_PULL_POLICIES = ['never', 'missing', 'newer', 'always'] as const;
export type ImagePull = (typeof IMAGE_PULL_POLICIES)[number];

/** Whether one of `listen` serves `address:port` (the address itself, or every address). */
export function listensAt(listen: readonly HostPort[], address: string, port: number): boolean {
  return listen.some((l) => l.port === port && (l.host === address || l.host === '0.0.0.0'));
}

const list = <T extends z.ZodType<unknown, string>>(item: T) =>
  z.string().transform((s) => s.split(',').map((x) => x.trim()).filter(Boolean)).pipe(z.array(item));

const ipv4 = z.string().refine((s) => isIPv4(s), 'must be an IPv4 address');
const cidr = z.string().refine((s) => {
  const [a, len] = s.split('/');
  return a !== undefined && isIPv4(a) && /^\d+$/.test(len ?? '') && Number(len) <= 32;
}, 'must be an IPv4 CIDR like 10.244.0.0/16');
const url = z.string().url();
const seconds = z.coerce.number().int().min(1).max(86400);

export const configSchema = z
  .object({
    name: nodeNameSchema,
    plugins: z
      .string()
      .transform((s) => (s.trim() === 'all' ? [...PLUGIN_NAMES].join(',') : s))
      .pipe(list(z.enum(PLUGIN_NAMES)))
      .refine((p) => p.length > 0, 'needs at least one plugin'),
    etcdEndpoints: list(url).optional(),
    etcdPrefix: z.string().regex(/^\/[^\s]*[^/\s]$|^\/$/, 'must start with / and not end with /'),
    dataDir: z.string().min(1),
    clusterDomain: z
      .string()
      .regex(/^([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)*[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/, 'must be a lowercase domain name without a trailing dot'),
    clusterAddress: ipv4.optional(),
    dnsListen: list(hostPort).optional(),
    apiListen: list(hostPort).optional(),
    upstreamDns: z.union([z.literal('none'), list(hostPort)]).optional(),
    dnsTtl: z.coerce.number().int().min(0).max(86400),
    dnsUdpEngine: z.enum(['auto', 'native', 'node']),
    imagePull: z.enum(IMAGE_PULL_POLICIES),
    podNetwork: z.string().regex(/^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/, 'must be a podman network name'),
    clusterCidr: cidr,
    podSubnet: cidr.optional(),
    hostAddress: ipv4.optional(),
    podCpuLimit: z.coerce.number().positive().max(1024),
    podMemoryLimit: z.coerce.number().int().positive(),
    healthyTtl: seconds,
    aliveTtl: seconds,
    iptablesChain: z.string().regex(/^[A-Za-z0-9_.-]{1,28}$/, 'must be 1-28 characters of A-Z a-z 0-9 _ . -').optional(),
    logLevel: z.enum(['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent']),
  })
  .refine((c) => c.aliveTtl >= c.healthyTtl, { path: ['aliveTtl'], message: 'must be at least --healthy-ttl' });

export type AgentConfig = z.output<typeof configSchema> & {
  /** Whether --name or KITH_NAME was given (else the name is random, or remembered by the data dir). */
  nameGiven: boolean;
  plugins: PluginName[];
  /** True when `--plugins` was `all` (the default): plugins this build lacks are skipped, not refused. */
  pluginsAll: boolean;
  etcdEndpoints?: string[];
  dnsListen?: HostPort[];
  apiListen?: HostPort[];
  upstreamDns?: 'none' | HostPort[];
};

/** flag name (kebab) -> [config key, env var, default]. */
const FLAGS: Record<string, [keyof z.input<typeof configSchema>, string | null, string | undefined]> = {
  name: ['name', 'KITH_NAME', undefined],
  plugins: ['plugins', 'KITH_PLUGINS', 'all'],
  'etcd-endpoints': ['etcdEndpoints', 'KITH_ETCD_ENDPOINTS', undefined],
  'etcd-prefix': ['etcdPrefix', 'KITH_ETCD_PREFIX', '/kith'],
  'data-dir': ['dataDir', 'KITH_DATA_DIR', '/var/lib/kith'],
  'cluster-domain': ['clusterDomain', null, 'cluster.local'],
  'cluster-address': ['clusterAddress', null, undefined],
  'dns-listen': ['dnsListen', null, undefined],
  'api-listen': ['apiListen', null, undefined],
  'upstream-dns': ['upstreamDns', null, undefined],
  'dns-ttl': ['dnsTtl', null, '5'],
  'dns-udp-engine': ['dnsUdpEngine', 'KITH_DNS_UDP_ENGINE', 'auto'],
  'pod-network': ['podNetwork', null, 'kith'],
  'image-pull': ['imagePull', 'KITH_IMAGE_PULL', 'missing'],
  'cluster-cidr': ['clusterCidr', null, '10.244.0.0/16'],
  'pod-subnet': ['podSubnet', null, undefined],
  'host-address': ['hostAddress', null, undefined],
  'pod-cpu-limit': ['podCpuLimit', null, '1'],
  'pod-memory-limit': ['podMemoryLimit', null, '1024'],
  'healthy-ttl': ['healthyTtl', null, '30'],
  'alive-ttl': ['aliveTtl', null, '300'],
  'iptables-chain': ['iptablesChain', null, undefined],
  'log-level': ['logLevel', 'KITH_LOG_LEVEL', 'info'],
};

export class ConfigError extends Error {}

/** `kith agent --help`: every flag with its env var and default. */
export function agentUsage(): string {
  const rows = Object.entries(FLAGS).map(([flag, [, envVar, dflt]]) => {
    const left = `  --${flag}`.padEnd(24);
    const parts = [dflt === undefined ? '' : `default ${dflt}`, envVar ? `env ${envVar}` : ''].filter(Boolean);
    return `${left}${parts.join(', ')}`.trimEnd();
  });
  return `usage: kith agent [flags]\n\nflags:\n${rows.join('\n')}\n`;
}

/** Parses `kith agent` flags and env into a validated config, or throws a ConfigError naming the flag. */
export function parseAgentConfig(argv: string[], env: NodeJS.ProcessEnv = process.env): AgentConfig {
  let values: Record<string, string | boolean | undefined>;
  try {
    ({ values } = parseArgs({
      args: argv,
      options: Object.fromEntries(Object.keys(FLAGS).map((f) => [f, { type: 'string' as const }])),
      strict: true,
      allowPositionals: false,
    }));
  } catch (err) {
    throw new ConfigError((err as Error).message.split('\n')[0]!);
  }
  const raw: Record<string, unknown> = {};
  const flagOf: Record<string, string> = {};
  for (const [flag, [key, envVar, dflt]] of Object.entries(FLAGS)) {
    flagOf[key] = flag;
    const v = values[flag] ?? (envVar ? env[envVar] : undefined) ?? dflt;
    if (v !== undefined) raw[key] = v;
  }
  const nameGiven = raw.name !== undefined;
  raw.name ??= generateName();
  const parsed = configSchema.safeParse(raw);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    const key = String(issue.path[0] ?? '');
    const flag = flagOf[key] ?? key;
    const shown = raw[key] === undefined ? '' : ` '${String(raw[key])}'`;
    throw new ConfigError(`--${flag}${shown}: ${issue.message}`);
  }
  const c = parsed.data as AgentConfig;
  c.pluginsAll = String(raw.plugins).trim() === 'all';
  c.nameGiven = nameGiven;
  c.iptablesChain ??= defaultChain(c.name);
  return c;
}

/** SPEC §1.1: `KITH-<name>` cut to 28 characters. */
export const defaultChain = (name: string): string => `KITH-${name}`.slice(0, 28);

/**
 * The node's name when `--name` (or KITH_NAME) is not given: the one this
 * data dir remembers from an earlier start, else the random one just made,
 * which it then remembers. A restarted agent is the same node (its subnet,
 * its pods' names), not a new one each time. Returns a message for the log
 * when the name could not be remembered.
 */
export function rememberName(config: AgentConfig): string | undefined {
  if (config.nameGiven) return undefined;
  const file = join(config.dataDir, 'node-name');
  try {
    const kept = readFileSync(file, 'utf8').trim();
    if (nodeNameSchema.safeParse(kept).success) {
      // The default chain follows the name; a given --iptables-chain stays.
      if (config.iptablesChain === defaultChain(config.name)) config.iptablesChain = defaultChain(kept);
      config.name = kept;
      return undefined;
    }
  } catch {
    // none yet
  }
  try {
    makeDirs(config.dataDir);
    writeFileSync(file, `${config.name}\n`);
    return undefined;
  } catch (err) {
    return `could not remember the node name in ${file} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message}); the next start picks another`;
  }
}
