import { decodeObservedPod, type ObservedPod } from '../../api/schemas.js';

/** A stored pod to mark `dead`: its key as read, and the value to write. */
export interface Orphan {
  key: string;
  modRevision: number;
  /** The pod as it is to be stored: state `dead`, `reapedBy` this worker. */
  dead: ObservedPod;
}

/**
 * Pods this worker was running when it stopped uncleanly: their podman pods
 * are gone and so is their claim (it lived on the old alive lease), but the
 * resources still say `accepted` or `running`. No reaper sees them, as their
 * worker is alive again under the same name: the worker marks them `dead`.
 * Pure: the stored pods in, the ones to mark out.
 */
export function orphansOf(kvs: readonly { key: string; value: string; modRevision: number }[], worker: string): Orphan[] {
  return kvs.flatMap((kv) => {
    const pod = decodeObservedPod(kv.value);
    if (!pod || pod.metadata.workedBy !== worker || (pod.state !== 'accepted' && pod.state !== 'running')) return [];
    return [{ key: kv.key, modRevision: kv.modRevision, dead: { ...pod, state: 'dead', metadata: { ...pod.metadata, reapedBy: worker } } }];
  });
}
