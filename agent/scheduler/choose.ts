import { describeAmount, fits, type Amount } from '../capacity.js';

/** A worker as the scheduler sees it at one moment. */
export interface WorkerView {
  name: string;
  healthy: boolean;
  /** Free CPU and memory: published by the worker, minus what is on its way there. Unknown until published. */
  free?: Amount;
  /** Live pods of the pod's ReplicaSet on this worker (0 for pods of no ReplicaSet). */
  replicas: number;
}

export interface PodNeeds {
  request: Amount;
  mayBeScheduledOn?: string[] | null;
  cannotBeScheduledOn?: string[] | null;
}

export type Choice =
  | { worker: string }
  /** `wait`: nothing to try yet (no healthy worker): retry without counting a try. */
  | { reason: string; wait?: boolean };

export function acceptable(worker: string, needs: PodNeeds): boolean {
  if (needs.mayBeScheduledOn != null && !needs.mayBeScheduledOn.includes(worker)) return false;
  if (needs.cannotBeScheduledOn != null && needs.cannotBeScheduledOn.includes(worker)) return false;
  return true;
}

/**
 * Places one pod: among healthy workers that pass its constraints and have
 * its request free, the one with the fewest live replicas of its ReplicaSet,
 * then the one with the most free memory, then the most free CPU, then by name.
 */
export function choose(needs: PodNeeds, workers: readonly WorkerView[]): Choice {
  const healthy = workers.filter((w) => w.healthy);
  if (healthy.length === 0) return { reason: 'no healthy worker', wait: true };
  const allowed = healthy.filter((w) => acceptable(w.name, needs));
  if (allowed.length === 0) return { reason: `no healthy worker passes the scheduling constraints (healthy: ${healthy.map((w) => w.name).sort().join(', ')})` };
  const roomy = allowed.filter((w) => w.free !== undefined && fits(w.free, needs.request));
  if (roomy.length === 0) return { reason: `no allowed worker has ${describeAmount(needs.request)} free` };
  let best = roomy[0]!;
  for (const w of roomy.slice(1)) if (better(w, best)) best = w;
  return { worker: best.name };
}

function better(a: WorkerView, b: WorkerView): boolean {
  if (a.replicas !== b.replicas) return a.replicas < b.replicas;
  if (a.free!.memory !== b.free!.memory) return a.free!.memory > b.free!.memory;
  if (a.free!.cpu !== b.free!.cpu) return a.free!.cpu > b.free!.cpu;
  return a.name < b.name;
}
