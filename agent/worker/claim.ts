import { handBacks, type Pod } from '../../api/schemas.js';
import { fits, minus, podRequest, type Amount } from '../capacity.js';

/**
 * The worker's claim decision, pure: given a pod from its inbox, what is free
 * on the worker and the worker's name, either claim the pod or hand it back.
 * A worker never runs a pod it cannot hold (README "Accounting"): a pod that
 * does not fit goes back to the scheduler, `metadata.handedBack` counted up,
 * so that a scheduler and workers that disagree cannot pass a pod around for ever.
 */
export type ClaimDecision =
  | {
      kind: 'claim';
      worker: string;
      /** The pod as claimed: state `accepted`. */
      pod: Pod;
      /** What the pod commits. */
      request: Amount;
      /** What is free once it is committed. */
      freeAfter: Amount;
    }
  | {
      kind: 'hand-back';
      /** The pod as handed back: `created`, without `scheduledBy`/`workedBy`, one more `handedBack`. */
      pod: Pod;
      request: Amount;
    };

export function decideClaim(pod: Pod, free: Amount, worker: string): ClaimDecision {
  const request = podRequest(pod.spec);
  if (!fits(free, request)) {
    const kept = Object.fromEntries(Object.entries(pod.metadata).filter(([k]) => k !== 'scheduledBy' && k !== 'workedBy'));
    const handedBack = String(handBacks(pod) + 1);
    return { kind: 'hand-back', pod: { ...pod, state: 'created', metadata: { ...kept, handedBack } }, request };
  }
  return { kind: 'claim', worker, pod: { ...pod, state: 'accepted' }, request, freeAfter: minus(free, request) };
}

/**
 * After a claim transaction that did not commit: an earlier attempt may have
 * committed with its reply lost, so the claim key tells. The pod runs when
 * the claim is this worker's and no task of that name runs yet (from the
 * claim's create revision on); else it was deleted (or created again) before
 * its claim, and the inbox entry is dropped.
 */
export function afterLostClaim(
  claimed: { value: string; createRevision: number } | undefined,
  worker: string,
  running: boolean,
): { kind: 'run'; claimRevision: number } | { kind: 'drop' } {
  if (claimed?.value !== worker || running) return { kind: 'drop' };
  return { kind: 'run', claimRevision: claimed.createRevision };
}
