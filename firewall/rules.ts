import { isIPv4 } from 'node:net';
import type { PortSpec } from '../api/schemas.js';

/**
 * The pod firewall as data (SPEC §5, REFERENCE §7.3): a pod becomes a list of
 * iptables rules in the node's chain, and the node's chain set-up, tear-down
 * and stale clean-up are lists of iptables argument vectors. Nothing here runs
 * a command; `iptables.ts` does.
 */

export type Table = 'nat' | 'filter';

/** One rule of the node's chain: `iptables -t <table> -A|-D <chain> <spec...>`. */
export interface Rule {
  table: Table;
  chain: string;
  spec: string[];
}

/** The pod as the firewall sees it. */
export interface PodFirewall {
  ip: string;
  ports: readonly PortSpec[];
  /**
   * The worker's own health probes (SPEC §10): TCP ports they connect to from
   * `from` (the pod network's gateway, the source of the host's connections
   * to its pods), let through from there alone.
   */
  probes?: { from: string; ports: readonly number[] };
}

export class FirewallInputError extends Error {}

/** iptables' limit on chain names (XT_EXTENSION_MAXNAMELEN - 1). */
export const MAX_CHAIN = 28;
/** What iptables takes as a chain name, within MAX_CHAIN. */
export const CHAIN_NAME = /^[A-Za-z0-9_.-]{1,28}$/;

export function checkChain(chain: string): void {
  if (!CHAIN_NAME.test(chain)) {
    throw new FirewallInputError(`iptables chain '${chain}' must be 1-${MAX_CHAIN} characters of A-Z a-z 0-9 _ . -`);
  }
}

function checkPort(p: unknown, what: string): number {
  if (typeof p !== 'number' || !Number.isInteger(p) || p < 1 || p > 65535) {
    throw new FirewallInputError(`${what}: ${JSON.stringify(p)} is not a TCP port (1-65535)`);
  }
  return p;
}

/**
 * The rules for one pod, in the order they are appended (and later deleted):
 * DNAT per mapped port (nat), RETURN per declared port (filter; a mapped
 * container port only for connections DNATed from its cluster port), and a
 * final REJECT of every other new inbound connection to the pod's IP.
 */
export function podRules(chain: string, pod: PodFirewall): Rule[] {
  checkChain(chain);
  if (!isIPv4(pod.ip)) throw new FirewallInputError(`pod IP '${pod.ip}' is not an IPv4 address`);
  const dst = `${pod.ip}/32`;
  const nat: Rule[] = [];
  const filter: Rule[] = [];
  // The port a client connects to -> the spec that declared it. Two specs may not claim one:
  // a cluster port DNATed elsewhere would hide a container port of the same number.
  const reachable = new Map<number, number>();
  const claim = (port: number, i: number) => {
    const other = reachable.get(port);
    if (other !== undefined) throw new FirewallInputError(`ports[${i}]: port ${port} is already declared by ports[${other}]`);
    reachable.set(port, i);
  };
  pod.ports.forEach((spec, i) => {
    if (typeof spec === 'number') {
      const c = checkPort(spec, `ports[${i}]`);
      claim(c, i);
      filter.push({ table: 'filter', chain, spec: ['-d', dst, '-p', 'tcp', '--dport', String(c), '-j', 'RETURN'] });
      return;
    }
    if (spec === null || typeof spec !== 'object') throw new FirewallInputError(`ports[${i}]: must be a port or {container, cluster?, name?}`);
    const c = checkPort(spec.container, `ports[${i}].container`);
    if (spec.cluster === undefined) {
      claim(c, i);
      filter.push({ table: 'filter', chain, spec: ['-d', dst, '-p', 'tcp', '--dport', String(c), '-j', 'RETURN'] });
      return;
    }
    const p = checkPort(spec.cluster, `ports[${i}].cluster`);
    claim(p, i);
    nat.push({ table: 'nat', chain, spec: ['-d', dst, '-p', 'tcp', '--dport', String(p), '-j', 'DNAT', '--to-destination', `${pod.ip}:${c}`] });
    filter.push({
      table: 'filter',
      chain,
      spec: ['-d', dst, '-p', 'tcp', '-m', 'conntrack', '--ctstate', 'DNAT', '--ctorigdstport', String(p), '--ctdir', 'ORIGINAL', '--dport', String(c), '-j', 'RETURN'],
    });
  });
  if (pod.probes && pod.probes.ports.length > 0) {
    if (!isIPv4(pod.probes.from)) throw new FirewallInputError(`probe source '${pod.probes.from}' is not an IPv4 address`);
    const src = `${pod.probes.from}/32`;
    // Declared ports already accept everyone: only the probed-only ones need the worker's own rule.
    for (const port of new Set(pod.probes.ports)) {
      const c = checkPort(port, 'probed port');
      if (reachable.has(c)) continue;
      filter.push({ table: 'filter', chain, spec: ['-s', src, '-d', dst, '-p', 'tcp', '--dport', String(c), '-j', 'RETURN'] });
    }
  }
  filter.push({ table: 'filter', chain, spec: ['-d', dst, '-m', 'conntrack', '!', '--ctstate', 'RELATED,ESTABLISHED', '-j', 'REJECT'] });
  return [...nat, ...filter];
}

/** Argument vector (after the iptables command) that appends or deletes a rule. */
export function ruleArgs(rule: Rule, op: '-A' | '-D'): string[] {
  return ['-t', rule.table, op, rule.chain, ...rule.spec];
}

/**
 * Creating the node's chain in nat and filter, and the jumps to it:
 * nat PREROUTING (forwarded and bridged connections: other pods, other hosts)
 * and nat OUTPUT (connections the host itself opens) are appended; filter
 * FORWARD and OUTPUT are inserted first so no earlier ACCEPT bypasses them.
 */
export function chainSetUp(chain: string): string[][] {
  checkChain(chain);
  return [
    ['-t', 'nat', '-N', chain],
    ['-t', 'nat', '-A', 'PREROUTING', '-j', chain],
    ['-t', 'nat', '-A', 'OUTPUT', '-j', chain],
    ['-t', 'filter', '-N', chain],
    ['-t', 'filter', '-I', 'FORWARD', '-j', chain],
    ['-t', 'filter', '-I', 'OUTPUT', '-j', chain],
  ];
}

/** The built-in chains the node's chain is jumped to from, per table. */
export const JUMPS: Record<Table, readonly string[]> = { nat: ['PREROUTING', 'OUTPUT'], filter: ['FORWARD', 'OUTPUT'] };

/** Splits one line of `iptables -S` into arguments, honouring double quotes. */
export function splitRuleLine(line: string): string[] {
  const out: string[] = [];
  const re = /"((?:[^"\\]|\\.)*)"|(\S+)/g;
  let m: RegExpExecArray | null;
  while ((m = re.exec(line))) out.push(m[1] !== undefined ? m[1].replace(/\\(.)/g, '$1') : m[2]!);
  return out;
}

/**
 * Removing the node's chain from one table, given that table's `iptables -S`
 * listing: every rule anywhere that jumps or goes to the chain (each copy, as
 * listed, so duplicates from earlier runs go too), then flush and delete the
 * chain if it exists. Empty when nothing of the chain is left: idempotent.
 * Used both at a clean stop and, at start, for what an unclean stop left.
 */
export function chainTearDown(chain: string, table: Table, listing: string): string[][] {
  checkChain(chain);
  const ops: string[][] = [];
  let exists = false;
  for (const line of listing.split('\n')) {
    const args = splitRuleLine(line.trim());
    if (args[0] === '-N' && args[1] === chain) exists = true;
    if (args[0] !== '-A' || args[1] === chain) continue;
    const target = args.findIndex((a, i) => (a === '-j' || a === '-g') && args[i + 1] === chain);
    if (target >= 0) ops.push(['-t', table, '-D', ...args.slice(1)]);
  }
  if (exists) ops.push(['-t', table, '-F', chain], ['-t', table, '-X', chain]);
  return ops;
}

/**
 * Keeping the node's filter jump first in a built-in chain (FORWARD, OUTPUT),
 * given that chain's `iptables -t filter -S <builtin>` listing. podman's
 * network backend inserts its own jump at the top of FORWARD when a network
 * comes up, and that chain ACCEPTs every packet from the pod subnet: behind
 * it, new connections between pods of one host would never meet the pod
 * rules. Returns nothing when the jump is first and alone; else inserts it at
 * position 1 and deletes the other copies by number (highest first).
 */
export function jumpFirst(chain: string, builtin: string, listing: string): string[][] {
  checkChain(chain);
  const rules = listing
    .split('\n')
    .map((l) => splitRuleLine(l.trim()))
    .filter((a) => a[0] === '-A' && a[1] === builtin);
  const isJump = (a: string[]) => a.length === 4 && a[2] === '-j' && a[3] === chain;
  const copies = rules.map((a, i) => (isJump(a) ? i + 1 : 0)).filter((n) => n > 0);
  if (copies.length === 1 && copies[0] === 1) return [];
  const ops = [['-t', 'filter', '-I', builtin, '1', '-j', chain]];
  for (const n of copies.reverse()) ops.push(['-t', 'filter', '-D', builtin, String(n + 1)]);
  return ops;
}

/**
 * Deleting every rule of the node's chain in one table that targets `ip`,
 * given that table's `iptables -S` listing: rules a failed removal left for
 * an earlier pod with the same address, which must not apply to a new one
 * (a stale DNAT would send its cluster port elsewhere).
 */
export function rulesForIp(chain: string, table: Table, listing: string, ip: string): string[][] {
  checkChain(chain);
  const ops: string[][] = [];
  for (const line of listing.split('\n')) {
    const args = splitRuleLine(line.trim());
    if (args[0] !== '-A' || args[1] !== chain) continue;
    const d = args.indexOf('-d');
    if (d >= 0 && args[d + 1] === `${ip}/32`) ops.push(['-t', table, '-D', ...args.slice(1)]);
  }
  return ops;
}
