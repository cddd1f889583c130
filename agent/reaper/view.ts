import { decodeObservedPod, type ObservedPod } from '../../api/schemas.js';
import { CLAIMED_PREFIX, INBOX_PREFIX, POD_PREFIX, heartbeatPrefix, nameUnder, splitTwo } from '../keys.js';
import type { StateEvent } from '../state.js';
import type { Observed } from './reap.js';

const ALIVE_PREFIX = heartbeatPrefix('worker', 'alive');

/** What the reaper watches. */
export const WATCHED = [ALIVE_PREFIX, CLAIMED_PREFIX, INBOX_PREFIX, POD_PREFIX];

export interface PodEntry {
  state?: string;
  workedBy?: string;
  reapedBy?: string;
  modRevision: number;
  /** The resource as stored, rewritten whole when the pod is marked dead. */
  value: ObservedPod;
}

/**
 * The reaper's in-memory view of etcd, fed by state events: workers with an
 * alive heartbeat, pods, claims and inbox entries, with the revisions every
 * reap is guarded by.
 */
export class ReaperView implements Observed {
  readonly alive = new Set<string>();
  readonly pods = new Map<string, PodEntry>();
  readonly claims = new Map<string, { worker: string; modRevision: number }>();
  readonly inboxes = new Map<string, Map<string, number>>();

  /** Applies one event. Returns the name of a pod whose resource is not a JSON object: it is dropped, and nothing else changed. */
  apply(ev: StateEvent): { ignoredPod: string } | undefined {
    let name: string | undefined;
    let two: [string, string] | undefined;
    if ((name = nameUnder(ev.key, ALIVE_PREFIX)) !== undefined) {
      if (ev.type === 'put') this.alive.add(name);
      else this.alive.delete(name);
    } else if ((name = nameUnder(ev.key, CLAIMED_PREFIX)) !== undefined) {
      if (ev.type === 'put') this.claims.set(name, { worker: ev.value, modRevision: ev.modRevision });
      else this.claims.delete(name);
    } else if ((two = splitTwo(ev.key, INBOX_PREFIX))) {
      const [worker, pod] = two;
      const box = this.inboxes.get(worker) ?? new Map<string, number>();
      if (ev.type === 'put') box.set(pod, ev.modRevision);
      else box.delete(pod);
      if (box.size) this.inboxes.set(worker, box);
      else this.inboxes.delete(worker);
    } else if ((name = nameUnder(ev.key, POD_PREFIX)) !== undefined) {
      if (ev.type === 'delete') this.pods.delete(name);
      else {
        const value = decodeObservedPod(ev.value);
        if (!value) {
          this.pods.delete(name);
          return { ignoredPod: name };
        }
        const md = value.metadata;
        this.pods.set(name, { state: value.state, workedBy: md.workedBy, reapedBy: md.reapedBy, modRevision: ev.modRevision, value });
      }
    }
    return undefined;
  }
}
