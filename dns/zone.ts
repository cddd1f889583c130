import { intToIp, parseCidr } from '../agent/ipv4.js';
import { specialFqdn } from '../agent/keys.js';

/**
 * The cluster zone in memory (SPEC §4), fed the typed changes of one etcd
 * event at a time (dns/zone-source.ts decodes them): A records, aliases
 * (`from` answers with the union of its targets' addresses), and pods (named
 * ports for SRV, the owning ReplicaSet for `<rs>.replicaset`).
 *
 * Names are kept lowercase without the trailing dot. Nothing is ever rebuilt
 * whole: each event touches the names it changes, and the alias memo is
 * invalidated only along the reverse alias edges of those names.
 */

export interface ZoneOptions {
  /** The cluster domain, e.g. `cluster.local` (no trailing dot). */
  domain: string;
  /** TTL of every record, and the SOA minimum. */
  ttl: number;
  /** This node's name: `id.server` and the SOA MNAME. */
  nodeName: string;
  /** The kith version: `version.bind`. */
  version: string;
  /** SOA MNAME (a trailing dot is dropped); defaults to `dns.special.<domain>`. */
  mname?: string;
  /** IPv4 CIDRs whose reverse zones are served (the pod address space). */
  reverseCidrs?: string[];
}

export interface Srv {
  priority: number;
  weight: number;
  port: number;
  /** Target name, lowercase, no trailing dot. */
  target: string;
}

export interface Soa {
  apex: string;
  mname: string;
  rname: string;
  serial: number;
  refresh: number;
  retry: number;
  expire: number;
  minimum: number;
}

/** One record of a zone transfer (names without trailing dots). */
export type ZoneRecord =
  | { name: string; type: 'A'; address: string }
  | { name: string; type: 'SRV'; srv: Srv }
  | { name: string; type: 'NS'; ns: string }
  | { name: string; type: 'SOA'; soa: Soa };

/** What the zone keeps of a pod. */
export interface PodInfo {
  replicaSet?: string;
  /** Named ports: lowercase name -> the reachable port. */
  ports: Map<string, number>;
}

/** One change to the zone; names normalized (lowercase, no trailing dot) and valid. */
export type ZoneChange =
  | { op: 'putRecord'; name: string; address: string }
  | { op: 'deleteRecord'; name: string }
  | { op: 'addAlias'; from: string; to: string }
  | { op: 'removeAlias'; from: string; to: string }
  | { op: 'putPod'; pod: string; info: PodInfo }
  | { op: 'deletePod'; pod: string };

/** What one etcd event means for the zone. */
export interface ZoneUpdate {
  changes: ZoneChange[];
  /** Part of the event was malformed (counted in `rejected`). */
  malformed: boolean;
  /** The event's etcd revision (the SOA serial). */
  revision: number;
}

/** Where a name belongs: the cluster zone, one of its reverse zones, or neither. */
export type Authority = { kind: 'cluster' | 'reverse'; apex: string } | undefined;

export function normalizeName(name: string): string {
  let n = name.toLowerCase();
  while (n.endsWith('.')) n = n.slice(0, -1);
  return n;
}

/** `10.244.1.7` -> `7.1.244.10.in-addr.arpa`. */
export function reverseName(address: string): string {
  const o = address.split('.');
  return `${o[3]}.${o[2]}.${o[1]}.${o[0]}.in-addr.arpa`;
}

/** The reverse zone apex covering an IPv4 CIDR, on whole octets (a /16 -> `b.a.in-addr.arpa`). */
export function reverseApexOf(cidr: string): string | undefined {
  const c = parseCidr(cidr);
  if (!c || c.len < 8) return undefined;
  const octets = intToIp(c.base).split('.').slice(0, c.len >> 3);
  return `${octets.reverse().join('.')}.in-addr.arpa`;
}

export class Zone {
  readonly domain: string;
  readonly ttl: number;
  readonly nodeName: string;
  readonly version: string;
  readonly soa: Soa;
  /** The apex NS target: `dns.special.<domain>`. */
  readonly nsName: string;
  /** Bumped by every event that changed something: answers cached under an older generation are stale. */
  generation = 0;
  /** The etcd revision the SOA serial was taken from. */
  private serialRevision = 0;
  private readonly generationListeners = new Set<(generation: number) => void>();

  /** Calls `fn` after every change of `generation`; returns the unsubscribe. */
  onGeneration(fn: (generation: number) => void): () => void {
    this.generationListeners.add(fn);
    return () => this.generationListeners.delete(fn);
  }
  /** False until the state layer's first scan has been applied: answers are SERVFAIL meanwhile. */
  synced = true;
  /** Events ignored because their key or value was malformed. */
  rejected = 0;

  private readonly records = new Map<string, string>();
  private readonly aliases = new Map<string, Set<string>>();
  private readonly aliasedBy = new Map<string, Set<string>>();
  private aliasCount = 0;
  private readonly pods = new Map<string, PodInfo>();
  private readonly replicaSets = new Map<string, Set<string>>();
  /** reverse name -> the name (or names) whose A record is that address. */
  private readonly ptrs = new Map<string, string | Set<string>>();
  /** name -> number of owners strictly below it: an empty non-terminal answers NODATA, not NXDOMAIN. */
  private readonly ents = new Map<string, number>();
  /** Reverse zone apex -> reference count (fixed CIDRs hold one reference forever). */
  private readonly reverseApexes = new Map<string, number>();
  /** Resolved addresses of alias sources and ReplicaSet names, with every name the resolution looked at. */
  private readonly memo = new Map<string, { addresses: string[]; visited: string[] }>();
  /** name -> the memoised names whose resolution looked at it: what a change of it invalidates. */
  private readonly dependents = new Map<string, Set<string>>();
  /** Reverse apexes of the configured CIDRs. */
  private readonly fixedApexes: string[];
  private readonly podSuffix: string;
  private readonly rsSuffix: string;

  constructor(opts: ZoneOptions) {
    this.domain = normalizeName(opts.domain);
    this.ttl = opts.ttl;
    this.nodeName = opts.nodeName;
    this.version = opts.version;
    // The namespaces whose names the zone derives (SPEC §4): pods, and ReplicaSets from their pods.
    this.podSuffix = `.pod.${this.domain}`;
    this.rsSuffix = `.replicaset.${this.domain}`;
    this.nsName = normalizeName(specialFqdn('dns', this.domain));
    this.soa = {
      apex: this.domain,
      mname: normalizeName(opts.mname ?? this.nsName),
      rname: `admin.${this.domain}`,
      serial: 1,
      refresh: 300,
      retry: 30,
      expire: 300,
      minimum: opts.ttl,
    };
    for (const cidr of opts.reverseCidrs ?? []) {
      const apex = reverseApexOf(cidr);
      if (apex) this.reverseApexes.set(apex, (this.reverseApexes.get(apex) ?? 0) + 1);
    }
    this.fixedApexes = [...this.reverseApexes.keys()];
  }

  // ---- events -------------------------------------------------------------

  /** Applies the changes of one etcd event. Returns false when part of it was malformed. */
  update(u: ZoneUpdate): boolean {
    const before = this.generation;
    for (const c of u.changes) this.change(c);
    // The SOA serial is the etcd revision of the last change that changed an answer: it grows with every
    // change, and agents that have seen the same changes give the same serial (RFC 1982 arithmetic, 32 bits).
    if (this.generation !== before && u.revision > this.serialRevision) {
      this.serialRevision = u.revision;
      this.soa.serial = u.revision % 2 ** 32 || 1;
    }
    if (!u.malformed) return true;
    this.rejected++;
    return false;
  }

  private change(c: ZoneChange): void {
    switch (c.op) {
      case 'putRecord':
        return this.putRecord(c.name, c.address);
      case 'deleteRecord':
        return this.deleteRecord(c.name);
      case 'addAlias':
        return this.addAlias(c.from, c.to);
      case 'removeAlias':
        return this.removeAlias(c.from, c.to);
      case 'putPod':
        return this.setPod(c.pod, c.info);
      case 'deletePod':
        return this.setPod(c.pod, undefined);
    }
  }

  private putRecord(name: string, address: string): void {
    const old = this.records.get(name);
    if (old === address) return;
    const was = old !== undefined || this.isOwner(name);
    if (old !== undefined) this.unlinkAddress(name, old);
    this.records.set(name, address);
    if (old === undefined) this.ownerChanged(name, was);
    this.linkAddress(name, address);
    this.changed(name);
  }

  private deleteRecord(name: string): void {
    const old = this.records.get(name);
    if (old === undefined) return;
    this.records.delete(name);
    this.unlinkAddress(name, old);
    this.ownerChanged(name, true);
    this.changed(name);
  }

  private linkAddress(name: string, address: string): void {
    const rev = reverseName(address);
    const cur = this.ptrs.get(rev);
    if (cur === undefined) {
      this.ptrs.set(rev, name);
      this.ownerChanged(rev, false);
      const apex = this.ownReverseApex(address);
      if (apex) this.reverseApexes.set(apex, (this.reverseApexes.get(apex) ?? 0) + 1);
    } else if (typeof cur === 'string') {
      if (cur !== name) this.ptrs.set(rev, new Set([cur, name]));
    } else {
      cur.add(name);
    }
  }

  private unlinkAddress(name: string, address: string): void {
    const rev = reverseName(address);
    const cur = this.ptrs.get(rev);
    if (cur === undefined) return;
    if (typeof cur !== 'string') {
      cur.delete(name);
      if (cur.size === 1) this.ptrs.set(rev, cur.values().next().value!);
      return;
    }
    if (cur !== name) return;
    this.ptrs.delete(rev);
    this.ownerChanged(rev, true);
    const apex = this.ownReverseApex(address);
    if (apex) {
      const n = (this.reverseApexes.get(apex) ?? 0) - 1;
      if (n <= 0) this.reverseApexes.delete(apex);
      else this.reverseApexes.set(apex, n);
    }
  }

  /** The /24 reverse zone an address adds when no fixed reverse zone covers it. */
  private ownReverseApex(address: string): string | undefined {
    const o = address.split('.');
    const own = `${o[2]}.${o[1]}.${o[0]}.in-addr.arpa`;
    for (const apex of this.fixedApexes) if (own === apex || own.endsWith(`.${apex}`)) return undefined;
    return own;
  }

  private addAlias(from: string, to: string): void {
    let targets = this.aliases.get(from);
    if (!targets) {
      const was = this.isOwner(from);
      targets = new Set();
      this.aliases.set(from, targets);
      this.ownerChanged(from, was);
    }
    if (targets.has(to)) return;
    targets.add(to);
    this.aliasCount++;
    let sources = this.aliasedBy.get(to);
    if (!sources) {
      sources = new Set();
      this.aliasedBy.set(to, sources);
    }
    sources.add(from);
    this.changed(from);
  }

  private removeAlias(from: string, to: string): void {
    const targets = this.aliases.get(from);
    if (!targets?.delete(to)) return;
    this.aliasCount--;
    if (targets.size === 0) {
      this.aliases.delete(from);
      this.ownerChanged(from, true);
    }
    const sources = this.aliasedBy.get(to);
    sources?.delete(from);
    if (sources?.size === 0) this.aliasedBy.delete(to);
    this.changed(from);
  }

  private setPod(podName: string, next: PodInfo | undefined): void {
    const old = this.pods.get(podName);
    if (!old && !next) return;
    if (next) this.pods.set(podName, next);
    else this.pods.delete(podName);
    const oldRs = old?.replicaSet;
    const newRs = next?.replicaSet;
    if (oldRs !== newRs) {
      if (oldRs) this.leaveReplicaSet(oldRs, podName);
      if (newRs) this.joinReplicaSet(newRs, podName);
    }
    // Port changes alter SRV answers of the pod and of its ReplicaSet.
    this.changed(`${podName}${this.podSuffix}`);
    if (oldRs) this.changed(`${oldRs}${this.rsSuffix}`);
    if (newRs && newRs !== oldRs) this.changed(`${newRs}${this.rsSuffix}`);
  }

  private joinReplicaSet(rs: string, pod: string): void {
    let members = this.replicaSets.get(rs);
    if (!members) {
      const name = `${rs}${this.rsSuffix}`;
      const was = this.isOwner(name);
      members = new Set();
      this.replicaSets.set(rs, members);
      this.ownerChanged(name, was);
    }
    members.add(pod);
  }

  private leaveReplicaSet(rs: string, pod: string): void {
    const members = this.replicaSets.get(rs);
    if (!members?.delete(pod)) return;
    if (members.size === 0) {
      this.replicaSets.delete(rs);
      this.ownerChanged(`${rs}${this.rsSuffix}`, true);
    }
  }

  /** A name's data changed: drop the memoised answers that looked at it (and only those). */
  private changed(name: string): void {
    this.generation++;
    for (const fn of this.generationListeners) fn(this.generation);
    const deps = this.dependents.get(name);
    if (!deps) return;
    for (const y of [...deps]) this.dropMemo(y);
  }

  private dropMemo(name: string): void {
    const m = this.memo.get(name);
    if (!m) return;
    this.memo.delete(name);
    for (const v of m.visited) {
      const s = this.dependents.get(v);
      if (!s) continue;
      s.delete(name);
      if (s.size === 0) this.dependents.delete(v);
    }
  }

  /** Whether a name owns data: an A record, aliases, a PTR, or replicas. */
  private isOwner(name: string): boolean {
    return this.records.has(name) || this.aliases.has(name) || this.ptrs.has(name) || this.isReplicaSetName(name);
  }

  /** Counts a name in its ancestors' empty-non-terminal tally when it starts or stops owning data. */
  private ownerChanged(name: string, was: boolean): void {
    const is = this.isOwner(name);
    if (was === is) return;
    this.forAncestors(name, is ? this.entUp : this.entDown);
  }

  private readonly entUp = (a: string) => this.ents.set(a, (this.ents.get(a) ?? 0) + 1);
  private readonly entDown = (a: string) => {
    const c = (this.ents.get(a) ?? 0) - 1;
    if (c <= 0) this.ents.delete(a);
    else this.ents.set(a, c);
  };

  private forAncestors(name: string, f: (a: string) => void): void {
    for (let i = name.indexOf('.'); i >= 0; i = name.indexOf('.', i + 1)) {
      const a = name.slice(i + 1);
      if (a === this.domain || a === 'in-addr.arpa' || !a.includes('.')) return;
      f(a);
    }
  }

  // ---- queries ------------------------------------------------------------

  /** Which zone (if any) is authoritative for a normalized name. */
  authority(name: string): Authority {
    if (name === this.domain || name.endsWith(`.${this.domain}`)) return { kind: 'cluster', apex: this.domain };
    if (!name.endsWith('.in-addr.arpa')) return undefined;
    // The longest configured or address-derived reverse apex that is a suffix of the name.
    for (let n = name; n !== 'in-addr.arpa'; n = n.slice(n.indexOf('.') + 1)) {
      if (this.reverseApexes.has(n)) return { kind: 'reverse', apex: n };
    }
    return undefined;
  }

  /** The A record addresses of a name: its own record, else its ReplicaSet's running replicas and its alias targets. */
  addresses(name: string): string[] {
    const own = this.records.get(name);
    if (own !== undefined) return [own];
    const memo = this.memo.get(name);
    if (memo) return memo.addresses;
    if (!this.aliases.has(name) && !this.isReplicaSetName(name)) return [];
    // Breadth-first over alias edges; a name with its own record ends its branch; cycles end at `seen`.
    const out = new Set<string>();
    const seen = new Set<string>([name]);
    const todo = [name];
    while (todo.length > 0) {
      const n = todo.pop()!;
      const a = this.records.get(n);
      if (a !== undefined) {
        out.add(a);
        continue;
      }
      this.replicaAddresses(n, out, seen);
      const targets = this.aliases.get(n);
      if (targets) {
        for (const t of targets) {
          if (!seen.has(t)) {
            seen.add(t);
            todo.push(t);
          }
        }
      }
    }
    const result = [...out];
    const visited = [...seen];
    this.memo.set(name, { addresses: result, visited });
    for (const v of visited) {
      let s = this.dependents.get(v);
      if (!s) {
        s = new Set();
        this.dependents.set(v, s);
      }
      s.add(name);
    }
    return result;
  }

  private isReplicaSetName(name: string): boolean {
    return name.endsWith(this.rsSuffix) && this.replicaSets.has(name.slice(0, -this.rsSuffix.length));
  }

  private replicaAddresses(name: string, out: Set<string>, seen: Set<string>): void {
    if (!name.endsWith(this.rsSuffix)) return;
    const members = this.replicaSets.get(name.slice(0, -this.rsSuffix.length));
    if (!members) return;
    for (const pod of members) {
      const podName = `${pod}${this.podSuffix}`;
      seen.add(podName); // the answer depends on the replica's record
      const a = this.records.get(podName);
      if (a !== undefined) out.add(a);
    }
  }

  /** SRV records of `_<port>._tcp.<pod>.pod.<domain>` or `_<port>._tcp.<rs>.replicaset.<domain>`. */
  srv(name: string): Srv[] {
    if (!name.startsWith('_')) return [];
    const dot1 = name.indexOf('.');
    if (dot1 < 0 || !name.startsWith('._tcp.', dot1)) return [];
    const port = name.slice(1, dot1);
    const owner = name.slice(dot1 + 6);
    const out: Srv[] = [];
    if (owner.endsWith(this.podSuffix)) {
      const pod = owner.slice(0, -this.podSuffix.length);
      if (!pod.includes('.')) this.podSrv(pod, port, out);
    } else if (owner.endsWith(this.rsSuffix)) {
      const members = this.replicaSets.get(owner.slice(0, -this.rsSuffix.length));
      if (members) for (const pod of members) this.podSrv(pod, port, out);
    }
    return out;
  }

  private podSrv(pod: string, portName: string, out: Srv[]): void {
    const info = this.pods.get(pod);
    const port = info?.ports.get(portName);
    if (port === undefined) return;
    const target = `${pod}${this.podSuffix}`;
    if (!this.records.has(target)) return; // only running pods
    out.push({ priority: 0, weight: 100, port, target });
  }

  /** PTR targets of a reverse name. */
  ptr(name: string): string[] {
    const owners = this.ptrs.get(name);
    return owners === undefined ? [] : typeof owners === 'string' ? [owners] : [...owners];
  }

  /** Whether a name has descendants but no data of its own (it answers NODATA). */
  isEmptyNonTerminal(name: string): boolean {
    return this.ents.has(name) || this.hasServicesBelow(name);
  }

  /** `_tcp.<pod>.pod.<domain>` or `_tcp.<rs>.replicaset.<domain>` with SRV records below it. */
  private hasServicesBelow(name: string): boolean {
    if (!name.startsWith('_tcp.')) return false;
    const owner = name.slice(5);
    const running = (pod: string) => (this.pods.get(pod)?.ports.size ?? 0) > 0 && this.records.has(`${pod}${this.podSuffix}`);
    if (owner.endsWith(this.podSuffix)) return running(owner.slice(0, -this.podSuffix.length));
    if (owner.endsWith(this.rsSuffix)) {
      for (const pod of this.replicaSets.get(owner.slice(0, -this.rsSuffix.length)) ?? []) if (running(pod)) return true;
    }
    return false;
  }

  soaOf(apex: string): Soa {
    return apex === this.domain ? this.soa : { ...this.soa, apex };
  }

  /** Counts for the zone-size gauge. */
  size(): { records: number; aliases: number; pods: number; replicaSets: number; ptr: number } {
    return {
      records: this.records.size,
      aliases: this.aliasCount,
      pods: this.pods.size,
      replicaSets: this.replicaSets.size,
      ptr: this.ptrs.size,
    };
  }

  /** Every record of the cluster zone, for AXFR (SOA first; the caller repeats it last). */
  *transfer(): Generator<ZoneRecord> {
    const d = this.domain;
    const inZone = (n: string) => n === d || n.endsWith(`.${d}`);
    yield { name: d, type: 'SOA', soa: this.soa };
    yield { name: d, type: 'NS', ns: this.nsName };
    for (const [name, address] of this.records) if (inZone(name)) yield { name, type: 'A', address };
    for (const name of this.aliases.keys()) {
      if (!inZone(name) || this.records.has(name)) continue;
      for (const address of this.addresses(name)) yield { name, type: 'A', address };
    }
    for (const rs of this.replicaSets.keys()) {
      const name = `${rs}${this.rsSuffix}`;
      if (this.records.has(name) || this.aliases.has(name)) continue;
      for (const address of this.addresses(name)) yield { name, type: 'A', address };
    }
    for (const [pod, info] of this.pods) {
      for (const portName of info.ports.keys()) {
        const name = `_${portName}._tcp.${pod}${this.podSuffix}`;
        for (const srv of this.srv(name)) yield { name, type: 'SRV', srv };
      }
    }
    for (const [rs, members] of this.replicaSets) {
      const portNames = new Set<string>();
      for (const pod of members) for (const p of this.pods.get(pod)?.ports.keys() ?? []) portNames.add(p);
      for (const portName of portNames) {
        const name = `_${portName}._tcp.${rs}${this.rsSuffix}`;
        for (const srv of this.srv(name)) yield { name, type: 'SRV', srv };
      }
    }
  }
}
