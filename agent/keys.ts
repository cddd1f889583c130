import type { Role } from '../api/schemas.js';

/**
 * The etcd key layout of SPEC §2, written once: every key kith reads or
 * writes is built and parsed here, relative to the etcd prefix (the state
 * layer adds it). A pod's way through the cluster: the API writes its
 * resource and its unscheduled marker, a scheduler moves the marker into a
 * worker's inbox, the worker claims it and publishes its DNS name.
 */

// ---- resources ------------------------------------------------------------------

/** Every resource of every type lies under it. */
export const RESOURCE_ROOT = 'resource/';
export const resourcePrefix = (type: string): string => `${RESOURCE_ROOT}${type}/`;
export const resourceKey = (type: string, name: string): string => `${RESOURCE_ROOT}${type}/${name}`;
/** The type and name of `resource/<type>/<name>`, or undefined for any other key. */
export function parseResourceKey(key: string): { type: string; name: string } | undefined {
  const two = splitTwo(key, RESOURCE_ROOT);
  return two ? { type: two[0], name: two[1] } : undefined;
}

export const POD_PREFIX = resourcePrefix('pod');
export const podKey = (pod: string): string => resourceKey('pod', pod);

export const REPLICASET_PREFIX = resourcePrefix('replicaset');
export const replicaSetKey = (rs: string): string => resourceKey('replicaset', rs);

/** Events (agent/events.ts): resources written by the plugins, each on a lease that ends it. */
export const EVENT_TYPE = 'event';
export const EVENT_PREFIX = resourcePrefix(EVENT_TYPE);
export const eventKey = (name: string): string => resourceKey(EVENT_TYPE, name);

export const nodeResourceKey = (role: Role, name: string): string => resourceKey(`node.${role}`, name);

// ---- a pod's way to a worker ------------------------------------------------------

export const UNSCHEDULED_PREFIX = 'pod/unscheduled/';
export const unscheduledKey = (pod: string): string => `${UNSCHEDULED_PREFIX}${pod}`;

export const INBOX_PREFIX = 'node.worker/inbox/';
export const inboxPrefix = (worker: string): string => `${INBOX_PREFIX}${worker}/`;
export const inboxKey = (worker: string, pod: string): string => `${INBOX_PREFIX}${worker}/${pod}`;

/** On the claiming worker's alive lease; the value is the worker's name. */
export const CLAIMED_PREFIX = 'pod/claimed/';
export const claimedKey = (pod: string): string => `${CLAIMED_PREFIX}${pod}`;

export const LIMITS_PREFIX = 'node.worker/limits/';
export const limitsKey = (kind: 'cpu' | 'memory', worker: string): string => `${LIMITS_PREFIX}${kind}/${worker}`;

// ---- pod subnets ------------------------------------------------------------------

/** `node.worker/subnet/<cidr>`: the worker owning a pod subnet, with its host address. */
export const SUBNET_PREFIX = 'node.worker/subnet/';
export const subnetKey = (cidr: string): string => `${SUBNET_PREFIX}${cidr}`;
/** The spelling earlier versions wrote (`a.b.c.d_len`); read, and replaced on the owner's next claim. */
export const legacySubnetKey = (cidr: string): string => `${SUBNET_PREFIX}${cidr.replace('/', '_')}`;
/** The CIDR a subnet key stands for, in either spelling; undefined for any other key. */
export function subnetOfKey(key: string): string | undefined {
  if (!key.startsWith(SUBNET_PREFIX)) return undefined;
  const m = /^(\d{1,3}(?:\.\d{1,3}){3})[/_](\d{1,2})$/.exec(key.slice(SUBNET_PREFIX.length));
  return m ? `${m[1]}/${m[2]}` : undefined;
}

// ---- heartbeats -------------------------------------------------------------------

export type Heartbeat = 'healthy' | 'alive';
export const heartbeatPrefix = (role: Role, kind?: Heartbeat): string => `node.${role}/heartbeat/${kind ? `${kind}/` : ''}`;
export const heartbeatKey = (role: Role, kind: Heartbeat, name: string): string => `${heartbeatPrefix(role, kind)}${name}`;
/** `healthy` or `alive` and the node's name of `node.<role>/heartbeat/<kind>/<name>`. */
export function parseHeartbeat(key: string, role: Role): { kind: Heartbeat; name: string } | undefined {
  const two = splitTwo(key, heartbeatPrefix(role));
  if (!two || (two[0] !== 'healthy' && two[0] !== 'alive')) return undefined;
  return { kind: two[0], name: two[1] };
}

// ---- ReplicaSets ------------------------------------------------------------------

/** The controller's list of a ReplicaSet's replicas (agent/replicaset/README.md). */
export const REPLICA_LIST_PREFIX = 'replicaset/replicas/';
export const replicaListKey = (rs: string): string => `${REPLICA_LIST_PREFIX}${rs}`;

/** A ReplicaSet's last templates, a resource of its own so `GET /resources/replicaset.history/<rs>` reads them (agent/replicaset/README.md). */
export const REPLICASET_HISTORY_TYPE = 'replicaset.history';
export const REPLICASET_HISTORY_PREFIX = resourcePrefix(REPLICASET_HISTORY_TYPE);
export const replicaSetHistoryKey = (rs: string): string => resourceKey(REPLICASET_HISTORY_TYPE, rs);

// ---- DNS --------------------------------------------------------------------------

/**
 * `dns/<fqdn.>` holds an A record (its value an IPv4 address);
 * `dns/<from-fqdn.>/<to-fqdn.>` (value `alias`) an alias. Names carry their trailing dot.
 */
export const DNS_PREFIX = 'dns/';
export const ALIAS_VALUE = 'alias';
export const recordKey = (fqdn: string): string => `${DNS_PREFIX}${fqdn}`;
export const aliasPrefix = (from: string): string => `${DNS_PREFIX}${from}/`;
export const aliasKey = (from: string, to: string): string => `${DNS_PREFIX}${from}/${to}`;

/** What a key under `dns/` holds: a record of one name, an alias between two, or neither. */
export type DnsKey = { kind: 'record'; name: string } | { kind: 'alias'; from: string; to: string };
export function parseDnsKey(key: string): DnsKey | undefined {
  if (!key.startsWith(DNS_PREFIX)) return undefined;
  const rest = key.slice(DNS_PREFIX.length);
  const slash = rest.indexOf('/');
  if (slash < 0) return { kind: 'record', name: rest };
  return { kind: 'alias', from: rest.slice(0, slash), to: rest.slice(slash + 1) };
}

/** Names of the zone that kith itself fills (SPEC §4), with their trailing dot. */
export const fqdn = (host: string, namespace: string, domain: string): string => `${host}.${namespace}.${domain}.`;
export const podFqdn = (pod: string, domain: string): string => fqdn(pod, 'pod', domain);
export const nodeFqdn = (name: string, role: Role, domain: string): string => fqdn(name, `${role}.node`, domain);
export const specialFqdn = (service: 'api' | 'dns', domain: string): string => fqdn(service, 'special', domain);

/** The A record of a pod while it runs. */
export const podDnsKey = (pod: string, domain: string): string => recordKey(podFqdn(pod, domain));
/** The A record of a node of a role, at its cluster address. */
export const nodeDnsKey = (name: string, role: Role, domain: string): string => recordKey(nodeFqdn(name, role, domain));
/** This node's membership of `api.special` or `dns.special`: an alias to its own node name. */
export const specialMemberKey = (service: 'api' | 'dns', name: string, role: Role, domain: string): string =>
  aliasKey(specialFqdn(service, domain), nodeFqdn(name, role, domain));

// ---- API tokens (api/README.md) ------------------------------------------------------

/** `token/<name>`: one API token as JSON, its secret only as a SHA-256 hash. */
export const TOKEN_PREFIX = 'token/';
export const tokenKey = (name: string): string => `${TOKEN_PREFIX}${name}`;
/** Written once, with the first admin token, by the API node that bootstrapped the cluster. */
export const TOKEN_BOOTSTRAP_KEY = 'token.bootstrap';

// ---- pod logs (agent/worker/README.md) ----------------------------------------------

/** `node.api/logs-key/<api node>`: the public key (PEM) an API node signs its log requests to workers with, on its alive lease. */
export const LOGS_KEY_PREFIX = 'node.api/logs-key/';
export const logsKeyKey = (apiNode: string): string => `${LOGS_KEY_PREFIX}${apiNode}`;
/** `node.worker/logs/<worker>`: where a worker serves its pods' logs (`host:port`), on its alive lease. */
export const LOGS_ENDPOINT_PREFIX = 'node.worker/logs/';
export const logsEndpointKey = (worker: string): string => `${LOGS_ENDPOINT_PREFIX}${worker}`;

// ---- parsers ----------------------------------------------------------------------

/** The last segment of `<prefix><name>`, or undefined when the key has another shape. */
export function nameUnder(key: string, prefix: string): string | undefined {
  if (!key.startsWith(prefix)) return undefined;
  const name = key.slice(prefix.length);
  return name && !name.includes('/') ? name : undefined;
}

/** Splits `<prefix><a>/<b>` into `[a, b]`, or undefined when the key has another shape. */
export function splitTwo(key: string, prefix: string): [string, string] | undefined {
  if (!key.startsWith(prefix)) return undefined;
  const rest = key.slice(prefix.length);
  const i = rest.indexOf('/');
  if (i <= 0 || i === rest.length - 1 || rest.indexOf('/', i + 1) >= 0) return undefined;
  return [rest.slice(0, i), rest.slice(i + 1)];
}
