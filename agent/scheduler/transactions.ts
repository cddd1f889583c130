import type { Pod } from '../../api/schemas.js';
import { inboxKey, podKey, unscheduledKey } from '../keys.js';
import type { Compare, Op, Transaction } from '../state.js';

/** An unscheduled marker as seen: the pod it stands for and the marker's mod revision, the guard of every write. */
export interface Marker {
  pod: Pod;
  modRevision: number;
}

// The resource must still be there: a marker left behind by a delete never brings a pod back.
const markerAsSeen = (m: Marker): Compare[] => [
  { key: unscheduledKey(m.pod.name), modRevision: m.modRevision },
  { key: podKey(m.pod.name), createRevision: 0, op: '!=' },
];

/** Places the pod on `worker`: the marker goes, the resource says `scheduled` and the pod enters the worker's inbox. */
export function placeTransaction(m: Marker, worker: string, scheduledBy: string): Transaction {
  const value = JSON.stringify({ ...m.pod, state: 'scheduled', metadata: { ...m.pod.metadata, scheduledBy, workedBy: worker } });
  return {
    if: markerAsSeen(m),
    then: [{ delete: unscheduledKey(m.pod.name) }, { put: podKey(m.pod.name), value }, { put: inboxKey(worker, m.pod.name), value }],
  };
}

/**
 * Gives the pod up: the marker goes and the resource says `abandoned`, with
 * the reason in `metadata.error` (as a worker writes why a pod errored), so
 * the API and the CLI can say why.
 */
export function abandonTransaction(m: Marker, scheduledBy: string, reason: string): Transaction {
  const value = JSON.stringify({ ...m.pod, state: 'abandoned', metadata: { ...m.pod.metadata, scheduledBy, error: reason.slice(0, 300) } });
  return {
    if: markerAsSeen(m),
    then: [{ delete: unscheduledKey(m.pod.name) }, { put: podKey(m.pod.name), value }],
  };
}

/** Removes a marker that is not a pod and whose resource is gone, guarded on both as seen. */
export function dropMarkerTransaction(pod: string, modRevision: number): Transaction {
  return {
    if: [{ key: unscheduledKey(pod), modRevision }, { key: podKey(pod), createRevision: 0 }],
    then: [{ delete: unscheduledKey(pod) }],
  };
}
