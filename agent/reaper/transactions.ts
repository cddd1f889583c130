import type { ObservedPod } from '../../api/schemas.js';
import { claimedKey, heartbeatKey, inboxKey, podKey } from '../keys.js';
import type { Compare, Op, Transaction } from '../state.js';
import type { ReapAction } from './reap.js';

/** The pod as stored, now `dead` and signed by the reaper. */
const deadValue = (pod: ObservedPod, reapedBy: string): string =>
  JSON.stringify({ ...pod, state: 'dead', metadata: { ...pod.metadata, reapedBy } });

/**
 * The transaction of one action. `pod` is the action's pod as stored (needed
 * when the action marks it dead). Every action is guarded by the worker's
 * alive heartbeat being absent, atomically, and by the revisions it saw.
 */
export function reapTransaction(a: ReapAction, pod: ObservedPod | undefined, reapedBy: string): Transaction {
  const workerDead: Compare = { key: heartbeatKey('worker', 'alive', a.worker), createRevision: 0 };
  const dead = (): string => {
    if (!pod) throw new Error(`pod ${a.pod} is not in the reaper's view`);
    return deadValue(pod, reapedBy);
  };
  if (a.kind === 'markDead') {
    const then: Op[] = [{ put: podKey(a.pod), value: dead() }];
    if (a.claimRevision !== undefined) then.push({ delete: claimedKey(a.pod) });
    return { if: [workerDead, { key: podKey(a.pod), modRevision: a.modRevision }], then };
  }
  const ifs: Compare[] = [workerDead, { key: inboxKey(a.worker, a.pod), modRevision: a.inboxRevision }];
  const then: Op[] = [{ delete: inboxKey(a.worker, a.pod) }];
  if (a.podRevision !== undefined) {
    ifs.push({ key: podKey(a.pod), modRevision: a.podRevision });
    then.push({ put: podKey(a.pod), value: dead() });
  }
  return { if: ifs, then };
}
