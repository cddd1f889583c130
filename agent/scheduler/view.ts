import { decodeObservedPod, decodePod, isTerminal } from '../../api/schemas.js';
import { DEFAULT_REQUEST, minus, parseLimit, plus, podRequest, ZERO, type Amount } from '../capacity.js';
import { heartbeatPrefix, INBOX_PREFIX, LIMITS_PREFIX, nameUnder, POD_PREFIX, splitTwo } from '../keys.js';

const HEALTHY_PREFIX = heartbeatPrefix('worker', 'healthy');
import type { StateEvent } from '../state.js';
import type { WorkerView } from './choose.js';

interface Reservation {
  worker: string;
  request: Amount;
  replicaSet?: string;
  /** Counted against the worker's free until its inbox entry shows up. */
  inInbox: boolean;
  /** Counted as a replica until the pod's resource names the worker. */
  inResource: boolean;
  at: number;
}

/** How long an unconfirmed reservation or a claimed pod not yet in the worker's published limits is counted. */
const HOLD_MS = 10_000;

const sumOf = (m: Map<string, { request: Amount }> | undefined): Amount => {
  let s = ZERO;
  for (const v of m?.values() ?? []) s = plus(s, v.request);
  return s;
};

/**
 * The scheduler's picture of the workers, fed by state events: health,
 * published free capacity, pods waiting in inboxes, live replicas of each
 * ReplicaSet per worker, and its own reservations for pods it has just placed
 * (so a burst of pods does not all land on the same stale free capacity).
 */
export class SchedulerView {
  readonly healthy = new Set<string>();
  private readonly published = new Map<string, { cpu?: number; memory?: number }>();
  private readonly inbox = new Map<string, Map<string, { request: Amount }>>();
  private readonly inboxSum = new Map<string, Amount>();
  /** Pods that left an inbox (claimed), counted until the worker publishes its limits again. */
  private readonly leaving = new Map<string, Map<string, { request: Amount; at: number; revision: number }>>();
  /**
   * The revision of each worker's latest published limits. The worker's claim deletes the inbox entry and
   * publishes its limits in one transaction, but the two prefixes are watched apart, so either event may
   * come first: an inbox entry that left at or before this revision is already counted by the limits.
   */
  private readonly limitsRevision = new Map<string, number>();
  private readonly reservations = new Map<string, Reservation>();
  private readonly pods = new Map<string, { replicaSet?: string; worker?: string }>();
  /** replicaSet -> worker -> live pods. */
  private readonly replicas = new Map<string, Map<string, number>>();

  constructor(private readonly now: () => number = Date.now) {}

  apply(ev: StateEvent): void {
    let name: string | undefined;
    let two: [string, string] | undefined;
    if ((name = nameUnder(ev.key, HEALTHY_PREFIX)) !== undefined) {
      if (ev.type === 'put') this.healthy.add(name);
      else this.healthy.delete(name);
    } else if ((two = splitTwo(ev.key, LIMITS_PREFIX))) {
      const [kind, worker] = two;
      if (kind !== 'cpu' && kind !== 'memory') return;
      const p = this.published.get(worker) ?? {};
      const v = ev.type === 'put' ? parseLimit(kind, ev.value) : undefined;
      if (v === undefined) delete p[kind];
      else p[kind] = v;
      // A worker gone (both limits deleted with its lease) leaves nothing behind.
      if (p.cpu === undefined && p.memory === undefined) this.published.delete(worker);
      else this.published.set(worker, p);
      // The worker puts cpu and memory in one transaction: its values now count every pod claimed up to it.
      if (kind === 'memory') {
        if (ev.type === 'put') this.limitsRevision.set(worker, ev.modRevision);
        else this.limitsRevision.delete(worker);
        const l = this.leaving.get(worker);
        for (const [pod, e] of l ?? []) if (e.revision <= ev.modRevision) l!.delete(pod);
        if (l?.size === 0) this.leaving.delete(worker);
      }
    } else if ((two = splitTwo(ev.key, INBOX_PREFIX))) {
      const [worker, pod] = two;
      const box = this.inbox.get(worker) ?? new Map<string, { request: Amount }>();
      this.inbox.set(worker, box);
      const old = box.get(pod);
      if (old) this.inboxSum.set(worker, minus(this.inboxSum.get(worker) ?? ZERO, old.request));
      if (ev.type === 'put') {
        const parsed = decodePod(ev.value);
        const request = parsed ? podRequest(parsed.spec) : DEFAULT_REQUEST;
        box.set(pod, { request });
        this.inboxSum.set(worker, plus(this.inboxSum.get(worker) ?? ZERO, request));
        const r = this.reservations.get(pod);
        if (r && r.worker === worker) r.inInbox = true;
        this.dropSettled(pod);
      } else {
        const e = old;
        box.delete(pod);
        if (box.size === 0) {
          this.inbox.delete(worker);
          this.inboxSum.delete(worker);
        }
        if (e && (this.limitsRevision.get(worker) ?? 0) < ev.modRevision) {
          const l = this.leaving.get(worker) ?? new Map<string, { request: Amount; at: number; revision: number }>();
          l.set(pod, { request: e.request, at: this.now(), revision: ev.modRevision });
          this.leaving.set(worker, l);
        }
      }
    } else if ((name = nameUnder(ev.key, POD_PREFIX)) !== undefined) {
      this.countReplica(name, -1);
      if (ev.type === 'delete') {
        this.pods.delete(name);
        return;
      }
      const v = decodeObservedPod(ev.value);
      const replicaSet = v?.metadata?.replicaSet;
      const worker = v?.metadata?.workedBy;
      const live = !isTerminal(v?.state);
      this.pods.set(name, { replicaSet: live ? replicaSet : undefined, worker: live ? worker : undefined });
      this.countReplica(name, +1);
      const r = this.reservations.get(name);
      if (r && worker === r.worker) r.inResource = true;
      this.dropSettled(name);
    }
  }

  private countReplica(pod: string, delta: number): void {
    const p = this.pods.get(pod);
    if (!p?.replicaSet || !p.worker) return;
    const m = this.replicas.get(p.replicaSet) ?? new Map<string, number>();
    this.replicas.set(p.replicaSet, m);
    const n = (m.get(p.worker) ?? 0) + delta;
    if (n > 0) m.set(p.worker, n);
    else m.delete(p.worker);
    if (m.size === 0) this.replicas.delete(p.replicaSet);
  }

  private dropSettled(pod: string): void {
    const r = this.reservations.get(pod);
    if (r && r.inInbox && r.inResource) this.reservations.delete(pod);
  }

  /** Counts a pod the scheduler is placing on `worker` right now. */
  reserve(pod: string, worker: string, request: Amount, replicaSet?: string): void {
    this.reservations.set(pod, { worker, request, replicaSet, inInbox: false, inResource: false, at: this.now() });
  }

  unreserve(pod: string): void {
    this.reservations.delete(pod);
  }

  private expire(): void {
    const old = this.now() - HOLD_MS;
    for (const [pod, r] of this.reservations) if (r.at < old) this.reservations.delete(pod);
    for (const [w, l] of this.leaving) {
      for (const [pod, e] of l) if (e.at < old) l.delete(pod);
      if (l.size === 0) this.leaving.delete(w);
    }
  }

  /** Every worker known by health or published limits, with what is free and the replicas of `replicaSet`. */
  workers(replicaSet?: string): WorkerView[] {
    this.expire();
    const reserved = new Map<string, Amount>();
    const reservedReplicas = new Map<string, number>();
    for (const r of this.reservations.values()) {
      if (!r.inInbox) reserved.set(r.worker, plus(reserved.get(r.worker) ?? ZERO, r.request));
      if (!r.inResource && replicaSet !== undefined && r.replicaSet === replicaSet) {
        reservedReplicas.set(r.worker, (reservedReplicas.get(r.worker) ?? 0) + 1);
      }
    }
    const counts = replicaSet !== undefined ? this.replicas.get(replicaSet) : undefined;
    const names = new Set([...this.healthy, ...this.published.keys()]);
    const out: WorkerView[] = [];
    for (const name of names) {
      const p = this.published.get(name);
      let free: Amount | undefined;
      if (p?.cpu !== undefined && p.memory !== undefined) {
        free = { cpu: p.cpu, memory: p.memory };
        free = minus(free, this.inboxSum.get(name) ?? ZERO);
        free = minus(free, sumOf(this.leaving.get(name)));
        free = minus(free, reserved.get(name) ?? ZERO);
      }
      out.push({
        name,
        healthy: this.healthy.has(name),
        free,
        replicas: (counts?.get(name) ?? 0) + (reservedReplicas.get(name) ?? 0),
      });
    }
    return out;
  }
}

