import { randomBytes } from 'node:crypto';
import type { Logger } from 'pino';
import { Counter, type Registry } from 'prom-client';
import type { ClusterEvent, EventKind } from '../api/schemas.js';
import { EVENT_TYPE, eventKey } from './keys.js';
import type { Op, StateLayer } from './state.js';

/**
 * Events (SPEC §12): what the plugins saw happen, as resources of type
 * `event` that `GET /resources/event`, `kith events` and `kith describe`
 * read. Each lives on a lease that is never kept alive, so etcd removes it
 * on its own after `--event-ttl`: one lease per window of a twelfth of the
 * TTL (at least a second) carries every event written in that window, so an
 * event lives between one TTL and one TTL and a window.
 *
 * Recording never blocks or throws: events queue (bounded; the oldest are
 * dropped and counted when etcd is away for long), and a repeat of the same
 * reason and message for the same object within the TTL updates the one
 * event (its `count` and `time`) instead of writing another, as Kubernetes
 * aggregates them.
 */

export interface EventInput {
  type?: EventKind;
  /** `<type>/<name>`, e.g. `pod/web-1`. */
  object: string;
  reason: string;
  message: string;
}

/** Events waiting for etcd at most; beyond it the oldest are dropped. */
const QUEUE_MAX = 2000;
/** Events written in one transaction at most. */
const BATCH = 64;
/** Repeats remembered (for aggregation) at most. */
const SEEN_MAX = 4000;
const MESSAGE_MAX = 1024;

/** A DNS-label name for a new event of `object`: its name, the time and a random part, so names sort roughly by time per object. */
export function eventName(object: string, now: number): string {
  const base = (object.split('/').pop() ?? 'event').replace(/[^a-z0-9-]/g, '-').slice(0, 40).replace(/-+$/, '');
  const head = /^[a-z]/.test(base) ? base : `e${base}`.slice(0, 40).replace(/-+$/, '');
  return `${head}-${now.toString(36)}-${randomBytes(3).toString('hex')}`;
}

export class EventRecorder {
  private readonly queue: ClusterEvent[] = [];
  /** object, reason and message → the event that stands for them, while it lives. */
  private readonly seen = new Map<string, { name: string; count: number; firstTime: string; until: number }>();
  private lease: { id: string; until: number } | undefined;
  private timer: NodeJS.Timeout | undefined;
  private flushing: Promise<void> | undefined;
  private closed = false;
  private failures = 0;
  private readonly written: Counter;
  private readonly dropped: Counter;

  constructor(
    private readonly state: StateLayer,
    private readonly node: string,
    /** How long an event lives, seconds. */
    private readonly ttl: number,
    private readonly log: Logger,
    metrics: Registry,
  ) {
    this.written = new Counter({ name: 'kith_events_written_total', help: 'Events written to etcd', registers: [metrics] });
    this.dropped = new Counter({ name: 'kith_events_dropped_total', help: 'Events dropped because etcd could not take them in time', registers: [metrics] });
  }

  /** The window a lease covers, seconds. */
  private get window(): number {
    return Math.max(1, Math.round(this.ttl / 12));
  }

  record(e: EventInput): void {
    if (this.closed) return;
    const now = Date.now();
    const time = new Date(now).toISOString();
    const message = e.message.length > MESSAGE_MAX ? `${e.message.slice(0, MESSAGE_MAX - 1)}…` : e.message;
    const id = `${e.object}\n${e.reason}\n${message}`;
    let s = this.seen.get(id);
    if (s && s.until > now) {
      s.count++;
      // The same event again: the queued copy, if any, is replaced by this one.
      const i = this.queue.findIndex((q) => q.name === s!.name);
      if (i >= 0) this.queue.splice(i, 1);
    } else {
      this.seen.delete(id);
      s = { name: eventName(e.object, now), count: 1, firstTime: time, until: 0 };
      this.seen.set(id, s);
      if (this.seen.size > SEEN_MAX) this.seen.delete(this.seen.keys().next().value!);
    }
    // It lives at least a TTL from now (the lease it is written on ends later).
    s.until = now + this.ttl * 1000;
    this.queue.push({
      name: s.name,
      type: EVENT_TYPE,
      metadata: {},
      spec: { time, type: e.type ?? 'Normal', object: e.object, reason: e.reason, message, node: this.node, count: s.count, firstTime: s.firstTime },
    });
    while (this.queue.length > QUEUE_MAX) {
      this.queue.shift();
      this.dropped.inc();
    }
    this.schedule(0);
  }

  private schedule(delayMs: number): void {
    if (this.timer || this.closed) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      void this.flush();
    }, delayMs);
    this.timer.unref();
  }

  /** Writes what is queued; on failure, tries again later (bounded back-off). */
  flush(): Promise<void> {
    this.flushing ??= this.writeQueued().finally(() => (this.flushing = undefined));
    return this.flushing;
  }

  private async leaseId(): Promise<string> {
    const now = Date.now();
    if (this.lease && this.lease.until > now) return this.lease.id;
    const w = this.window;
    const id = await this.state.grantOnce(this.ttl + w);
    // Used for a window, then a new one: every event on it has at least a TTL left when written.
    this.lease = { id, until: now + w * 1000 };
    return id;
  }

  private async writeQueued(): Promise<void> {
    while (this.queue.length > 0) {
      const batch = this.queue.slice(0, BATCH);
      try {
        const leaseId = await this.leaseId();
        const then: Op[] = batch.map((ev) => ({ put: eventKey(ev.name), value: JSON.stringify(ev), leaseId }));
        await this.state.txn({ if: [], then });
      } catch (err) {
        const msg = (err as Error).message;
        // A lease that etcd ended early (its clock, a restore): a new one, at once.
        if (/lease not found/i.test(msg)) this.lease = undefined;
        this.failures++;
        if (this.failures === 1) this.log.warn({ err: msg, queued: this.queue.length }, 'could not write events; trying again');
        if (!this.closed) this.schedule(Math.min(200 * 2 ** Math.min(this.failures, 5), 5000));
        return;
      }
      if (this.failures > 0) this.log.info({ failures: this.failures }, 'events written again');
      this.failures = 0;
      // The batch may have been changed meanwhile (a repeat replaced an entry): remove exactly what was written.
      for (const ev of batch) {
        const i = this.queue.indexOf(ev);
        if (i >= 0) this.queue.splice(i, 1);
      }
      this.written.inc(batch.length);
    }
  }

  /** Writes what is still queued (bounded by the caller) and stops recording. */
  async close(): Promise<void> {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    await this.flush();
    this.closed = true;
  }
}
