import { parseResourceKey, RESOURCE_ROOT } from '../agent/keys.js';
import type { StateEvent, StateLayer, Subscription } from '../agent/state.js';

/**
 * The resources of every type as this API node follows them: one state-layer
 * watch of `resource/`, shared by every watch stream (README.md, "Watch").
 * It keeps the current resources (the initial list of a new stream) and the
 * last changes in a bounded ring (what a stream that resumes is missing).
 */

/** One change of one resource. */
export interface Change {
  type: string;
  name: string;
  /** The stored JSON; undefined for a delete. */
  value?: string;
  /**
   * The revision the change is sent at: its mod revision, or, for the
   * difference a rescan found, the revision of that scan.
   */
  revision: number;
}

/** What a stream follows: every resource of a type, or one of them. */
export interface Selector {
  type: string;
  name?: string;
}

export const selects = (s: Selector, c: { type: string; name: string }): boolean => c.type === s.type && (s.name === undefined || c.name === s.name);

/** Changes the ring keeps at most, and at most this many bytes of their values. */
const RING_CHANGES = 10_000;
const RING_BYTES = 16 * 1024 * 1024;

/** What a stream opened on the feed starts with. */
export interface Opened {
  /** The current resources (without `since`), sorted by mod revision, then name. */
  initial?: Change[];
  /** The changes after `since`, when the ring still holds all of them. */
  missed?: Change[];
  /** The revision the feed has reached: the initial list or the missed changes are the state there. */
  revision: number;
  detach(): void;
}

export class ResourceFeed {
  /** key → the resource's last put, at its mod revision. */
  private readonly view = new Map<string, Change>();
  private ring: Change[] = [];
  private ringBytes = 0;
  /** The ring holds every change after this revision. */
  private ringFrom = 0;
  private revision = 0;
  private pending: Change[] = [];
  /** Set while a scan's difference is being delivered: its changes are sent at this revision. */
  private scanRevision: number | undefined;
  private flushQueued = false;
  private first = true;
  private readonly listeners = new Set<(batch: Change[]) => void>();
  private readonly sub: Subscription;
  private syncedOnce = false;

  constructor(state: StateLayer) {
    this.sub = state.watch([RESOURCE_ROOT], (ev) => this.onEvent(ev), {
      name: 'api-watch',
      onScan: (revision) => this.onScan(revision),
      onSynced: () => {
        this.flush();
        this.syncedOnce = true;
      },
    });
  }

  /** Whether the first scan has been taken in. */
  get synced(): boolean {
    return this.syncedOnce;
  }

  private onScan(revision: number): void {
    this.flush();
    this.scanRevision = revision;
    this.queueFlush();
  }

  private onEvent(ev: StateEvent): void {
    const id = parseResourceKey(ev.key);
    if (!id) return;
    if (ev.type === 'put') {
      this.view.set(ev.key, { ...id, value: ev.value, revision: ev.modRevision });
      this.pending.push({ ...id, value: ev.value, revision: this.scanRevision ?? ev.modRevision });
    } else {
      this.view.delete(ev.key);
      this.pending.push({ ...id, revision: this.scanRevision ?? ev.modRevision });
    }
    this.queueFlush();
  }

  private queueFlush(): void {
    if (this.flushQueued) return;
    this.flushQueued = true;
    queueMicrotask(() => this.flush());
  }

  /** Hands what came in since the last flush to every stream, as one batch. */
  private flush(): void {
    this.flushQueued = false;
    const batch = this.pending;
    this.pending = [];
    const scan = this.scanRevision;
    this.scanRevision = undefined;
    if (scan !== undefined) {
      // A scan's difference collapses whatever happened while the watch was away: the ring starts again after it.
      this.ring = [];
      this.ringBytes = 0;
      this.ringFrom = scan;
      this.revision = Math.max(this.revision, scan);
      const first = this.first;
      this.first = false;
      if (first || batch.length === 0) return;
    } else {
      if (batch.length === 0) return;
      for (const c of batch) {
        this.ring.push(c);
        this.ringBytes += c.value?.length ?? 0;
        this.revision = Math.max(this.revision, c.revision);
      }
      this.trim();
    }
    for (const l of this.listeners) l(batch);
  }

  /** Drops the oldest revisions, whole, until the ring is within its bounds. */
  private trim(): void {
    let drop = 0;
    let bytes = this.ringBytes;
    while (drop < this.ring.length && (this.ring.length - drop > RING_CHANGES || bytes > RING_BYTES)) {
      const rev = this.ring[drop]!.revision;
      while (drop < this.ring.length && this.ring[drop]!.revision === rev) bytes -= this.ring[drop++]!.value?.length ?? 0;
      this.ringFrom = rev;
    }
    if (drop > 0) {
      this.ring = this.ring.slice(drop);
      this.ringBytes = bytes;
    }
  }

  /** Whether the ring holds every change after `since`. */
  covers(since: number): boolean {
    return since >= this.ringFrom;
  }

  /**
   * Opens a stream: its starting point and its listener in one step, so no
   * change falls between them. Without `since`, the current resources; with
   * one the ring covers, the changes after it.
   */
  open(sel: Selector, since: number | undefined, listener: (batch: Change[]) => void): Opened {
    this.flush();
    const out: Opened = { revision: this.revision, detach: () => this.listeners.delete(listener) };
    if (since !== undefined && this.covers(since)) {
      out.missed = this.ring.filter((c) => c.revision > since && selects(sel, c));
    } else {
      const initial: Change[] = [];
      for (const c of this.view.values()) if (selects(sel, c)) initial.push(c);
      // By mod revision: a stream cut during its initial list resumes from the last id it got and misses nothing.
      initial.sort((a, b) => a.revision - b.revision || (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
      out.initial = initial;
    }
    this.listeners.add(listener);
    return out;
  }

  /** Streams open on the feed. */
  get streams(): number {
    return this.listeners.size;
  }

  async close(): Promise<void> {
    this.listeners.clear();
    await this.sub.close();
  }
}
