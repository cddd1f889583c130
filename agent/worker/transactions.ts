import type { Pod } from '../../api/schemas.js';
import { formatCpu, type Amount } from '../capacity.js';
import { POD_PREFIX, claimedKey, inboxKey, nameUnder, limitsKey, nodeDnsKey, nodeResourceKey, podDnsKey, podKey, unscheduledKey } from '../keys.js';
import { nodeResourceValue } from '../node.js';
import type { Compare, Op, Transaction } from '../state.js';
import type { ClaimDecision } from './claim.js';
import type { Orphan } from './orphans.js';

/** The worker's etcd writes, as data: each is one transaction, all or nothing. */

/** The free capacity as published: on the alive lease, so it goes with the worker. */
export function limitOps(worker: string, free: Amount): Op[] {
  return [
    { put: limitsKey('cpu', worker), value: formatCpu(free.cpu), lease: 'alive' },
    { put: limitsKey('memory', worker), value: String(free.memory), lease: 'alive' },
  ];
}

/**
 * At start: the node resource, the node's A record and its free capacity.
 * Unguarded: these keys are this node's own, and no other node writes them.
 */
export function nodeRecordTransaction(o: {
  worker: string;
  domain: string;
  clusterAddress: string;
  hostAddress?: string;
  subnet: string;
  capacity: Amount;
  free: Amount;
}): Transaction {
  return {
    if: [],
    then: [
      {
        put: nodeResourceKey('worker', o.worker),
        value: nodeResourceValue('worker', o.worker, {
          address: o.clusterAddress,
          ...(o.hostAddress ? { hostAddress: o.hostAddress } : {}),
          subnet: o.subnet,
          limits: { cpu: formatCpu(o.capacity.cpu), memory: o.capacity.memory },
        }),
      },
      { put: nodeDnsKey(o.worker, 'worker', o.domain), value: o.clusterAddress, lease: 'alive' },
      ...limitOps(o.worker, o.free),
    ],
  };
}

/**
 * Marks a pod left by an unclean stop `dead`; guarded on the pod as read, so a
 * later writer's change stands. Its claim and A record go with it: after a
 * takeover (SPEC §8) they were moved onto this run's lease, and no task of
 * this run would ever release them.
 */
export function orphanTransaction(o: Orphan, domain: string): Transaction {
  const name = nameUnder(o.key, POD_PREFIX) ?? '';
  return {
    if: [{ key: o.key, modRevision: o.modRevision }],
    then: [{ put: o.key, value: JSON.stringify(o.dead) }, { delete: claimedKey(name) }, { delete: podDnsKey(name, domain) }],
  };
}

/** Removes a claim this worker left on a pod that is gone or ended (orphans.ts), with the pod's A record; only the claim as read. */
export function staleClaimTransaction(worker: string, pod: string, createRevision: number, domain: string): Transaction {
  return {
    if: [{ key: claimedKey(pod), createRevision }, { key: claimedKey(pod), value: worker }],
    then: [{ delete: claimedKey(pod) }, { delete: podDnsKey(pod, domain) }],
  };
}

/** Drops an inbox entry; guarded on the entry seen, so a newer entry for the same pod stays. */
export function dropInboxEntryTransaction(worker: string, pod: string, entryModRevision: number): Transaction {
  return { if: [{ key: inboxKey(worker, pod), modRevision: entryModRevision }], then: [{ delete: inboxKey(worker, pod) }] };
}

/**
 * Hands a pod that does not fit back to the scheduler: the inbox entry goes,
 * the resource is `created` again with its unscheduled marker. Guarded by
 * "the resource exists" (a deleted pod is not brought back) and "the inbox
 * entry is the one seen".
 */
export function handBackTransaction(worker: string, name: string, back: Pod, entryModRevision: number): Transaction {
  const value = JSON.stringify(back);
  return {
    if: [{ key: podKey(name), createRevision: 0, op: '!=' }, { key: inboxKey(worker, name), modRevision: entryModRevision }],
    then: [{ delete: inboxKey(worker, name) }, { put: podKey(name), value }, { put: unscheduledKey(name), value }],
  };
}

/**
 * Claims a pod: the inbox entry goes, the claim is put on the alive lease,
 * the resource becomes `accepted` and the new free capacity is published.
 * Guarded by "the resource exists and predates the inbox entry" (a pod
 * deleted and created again under the same name is a new pod, not this
 * entry's) and "the inbox entry is the one seen". Keys go by the inbox
 * entry's name.
 */
export function claimTransaction(name: string, claim: Extract<ClaimDecision, { kind: 'claim' }>, entryModRevision: number): Transaction {
  return {
    if: [
      { key: podKey(name), createRevision: 0, op: '!=' },
      { key: podKey(name), createRevision: entryModRevision + 1, op: '<' },
      { key: inboxKey(claim.worker, name), modRevision: entryModRevision },
    ],
    then: [
      { delete: inboxKey(claim.worker, name) },
      { put: claimedKey(name), value: claim.worker, lease: 'alive' },
      { put: podKey(name), value: JSON.stringify(claim.pod) },
      ...limitOps(claim.worker, claim.freeAfter),
    ],
  };
}

/**
 * Releases an ended pod's claim and publishes the capacity given back.
 * Guarded by "the claim is still this worker's"; either way the capacity is published.
 */
export function releaseTransaction(worker: string, pod: string, free: Amount): Transaction {
  return {
    if: [{ key: claimedKey(pod), value: worker }],
    then: [{ delete: claimedKey(pod) }, ...limitOps(worker, free)],
    else: limitOps(worker, free),
  };
}

/**
 * Writes a claimed pod's state (`running` with its A record on the alive
 * lease, or a final state). Guarded by the resource's create revision: a pod
 * created again under the same name is another pod, and is left alone.
 */
export function podStateTransaction(pod: string, createRevision: number, value: string, record?: { domain: string; ip: string }): Transaction {
  return {
    if: [{ key: podKey(pod), createRevision }],
    then: [{ put: podKey(pod), value }, ...(record ? [{ put: podDnsKey(pod, record.domain), value: record.ip, lease: 'alive' as const }] : [])],
  };
}

/** Deletes a pod's A record; guarded by its value, as a pod created again elsewhere may already have its own. */
export function podRecordRemovalTransaction(pod: string, domain: string, ip: string): Transaction {
  const key = podDnsKey(pod, domain);
  return { if: [{ key, value: ip }], then: [{ delete: key }] };
}

/**
 * A change of a running pod's metadata by its worker (readiness, restarts):
 * guarded by the value read (its mod revision), so a state another writer
 * gave it meanwhile (the reaper's `dead`, a newer pod of the name) stands.
 */
export function podMetadataTransaction(pod: string, modRevision: number, value: string): Transaction {
  return { if: [{ key: podKey(pod), modRevision }], then: [{ put: podKey(pod), value }] };
}
