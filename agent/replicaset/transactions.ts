import { podKey, replicaListKey, replicaSetHistoryKey, replicaSetKey, unscheduledKey } from '../keys.js';
import type { Compare, Op, Transaction } from '../state.js';
import type { Action } from './reconcile.js';
import type { StoredReplicaList } from './replica-list.js';

/** Compares per transaction besides the ReplicaSet's and the list's (etcd refuses more than 128 by default). */
export const MAX_GUARDS = 100;
/** Pods written per transaction: two operations each, plus the list, well under etcd's 128. */
export const MAX_PODS_PER_STEP = 32;

type ReplicasAction = Extract<Action, { kind: 'replicas' }>;

/**
 * The writes that remove one pod: its resource and its unscheduled marker.
 * Every removal of the controller (scale-down, rollout, ended, owner deleted)
 * goes through here, the one place a graceful drain would hook in (README).
 */
export const removeOps = (pod: string): Op[] => [{ delete: podKey(pod) }, { delete: unscheduledKey(pod) }];

/**
 * One transaction of a replica change: at most MAX_PODS_PER_STEP pods written
 * (resource and marker each) and MAX_GUARDS compares, as etcd bounds the
 * operations of a transaction.
 */
export interface ReplicaStep {
  /** Compares on pods (the ReplicaSet's and the list's are added per step). */
  if: Compare[];
  then: Op[];
  /** The list as this step leaves it. */
  list: string[];
  created: string[];
  removed: string[];
}

/**
 * Splits a replica change into steps that are each a valid state of the list:
 * ended and vanished replicas leave it, strays join it, removed ones leave it
 * with their pod, new ones join it with their pod. Every step is guarded on
 * the list the previous one wrote, so a chain that loses a race stops there.
 */
export function replicaSteps(action: ReplicasAction): ReplicaStep[] {
  interface Unit { guard: Compare; ops: Op[]; list: (l: string[]) => string[]; created?: string; removed?: string }
  const without = (name: string) => (l: string[]) => l.filter((n) => n !== name);
  const units: Unit[] = [
    ...action.release.map((p) => ({ guard: { key: podKey(p.name), modRevision: p.modRevision }, ops: [], list: without(p.name) })),
    ...action.forget.map((name) => ({ guard: { key: podKey(name), createRevision: 0 }, ops: [], list: without(name) })),
    ...action.adopt.map((p) => ({ guard: { key: podKey(p.name), modRevision: p.modRevision }, ops: [], list: (l: string[]) => [...l, p.name] })),
    ...action.remove.map((p) => ({
      guard: { key: podKey(p.name), modRevision: p.modRevision },
      ops: removeOps(p.name),
      list: without(p.name),
      removed: p.name,
    })),
    ...action.create.map((pod) => {
      // Exactly the API's create: the resource and its unscheduled marker, the name still free.
      const value = JSON.stringify(pod);
      return {
        guard: { key: podKey(pod.name), createRevision: 0 },
        ops: [{ put: podKey(pod.name), value }, { put: unscheduledKey(pod.name), value }],
        list: (l: string[]) => [...l, pod.name],
        created: pod.name,
      };
    }),
  ];
  const steps: ReplicaStep[] = [];
  let list = [...action.members];
  let step: ReplicaStep | undefined;
  let pods = 0;
  for (const u of units) {
    const writesPod = u.ops.length > 0;
    if (!step || step.if.length >= MAX_GUARDS || (writesPod && pods >= MAX_PODS_PER_STEP)) {
      step = { if: [], then: [], list, created: [], removed: [] };
      steps.push(step);
      pods = 0;
    }
    step.if.push(u.guard);
    step.then.push(...u.ops);
    list = u.list(list);
    step.list = list;
    if (writesPod) pods++;
    if (u.created) step.created.push(u.created);
    if (u.removed) step.removed.push(u.removed);
  }
  // A list to rewrite with no replica changing (one left by an earlier ReplicaSet of the same name).
  if (steps.length === 0) steps.push({ if: [], then: [], list, created: [], removed: [] });
  return steps;
}

/** The transaction of one step, guarded on the ReplicaSet as seen and on the list as the previous step left it. */
export function stepTransaction(action: ReplicasAction, step: ReplicaStep, listModRevision: number): Transaction {
  return {
    if: [
      { key: replicaSetKey(action.replicaSet), modRevision: action.replicaSetModRevision },
      { key: replicaListKey(action.replicaSet), modRevision: listModRevision },
      ...step.if,
    ],
    then: [{ put: replicaListKey(action.replicaSet), value: JSON.stringify({ owner: action.list.owner, replicas: step.list } satisfies StoredReplicaList) }, ...step.then],
  };
}

/** The etcd transaction that performs an action other than a replica change, all or nothing. */
export function transaction(action: Exclude<Action, ReplicasAction>): Transaction {
  switch (action.kind) {
    case 'delete': {
      const compare: Compare[] = [{ key: podKey(action.pod.name), modRevision: action.pod.modRevision }];
      if (action.ownerAbsent) compare.push({ key: replicaSetKey(action.replicaSet), createRevision: 0 });
      return { if: compare, then: removeOps(action.pod.name) };
    }
    case 'drop-list':
      return {
        if: [
          { key: replicaListKey(action.replicaSet), modRevision: action.listModRevision },
          { key: replicaSetKey(action.replicaSet), createRevision: 0 },
        ],
        then: [{ delete: replicaListKey(action.replicaSet) }],
      };
    case 'history': {
      const key = replicaSetHistoryKey(action.replicaSet);
      return {
        if: [action.modRevision === 0 ? { key, createRevision: 0 } : { key, modRevision: action.modRevision }],
        then: [{ put: key, value: JSON.stringify(action.value) }],
      };
    }
    case 'drop-history':
      return {
        if: [
          { key: replicaSetHistoryKey(action.replicaSet), modRevision: action.modRevision },
          { key: replicaSetKey(action.replicaSet), createRevision: 0 },
        ],
        then: [{ delete: replicaSetHistoryKey(action.replicaSet) }],
      };
    case 'status':
      return {
        if: [{ key: replicaSetKey(action.replicaSet), modRevision: action.modRevision }],
        then: [{ put: replicaSetKey(action.replicaSet), value: JSON.stringify(action.value) }],
      };
  }
}
