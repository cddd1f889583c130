import { z } from 'zod';
import { decodeObservedPod, replicaSet as replicaSetSchema, storedDecoder, storedJson } from '../../api/schemas.js';
import { heartbeatPrefix, POD_PREFIX, REPLICA_LIST_PREFIX, REPLICASET_HISTORY_PREFIX, REPLICASET_PREFIX } from '../keys.js';
import type { StateEvent } from '../state.js';
import type { DesiredReplicaSet, ObservedPod, ReplicaList } from './reconcile.js';
import { history as historySchema, type History } from './history.js';
import { replicaList } from './replica-list.js';

/** What the controller watches. */
export const PREFIXES = {
  replicaSets: REPLICASET_PREFIX,
  replicaLists: REPLICA_LIST_PREFIX,
  pods: POD_PREFIX,
  healthyWorkers: heartbeatPrefix('worker', 'healthy'),
  histories: REPLICASET_HISTORY_PREFIX,
};

const storedObject = z.record(z.string(), z.unknown());
const decodeList = storedDecoder(replicaList);
const decodeHistory = storedDecoder(historySchema);

/** A stored ReplicaSet that does not parse: the controller leaves it alone and says why. */
export interface InvalidReplicaSet {
  replicaSet: string;
  field: string;
  problem: string;
}

/**
 * The controller's in-memory view of etcd, fed by state events: ReplicaSets,
 * their replica lists, the pods that carry `metadata.replicaSet`, and the
 * healthy workers. Bad stored values never throw.
 */
export class ReplicaSetView {
  readonly replicaSets = new Map<string, DesiredReplicaSet>();
  readonly lists = new Map<string, ReplicaList>();
  readonly pods = new Map<string, ObservedPod>();
  readonly healthyWorkers = new Set<string>();
  readonly histories = new Map<string, { history?: History; modRevision: number }>();
  /** Pods (of any owner) that carry `metadata.ready`: while there are none, workers write no readiness and running counts as ready. */
  private readonly withReadiness = new Set<string>();

  get readinessInCluster(): boolean {
    return this.withReadiness.size > 0;
  }

  /** Applies one event. Returns what was wrong with a ReplicaSet that does not parse. */
  apply(ev: StateEvent): InvalidReplicaSet | undefined {
    const k = ev.key;
    if (k.startsWith(PREFIXES.pods)) this.onPod(k.slice(PREFIXES.pods.length), ev);
    else if (k.startsWith(PREFIXES.replicaSets)) return this.onReplicaSet(k.slice(PREFIXES.replicaSets.length), ev);
    else if (k.startsWith(PREFIXES.replicaLists)) this.onList(k.slice(PREFIXES.replicaLists.length), ev);
    else if (k.startsWith(PREFIXES.histories)) {
      const rs = k.slice(PREFIXES.histories.length);
      // A history that does not parse is rewritten whole by the next template change.
      if (ev.type === 'delete') this.histories.delete(rs);
      else this.histories.set(rs, { history: decodeHistory(ev.value), modRevision: ev.modRevision });
    }
    else if (k.startsWith(PREFIXES.healthyWorkers)) {
      const w = k.slice(PREFIXES.healthyWorkers.length);
      if (ev.type === 'put') this.healthyWorkers.add(w);
      else this.healthyWorkers.delete(w);
    }
    return undefined;
  }

  private onPod(name: string, ev: StateEvent): void {
    if (ev.type === 'delete') {
      this.pods.delete(name);
      this.withReadiness.delete(name);
      return;
    }
    const v = decodeObservedPod(ev.value);
    if (v?.metadata.ready !== undefined) this.withReadiness.add(name);
    else this.withReadiness.delete(name);
    const replicaSet = v?.metadata.replicaSet;
    if (!v || replicaSet === undefined) {
      this.pods.delete(name);
      return;
    }
    const templateHash = v.metadata.templateHash;
    this.pods.set(name, {
      name,
      replicaSet,
      state: v.state ?? 'created',
      workedBy: v.metadata.workedBy,
      ...(templateHash !== undefined ? { templateHash } : { legacy: { spec: v.spec, metadata: v.metadata } }),
      ...(v.metadata.ready !== undefined ? { ready: v.metadata.ready } : {}),
      createRevision: ev.createRevision,
      modRevision: ev.modRevision,
    });
  }

  private onReplicaSet(name: string, ev: StateEvent): InvalidReplicaSet | undefined {
    if (ev.type === 'delete') {
      this.replicaSets.delete(name);
      return undefined;
    }
    const json = storedJson.safeParse(ev.value);
    const v = json.success ? json.data : undefined;
    const object = storedObject.safeParse(v);
    // The status is the controller's own output: a bad one is rewritten, not a reason to leave the ReplicaSet alone.
    const parsed = replicaSetSchema.safeParse(object.success ? { ...object.data, status: undefined } : v);
    this.replicaSets.set(name, {
      name,
      createRevision: ev.createRevision,
      modRevision: ev.modRevision,
      stored: object.success ? object.data : {},
      spec: parsed.success ? parsed.data.spec : undefined,
    });
    if (parsed.success) return undefined;
    const issue = parsed.error.issues[0];
    return { replicaSet: name, field: issue?.path.join('.') || '(value)', problem: issue?.message ?? 'not a ReplicaSet' };
  }

  private onList(rs: string, ev: StateEvent): void {
    if (ev.type === 'delete') {
      this.lists.delete(rs);
      return;
    }
    // A list that does not parse belongs to no ReplicaSet: the next change overwrites it.
    this.lists.set(rs, { ...(decodeList(ev.value) ?? { owner: -1, replicas: [] }), modRevision: ev.modRevision });
  }
}
