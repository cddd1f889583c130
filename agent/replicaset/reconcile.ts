import { isTerminal, replicaSetStatus, type Pod, type ReplicaSetSpec } from '../../api/schemas.js';
import {
  bounds,
  DEFAULT_PROGRESS_DEADLINE_S,
  legacyPodMatches,
  podReady,
  rolloutState,
  rolloutStep,
  templateHash,
  templateMetadata,
  type RolloutCounts,
  type RolloutReplica,
} from './rollout.js';
import { nextHistory, type History } from './history.js';

/**
 * The ReplicaSet controller's decision: `(observed, desired) → actions`, in
 * the manner of Kubernetes controllers. Pure: no I/O, no clock, no randomness
 * (the random part of new pod names comes in as `options.suffix`).
 *
 * Each ReplicaSet owns a replica list (`replicaset/replicas/<rs>`): the names
 * of the replicas it counts. A pod is created only in the same transaction
 * that adds its name to the list, guarded by the list's mod revision, so two
 * controllers that see the same list cannot both fill the same gap (README).
 */

export interface DesiredReplicaSet {
  name: string;
  createRevision: number;
  modRevision: number;
  /** The stored resource as parsed JSON, kept whole so a status write changes nothing else. */
  stored: Record<string, unknown>;
  /** Absent when the stored spec does not parse: the controller then leaves the ReplicaSet alone. */
  spec?: ReplicaSetSpec;
}

export interface ObservedPod {
  name: string;
  /** `metadata.replicaSet`: the owning ReplicaSet. */
  replicaSet: string;
  state: string;
  workedBy?: string;
  /** `metadata.templateHash`: the hash of the template the pod was made from. */
  templateHash?: string;
  /** `metadata.ready` as written by its worker (SPEC §10), when it is. */
  ready?: string;
  /** A pod made before pods carried a template hash: its spec and metadata, to match against the template. */
  legacy?: { spec: unknown; metadata: Record<string, string> };
  createRevision: number;
  modRevision: number;
}

export interface ReplicaList {
  /** The create revision of the ReplicaSet the list belongs to; a list left by an earlier ReplicaSet of the same name does not count. */
  owner: number;
  replicas: string[];
  /** The list key's mod revision (the guard of every change to it). */
  modRevision: number;
}

export interface Observed {
  /** Pods that carry `metadata.replicaSet`, by name. */
  pods: ReadonlyMap<string, ObservedPod>;
  /** Replica lists by ReplicaSet name. */
  replicaLists: ReadonlyMap<string, ReplicaList>;
  /** Workers with a healthy heartbeat, for spreading. */
  healthyWorkers: ReadonlySet<string>;
  /** Pods this controller created and has not seen yet: they count as live replicas. */
  created: ReadonlySet<string>;
  /** Pods this controller deleted whose deletion it has not seen yet: ignored. */
  deleted: ReadonlySet<string>;
  /**
   * Per ReplicaSet, the revision of this controller's last committed change to
   * its replica list; nothing is planned for it until the list seen is that new.
   */
  listWritten: ReadonlyMap<string, number>;
  /** Per ReplicaSet, the revision of this controller's last status write; no status is planned until the ReplicaSet seen is that new. */
  statusWritten: ReadonlyMap<string, number>;
  /** ReplicaSets whose replicas keep failing: no new replicas for them this round (crash-loop back-off). */
  held?: ReadonlySet<string>;
  /** Whether any pod in the cluster carries `metadata.ready`; until one does, a running pod counts as ready. */
  readinessInCluster?: boolean;
  /** The time of the round (ms since the epoch), for rollout deadlines. */
  now?: number;
  /** Rollout histories by ReplicaSet name, with their key's mod revision (`history` absent: the stored value does not parse). */
  histories?: ReadonlyMap<string, { history?: History; modRevision: number }>;
  /** Per ReplicaSet, the revision of this controller's last history write; no other is planned until the history seen is that new. */
  historyWritten?: ReadonlyMap<string, number>;
}

export interface ReconcileOptions {
  /** Returns a fresh 5-character [a-z0-9] suffix for a new replica's name. */
  suffix: () => string;
  /** Ended replicas kept per ReplicaSet for inspection (newest first); older ones are deleted. */
  keepEnded: number;
}

/** A pod seen at a mod revision: the guard that it has not changed since. */
export interface PodGuard {
  name: string;
  modRevision: number;
}

export type Action =
  /** One transaction on a ReplicaSet's replica list and the pods it gains or loses. */
  | {
      kind: 'replicas';
      replicaSet: string;
      replicaSetModRevision: number;
      /** Mod revision of the list as seen (0: absent). */
      listModRevision: number;
      /** The names the list held as seen (empty when absent or left by an earlier ReplicaSet). */
      members: string[];
      /** The list to write. */
      list: { owner: number; replicas: string[] };
      /** New replicas: put with their `pod/unscheduled/` marker, guarded by create revision 0. */
      create: Pod[];
      /** Replicas removed (scale-down) or live strays over the count: deleted, guarded by mod revision. */
      remove: PodGuard[];
      /** Ended replicas leaving the list, guarded by mod revision (the pod stays, for inspection). */
      release: PodGuard[];
      /** Replicas gone from etcd leaving the list, guarded by create revision 0. */
      forget: string[];
      /** Live pods of this ReplicaSet missing from its list, taken in, guarded by mod revision. */
      adopt: PodGuard[];
    }
  /** Delete one pod (and its `pod/unscheduled/` marker), guarded by its mod revision. */
  | {
      kind: 'delete';
      pod: PodGuard;
      replicaSet: string;
      reason: 'owner-deleted' | 'ended';
      /** Also guard that the ReplicaSet does not exist (create revision 0). */
      ownerAbsent: boolean;
    }
  /** Delete the replica list of a ReplicaSet that no longer exists (guarded: it still does not). */
  | { kind: 'drop-list'; replicaSet: string; listModRevision: number }
  /** Write a ReplicaSet's rollout history, guarded by the history's mod revision as seen (0: absent). */
  | { kind: 'history'; replicaSet: string; modRevision: number; value: History }
  /** Delete the history of a ReplicaSet that no longer exists (guarded: it still does not). */
  | { kind: 'drop-history'; replicaSet: string; modRevision: number }
  /** Write the ReplicaSet's state and status, guarded by its mod revision. */
  | { kind: 'status'; replicaSet: string; modRevision: number; value: Record<string, unknown>; status: ReplicaSetStatus; state: string };

export interface ReplicaSetStatus {
  desired: number;
  live: number;
  running: number;
  /** Live replicas of the current template. */
  updated: number;
  /** Live replicas that are ready. */
  ready: number;
  /** Ready replicas, as counted against maxUnavailable (kith has no minReadySeconds: the same as ready). */
  available: number;
  /** Ready replicas of the current template. */
  updatedReady: number;
  templateHash: string;
  rollout: 'progressing' | 'complete' | 'stalled';
  /** When the rollout last made progress (ISO time). */
  progressAt: string;
}

/** The name of a replica: `<rs>-<5 random [a-z0-9]>`. */
export const replicaName = (replicaSet: string, suffix: string): string => `${replicaSet}-${suffix}`;

export const SUFFIX = /^[a-z0-9]{5}$/;

/** The pod resource of a new replica, from the ReplicaSet's template. */
export function replicaPod(rs: string, spec: ReplicaSetSpec, name: string, avoid: readonly string[]): Pod {
  const metadata = templateMetadata(spec.template);
  metadata.replicaSet = rs;
  metadata.templateHash = templateHash(spec.template);
  const podSpec = structuredClone(spec.template.spec);
  if (avoid.length > 0) {
    const c = podSpec.schedulingConstraints ?? {};
    const cannot = [...new Set([...(c.cannotBeScheduledOn ?? []), ...avoid])].sort();
    podSpec.schedulingConstraints = { ...c, cannotBeScheduledOn: cannot };
  }
  return { name, type: 'pod', state: 'created', metadata, spec: podSpec };
}

/** Workers the template allows, among the healthy ones. */
function allowedWorkers(spec: ReplicaSetSpec, healthy: ReadonlySet<string>): Set<string> {
  const c = spec.template.spec.schedulingConstraints;
  const may = c?.mayBeScheduledOn;
  const cannot = new Set(c?.cannotBeScheduledOn ?? []);
  return new Set([...healthy].filter((w) => (may == null || may.includes(w)) && !cannot.has(w)));
}

/** Whether a live replica is of the template whose hash is `hash`; a pod without a hash is matched on its spec. */
export function ofTemplate(spec: ReplicaSetSpec, hash: string, p: ObservedPod): boolean {
  if (p.templateHash !== undefined) return p.templateHash === hash;
  return p.legacy !== undefined && legacyPodMatches(spec.template, p.legacy);
}

const storedStatus = (stored: Record<string, unknown>) => {
  const r = replicaSetStatus.safeParse(stored.status);
  return r.success ? r.data : undefined;
};

/**
 * The ReplicaSet's status: its replicas counted, and the rollout's state.
 * Progress (which restarts the deadline) is a new template, more ready
 * replicas of the current one, or fewer replicas of older ones.
 */
export function statusOf(
  rs: Pick<DesiredReplicaSet, 'stored'>,
  spec: ReplicaSetSpec,
  owned: readonly ObservedPod[],
  readinessInCluster: boolean,
  now: number,
): { status: ReplicaSetStatus; state: string } {
  const hash = templateHash(spec.template);
  const live = owned.filter((p) => !isTerminal(p.state));
  const current = live.filter((p) => ofTemplate(spec, hash, p));
  const ready = live.filter((p) => podReady(p, readinessInCluster)).length;
  const counts: RolloutCounts = {
    desired: spec.replicas,
    updated: current.length,
    ready,
    updatedReady: current.filter((p) => podReady(p, readinessInCluster)).length,
    live: live.length,
  };
  const before = storedStatus(rs.stored);
  const progressed =
    before?.templateHash !== hash ||
    before.progressAt === undefined ||
    counts.updatedReady > (before.updatedReady ?? 0) ||
    live.length - current.length < before.live - (before.updated ?? 0);
  const at = progressed ? now : Date.parse(before.progressAt!);
  const progressAt = Number.isFinite(at) ? at : now;
  const rollout = rolloutState(counts, progressAt, now, spec.progressDeadlineSeconds ?? DEFAULT_PROGRESS_DEADLINE_S);
  const status: ReplicaSetStatus = {
    desired: spec.replicas,
    live: live.length,
    running: live.filter((p) => p.state === 'running').length,
    updated: counts.updated,
    ready,
    available: ready,
    updatedReady: counts.updatedReady,
    templateHash: hash,
    rollout,
    progressAt: progressed || !before?.progressAt ? new Date(progressAt).toISOString() : before.progressAt,
  };
  const state = status.live === status.desired && status.running === status.desired ? 'ready' : 'progressing';
  return { status, state };
}

function sameStatus(stored: Record<string, unknown>, status: ReplicaSetStatus, state: string): boolean {
  const s = stored.status as Record<string, unknown> | undefined;
  return (
    stored.state === state &&
    typeof s === 'object' && s !== null &&
    (Object.keys(status) as (keyof ReplicaSetStatus)[]).every((k) => s[k] === status[k]) &&
    Object.keys(s).length === Object.keys(status).length
  );
}

export function reconcile(
  observed: Observed,
  desired: ReadonlyMap<string, DesiredReplicaSet>,
  options: ReconcileOptions,
): Action[] {
  const actions: Action[] = [];
  const byOwner = new Map<string, ObservedPod[]>();
  for (const pod of observed.pods.values()) {
    if (observed.deleted.has(pod.name)) continue;
    let list = byOwner.get(pod.replicaSet);
    if (!list) byOwner.set(pod.replicaSet, (list = []));
    list.push(pod);
  }
  const taken = new Set(observed.pods.keys());

  // ReplicaSets that are gone: delete their pods and their list.
  for (const [rs, pods] of byOwner) {
    if (desired.has(rs)) continue;
    for (const p of pods) {
      actions.push({ kind: 'delete', pod: { name: p.name, modRevision: p.modRevision }, replicaSet: rs, reason: 'owner-deleted', ownerAbsent: true });
    }
  }
  for (const [rs, list] of observed.replicaLists) {
    if (!desired.has(rs) && (observed.listWritten.get(rs) ?? 0) <= list.modRevision) {
      actions.push({ kind: 'drop-list', replicaSet: rs, listModRevision: list.modRevision });
    }
  }

  for (const [rs, h] of observed.histories ?? []) {
    if (!desired.has(rs) && (observed.historyWritten?.get(rs) ?? 0) <= h.modRevision) {
      actions.push({ kind: 'drop-history', replicaSet: rs, modRevision: h.modRevision });
    }
  }

  for (const rs of desired.values()) {
    if (!rs.spec) continue;
    // A template not yet in the history becomes its newest revision.
    const seenHistory = observed.histories?.get(rs.name);
    if (observed.histories && (observed.historyWritten?.get(rs.name) ?? 0) <= (seenHistory?.modRevision ?? 0)) {
      const next = nextHistory(rs.name, rs.createRevision, rs.spec.template, templateHash(rs.spec.template), seenHistory?.history, new Date(observed.now ?? 0).toISOString());
      if (next) actions.push({ kind: 'history', replicaSet: rs.name, modRevision: seenHistory?.modRevision ?? 0, value: next });
    }
    const owned = byOwner.get(rs.name) ?? [];
    const spec = rs.spec;

    const list = observed.replicaLists.get(rs.name);
    const listModRevision = list?.modRevision ?? 0;
    // Our own last change to the list is not in view yet: plan nothing until it is.
    if ((observed.listWritten.get(rs.name) ?? 0) > listModRevision) continue;
    const planned = actions.length;
    const listValid = list !== undefined && list.owner === rs.createRevision;
    const memberSet = new Set(listValid ? list.replicas : []);
    const members = [...memberSet];

    const keep: string[] = [];
    const live: { name: string; pod?: ObservedPod }[] = [];
    const release: PodGuard[] = [];
    const forget: string[] = [];
    for (const name of members) {
      const pod = observed.pods.get(name);
      if (!pod || observed.deleted.has(name)) {
        if (observed.created.has(name)) {
          keep.push(name);
          live.push({ name });
        } else {
          forget.push(name);
        }
      } else if (isTerminal(pod.state)) {
        release.push({ name, modRevision: pod.modRevision });
      } else {
        keep.push(name);
        live.push({ name, pod });
      }
    }

    // Live pods of this ReplicaSet that its list does not name: take the oldest in while there is room, delete the rest.
    const strays = owned.filter((p) => !memberSet.has(p.name) && !isTerminal(p.state)).sort((a, b) => a.createRevision - b.createRevision);
    const adopt: PodGuard[] = [];
    const remove: PodGuard[] = [];
    for (const p of strays) {
      if (live.length < spec.replicas) {
        adopt.push({ name: p.name, modRevision: p.modRevision });
        keep.push(p.name);
        live.push({ name: p.name, pod: p });
      } else {
        remove.push({ name: p.name, modRevision: p.modRevision });
      }
    }

    // One rollout step (a plain scale when every replica is of the current template): which replicas go, how many come.
    const hash = templateHash(spec.template);
    const readiness = observed.readinessInCluster ?? false;
    const step = rolloutStep(
      spec.replicas,
      bounds(spec),
      live.map((l): RolloutReplica => ({
        name: l.name,
        // Not seen yet: made by this controller, counted as current and not ready until seen.
        current: l.pod ? ofTemplate(spec, hash, l.pod) : true,
        ready: l.pod ? podReady(l.pod, readiness) : false,
        seen: l.pod !== undefined,
        running: l.pod?.state === 'running',
        createRevision: l.pod?.createRevision ?? Number.MAX_SAFE_INTEGER,
      })),
    );
    const create: Pod[] = [];
    const gone = new Set(step.remove);
    const byName = new Map(live.map((l) => [l.name, l.pod]));
    for (const name of step.remove) remove.push({ name, modRevision: byName.get(name)!.modRevision });
    for (let i = keep.length - 1; i >= 0; i--) if (gone.has(keep[i]!)) keep.splice(i, 1);
    if (step.create > 0 && !observed.held?.has(rs.name)) {
      // Spread: avoid workers that already run a live replica while the template allows a healthy worker that does not.
      const staying = live.filter((l) => !gone.has(l.name));
      const occupied = new Set(staying.flatMap((l) => (l.pod?.workedBy ? [l.pod.workedBy] : [])));
      const free = [...allowedWorkers(spec, observed.healthyWorkers)].filter((w) => !occupied.has(w));
      for (let i = 0; i < step.create; i++) {
        let name: string | undefined;
        for (let attempt = 0; attempt < 20 && name === undefined; attempt++) {
          const candidate = replicaName(rs.name, options.suffix());
          if (!taken.has(candidate)) name = candidate;
        }
        if (name === undefined) break; // the suffix source keeps colliding: try again next round
        taken.add(name);
        keep.push(name);
        create.push(replicaPod(rs.name, spec, name, i < free.length && occupied.size > 0 ? [...occupied] : []));
      }
    }

    const stored = listValid ? list.replicas : [];
    const listChanged = !listValid || keep.length !== stored.length || keep.some((n, i) => n !== stored[i]);
    if (listChanged || create.length + remove.length + release.length + forget.length + adopt.length > 0) {
      actions.push({
        kind: 'replicas',
        replicaSet: rs.name,
        replicaSetModRevision: rs.modRevision,
        listModRevision,
        members: [...members],
        list: { owner: rs.createRevision, replicas: keep },
        create,
        remove,
        release,
        forget,
        adopt,
      });
    }

    // Status once the replicas are settled: a status write changes the ReplicaSet's mod revision, which guards the replica changes.
    const statusPending = (observed.statusWritten.get(rs.name) ?? 0) > rs.modRevision;
    if (actions.length === planned && !statusPending) {
      const { status, state } = statusOf(rs, spec, owned, observed.readinessInCluster ?? false, observed.now ?? 0);
      if (!sameStatus(rs.stored, status, state)) {
        actions.push({ kind: 'status', replicaSet: rs.name, modRevision: rs.modRevision, value: { ...rs.stored, state, status }, status, state });
      }
    }

    // Ended replicas outside the list: keep the newest few, delete the rest.
    const inList = new Set(keep);
    const ended = owned
      .filter((p) => isTerminal(p.state) && !memberSet.has(p.name) && !inList.has(p.name))
      .sort((a, b) => b.modRevision - a.modRevision);
    for (const p of ended.slice(options.keepEnded)) {
      actions.push({ kind: 'delete', pod: { name: p.name, modRevision: p.modRevision }, replicaSet: rs.name, reason: 'ended', ownerAbsent: false });
    }
  }
  return actions;
}
