import { z } from 'zod';
import type { ReplicaSetSpec } from '../../api/schemas.js';
import { REPLICASET_HISTORY_TYPE } from '../keys.js';

/**
 * A ReplicaSet's rollout history: its last templates, numbered as Kubernetes
 * numbers a Deployment's revisions. Kept as the resource
 * `replicaset.history/<rs>` (readable with `GET /resources/replicaset.history/<rs>`),
 * written by the controller only; `kith rollout history` lists it and
 * `kith rollout undo` patches a template from it back into the ReplicaSet.
 */

/** Templates kept per ReplicaSet. */
export const HISTORY_LIMIT = 10;

export const historyEntry = z.object({
  revision: z.number().int().min(1),
  templateHash: z.string(),
  /** When this template became the current one (ISO time). */
  at: z.string(),
  template: z.record(z.string(), z.unknown()),
});
export type HistoryEntry = z.output<typeof historyEntry>;

export const history = z.object({
  name: z.string(),
  type: z.literal(REPLICASET_HISTORY_TYPE),
  metadata: z.record(z.string(), z.string()).default({}),
  spec: z.object({
    /** The create revision of the ReplicaSet it belongs to: a history left by an earlier ReplicaSet of the same name does not count. */
    owner: z.number(),
    /** Oldest first. */
    revisions: z.array(historyEntry),
  }),
});
export type History = z.output<typeof history>;

/**
 * The history once `hash` is the current template, or undefined when it
 * already is the newest entry. A template seen before moves to a new
 * revision (as Kubernetes does on an undo), so each template appears once;
 * only the newest HISTORY_LIMIT are kept.
 */
export function nextHistory(
  rs: string,
  owner: number,
  template: ReplicaSetSpec['template'],
  hash: string,
  before: History | undefined,
  at: string,
): History | undefined {
  const revisions = before && before.spec.owner === owner ? before.spec.revisions : [];
  const newest = revisions.at(-1);
  if (newest?.templateHash === hash) return undefined;
  const revision = Math.max(0, ...revisions.map((r) => r.revision)) + 1;
  const kept = revisions.filter((r) => r.templateHash !== hash);
  const entry: HistoryEntry = { revision, templateHash: hash, at, template: structuredClone(template) as Record<string, unknown> };
  return {
    name: rs,
    type: REPLICASET_HISTORY_TYPE,
    metadata: {},
    spec: { owner, revisions: [...kept, entry].slice(-HISTORY_LIMIT) },
  };
}
