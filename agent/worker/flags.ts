import { z } from 'zod';
import { CHAIN_NAME } from '../../firewall/rules.js';
import { hostCapacity, MAX_CPUS } from '../capacity.js';
import { defineFlags, ipv4, millis, switchValue, type FlagValues } from '../flags.js';
import { IMAGE_PULL_POLICIES } from '../runtime/runtime.js';

/** SPEC §1.1: `KITH-<name>` cut to 28 characters. */
export const defaultChain = (name: string): string => `KITH-${name}`.slice(0, 28);

const host = hostCapacity();

/** The worker's flags (README.md). */
export const workerFlags = defineFlags('worker', {
  podNetwork: {
    flag: 'pod-network',
    schema: z.string().regex(/^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/, 'must be a podman network name'),
    default: 'kith',
    help: 'podman bridge network of the pods; created if missing',
  },
  imagePull: {
    flag: 'image-pull',
    schema: z.enum(IMAGE_PULL_POLICIES),
    env: 'KITH_IMAGE_PULL',
    default: 'missing',
    help: 'when images are pulled: never, missing, newer or always',
  },
  hostAddress: { flag: 'host-address', schema: ipv4.optional(), help: "address other hosts reach this one at; routes the other workers' pod subnets (host-gw)" },
  podCpuLimit: {
    flag: 'pod-cpu-limit',
    schema: z.coerce.number().positive().max(MAX_CPUS),
    default: String(host.cpus),
    help: "CPUs offered to pods (default: this host's CPUs)",
  },
  podMemoryLimit: {
    flag: 'pod-memory-limit',
    schema: z.coerce.number().int().positive(),
    default: String(host.memory),
    help: "memory offered to pods, MiB (default: this host's memory less 10%, at least 512 MiB)",
  },
  iptablesChain: {
    flag: 'iptables-chain',
    schema: z.string().regex(CHAIN_NAME, 'must be 1-28 characters of A-Z a-z 0-9 _ . -'),
    defaultFromName: defaultChain,
    help: 'chain of the pod firewall in nat and filter (default KITH-<name> cut to 28)',
  },
  keepPods: {
    flag: 'keep-pods',
    schema: switchValue,
    boolean: true,
    env: 'KITH_KEEP_PODS',
    default: 'false',
    help: 'a stop leaves the pods running (their names, claims and rules kept) for the next start of this node to adopt: an upgrade of kith itself',
  },
  restartBackoffMs: {
    flag: 'restart-backoff-ms',
    schema: millis,
    env: 'KITH_RESTART_BACKOFF_MS',
    default: '10000',
    help: "a container's second restart in a row waits this long, doubling up to 30 times it; 60 times it of running resets",
  },
  terminationGrace: {
    flag: 'termination-grace',
    schema: z.coerce.number().int().min(0).max(3600).optional(),
    env: 'KITH_TERMINATION_GRACE',
    help: "seconds a deleted pod keeps running after leaving every DNS name, unless its spec says (default: --dns-ttl + 1)",
  },
  stopTimeout: {
    flag: 'stop-timeout',
    schema: z.coerce.number().int().min(0).max(600),
    env: 'KITH_STOP_TIMEOUT',
    default: '10',
    help: "seconds between SIGTERM to a pod's containers and SIGKILL",
  },
  logsListenPort: {
    flag: 'logs-listen-port',
    schema: z.coerce.number().int().min(1).max(65535),
    env: 'KITH_LOGS_LISTEN_PORT',
    default: '10250',
    help: "TCP port of the worker's pod log endpoint, on --host-address or else the cluster address (API nodes only: requests signed by an API node's key)",
  },
  workerPollMs: {
    flag: 'worker-poll-ms',
    schema: millis,
    env: 'KITH_WORKER_POLL_MS',
    default: '1000',
    help: "how often podman is asked whether a pod's containers still run, ms",
  },
});

export type WorkerConfig = FlagValues<typeof workerFlags.flags>;
