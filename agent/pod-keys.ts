/**
 * The etcd keys of a pod's way through the cluster (SPEC §2), relative to the
 * prefix: the API writes the resource and its unscheduled marker, a scheduler
 * moves the marker into a worker's inbox, the worker claims it.
 */

export const podKey = (pod: string): string => `resource/pod/${pod}`;
export const POD_PREFIX = 'resource/pod/';

export const UNSCHEDULED_PREFIX = 'pod/unscheduled/';
export const unscheduledKey = (pod: string): string => `${UNSCHEDULED_PREFIX}${pod}`;

export const INBOX_PREFIX = 'node.worker/inbox/';
export const inboxPrefix = (worker: string): string => `${INBOX_PREFIX}${worker}/`;
export const inboxKey = (worker: string, pod: string): string => `${INBOX_PREFIX}${worker}/${pod}`;

export const CLAIMED_PREFIX = 'pod/claimed/';
export const claimedKey = (pod: string): string => `${CLAIMED_PREFIX}${pod}`;

export const LIMITS_PREFIX = 'node.worker/limits/';
export const limitsKey = (kind: 'cpu' | 'memory', worker: string): string => `${LIMITS_PREFIX}${kind}/${worker}`;

export const SUBNET_PREFIX = 'node.worker/subnet/';

export const HEALTHY_PREFIX = 'node.worker/heartbeat/healthy/';
export const ALIVE_PREFIX = 'node.worker/heartbeat/alive/';

/** The A record of a pod while it runs. */
export const podDnsKey = (pod: string, domain: string): string => `dns/${pod}.pod.${domain}.`;
/** The A record of a worker node. */
export const workerDnsKey = (worker: string, domain: string): string => `dns/${worker}.worker.node.${domain}.`;

/** Splits `<prefix><a>/<b>` into `[a, b]`, or undefined when the key has another shape. */
export function splitTwo(key: string, prefix: string): [string, string] | undefined {
  if (!key.startsWith(prefix)) return undefined;
  const rest = key.slice(prefix.length);
  const i = rest.indexOf('/');
  if (i <= 0 || i === rest.length - 1 || rest.indexOf('/', i + 1) >= 0) return undefined;
  return [rest.slice(0, i), rest.slice(i + 1)];
}

/** The last segment of `<prefix><name>`, or undefined when the key has another shape. */
export function nameUnder(key: string, prefix: string): string | undefined {
  if (!key.startsWith(prefix)) return undefined;
  const name = key.slice(prefix.length);
  return name && !name.includes('/') ? name : undefined;
}

/**
 * How many times workers have handed this pod back to the scheduler for lack
 * of room (`metadata.handedBack`, written by the worker). The scheduler
 * abandons a pod handed back as many times as it has tries.
 */
export function handBacks(pod: { metadata: Record<string, string> }): number {
  const n = Number(pod.metadata.handedBack ?? 0);
  return Number.isInteger(n) && n > 0 ? n : 0;
}
