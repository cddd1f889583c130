import { decodeObservedPod, decodePod, type ObservedPod, type Pod } from '../../api/schemas.js';
import type { LeftPod } from '../runtime/runtime.js';

/** A stored pod to mark `dead`: its key as read, and the value to write. */
export interface Orphan {
  key: string;
  modRevision: number;
  /** The pod as it is to be stored: state `dead`, `reapedBy` this worker. */
  dead: ObservedPod;
}

/** A pod an earlier run of this worker started that still runs: this run takes it on as it is. */
export interface Adoption {
  /** The pod as stored (state `running`). */
  pod: Pod;
  runtimeName: string;
  ip: string;
  /** The claim's create revision: the task's guard against a pod created again under the name. */
  claimRevision: number;
}

/** What a worker does at start with what an earlier run left (SPEC §8). */
export interface RestartPlan {
  adopt: Adoption[];
  /** Stored pods to mark dead (their podman pods, if any, are in `remove`). */
  dead: Orphan[];
  /** Runtime names of podman pods to remove. */
  remove: string[];
  /**
   * This worker's claims on pods it neither adopts nor marks dead (deleted
   * or ended while it was down): they go with the pods' A records, or the
   * names stay taken.
   */
  staleClaims: { pod: string; createRevision: number }[];
}

type StoredKv = { key: string; value: string; modRevision: number };
type ClaimKv = { value: string; createRevision: number };

const podName = (key: string): string => key.slice(key.lastIndexOf('/') + 1);

/**
 * The restart decision, pure: the stored pods, this worker's claims (by pod
 * name) and the pods podman still has in; what to adopt, mark dead and
 * remove out. A pod is adopted when etcd says this worker runs it (state
 * `running`, `workedBy` this worker, the claim this worker's: it survived a
 * takeover of the old run's lease) and podman still runs its pod with an
 * address. A pod still `accepted` was mid-start: its containers may be half
 * made, so it is dead, as is a stored pod whose podman pod is gone or
 * stopped (a reboot). Every podman pod not adopted is removed: etcd calls
 * it dead, deleted or another node's, or it never got a resource. A claim
 * of this worker's that is neither adopted nor marked dead is stale.
 */
export function planRestart(pods: readonly StoredKv[], claims: ReadonlyMap<string, ClaimKv>, left: readonly LeftPod[], worker: string): RestartPlan {
  const leftByPod = new Map(left.map((l) => [l.pod, l]));
  const adopted = new Set<string>();
  const adopt: Adoption[] = [];
  const dead: Orphan[] = [];
  for (const kv of pods) {
    const observed = decodeObservedPod(kv.value);
    if (!observed || observed.metadata.workedBy !== worker || (observed.state !== 'accepted' && observed.state !== 'running')) continue;
    const name = podName(kv.key);
    const l = leftByPod.get(name);
    const claim = claims.get(name);
    const pod = decodePod(kv.value);
    if (observed.state === 'running' && pod && l?.running && l.ip && claim?.value === worker) {
      adopt.push({ pod, runtimeName: l.runtimeName, ip: l.ip, claimRevision: claim.createRevision });
      adopted.add(l.runtimeName);
      continue;
    }
    dead.push({ key: kv.key, modRevision: kv.modRevision, dead: { ...observed, state: 'dead', metadata: { ...observed.metadata, reapedBy: worker } } });
  }
  const remove = left.filter((l) => !adopted.has(l.runtimeName)).map((l) => l.runtimeName);
  const settled = new Set([...adopt.map((a) => a.pod.name), ...dead.map((d) => podName(d.key))]);
  const staleClaims = [...claims].filter(([name, c]) => c.value === worker && !settled.has(name)).map(([pod, c]) => ({ pod, createRevision: c.createRevision }));
  return { adopt, dead, remove, staleClaims };
}

/**
 * The stored pods an unclean stop of this worker left `accepted` or
 * `running`, with nothing of them left in podman: all of them are dead.
 */
export function orphansOf(kvs: readonly StoredKv[], worker: string): Orphan[] {
  return planRestart(kvs, new Map(), [], worker).dead;
}
