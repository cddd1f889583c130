import type { Etcd3, IKeyValue, IRequestOp, Lease, Watcher } from 'etcd3';
import type { Logger } from 'pino';
import { settleWithin } from './deadline.js';
import { EtcdUnavailableError } from './errors.js';

/**
 * The state layer: the only way plugins read and write etcd (SPEC §2).
 *
 * Keys handed to and from plugins are relative to the etcd prefix
 * (`resource/pod/web`, `dns/web.pod.cluster.local.`).
 */

export interface KeyValue {
  key: string;
  value: string;
  createRevision: number;
  modRevision: number;
  lease: string;
}

export type StateEvent =
  | { type: 'put'; key: string; value: string; createRevision: number; modRevision: number }
  | { type: 'delete'; key: string; modRevision: number };

export interface WatchOptions {
  /** Called once, after the initial scan of every prefix has been delivered. */
  onSynced?: () => void;
  /** Names this subscription in logs. */
  name?: string;
  /**
   * Called before each scan (the first and every rescan) delivers its keys
   * or its difference, with the scan's revision: what follows, up to the
   * next watch event, is that difference, not etcd's history.
   */
  onScan?: (revision: number) => void;
}

/** A watch from a revision that etcd has compacted away: its history is gone. */
export class CompactedError extends Error {
  constructor(readonly revision: number) {
    super(`revision ${revision} has been compacted away`);
  }
}

/** A watch of etcd's own history (StateLayer.follow). */
export interface History {
  close(): Promise<void>;
}

export interface Subscription {
  /** Resolves once the initial scan has been delivered to the handler. */
  readonly synced: Promise<void>;
  /** Whether the view currently follows etcd (false while rescanning after an error). */
  readonly live: boolean;
  close(): Promise<void>;
}

export type LeaseName = 'alive' | 'healthy';

export type Compare =
  | { key: string; createRevision: number; op?: '==' | '!=' | '>' | '<' }
  | { key: string; modRevision: number; op?: '==' | '!=' | '>' | '<' }
  | { key: string; value: string; op?: '==' | '!=' }
  /** The key is on etcd lease `lease` (an id, as in KeyValue.lease). */
  | { key: string; lease: string; op?: '==' };

export type Op =
  /** `lease` names a kept lease of this run; `leaseId` is any other lease by id (one from `grantOnce`). */
  | { put: string; value: string; lease?: LeaseName; leaseId?: string }
  | { delete: string }
  | { deletePrefix: string };

/** One etcd transaction as data: the compares, the ops if they all hold, else the `else` ops. */
export interface Transaction {
  if: Compare[];
  then: Op[];
  else?: Op[];
}

export interface TxnResult {
  succeeded: boolean;
  revision: number;
}

const num = (v: unknown): number => Number(v ?? 0);

/** The smallest key greater than every key starting with `prefix` (etcd's range end). */
export function prefixEnd(prefix: string): Buffer {
  const b = Buffer.from(prefix);
  for (let i = b.length - 1; i >= 0; i--) {
    if (b[i]! < 0xff) {
      const end = Buffer.from(b.subarray(0, i + 1));
      end[i]! += 1;
      return end;
    }
  }
  return Buffer.from([0]);
}

/** How long a write on a lease waits for the lease's re-grant before it fails like any other etcd call. */
const REGRANT_WAIT_MS = 3000;

/** One lease with the keys that live on it; re-granted (and its keys put again) when lost. */
class KeptLease {
  private lease: Lease;
  private readonly keys = new Map<string, string>();
  private closed = false;
  private regranting: Promise<void> | undefined;
  /** The id of the lease last granted, whose keys a re-grant moves to the new one. */
  private grantedId: string | undefined;

  constructor(
    private readonly client: Etcd3,
    readonly name: LeaseName,
    private readonly ttl: number,
    private readonly log: Logger,
  ) {
    this.lease = this.open();
  }

  private open(): Lease {
    const lease = this.client.lease(this.ttl, { autoKeepAlive: true });
    lease.on('lost', (err) => {
      if (this.closed || lease !== this.lease) return;
      this.log.warn({ lease: this.name, err: err.message }, 'lease lost; granting a new one and putting its keys again');
      void this.regrant();
    });
    // A keepalive that fails is retried by etcd3; 'lost' fires once the TTL has passed.
    lease.on('keepaliveFailed', (err) => this.log.debug({ lease: this.name, err: String(err) }, 'lease keepalive failed'));
    return lease;
  }

  /**
   * The lease's id. While it is being re-granted (etcd unreachable for longer
   * than its TTL), a caller waits at most `REGRANT_WAIT_MS` and then gets an
   * error like any other etcd call, so a write on the lease never hangs.
   */
  async id(): Promise<string> {
    if (this.regranting && (await settleWithin(this.regranting, REGRANT_WAIT_MS)) === 'timeout') {
      throw new EtcdUnavailableError(`lease ${this.name} is being granted again: etcd has not answered`);
    }
    this.grantedId = await this.lease.grant();
    return this.grantedId;
  }

  /** Re-grants until it succeeds or the lease is closed; bounded back-off. */
  regrant(): Promise<void> {
    if (this.regranting) return this.regranting;
    this.regranting = (async () => {
      let delay = 200;
      while (!this.closed) {
        const old = this.lease;
        const oldId = this.grantedId;
        this.lease = this.open();
        old.release();
        try {
          const id = await this.lease.grant();
          this.grantedId = id;
          // A key is put again where it is still on the old lease (etcd may not have removed it yet)
          // or absent; one another writer put since is theirs now.
          await Promise.all(
            [...this.keys].map(async ([k, v]) => {
              const put = () => this.client.put(k).value(v).lease(id);
              const onOld = oldId ? await this.client.if(k, 'Lease', '==', oldId).then(put()).commit() : { succeeded: false };
              if (onOld.succeeded) return;
              const absent = await this.client.if(k, 'Create', '==', 0).then(put()).commit();
              if (!absent.succeeded) this.keys.delete(k);
            }),
          );
          this.log.info({ lease: this.name, id, keys: this.keys.size }, 'lease re-granted');
          return;
        } catch (err) {
          this.log.warn({ lease: this.name, err: (err as Error).message }, 'lease re-grant failed; retrying');
          await new Promise((r) => setTimeout(r, delay));
          delay = Math.min(delay * 2, 5000);
        }
      }
    })().finally(() => {
      this.regranting = undefined;
    });
    return this.regranting;
  }

  track(key: string, value: string): void {
    this.keys.set(key, value);
  }

  untrack(key: string): void {
    this.keys.delete(key);
  }

  untrackPrefix(prefix: string): void {
    for (const k of this.keys.keys()) if (k.startsWith(prefix)) this.keys.delete(k);
  }

  async revoke(): Promise<void> {
    this.closed = true;
    this.keys.clear();
    for (let attempt = 0; attempt < 3; attempt++) {
      try {
        await this.lease.revoke();
        return;
      } catch (err) {
        this.log.warn({ lease: this.name, err: (err as Error).message }, 'lease revoke failed');
        await new Promise((r) => setTimeout(r, 500));
      }
    }
    this.lease.release();
  }

  release(): void {
    this.closed = true;
    this.lease.release();
  }
}

export class StateLayer {
  private readonly leases = new Map<LeaseName, KeptLease>();
  private readonly subscriptions = new Set<WatchSubscription>();

  constructor(
    readonly client: Etcd3,
    /** The etcd prefix without its trailing slash, e.g. `/kith`. */
    readonly prefix: string,
    readonly log: Logger,
  ) {}

  /** The absolute etcd key of a relative one. */
  abs(key: string): string {
    return `${this.prefix}/${key}`;
  }

  rel(key: string): string {
    return key.slice(this.prefix.length + 1);
  }

  // ---- leases -------------------------------------------------------------

  /** Grants the named lease (once); keys put with `lease: name` live on it. */
  async grantLease(name: LeaseName, ttl: number): Promise<string> {
    let lease = this.leases.get(name);
    if (!lease) {
      lease = new KeptLease(this.client, name, ttl, this.log);
      this.leases.set(name, lease);
    }
    return lease.id();
  }

  async leaseId(name: LeaseName): Promise<string> {
    const lease = this.leases.get(name);
    if (!lease) throw new Error(`lease ${name} was never granted`);
    return lease.id();
  }

  /** Revokes a lease: every key on it is deleted by etcd. */
  async revokeLease(name: LeaseName): Promise<void> {
    const lease = this.leases.get(name);
    if (!lease) return;
    this.leases.delete(name);
    await lease.revoke();
  }

  /**
   * Moves every key under the prefix that is on etcd lease `from` (another
   * run's, found in a heartbeat) onto the named lease of this run, in
   * transactions of at most `batch` keys, each guarded by the key's lease and
   * mod revision as read: a key is never absent, and one that changed meanwhile
   * is read again (bounded). Returns how many keys moved. `from` itself is left
   * for the caller to revoke.
   */
  async moveLeaseKeys(from: string, to: LeaseName, batch = 64): Promise<number> {
    const lc = (this.client as unknown as { leaseClient: { leaseTimeToLive(req: { ID: string; keys: boolean }): Promise<{ TTL: string; keys?: Buffer[] }> } }).leaseClient;
    let moved = 0;
    for (let round = 0; round < 5; round++) {
      const ttl = await lc.leaseTimeToLive({ ID: from, keys: true });
      // TTL -1: the lease has expired or was revoked, and its keys with it.
      if (Number(ttl.TTL) < 0) return moved;
      const keys = (ttl.keys ?? []).map((b) => b.toString()).filter((k) => k.startsWith(`${this.prefix}/`)).map((k) => this.rel(k));
      if (keys.length === 0) return moved;
      let lost = 0;
      for (let i = 0; i < keys.length; i += batch) {
        const kvs = (await Promise.all(keys.slice(i, i + batch).map((k) => this.get(k)))).filter((kv): kv is KeyValue => kv !== undefined && kv.lease === from);
        if (kvs.length === 0) continue;
        const r = await this.txn({
          if: kvs.flatMap((kv) => [{ key: kv.key, lease: from }, { key: kv.key, modRevision: kv.modRevision }]),
          then: kvs.map((kv) => ({ put: kv.key, value: kv.value, lease: to })),
        });
        if (r.succeeded) moved += kvs.length;
        else lost++;
      }
      if (lost === 0) return moved;
    }
    return moved;
  }

  /**
   * Grants a lease that is never kept alive: its keys go when its TTL runs
   * out. Returns its id, for `leaseId` in puts.
   */
  async grantOnce(ttl: number): Promise<string> {
    const lease = this.client.lease(ttl, { autoKeepAlive: false });
    try {
      return await lease.grant();
    } finally {
      lease.release();
    }
  }

  /** Revokes an etcd lease by id (another run's); one already gone is not an error. */
  async revokeLeaseId(id: string): Promise<void> {
    const lc = (this.client as unknown as { leaseClient: { leaseRevoke(req: { ID: string }): Promise<unknown> } }).leaseClient;
    await lc.leaseRevoke({ ID: id }).catch((err: Error) => {
      if (!/not found/i.test(err.message)) throw err;
    });
  }

  /** Forces a lease to be re-granted, as after a failed keepalive (used by tests and on 'lost'). */
  async regrantLease(name: LeaseName): Promise<void> {
    await this.leases.get(name)?.regrant();
  }

  // ---- reads --------------------------------------------------------------

  async get(key: string): Promise<KeyValue | undefined> {
    const res = await this.client.get(this.abs(key)).exec();
    const kv = res.kvs[0];
    return kv ? this.toKeyValue(kv) : undefined;
  }

  /** etcd's current revision, from a read of no key (the prefix root itself, which no key is), as a proof that etcd answers. */
  async revision(): Promise<number> {
    const res = await this.client.get(this.abs('')).exec();
    return num(res.header.revision);
  }

  /**
   * Every key under a relative prefix, sorted by key, at one revision: the
   * given one, or the revision of the first response. Read in pages, so a
   * prefix of any size stays under gRPC's message limit.
   */
  async list(prefix: string, revision?: number, pageSize = 5000): Promise<{ revision: number; kvs: KeyValue[] }> {
    const start = Buffer.from(this.abs(prefix));
    const end = prefixEnd(this.abs(prefix));
    let from = start;
    let rev = revision;
    const kvs: KeyValue[] = [];
    for (;;) {
      const q = this.client.getAll().inRange({ start: from, end }).sort('Key', 'Ascend').limit(pageSize);
      if (rev !== undefined) q.revision(rev);
      const res = await q.exec();
      rev ??= num(res.header.revision); // from the first response only
      for (const kv of res.kvs) kvs.push(this.toKeyValue(kv));
      if (!res.more || res.kvs.length === 0) break;
      // The next page starts just after the last key of this one.
      from = Buffer.concat([res.kvs[res.kvs.length - 1]!.key, Buffer.from([0])]);
    }
    return { revision: rev, kvs };
  }

  /**
   * A one-shot read: every key under each of `prefixes`, all at one revision
   * (the given one, or that of the first response), sorted by key within
   * each prefix. What a plugin needs once, at start, without following it.
   */
  async snapshot(prefixes: string[], revision?: number): Promise<{ revision: number; kvs: KeyValue[] }> {
    let rev = revision;
    const kvs: KeyValue[] = [];
    for (const prefix of prefixes) {
      const res = await this.list(prefix, rev);
      rev ??= res.revision; // from the first response only
      for (const kv of res.kvs) kvs.push(kv); // not push(...): a prefix may hold more keys than a call takes arguments
    }
    return { revision: rev ?? 0, kvs };
  }

  private toKeyValue(kv: IKeyValue): KeyValue {
    return {
      key: this.rel(kv.key.toString()),
      value: kv.value.toString(),
      createRevision: num(kv.create_revision),
      modRevision: num(kv.mod_revision),
      lease: String(kv.lease ?? '0'),
    };
  }

  // ---- writes -------------------------------------------------------------

  async put(key: string, value: string, lease?: LeaseName): Promise<number> {
    const r = await this.txn({ if: [], then: [{ put: key, value, lease }] });
    return r.revision;
  }

  async delete(key: string): Promise<void> {
    await this.txn({ if: [], then: [{ delete: key }] });
  }

  /**
   * One etcd transaction. Keys are relative. Puts with a lease are remembered
   * on that lease so that a re-granted lease carries them again.
   */
  async txn(t: Transaction): Promise<TxnResult> {
    const leaseIds = new Map<LeaseName, string>();
    for (const op of [...t.then, ...(t.else ?? [])]) {
      if ('put' in op && op.lease && !leaseIds.has(op.lease)) leaseIds.set(op.lease, await this.leaseId(op.lease));
    }
    const toOp = (op: Op): IRequestOp => {
      if ('put' in op) {
        const key = Buffer.from(this.abs(op.put));
        const lease = op.leaseId ?? (op.lease ? leaseIds.get(op.lease) : undefined);
        return { request_put: { key, value: Buffer.from(op.value), ...(lease ? { lease } : {}) } };
      }
      if ('delete' in op) return { request_delete_range: { key: Buffer.from(this.abs(op.delete)) } };
      const p = this.abs(op.deletePrefix);
      return { request_delete_range: { key: Buffer.from(p), range_end: prefixEnd(p) } };
    };
    const compare = t.if.map((c) => {
      const key = Buffer.from(this.abs(c.key));
      const result = { '==': 'Equal', '!=': 'NotEqual', '>': 'Greater', '<': 'Less' }[c.op ?? '=='];
      if ('createRevision' in c) return { key, target: 'Create', result, create_revision: c.createRevision };
      if ('modRevision' in c) return { key, target: 'Mod', result, mod_revision: c.modRevision };
      if ('lease' in c) return { key, target: 'Lease', result: 'Equal', lease: c.lease };
      return { key, target: 'Value', result, value: Buffer.from(c.value) };
    });
    const kv = (this.client as unknown as { kv: { txn(req: unknown): Promise<{ succeeded: boolean; header: { revision: string } }> } }).kv;
    const res = await kv.txn({
      compare,
      success: t.then.map(toOp),
      failure: (t.else ?? []).map(toOp),
    });
    this.trackLeases(res.succeeded ? t.then : (t.else ?? []));
    return { succeeded: res.succeeded, revision: num(res.header.revision) };
  }

  private trackLeases(ops: Op[]): void {
    for (const op of ops) {
      if ('put' in op) {
        for (const [name, lease] of this.leases) {
          if (op.lease === name) lease.track(this.abs(op.put), op.value);
          else lease.untrack(this.abs(op.put));
        }
      } else if ('delete' in op) {
        for (const lease of this.leases.values()) lease.untrack(this.abs(op.delete));
      } else {
        for (const lease of this.leases.values()) lease.untrackPrefix(this.abs(op.deletePrefix));
      }
    }
  }

  // ---- watches ------------------------------------------------------------

  /**
   * Scans `prefixes` at one revision R (taken from the first response only),
   * delivers every key as a put, then watches all of them from R+1. On a watch
   * error, cancellation or compaction it rescans and delivers the difference,
   * so the handler's view converges to etcd's with no event lost or repeated.
   * A handler that throws is logged; the subscription goes on.
   */
  watch(prefixes: string[], handler: (ev: StateEvent) => void, opts: WatchOptions = {}): Subscription {
    const sub = new WatchSubscription(this, [...new Set(prefixes)], handler, opts, this.log);
    this.subscriptions.add(sub);
    sub.closed.then(() => this.subscriptions.delete(sub));
    sub.start();
    return sub;
  }

  /**
   * Follows one relative prefix through etcd's own history, from revision
   * `from` on: every event, in order, each revision's events in one call of
   * `handler`. When `from` is compacted away it rejects with a CompactedError,
   * or calls `onEnd` with one. No rescan and no diff: when etcd cancels the
   * watch, `onEnd` is called once and the caller starts again from the last
   * revision it was given.
   */
  async follow(prefix: string, from: number, handler: (events: StateEvent[]) => void, onEnd: (err: Error) => void): Promise<History> {
    let applied = from - 1;
    let ended = false;
    let created = false;
    // Made, and its handlers attached, before etcd answers: the history can come in the same read as the answer.
    const w = this.client.watch().prefix(this.abs(prefix)).startRevision(String(from)).watcher();
    const made = new Promise<void>((resolve, reject) => {
      w.once('connected', () => {
        created = true;
        resolve();
      });
      w.on('error', async (cause) => {
        // etcd cancels a watch whose start is compacted, at once or just after it made it, without saying why
        // through etcd3: a read at the last revision given tells.
        const err = (await this.compactedAt(Math.max(applied, 1))) ? new CompactedError(applied + 1) : cause;
        if (!created) {
          created = true;
          ended = true;
          reject(err);
        } else if (!ended) {
          ended = true;
          onEnd(err);
        }
      });
    });
    w.on('data', (res) => {
      if (ended) return;
      let batch: StateEvent[] = [];
      let batchRev = 0;
      for (const e of res.events) {
        const kv = e.kv;
        const rev = num(kv.mod_revision);
        // etcd3 resumes a broken stream from the last header revision: what was given already is skipped.
        if (rev <= applied) continue;
        if (batch.length > 0 && rev !== batchRev) {
          applied = batchRev;
          handler(batch);
          batch = [];
        }
        batchRev = rev;
        const key = this.rel(kv.key.toString());
        batch.push(e.type === 'Put'
          ? { type: 'put', key, value: kv.value.toString(), createRevision: num(kv.create_revision), modRevision: rev }
          : { type: 'delete', key, modRevision: rev });
      }
      if (batch.length > 0) {
        applied = batchRev;
        handler(batch);
      }
    });
    try {
      await made;
    } catch (err) {
      await settleWithin(w.cancel(), 1000);
      throw err;
    }
    return {
      close: async () => {
        if (ended) return;
        ended = true;
        await settleWithin(w.cancel(), 1000);
      },
    };
  }

  /** Whether etcd has compacted `revision` away. */
  private async compactedAt(revision: number): Promise<boolean> {
    try {
      await this.client.get(this.abs('')).revision(String(revision)).exec();
      return false;
    } catch (err) {
      return /compacted/i.test((err as Error).message);
    }
  }

  /** Closes every subscription and releases the leases without revoking them. */
  async close(): Promise<void> {
    await Promise.all([...this.subscriptions].map((s) => s.close()));
    for (const lease of this.leases.values()) lease.release();
    this.leases.clear();
  }
}

class WatchSubscription implements Subscription {
  /** key -> modRevision of the handler's view. */
  private readonly view = new Map<string, number>();
  /** Per prefix: the revision up to which events have been applied. */
  private readonly applied = new Map<string, number>();
  private watchers: Watcher[] = [];
  private generation = 0;
  private stopped = false;
  private rescanning: Promise<void> | undefined;
  /** Set when a resync is asked for while one runs: that one is followed by another. */
  private again = false;
  private resolveSynced!: () => void;
  private resolveClosed!: () => void;
  live = false;
  readonly synced = new Promise<void>((r) => (this.resolveSynced = r));
  readonly closed = new Promise<void>((r) => (this.resolveClosed = r));

  constructor(
    private readonly state: StateLayer,
    private readonly prefixes: string[],
    private readonly handler: (ev: StateEvent) => void,
    private readonly opts: WatchOptions,
    private readonly log: Logger,
  ) {}

  start(): void {
    void this.resync();
  }

  private deliver(ev: StateEvent): void {
    try {
      this.handler(ev);
    } catch (err) {
      this.log.error({ err, key: ev.key, sub: this.opts.name }, 'state handler failed');
    }
  }

  /** Scan at one revision, deliver the difference to the view, then watch from R+1. Retries with back-off. */
  private resync(): Promise<void> {
    if (this.rescanning) {
      // A watcher of the scan in progress was cancelled while the others were still being made:
      // that scan must be followed by another, or its prefix would stop following etcd.
      this.again = true;
      return this.rescanning;
    }
    this.live = false;
    this.rescanning = (async () => {
      let delay = 100;
      while (!this.stopped) {
        this.again = false;
        const gen = ++this.generation;
        await this.detach();
        try {
          await this.scanAndWatch(gen);
          if (this.again) continue;
          return;
        } catch (err) {
          if (this.stopped) return;
          this.log.warn({ err: (err as Error).message, sub: this.opts.name }, 'scan failed; retrying');
          await new Promise((r) => setTimeout(r, delay));
          delay = Math.min(delay * 2, 2000);
        }
      }
    })().finally(() => {
      this.rescanning = undefined;
    });
    return this.rescanning;
  }

  private async scanAndWatch(gen: number): Promise<void> {
    const { revision, kvs } = await this.state.snapshot(this.prefixes);
    const seen = new Map<string, KeyValue>();
    for (const kv of kvs) seen.set(kv.key, kv);
    if (this.stopped || gen !== this.generation) return;
    this.opts.onScan?.(revision);
    // Deliver the difference between the handler's view and the snapshot.
    for (const key of [...this.view.keys()]) {
      if (!seen.has(key)) {
        this.view.delete(key);
        this.deliver({ type: 'delete', key, modRevision: revision });
      }
    }
    for (const kv of seen.values()) {
      if (this.view.get(kv.key) === kv.modRevision) continue;
      this.view.set(kv.key, kv.modRevision);
      this.deliver({ type: 'put', key: kv.key, value: kv.value, createRevision: kv.createRevision, modRevision: kv.modRevision });
    }
    for (const prefix of this.prefixes) this.applied.set(prefix, revision);
    if (!this.live) {
      this.live = true;
    }
    this.opts.onSynced?.();
    this.opts.onSynced = undefined;
    this.resolveSynced();
    // Every watcher made is kept (so that detach cancels it) even when another could not be made.
    const made = await Promise.allSettled(this.prefixes.map((p) => this.watchPrefix(p, revision + 1, gen)));
    this.watchers = made.flatMap((m) => (m.status === 'fulfilled' ? [m.value] : []));
    const failed = made.find((m): m is PromiseRejectedResult => m.status === 'rejected');
    if (failed) throw failed.reason instanceof Error ? failed.reason : new Error(String(failed.reason));
    if (this.stopped || gen !== this.generation) await this.detach();
  }

  private async watchPrefix(prefix: string, from: number, gen: number): Promise<Watcher> {
    const w = await this.state.client.watch().prefix(this.state.abs(prefix)).startRevision(String(from)).create();
    w.on('data', (res) => {
      if (gen !== this.generation || this.stopped) return;
      // etcd3 resumes a broken stream from the last header revision: skip anything already applied.
      // One transaction (or one lease expiry) gives several events the same revision, all in one
      // response: the floor is taken once per response so that none of them is skipped.
      const floor = this.applied.get(prefix) ?? 0;
      for (const e of res.events) {
        const kv = e.kv;
        const rev = num(kv.mod_revision);
        if (rev <= floor) continue;
        this.applied.set(prefix, Math.max(rev, this.applied.get(prefix) ?? 0));
        const key = this.state.rel(kv.key.toString());
        if (e.type === 'Put') {
          this.view.set(key, rev);
          this.deliver({ type: 'put', key, value: kv.value.toString(), createRevision: num(kv.create_revision), modRevision: rev });
        } else if (this.view.delete(key)) {
          this.deliver({ type: 'delete', key, modRevision: rev });
        }
      }
    });
    w.on('error', (err) => {
      // Cancelled (compaction included): the watcher is gone; rescan and diff.
      this.watchers = this.watchers.filter((x) => x !== w); // etcd dropped it already
      if (gen !== this.generation || this.stopped) return;
      this.log.warn({ err: err.message, prefix, sub: this.opts.name }, 'watch cancelled; rescanning');
      void this.resync();
    });
    w.on('disconnected', (err) => {
      this.log.debug({ err: err?.message, prefix, sub: this.opts.name }, 'watch stream disconnected; resuming');
    });
    return w;
  }

  private async detach(): Promise<void> {
    const ws = this.watchers;
    this.watchers = [];
    // A watcher etcd already cancelled never acknowledges another cancel: bound the wait.
    await Promise.all(
      ws.map((w) => settleWithin(w.cancel(), 1000)),
    );
  }

  async close(): Promise<void> {
    this.stopped = true;
    this.generation++;
    await this.detach();
    this.resolveClosed();
  }
}
