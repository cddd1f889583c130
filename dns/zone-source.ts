import { isIPv4 } from '../agent/ipv4.js';
import { DNS_PREFIX, nameUnder, parseDnsKey, POD_PREFIX, type DnsKey } from '../agent/keys.js';
import type { StateEvent } from '../agent/state.js';
import { decodeObservedPod, namedPorts } from '../api/schemas.js';
import { normalizeName, type PodInfo, type Zone, type ZoneChange, type ZoneUpdate } from './zone.js';

/**
 * Where the zone's data comes from: the state layer's events under `dns/`
 * (A records and aliases, SPEC §2) and `resource/pod/` (named ports and the
 * owning ReplicaSet), decoded here into typed zone changes.
 */

/** The prefixes the zone watches. */
export const ZONE_PREFIXES = [DNS_PREFIX, POD_PREFIX];

// Names from etcd are looser than the API's (underscores, leading digits): any DNS name is served.
const LABEL = /^[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?$/;
const NAME = /^(?:[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?\.)*[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?$/;
function validName(name: string): boolean {
  return name.length > 0 && name.length <= 253 && NAME.test(name);
}

/** Applies one state event to the zone. Returns false when it was ignored as malformed or foreign. */
export function applyEvent(zone: Zone, ev: StateEvent): boolean {
  const u = zoneUpdate(ev);
  return u ? zone.update(u) : false;
}

/** What a state event means for the zone; undefined for a key outside its prefixes. */
export function zoneUpdate(ev: StateEvent): ZoneUpdate | undefined {
  const dns = parseDnsKey(ev.key);
  if (dns) return dnsUpdate(dns, ev);
  if (ev.key.startsWith(POD_PREFIX)) return podUpdate(ev);
  return undefined;
}

function dnsUpdate(key: DnsKey, ev: StateEvent): ZoneUpdate {
  const revision = ev.modRevision;
  const update = (changes: ZoneChange[], malformed = false): ZoneUpdate => ({ changes, malformed, revision });
  if (key.kind === 'record') {
    const name = normalizeName(key.name);
    if (!validName(name)) return update([], true);
    if (ev.type === 'delete') return update([{ op: 'deleteRecord', name }]);
    const address = ev.value.trim();
    // A malformed value replaces nothing valid: the name loses its record.
    if (!isIPv4(address)) return update([{ op: 'deleteRecord', name }], true);
    return update([{ op: 'putRecord', name, address }]);
  }
  const from = normalizeName(key.from);
  const to = normalizeName(key.to);
  if (!validName(from) || !validName(to)) return update([], true);
  return update([{ op: ev.type === 'put' ? 'addAlias' : 'removeAlias', from, to }]);
}

function podUpdate(ev: StateEvent): ZoneUpdate {
  const revision = ev.modRevision;
  const pod = nameUnder(ev.key, POD_PREFIX)?.toLowerCase();
  if (!pod || !LABEL.test(pod)) return { changes: [], malformed: true, revision };
  if (ev.type === 'delete') return { changes: [{ op: 'deletePod', pod }], malformed: false, revision };
  const info = podInfo(ev.value);
  // A pod that no longer decodes leaves the zone.
  if (!info) return { changes: [{ op: 'deletePod', pod }], malformed: true, revision };
  return { changes: [{ op: 'putPod', pod, info }], malformed: false, revision };
}

/** The parts of a stored pod the zone needs (lowercase names); undefined when the value is not a pod. */
export function podInfo(value: string): PodInfo | undefined {
  const pod = decodeObservedPod(value);
  if (!pod) return undefined;
  const rs = pod.metadata.replicaSet?.toLowerCase();
  const ports = new Map<string, number>();
  for (const { name, port } of namedPorts(pod)) {
    const n = name.toLowerCase();
    if (LABEL.test(n)) ports.set(n, port);
  }
  // SPEC §10: a pod its worker calls unready serves none of its ReplicaSet's names (its own name stays).
  const serving = pod.metadata.ready !== 'false';
  return { replicaSet: serving && rs !== undefined && LABEL.test(rs) ? rs : undefined, ports };
}
