import { createHash } from 'node:crypto';
import { podSpec, type PodSpec, type ReplicaSetSpec } from '../../api/schemas.js';

/**
 * The pure parts of a rollout (SPEC §11), in the manner of Kubernetes'
 * Deployment controller: the template's hash, which replicas are of the
 * current template, the strategy's bounds, and which pods a step may create
 * and delete. Plain data in, plain data out: no I/O, no clock.
 */

/** Metadata keys written by kith's own plugins; a template cannot preset them, and they are not part of its hash. */
export const SYSTEM_METADATA: ReadonlySet<string> = new Set(['scheduledBy', 'workedBy', 'reapedBy', 'replicaSet', 'templateHash']);

/** JSON with object keys sorted at every level, so equal values give equal text. */
export function canonicalJson(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map((x) => canonicalJson(x ?? null)).join(',')}]`;
  if (v !== null && typeof v === 'object') {
    const entries = Object.entries(v as Record<string, unknown>)
      .filter(([, x]) => x !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, x]) => `${JSON.stringify(k)}:${canonicalJson(x)}`).join(',')}}`;
  }
  return JSON.stringify(v) ?? 'null';
}

const shortHash = (text: string): string => createHash('sha256').update(text).digest('hex').slice(0, 10);

/** The template's metadata as its pods carry it: without the keys kith writes. */
export function templateMetadata(template: ReplicaSetSpec['template']): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(template.metadata ?? {})) if (!SYSTEM_METADATA.has(k)) out[k] = v;
  return out;
}

/** A stable hash of a ReplicaSet's pod template: 10 hex digits of the SHA-256 of its canonical JSON (as parsed, defaults filled in). */
export function templateHash(template: ReplicaSetSpec['template']): string {
  return shortHash(canonicalJson({ metadata: templateMetadata(template), spec: template.spec }));
}

/**
 * Whether a pod made before pods carried `templateHash` is of this template:
 * its spec (parsed as a pod spec today) is the template's, apart from the
 * workers the controller added to `cannotBeScheduledOn` for spreading, and it
 * carries every label of the template. So upgrading kith rolls nothing.
 */
export function legacyPodMatches(template: ReplicaSetSpec['template'], pod: { spec: unknown; metadata: Record<string, string> }): boolean {
  const parsed = podSpec.safeParse(pod.spec);
  if (!parsed.success) return false;
  const spec: PodSpec = parsed.data;
  const want = template.spec.schedulingConstraints;
  const got = spec.schedulingConstraints;
  const sameMay = canonicalJson(want?.mayBeScheduledOn ?? null) === canonicalJson(got?.mayBeScheduledOn ?? null);
  const gotCannot = new Set(got?.cannotBeScheduledOn ?? []);
  if (!sameMay || !(want?.cannotBeScheduledOn ?? []).every((w) => gotCannot.has(w))) return false;
  const bare = { ...spec, schedulingConstraints: want };
  if (canonicalJson(bare) !== canonicalJson(template.spec)) return false;
  return Object.entries(templateMetadata(template)).every(([k, v]) => pod.metadata[k] === v);
}

export interface Bounds {
  /** Pods beyond `replicas` allowed during a rollout. */
  maxSurge: number;
  /** Pods below `replicas` allowed not to be available during a rollout. */
  maxUnavailable: number;
}

/** An absolute bound, or a percentage of `replicas` rounded up (surge) or down (unavailable), as Kubernetes does. */
function resolve(v: number | string | undefined, dflt: number, replicas: number, round: (x: number) => number): number {
  if (v === undefined) return dflt;
  if (typeof v === 'number') return v;
  return round((Number(v.slice(0, -1)) * replicas) / 100);
}

/** The strategy's bounds for `replicas` (Kubernetes' ResolveFenceposts: both zero makes maxUnavailable 1, so a rollout can always move). */
export function bounds(spec: ReplicaSetSpec): Bounds {
  const s = spec.strategy ?? {};
  const maxSurge = resolve(s.maxSurge, 1, spec.replicas, Math.ceil);
  let maxUnavailable = Math.min(resolve(s.maxUnavailable, 0, spec.replicas, Math.floor), spec.replicas);
  if (maxSurge === 0 && maxUnavailable === 0) maxUnavailable = 1;
  return { maxSurge, maxUnavailable };
}

export const DEFAULT_PROGRESS_DEADLINE_S = 600;

/** A live replica as a rollout step sees it. `pod` absent: created by this controller and not seen yet. */
export interface RolloutReplica {
  name: string;
  /** Of the current template. */
  current: boolean;
  ready: boolean;
  /** Seen, so a deletion can be guarded. */
  seen: boolean;
  /** Not yet running (scheduled, accepted, ...): the cheapest to remove. */
  running: boolean;
  createRevision: number;
}

export interface RolloutStep {
  /** Replicas to delete, in order. */
  remove: string[];
  /** New replicas of the current template to create. */
  create: number;
}

/** Unready before ready, not running before running, newest first: the pods whose loss costs least. */
const cheapestFirst = (a: RolloutReplica, b: RolloutReplica): number =>
  Number(a.ready) - Number(b.ready) || Number(a.running) - Number(b.running) || b.createRevision - a.createRevision;

/**
 * One step towards `replicas` replicas of the current template, as
 * Kubernetes' rolling update: new replicas are created while all of them stay
 * within `replicas + maxSurge`; old ones are deleted, unready ones first,
 * only while the ready replicas stay at least `replicas - maxUnavailable`;
 * current ones beyond `replicas` go as on a scale-down. A second template
 * change is the same step: every replica not of the newest template is old.
 * With no old replica this is a plain scale to `replicas`.
 */
export function rolloutStep(replicas: number, b: Bounds, live: readonly RolloutReplica[]): RolloutStep {
  const remove = new Set<string>();
  const current = live.filter((r) => r.current);
  const old = live.filter((r) => !r.current);
  const maxTotal = replicas + b.maxSurge;

  // Current replicas beyond `replicas` go at once (a scale-down), those whose loss costs least first.
  const extra = current.filter((r) => r.seen).sort(cheapestFirst).slice(0, Math.max(0, current.length - replicas));
  for (const r of extra) remove.add(r.name);
  const kept = live.filter((r) => !remove.has(r.name));
  const currentKept = kept.filter((r) => r.current);

  if (old.length > 0) {
    const minAvailable = Math.max(0, replicas - b.maxUnavailable);
    const available = kept.filter((r) => r.ready).length;
    const currentUnready = currentKept.filter((r) => !r.ready).length;
    // Unready old replicas first, as far as the current ones that are not ready yet leave room (Kubernetes' cleanupUnhealthyReplicas).
    let budget = kept.length - minAvailable - currentUnready;
    const oldSeen = old.filter((r) => r.seen);
    for (const r of oldSeen.filter((o) => !o.ready).sort(cheapestFirst)) {
      if (budget <= 0) break;
      remove.add(r.name);
      budget--;
    }
    // Then ready ones, oldest first, while the ready replicas stay at least minAvailable.
    let spare = available - minAvailable;
    for (const r of oldSeen.filter((o) => o.ready).sort((x, y) => x.createRevision - y.createRevision)) {
      if (spare <= 0) break;
      remove.add(r.name);
      spare--;
    }
    // Never more than replicas + maxSurge (replicas lowered mid-rollout): more old ones go, unready first.
    let over = live.length - remove.size - maxTotal;
    for (const r of oldSeen.filter((o) => !remove.has(o.name)).sort(cheapestFirst)) {
      if (over <= 0) break;
      remove.add(r.name);
      over--;
    }
  }

  const total = live.length - remove.size;
  const create = Math.max(0, Math.min(maxTotal - total, replicas - currentKept.length));
  return { remove: [...remove], create };
}

/** How far a rollout is, for the status. */
export interface RolloutCounts {
  desired: number;
  /** Live replicas of the current template. */
  updated: number;
  /** Live replicas that are ready. */
  ready: number;
  /** Ready replicas of the current template. */
  updatedReady: number;
  /** Live replicas in all. */
  live: number;
}

/** Complete when every replica is of the current template and ready, and there are no others. */
export const rolloutComplete = (c: RolloutCounts): boolean =>
  c.updated === c.desired && c.updatedReady === c.desired && c.live === c.desired;

/**
 * The rollout state: `complete`, else `stalled` once no progress was made for
 * the deadline, else `progressing`. Progress is any change of the counts;
 * `progressAt` (ms) is when they last changed.
 */
export function rolloutState(c: RolloutCounts, progressAt: number, now: number, deadlineS: number): 'complete' | 'progressing' | 'stalled' {
  if (rolloutComplete(c)) return 'complete';
  return now - progressAt >= deadlineS * 1000 ? 'stalled' : 'progressing';
}

/**
 * Whether a pod counts as ready: `metadata.ready` says so (`true`), or, while
 * no pod in the cluster carries that field (workers without readiness), it
 * runs.
 */
export function podReady(p: { state: string; ready?: string }, readinessInCluster: boolean): boolean {
  if (p.state !== 'running') return false;
  if (p.ready !== undefined) return p.ready === 'true';
  return !readinessInCluster;
}
