import { z } from 'zod';

/**
 * The single source of every resource's shape (SPEC §3): the API validates
 * with these, the CLI and the agent parse with them, types are inferred.
 */

/** A lowercase DNS label of at most `max` characters: letters, digits and '-', starting with a letter, not ending with '-'. */
export const labelPattern = (max: number): RegExp => new RegExp(`^[a-z]([a-z0-9-]{0,${max - 2}}[a-z0-9])?$`);
/** A DNS label (SPEC §3 names): lowercase letters, digits and '-', starts with a letter, at most 63. */
export const DNS_LABEL = labelPattern(63);
export const dnsLabel = z.string().regex(DNS_LABEL, 'must be a lowercase DNS label: a-z, 0-9 and -, start with a letter, not end with -, at most 63 characters');

/** A resource type: letters, digits and dots, not starting or ending with a dot. */
export const resourceType = z.string().regex(/^[a-z0-9]([a-z0-9.]*[a-z0-9])?$/, 'must be lowercase letters, digits and dots, not starting or ending with a dot');

/** A node name (SPEC §1.1): a DNS label of at most 28 characters, as it also names iptables chains. */
export const nodeName = z
  .string()
  .regex(labelPattern(28), 'must be a lowercase DNS label (a-z, 0-9, -), start with a letter, not end with -, at most 28 characters');

/** Node types of SPEC §2; each has heartbeats and a `resource/node.<role>/<name>`. */
export const ROLES = ['api', 'worker', 'scheduler', 'reaper'] as const;
export type Role = (typeof ROLES)[number];
export const NODE_TYPES = ['node.api', 'node.worker', 'node.scheduler', 'node.reaper'] as const satisfies readonly `node.${Role}`[];
export type NodeType = (typeof NODE_TYPES)[number];
export const isNodeType = (t: string): t is NodeType => (NODE_TYPES as readonly string[]).includes(t);

export const metadata = z.record(z.string(), z.string());

/** The generic resource of every type. */
export const resource = z.object({
  name: dnsLabel,
  type: resourceType,
  state: z.string().optional(),
  metadata: metadata.default({}),
  spec: z.record(z.string(), z.unknown()),
});
export type Resource = z.output<typeof resource>;

// ---- pods -------------------------------------------------------------------

/** CPU: a unitless decimal, accepted as a JSON number or string, stored as a string. */
export const cpu = z
  .union([z.number(), z.string().regex(/^\d+(\.\d+)?$/, 'must be a decimal such as 0.5')])
  .transform((v) => String(Number(v)))
  .refine((v) => Number.isFinite(Number(v)) && Number(v) >= 0 && Number(v) <= 1024, 'must be between 0 and 1024');
/** Memory in MiB. */
export const memory = z.number().int().min(0).max(16 * 1024 * 1024);

const amounts = z.object({ cpu: cpu.optional(), memory: memory.optional() }).strip();

const port = z.number().int().min(1).max(65535);

/**
 * A health probe of a container (SPEC §10): exactly one of `exec` (a command
 * run in the container; exit 0 passes), `tcp` (a port that accepts a
 * connection) or `http` (a GET whose status is 2xx or 3xx), and its timing.
 */
export const probe = z
  .object({
    exec: z.array(z.string().max(4096)).min(1, 'must name a command').max(64).refine((c) => c[0] !== '', 'must name a command').optional(),
    tcp: port.optional(),
    http: z
      .object({ port, path: z.string().max(2048).regex(/^\/[^\s]*$/, 'must be a path starting with / and without whitespace').default('/') })
      .strip()
      .optional(),
    periodSeconds: z.number().int().min(1).max(3600).default(10),
    timeoutSeconds: z.number().int().min(1).max(3600).default(1),
    failureThreshold: z.number().int().min(1).max(1000).default(3),
    successThreshold: z.number().int().min(1).max(1000).default(1),
    initialDelaySeconds: z.number().int().min(0).max(3600).default(0),
  })
  .strip()
  .superRefine((p, ctx) => {
    const kinds = PROBE_KINDS.filter((k) => p[k] !== undefined);
    if (kinds.length !== 1) {
      ctx.addIssue({ code: 'custom', path: [], message: kinds.length === 0 ? 'needs one of exec, tcp or http' : `has ${kinds.join(' and ')}; give exactly one of exec, tcp or http` });
    }
  });
export type Probe = z.output<typeof probe>;
export const PROBE_KINDS = ['exec', 'tcp', 'http'] as const;
export type ProbeKind = (typeof PROBE_KINDS)[number];
/** Which kind a (valid) probe is. */
export const probeKind = (p: Probe): ProbeKind => (p.exec ? 'exec' : p.tcp !== undefined ? 'tcp' : 'http');

/** What happens when a container ends or fails its liveness probe (SPEC §10): `Never` ends the pod. */
export const RESTART_POLICIES = ['Never', 'OnFailure', 'Always'] as const;
export type RestartPolicy = (typeof RESTART_POLICIES)[number];

export const container = z
  .object({
    name: dnsLabel,
    image: z.string().min(1).max(512).regex(/^[^\s]+$/, 'must not contain whitespace'),
    entrypoint: z.string().min(1).optional(),
    cmd: z.array(z.string()).optional(),
    env: z.record(z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, 'must be an environment variable name'), z.string()).optional(),
    resources: z
      .object({ requests: amounts.optional(), limits: amounts.optional() })
      .strip()
      .superRefine((r, ctx) => {
        // podman refuses a memory limit below the reservation; a CPU limit below the request could never be met.
        for (const k of ['cpu', 'memory'] as const) {
          const req = r.requests?.[k];
          const lim = r.limits?.[k];
          if (req !== undefined && lim !== undefined && Number(lim) < Number(req)) {
            ctx.addIssue({ code: 'custom', path: ['limits', k], message: `must be at least the request (${req})` });
          }
        }
      })
      .optional(),
    readiness: probe.optional(),
    liveness: probe.optional(),
  })
  .strip();
export type Container = z.output<typeof container>;
export const portSpec = z.union([
  port,
  z.object({ container: port, cluster: port.optional(), name: dnsLabel.max(15).optional() }).strip(),
]);
export type PortSpec = z.output<typeof portSpec>;

export const podSpec = z
  .object({
    containers: z.array(container).default([]),
    ports: z.array(portSpec).default([]),
    restartPolicy: z.enum(RESTART_POLICIES).optional(),
    /** SPEC §9: a token of this role for the pod, mounted in each container; absent: none. */
    apiAccess: z.enum(['view', 'edit']).optional(),
    /** SPEC §11: seconds between the pod leaving every DNS name and its containers being stopped (default: the worker's --termination-grace). */
    terminationGracePeriodSeconds: z.number().int().min(0).max(3600).optional(),
    schedulingConstraints: z
      .object({
        mayBeScheduledOn: z.array(z.string()).nullable().optional(),
        cannotBeScheduledOn: z.array(z.string()).nullable().optional(),
      })
      .strip()
      .nullable()
      .optional(),
  })
  .strip()
  .superRefine((spec, ctx) => {
    const names = new Set<string>();
    spec.containers.forEach((c, i) => {
      if (names.has(c.name)) ctx.addIssue({ code: 'custom', path: ['containers', i, 'name'], message: `duplicate container name '${c.name}'` });
      names.add(c.name);
    });
    const reachable = new Set<number>();
    spec.ports.forEach((p, i) => {
      const n = typeof p === 'number' ? p : (p.cluster ?? p.container);
      if (reachable.has(n)) ctx.addIssue({ code: 'custom', path: ['ports', i], message: `port ${n} is declared twice` });
      reachable.add(n);
    });
  });
export type PodSpec = z.output<typeof podSpec>;

export const POD_STATES = [
  'created', 'scheduled', 'accepted', 'running',
  'exitSuccess', 'exitFailure', 'errored', 'killed', 'abandoned', 'dead',
] as const;
export type PodState = (typeof POD_STATES)[number] | 'unhealthy';
export const TERMINAL_POD_STATES: ReadonlySet<string> = new Set(['exitSuccess', 'exitFailure', 'errored', 'killed', 'abandoned', 'dead']);
export const isTerminal = (state: string | undefined): boolean => state !== undefined && TERMINAL_POD_STATES.has(state);

export const pod = z.object({
  name: dnsLabel,
  type: z.literal('pod'),
  state: z.enum(POD_STATES),
  metadata: metadata.default({}),
  spec: podSpec,
});
export type Pod = z.output<typeof pod>;

/**
 * A pod as observed in etcd, decoded leniently: data written by hand or by an
 * older kith must still load, so each part that does not parse is left out
 * (or empty) rather than failing the whole pod. Fields it does not know are
 * kept, so a writer that rewrites the pod loses nothing.
 */
const observedPortEntry = z
  .object({ name: z.string(), container: z.unknown().optional(), cluster: z.unknown().optional() })
  .transform((p) => ({ name: p.name, port: typeof p.cluster === 'number' ? p.cluster : p.container }))
  .pipe(z.object({ name: z.string(), port: z.number().int().min(1).max(65535) }));
export const observedPod = z.looseObject({
  state: z.string().optional().catch(undefined),
  /** Only the string values: the others are no metadata kith writes or reads. */
  metadata: z
    .record(z.string(), z.unknown())
    .catch({})
    .transform((md) => Object.fromEntries(Object.entries(md).filter((e): e is [string, string] => typeof e[1] === 'string'))),
  spec: z.looseObject({ ports: z.array(z.unknown()).catch([]) }).catch({ ports: [] }),
});
export type ObservedPod = z.output<typeof observedPod>;

/** The named ports of an observed pod (`{container, cluster?, name}`) and the port each is reached on; bare numbers have no name. */
export function namedPorts(p: ObservedPod): { name: string; port: number }[] {
  return p.spec.ports.flatMap((item) => {
    const r = observedPortEntry.safeParse(item);
    return r.success ? [r.data] : [];
  });
}

/** A value read from etcd, as JSON: a value that is not JSON fails like any other bad value. */
export const storedJson = z.string().transform((value, ctx): unknown => {
  try {
    return JSON.parse(value);
  } catch {
    ctx.addIssue({ code: 'custom', message: 'not JSON' });
    return z.NEVER;
  }
});

/** A decoder of stored values by `schema`: undefined when the value is not JSON or the schema refuses it. */
export function storedDecoder<T extends z.ZodType>(schema: T): (value: string) => z.output<T> | undefined {
  const decode = storedJson.pipe(schema);
  return (value) => {
    const r = decode.safeParse(value);
    return r.success ? (r.data as z.output<T>) : undefined;
  };
}

/** A stored pod's value, decoded leniently; undefined when it is not a JSON object at all. */
export const decodeObservedPod = storedDecoder(observedPod);

/** A stored pod's value, decoded strictly (as the API would accept it); undefined when it is not a valid pod. */
export const decodePod = storedDecoder(pod);

/** How many times workers have handed this pod back to the scheduler for lack of room (`metadata.handedBack`). */
export function handBacks(p: { metadata: Record<string, string> }): number {
  const n = Number(p.metadata.handedBack ?? 0);
  return Number.isInteger(n) && n > 0 ? n : 0;
}

/** Aggregate requests (sums) and limits (maxima) of a pod's containers; absent when no container gives one. */
export function podResources(spec: PodSpec): {
  requests: { cpu?: number; memory?: number };
  limits: { cpu?: number; memory?: number };
} {
  const requests: { cpu?: number; memory?: number } = {};
  const limits: { cpu?: number; memory?: number } = {};
  for (const c of spec.containers) {
    const r = c.resources?.requests;
    const l = c.resources?.limits;
    if (r?.cpu !== undefined) requests.cpu = (requests.cpu ?? 0) + Number(r.cpu);
    if (r?.memory !== undefined) requests.memory = (requests.memory ?? 0) + r.memory;
    if (l?.cpu !== undefined) limits.cpu = Math.max(limits.cpu ?? 0, Number(l.cpu));
    if (l?.memory !== undefined) limits.memory = Math.max(limits.memory ?? 0, l.memory);
  }
  return { requests, limits };
}

/** The TCP ports a pod's own probes connect to (the firewall lets those through from its worker alone). */
export function probedPorts(containers: readonly { readiness?: Probe; liveness?: Probe }[]): number[] {
  const ports = new Set<number>();
  for (const c of containers) {
    for (const p of [c.readiness, c.liveness]) {
      if (p?.tcp !== undefined) ports.add(p.tcp);
      if (p?.http) ports.add(p.http.port);
    }
  }
  return [...ports].sort((a, b) => a - b);
}

/** The port a pod is reached on for a port spec: the cluster port when mapped. */
export const reachablePort = (p: PortSpec): number => (typeof p === 'number' ? p : (p.cluster ?? p.container));

// ---- replicasets --------------------------------------------------------------

/** A rollout bound (SPEC §11): an absolute number of pods or a percentage of `replicas`, as Kubernetes' IntOrString. */
const rolloutBound = (maxPercent?: number) =>
  z.union([
    z.number().int().min(0).max(1000),
    z
      .string()
      .regex(/^\d{1,4}%$/, "must be a whole number or a percentage such as '25%'")
      .refine((v) => maxPercent === undefined || Number(v.slice(0, -1)) <= maxPercent, `must be at most ${maxPercent}%`),
  ]);
const isZeroBound = (v: number | string | undefined, dflt: number): boolean => (v === undefined ? dflt === 0 : Number(String(v).replace('%', '')) === 0);

export const replicaSetSpec = z
  .object({
    replicas: z.number().int().min(0).max(1000),
    template: z
      .object({
        metadata: metadata.optional(),
        spec: podSpec,
      })
      .strip(),
    /** How a template change rolls (agent/replicaset/README.md): `maxSurge` 1 and `maxUnavailable` 0 unless given. */
    strategy: z
      .object({ maxSurge: rolloutBound().optional(), maxUnavailable: rolloutBound(100).optional() })
      .strip()
      .superRefine((s, ctx) => {
        if (isZeroBound(s.maxSurge, 1) && isZeroBound(s.maxUnavailable, 0)) {
          ctx.addIssue({ code: 'custom', path: ['maxUnavailable'], message: 'must not be 0 when maxSurge is 0 (the rollout could never start)' });
        }
      })
      .optional(),
    /** Seconds without progress before a rollout counts as stalled. */
    progressDeadlineSeconds: z.number().int().min(1).max(31_536_000).optional(),
  })
  .strip();
export type ReplicaSetSpec = z.output<typeof replicaSetSpec>;

/** Written by the controller: desired, live (not terminal) and running replicas; with rollouts, updated (current template), ready and available ones and the rollout's state. */
export const replicaSetStatus = z.object({
  desired: z.number(),
  live: z.number(),
  running: z.number(),
  updated: z.number().optional(),
  ready: z.number().optional(),
  available: z.number().optional(),
  updatedReady: z.number().optional(),
  templateHash: z.string().optional(),
  rollout: z.enum(['progressing', 'complete', 'stalled']).optional(),
  /** When the rollout last made progress (ISO time): the start of its progress deadline. */
  progressAt: z.string().optional(),
});

export const replicaSet = z.object({
  name: dnsLabel.max(57, 'must be at most 57 characters, so that replica names fit a DNS label'),
  type: z.literal('replicaset'),
  state: z.string().optional(),
  metadata: metadata.default({}),
  spec: replicaSetSpec,
  status: replicaSetStatus.optional(),
});
export type ReplicaSet = z.output<typeof replicaSet>;

// ---- events -----------------------------------------------------------------------

export const EVENT_KINDS = ['Normal', 'Warning'] as const;
export type EventKind = (typeof EVENT_KINDS)[number];

/** What happened to an object, as the plugin that saw it wrote it (agent/events.ts). */
export const eventSpec = z.object({
  /** When it last happened (ISO time). */
  time: z.string(),
  type: z.enum(EVENT_KINDS),
  /** `<type>/<name>` of the object it happened to, e.g. `pod/web-1`. */
  object: z.string(),
  /** One CamelCase word a program can match, e.g. `FailedScheduling`. */
  reason: z.string(),
  message: z.string(),
  /** The node whose plugin saw it. */
  node: z.string(),
  /** How many times it happened, the same reason and message, since `firstTime`. */
  count: z.number().int().min(1),
  firstTime: z.string(),
});
export type EventSpec = z.output<typeof eventSpec>;

export const clusterEvent = z.object({
  name: dnsLabel,
  type: z.literal('event'),
  state: z.string().optional(),
  metadata: metadata.default({}),
  spec: eventSpec,
});
export type ClusterEvent = z.output<typeof clusterEvent>;

// ---- nodes ------------------------------------------------------------------------

export const nodeSpec = z
  .object({
    address: z.string().optional(),
    hostAddress: z.string().optional(),
    subnet: z.string().optional(),
    limits: z.object({ cpu: cpu, memory: memory }).optional(),
  })
  .passthrough();

export const node = z.object({
  name: dnsLabel,
  type: z.enum(NODE_TYPES),
  state: z.enum(['healthy', 'degraded', 'dead']),
  metadata: metadata.default({}),
  spec: nodeSpec,
});
export type NodeResource = z.output<typeof node>;
