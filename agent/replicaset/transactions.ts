import type { Compare, Op } from '../state.js';
import type { Action } from './reconcile.js';

/** Keys the controller reads and writes, relative to the etcd prefix. */
export const keys = {
  replicaSet: (rs: string): string => `resource/replicaset/${rs}`,
  replicaList: (rs: string): string => `replicaset/replicas/${rs}`,
  pod: (pod: string): string => `resource/pod/${pod}`,
  unscheduled: (pod: string): string => `pod/unscheduled/${pod}`,
};

export const PREFIXES = {
  replicaSets: 'resource/replicaset/',
  replicaLists: 'replicaset/replicas/',
  pods: 'resource/pod/',
  healthyWorkers: 'node.worker/heartbeat/healthy/',
};

export interface Transaction {
  if: Compare[];
  then: Op[];
}

/** The etcd transaction that performs one action, all or nothing. */
export function transaction(action: Action): Transaction {
  switch (action.kind) {
    case 'replicas': {
      const compare: Compare[] = [
        { key: keys.replicaSet(action.replicaSet), modRevision: action.replicaSetModRevision },
        { key: keys.replicaList(action.replicaSet), modRevision: action.listModRevision },
      ];
      const ops: Op[] = [{ put: keys.replicaList(action.replicaSet), value: JSON.stringify(action.list) }];
      for (const pod of action.create) {
        // Exactly the API's create: the resource and its unscheduled marker, the name still free.
        const value = JSON.stringify(pod);
        compare.push({ key: keys.pod(pod.name), createRevision: 0 });
        ops.push({ put: keys.pod(pod.name), value }, { put: keys.unscheduled(pod.name), value });
      }
      for (const p of action.remove) {
        compare.push({ key: keys.pod(p.name), modRevision: p.modRevision });
        ops.push({ delete: keys.pod(p.name) }, { delete: keys.unscheduled(p.name) });
      }
      for (const p of [...action.release, ...action.adopt]) compare.push({ key: keys.pod(p.name), modRevision: p.modRevision });
      for (const name of action.forget) compare.push({ key: keys.pod(name), createRevision: 0 });
      return { if: compare, then: ops };
    }
    case 'delete': {
      const compare: Compare[] = [{ key: keys.pod(action.pod.name), modRevision: action.pod.modRevision }];
      if (action.ownerAbsent) compare.push({ key: keys.replicaSet(action.replicaSet), createRevision: 0 });
      return { if: compare, then: [{ delete: keys.pod(action.pod.name) }, { delete: keys.unscheduled(action.pod.name) }] };
    }
    case 'drop-list':
      return {
        if: [
          { key: keys.replicaList(action.replicaSet), modRevision: action.listModRevision },
          { key: keys.replicaSet(action.replicaSet), createRevision: 0 },
        ],
        then: [{ delete: keys.replicaList(action.replicaSet) }],
      };
    case 'status':
      return {
        if: [{ key: keys.replicaSet(action.replicaSet), modRevision: action.modRevision }],
        then: [{ put: keys.replicaSet(action.replicaSet), value: JSON.stringify(action.value) }],
      };
  }
}
