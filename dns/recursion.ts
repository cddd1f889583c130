import { readFileSync } from 'node:fs';
import type { HostPort } from '../agent/address.js';
import { cidrContains, ipToInt, isIPv4, isLoopback, unmapped, type Cidr } from '../agent/ipv4.js';

/**
 * Who may have names outside the zone resolved (SPEC §4: loopback and the pod
 * subnets), and where they are resolved by default (the host's resolv.conf).
 */

/** Whether a client may have names outside the zone resolved: loopback or inside one of `nets`. */
export function mayRecurse(address: string, nets: readonly Cidr[]): boolean {
  if (isLoopback(address)) return true;
  const a = unmapped(address);
  if (!isIPv4(a)) return false;
  const n = ipToInt(a);
  return nets.some((c) => cidrContains(c, n));
}

/** The IPv4 nameservers of a resolv.conf, port 53. */
export function resolvConfUpstreams(path = '/etc/resolv.conf'): HostPort[] {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch {
    return [];
  }
  const out: HostPort[] = [];
  for (const line of text.split('\n')) {
    const m = /^\s*nameserver\s+(\S+)/.exec(line);
    if (m && isIPv4(m[1]!)) out.push({ host: m[1]!, port: 53 });
  }
  return out;
}
