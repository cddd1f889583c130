import { parseResourceKey, resourceKey, RESOURCE_ROOT } from '../agent/keys.js';
import type { StateEvent, StateLayer, Subscription } from '../agent/state.js';
import type { Resource } from './schemas.js';

/**
 * The resources of every type as this API node follows them: one state-layer
 * watch of `resource/`, shared by every watch stream and every list
 * (README.md, "Watch" and "Lists"), as the Kubernetes API server's watch
 * cache. It keeps the current resources (the initial list of a new stream,
 * and each type parsed once per change for the lists) and the last changes in
 * a bounded ring (what a stream that resumes is missing).
 */

/** How long a list or a new stream waits for the feed to reach this node's own last write before it reads etcd instead. */
export const OWN_WRITE_WAIT_MS = 2000;

/** Decodes a stored resource with its type's schema; undefined for one that does not parse (logged by the decoder). */
export type DecodeStored = (type: string, key: string, value: string) => Resource | undefined;

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

/** One resource in the view: its last put. */
interface Entry {
  change: Change;
}

/** The resources of one type, with their order by name kept until a name comes or goes. */
interface TypeView {
  entries: Map<string, Entry>;
  byName?: Entry[];
}

/** etcd's order of keys, bytes of UTF-8, which is the order of code points (JavaScript's `<` compares UTF-16 units). */
export function byName(a: string, b: string): number {
  if (/[^\0-\x7f]/.test(a) || /[^\0-\x7f]/.test(b)) return Buffer.compare(Buffer.from(a), Buffer.from(b));
  return a < b ? -1 : a > b ? 1 : 0;
}

/**
 * A resource's JSON, made once for every list and stream that sends it (the
 * feed's decoded resources are never changed; one with a state derived on
 * read is a new object, and made anew).
 */
const encodings = new WeakMap<Resource, string>();
export function encoded(r: Resource): string {
  let json = encodings.get(r);
  if (json === undefined) {
    json = JSON.stringify(r);
    encodings.set(r, json);
  }
  return json;
}

/** What a list from the feed is: the resources of a type that parse, sorted by name, as etcd held them at `revision`. */
export interface FeedList {
  resources: Resource[];
  revision: number;
}

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
  /** type → the resources' last puts, at their mod revisions. */
  private readonly view = new Map<string, TypeView>();
  /** Puts decoded once, for every list and stream that shows them (null: does not parse); gone with the change. */
  private readonly decodedPuts = new WeakMap<Change, Resource | null>();
  /** Lists and streams waiting for the feed to reach a revision. */
  private readonly waiters = new Set<{ revision: number; done: (reached: boolean) => void }>();
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

  constructor(
    state: StateLayer,
    private readonly decode: DecodeStored,
  ) {
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

  /** Whether the feed follows etcd now: synced, and not rescanning after a lost watch. */
  get live(): boolean {
    return this.syncedOnce && this.sub.live;
  }

  private onScan(revision: number): void {
    this.flush();
    this.scanRevision = revision;
    this.queueFlush();
  }

  private onEvent(ev: StateEvent): void {
    const id = parseResourceKey(ev.key);
    if (!id) return;
    let tv = this.view.get(id.type);
    if (ev.type === 'put') {
      if (!tv) this.view.set(id.type, (tv = { entries: new Map() }));
      const change = { ...id, value: ev.value, revision: ev.modRevision };
      const entry = tv.entries.get(id.name);
      if (entry) {
        entry.change = change;
      } else {
        tv.entries.set(id.name, { change });
        tv.byName = undefined;
      }
      // The same change for the view and the streams, so it is decoded once for both.
      this.pending.push(this.scanRevision === undefined ? change : { ...change, revision: this.scanRevision });
    } else {
      if (tv?.entries.delete(id.name)) tv.byName = undefined;
      if (tv?.entries.size === 0) this.view.delete(id.type);
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
      this.wake();
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
      this.wake();
    }
    for (const l of this.listeners) l(batch);
  }

  private wake(): void {
    for (const w of this.waiters) if (this.revision >= w.revision) w.done(true);
  }

  /** The revision up to which the feed has taken in every change. */
  get at(): number {
    return this.revision;
  }

  /**
   * Resolves true once the feed has taken in every change up to `revision`
   * (a write of this node), or false after `timeoutMs` or when the feed closes.
   */
  reached(revision: number, timeoutMs: number): Promise<boolean> {
    this.flush();
    if (this.revision >= revision) return Promise.resolve(true);
    return new Promise((resolve) => {
      const w = {
        revision,
        done: (reached: boolean) => {
          clearTimeout(timer);
          this.waiters.delete(w);
          resolve(reached);
        },
      };
      const timer = setTimeout(() => w.done(false), timeoutMs);
      this.waiters.add(w);
    });
  }

  /** A put's resource, decoded once however many lists and streams show it; undefined for a delete or one that does not parse. */
  decoded(c: Change): Resource | undefined {
    if (c.value === undefined) return undefined;
    let r = this.decodedPuts.get(c);
    if (r === undefined) {
      r = this.decode(c.type, resourceKey(c.type, c.name), c.value) ?? null;
      this.decodedPuts.set(c, r);
    }
    return r ?? undefined;
  }

  /**
   * The resources of a type as a list answers them (before any state derived
   * on read): those that parse, sorted by name. Each is decoded once per
   * change, on the first list that needs it, and the order by name is kept
   * until a resource of the type comes or goes.
   */
  list(type: string): FeedList {
    this.flush();
    const tv = this.view.get(type);
    const resources: Resource[] = [];
    if (tv) {
      tv.byName ??= [...tv.entries.values()].sort((a, b) => byName(a.change.name, b.change.name));
      for (const e of tv.byName) {
        const r = this.decoded(e.change);
        if (r) resources.push(r);
      }
    }
    return { resources, revision: this.revision };
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
      const entries = this.view.get(sel.type)?.entries;
      if (sel.name !== undefined) {
        const e = entries?.get(sel.name);
        if (e) initial.push(e.change);
      } else {
        for (const e of entries?.values() ?? []) initial.push(e.change);
      }
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
    for (const w of this.waiters) w.done(false);
    await this.sub.close();
  }
}
