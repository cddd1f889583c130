import type { ServerResponse } from 'node:http';
import type { Context } from 'koa';
import type { Logger } from 'pino';
import { resourceKey, resourcePrefix } from '../agent/keys.js';
import { CompactedError, type History, type StateEvent, type StateLayer } from '../agent/state.js';
import { encoded, OWN_WRITE_WAIT_MS, selects, type Change, type ResourceFeed, type Selector } from './feed.js';
import type { ApiMetrics } from './metrics.js';
import { Problem } from './problem.js';
import { HEARTBEAT, idsOf, resumeFrom, sseEvent, type WatchEvent } from './sse.js';
import type { ResourceStore } from './store.js';

/**
 * The watch streams of `GET /resources/:type[/:name]?watch=1` (README.md,
 * "Watch"): each is served from the shared feed, or, when it resumes from a
 * revision the feed's ring no longer holds, from etcd's history.
 */

export interface WatchLimits {
  heartbeatMs: number;
  /** Changes queued and not yet written that end a stream. */
  maxEvents: number;
  /** Bytes queued or written and not yet sent that end a stream. */
  maxBytes: number;
}

/** How often a stream checks that its token still lives (a deleted token stops working within a second). */
const TOKEN_CHECK_MS = 1000;
/** About this many bytes of stored values are encoded and written at once. */
const CHUNK_BYTES = 64 * 1024;

interface Item {
  event: WatchEvent;
  change?: Change;
  data?: string;
  id?: number;
  /** Whether it counts against the limits: the changes do, the initial list does not (the feed holds it anyway). */
  counted: boolean;
}

const sizeOf = (it: Item): number => (it.change?.value?.length ?? 0) + 64;

class WatchStream {
  private readonly queue: Item[] = [];
  private queuedChanges = 0;
  private queuedBytes = 0;
  private pumping = false;
  private closed = false;
  /** Changes at or below it are the client's already (a client ahead of this node). */
  private floor = 0;
  private readonly timers: NodeJS.Timeout[] = [];
  private readonly cleanups: (() => void)[] = [];

  constructor(
    private readonly res: ServerResponse,
    private readonly sel: Selector,
    private readonly deps: WatchDeps,
    allowed: () => boolean,
  ) {
    res.on('close', () => this.cleanup());
    res.on('error', (err) => deps.log.debug({ err: err.message }, 'watch stream error'));
    this.timers.push(setInterval(() => {
      if (!res.writableNeedDrain) res.write(HEARTBEAT);
    }, deps.limits.heartbeatMs));
    this.timers.push(setInterval(() => {
      if (!allowed()) this.end();
    }, TOKEN_CHECK_MS));
    deps.metrics.watchStreams.inc();
  }

  onCleanup(f: () => void): void {
    if (this.closed) f();
    else this.cleanups.push(f);
  }

  /** Ends the stream; the client resumes with Last-Event-ID. */
  end(): void {
    this.res.end();
    this.cleanup();
  }

  since(revision: number): void {
    this.floor = revision;
  }

  /** Queues a batch of changes, each revision's id on its last change. */
  changes(batch: Change[], counted: boolean): void {
    const mine = batch.filter((c) => c.revision > this.floor && selects(this.sel, c));
    if (mine.length === 0) return;
    const ids = idsOf(mine.map((c) => c.revision));
    mine.forEach((c, i) => this.push({ event: c.value === undefined ? 'delete' : 'put', change: c, id: ids[i], counted }));
    if (counted) this.bound();
    this.pump();
  }

  send(event: WatchEvent, data: unknown, id?: number): void {
    this.push({ event, data: JSON.stringify(data), id, counted: false });
    this.pump();
  }

  private push(it: Item): void {
    if (this.closed) return;
    this.queue.push(it);
    if (it.counted) {
      this.queuedChanges++;
      this.queuedBytes += sizeOf(it);
    }
  }

  /** A client that takes changes more slowly than they come loses its stream, never the server its memory. */
  private bound(): void {
    const { maxEvents, maxBytes } = this.deps.limits;
    const unsent = this.queuedBytes + this.res.writableLength;
    if (this.queuedChanges <= maxEvents && unsent <= maxBytes) return;
    this.deps.metrics.watchDropped.inc();
    this.deps.log.info({ type: this.sel.type, name: this.sel.name, queued: this.queuedChanges, bytes: unsent }, 'watch stream ended: its client reads too slowly');
    this.res.destroy();
    this.cleanup();
  }

  private drained(): Promise<void> {
    return new Promise((resolve) => {
      const done = () => {
        this.res.off('drain', done);
        this.res.off('close', done);
        resolve();
      };
      this.res.on('drain', done);
      this.res.on('close', done);
    });
  }

  private pump(): void {
    if (this.pumping || this.closed) return;
    this.pumping = true;
    void this.write()
      .catch((err: Error) => {
        this.deps.log.warn({ err: err.message, type: this.sel.type }, 'watch stream failed');
        this.res.destroy();
      })
      .finally(() => {
        this.pumping = false;
      });
  }

  private async write(): Promise<void> {
    while (this.queue.length > 0 && !this.closed) {
      if (this.res.writableNeedDrain) {
        await this.drained();
        continue;
      }
      let bytes = 0;
      let n = 0;
      while (n < this.queue.length && (n === 0 || bytes < CHUNK_BYTES)) bytes += sizeOf(this.queue[n++]!);
      const items = this.queue.splice(0, n);
      for (const it of items) {
        if (!it.counted) continue;
        this.queuedChanges--;
        this.queuedBytes -= sizeOf(it);
      }
      const derive = this.deps.store.deriver();
      const parts = await Promise.all(items.map(async (it) => {
        const c = it.change;
        if (!c) return sseEvent(it.event, it.data ?? '{}', it.id);
        const decoded = this.deps.feed.decoded(c);
        const r = decoded ? await derive(decoded) : undefined;
        if (r) return sseEvent('put', encoded(r), it.id);
        // An entry that does not parse is skipped by a list; a stream that may have shown it says it is gone.
        if (it.event === 'put' && !it.counted) return '';
        return sseEvent('delete', JSON.stringify({ type: c.type, name: c.name }), it.id);
      }));
      if (this.closed) return;
      this.res.write(parts.join(''));
    }
  }

  private cleanup(): void {
    if (this.closed) return;
    this.closed = true;
    this.queue.length = 0;
    this.queuedChanges = 0;
    this.queuedBytes = 0;
    for (const t of this.timers) clearInterval(t);
    for (const f of this.cleanups) f();
    this.deps.metrics.watchStreams.dec();
  }
}

export interface WatchDeps {
  feed: ResourceFeed;
  state: StateLayer;
  store: ResourceStore;
  metrics: ApiMetrics;
  limits: WatchLimits;
  log: Logger;
}

const toChange = (ev: StateEvent, sel: Selector): Change => ({
  type: sel.type,
  name: ev.key.slice(resourcePrefix(sel.type).length),
  value: ev.type === 'put' ? ev.value : undefined,
  revision: ev.modRevision,
});

/** Serves one watch request: checks it, answers 200 text/event-stream, and streams until the client goes. */
export async function serveWatch(ctx: Context, sel: Selector, deps: WatchDeps): Promise<void> {
  const { feed, state } = deps;
  const given = resumeFrom(ctx.get('last-event-id'), ctx.query.since);
  if (given === 'bad') throw new Problem('malformed-request', 'Last-Event-ID and since must be a revision, such as 42');
  if (!feed.synced) throw new Problem('not-ready', 'the API has not synced its view of the resources with etcd yet');
  const since = given;
  // Read-your-writes: a new stream's list shows what this node wrote before it (bounded: later, it comes as a change).
  if (since === undefined) await feed.reached(deps.store.written, OWN_WRITE_WAIT_MS);

  // A resume the feed's ring does not reach is served from etcd's history, if etcd still has it.
  let history: History | undefined;
  // What etcd's history gives, or how it ends, before the stream is there to take it.
  let early: StateEvent[][] | undefined = [];
  let endedEarly: Error | undefined;
  let stream: WatchStream | undefined;
  let reset = false;
  const onEnd = (err: Error) => {
    if (!stream) endedEarly = err;
    else if (err instanceof CompactedError) fromFeed(stream, true);
    else stream.end();
  };
  if (since !== undefined && !feed.covers(since)) {
    const prefix = sel.name === undefined ? resourcePrefix(sel.type) : resourceKey(sel.type, sel.name);
    const onEvents = (events: StateEvent[]) => {
      const mine = events.filter((e) => e.key.startsWith(resourcePrefix(sel.type)) && (sel.name === undefined || e.key === prefix) && !e.key.slice(resourcePrefix(sel.type).length).includes('/'));
      if (early) early.push(mine);
      else stream?.changes(mine.map((e) => toChange(e, sel)), true);
    };
    try {
      history = await state.follow(prefix, since + 1, onEvents, onEnd);
    } catch (err) {
      if (!(err instanceof CompactedError)) throw err;
      reset = true;
    }
  }

  const token = (ctx.state as { token?: { valid?: () => boolean } }).token;
  const res = ctx.res;
  ctx.respond = false;
  ctx.status = 200;
  res.writeHead(200, {
    'Content-Type': 'text/event-stream; charset=utf-8',
    'Cache-Control': 'no-cache',
    Connection: 'keep-alive',
    'X-Accel-Buffering': 'no',
  });
  ctx.req.socket.setNoDelay(true);
  const s = new WatchStream(res, sel, deps, () => token?.valid?.() ?? true);
  stream = s;

  /** The feed from here on: after a reset, the current resources again; else what the ring holds after `since`. */
  function fromFeed(to: WatchStream, resetFirst: boolean): void {
    if (resetFirst) to.send('reset', { since });
    const opened = feed.open(sel, resetFirst ? undefined : since, (batch) => to.changes(batch, true));
    to.onCleanup(opened.detach);
    if (opened.initial) to.changes(opened.initial, false);
    else to.changes(opened.missed ?? [], false);
    const revision = Math.max(opened.revision, resetFirst ? 0 : (since ?? 0));
    to.since(revision);
    to.send('synced', { revision }, revision);
  }

  if (history) {
    const h = history;
    s.onCleanup(() => void h.close().catch(() => undefined));
    const got = early ?? [];
    early = undefined;
    for (const events of got) s.changes(events.map((e) => toChange(e, sel)), true);
    if (endedEarly) onEnd(endedEarly);
    return;
  }
  fromFeed(s, reset);
}
