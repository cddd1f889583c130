import { isTerminal } from '../../api/schemas.js';

/** What the reaper knows, from its watch. */
export interface Observed {
  /** Workers with an alive heartbeat. */
  alive: ReadonlySet<string>;
  /** pod -> its resource as stored. */
  pods: ReadonlyMap<string, { state?: string; workedBy?: string; reapedBy?: string; modRevision: number }>;
  /** pod -> the worker holding its claim, with the claim's mod revision. */
  claims: ReadonlyMap<string, { worker: string; modRevision: number }>;
  /** worker -> pod -> the inbox entry's mod revision. */
  inboxes: ReadonlyMap<string, ReadonlyMap<string, number>>;
}

export type ReapAction =
  /** Mark the pod `dead`: its worker is dead and it had not ended. */
  | { kind: 'markDead'; pod: string; worker: string; modRevision: number; claimRevision?: number }
  /** Delete an inbox entry of a dead worker (and mark its pod dead when it had not ended). */
  | { kind: 'emptyInbox'; worker: string; pod: string; inboxRevision: number; podRevision?: number };

/**
 * Every action the view calls for. It depends only on the view, not on which
 * event came last, so deaths that happened while no reaper ran are found by
 * the same rule as deaths seen live.
 */
export function reapActions(view: Observed): ReapAction[] {
  const out: ReapAction[] = [];
  const inInbox = new Set<string>();
  for (const [worker, box] of view.inboxes) {
    if (view.alive.has(worker)) continue;
    for (const [pod, inboxRevision] of box) {
      inInbox.add(pod);
      const p = view.pods.get(pod);
      const reap = p && !isTerminal(p.state) && p.workedBy === worker;
      out.push({ kind: 'emptyInbox', worker, pod, inboxRevision, ...(reap ? { podRevision: p.modRevision } : {}) });
    }
  }
  for (const [pod, p] of view.pods) {
    if (inInbox.has(pod) || isTerminal(p.state)) continue;
    const claim = view.claims.get(pod);
    const worker = p.workedBy ?? claim?.worker;
    if (!worker || view.alive.has(worker)) continue;
    // Only pods a worker had been given: `created` pods wait for a scheduler, not a reaper.
    if (p.state === 'created' || p.state === undefined) continue;
    out.push({ kind: 'markDead', pod, worker, modRevision: p.modRevision, ...(claim && claim.worker === worker ? { claimRevision: claim.modRevision } : {}) });
  }
  return out;
}
