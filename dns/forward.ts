import { createSocket, type Socket } from 'node:dgram';
import { connect } from 'node:net';
import { randomInt } from 'node:crypto';
import dns2 from 'dns2';
import type { HostPort } from '../agent/address.js';
import { layout, truncateMessage } from './layout.js';
import { EDNS_PAYLOAD, HEADER, type Query } from './message.js';

const { Packet } = dns2;

/**
 * Forwarding of names outside the zone (SPEC §4): the queries the server lets
 * through (dns/recursion.ts) go to the upstreams, over UDP with a TCP retry
 * when the answer is truncated. Answers are cached for their TTL in a bounded
 * cache. When every upstream fails the client gets SERVFAIL within 2 s.
 */

// ---- the cache ------------------------------------------------------------

/**
 * A copy of `buf` in an allocation of its own, for bytes kept for long:
 * `Buffer.from` of a small buffer takes a slice of Node's shared 8 KiB pool,
 * and a slice kept alive keeps its whole slab alive.
 */
export function ownCopy(buf: Buffer): Buffer {
  const out = Buffer.allocUnsafeSlow(buf.length);
  buf.copy(out);
  return out;
}

interface Cached {
  bytes: Buffer;
  storedAt: number;
  expiresAt: number;
  /** Offsets of TTL fields to age on the way out. */
  ttlAt: number[];
}

/** How long a response may be cached, in seconds (0: not at all). RFC 2308 for negative answers. */
export function cacheTtl(buf: Buffer, maxTtl = 3600): { ttl: number; ttlAt: number[] } {
  const rcode = buf[3]! & 0x0f;
  if ((buf[2]! & 0x02) !== 0 || (rcode !== 0 && rcode !== 3)) return { ttl: 0, ttlAt: [] };
  const lay = layout(buf);
  if (!lay) return { ttl: 0, ttlAt: [] };
  let ttl = Infinity;
  const ttlAt: number[] = [];
  let answers = 0;
  for (const rec of lay.records) {
    if (rec.type === 41) continue;
    const t = buf.readUInt32BE(rec.ttlAt);
    ttlAt.push(rec.ttlAt);
    if (rec.section === 'answer') {
      answers++;
      ttl = Math.min(ttl, t);
    } else if (rec.section === 'authority' && rec.type === 6 && rec.end - rec.rdataAt >= 20) {
      ttl = Math.min(ttl, t, buf.readUInt32BE(rec.end - 4));
    }
  }
  if (answers === 0 && ttl === Infinity) return { ttl: 0, ttlAt: [] };
  return { ttl: Math.max(0, Math.min(ttl, maxTtl)), ttlAt };
}

export class ForwardCache {
  private readonly entries = new Map<string, Cached>();

  constructor(private readonly maxEntries = 10_000) {}

  get size(): number {
    return this.entries.size;
  }

  get(key: string, now: number): Buffer | undefined {
    const e = this.entries.get(key);
    if (!e) return undefined;
    if (now >= e.expiresAt) {
      this.entries.delete(key);
      return undefined;
    }
    // Most recently used last: eviction takes the first.
    this.entries.delete(key);
    this.entries.set(key, e);
    const out = Buffer.from(e.bytes);
    const age = Math.floor((now - e.storedAt) / 1000);
    for (const at of e.ttlAt) out.writeUInt32BE(Math.max(0, out.readUInt32BE(at) - age), at);
    return out;
  }

  put(key: string, bytes: Buffer, now: number): void {
    const { ttl, ttlAt } = cacheTtl(bytes);
    if (ttl <= 0) return;
    this.entries.delete(key);
    while (this.entries.size >= this.maxEntries) this.entries.delete(this.entries.keys().next().value!);
    this.entries.set(key, { bytes: ownCopy(bytes), storedAt: now, expiresAt: now + ttl * 1000, ttlAt });
  }
}

// ---- the forwarder --------------------------------------------------------

export interface ForwarderOptions {
  upstreams: HostPort[];
  /** Total time before SERVFAIL. */
  deadlineMs?: number;
  /** Time one upstream gets before the next is tried. */
  attemptMs?: number;
  cacheEntries?: number;
  /** Queries in flight at once; more get SERVFAIL at once. */
  maxPending?: number;
}

interface Pending {
  question: Buffer;
  upstream: HostPort;
  resolve: (b: Buffer | undefined) => void;
  timer: NodeJS.Timeout;
}

export type ForwardResult = { kind: 'answer'; bytes: Buffer; cached: boolean } | { kind: 'servfail' };

/** Encodes the question of `q` (as received) into a query of our own: new ID, RD=1, CD copied, EDNS 1232. */
export function upstreamQuery(q: Query, id: number): Buffer {
  const p = new Packet();
  p.header = { id, qr: 0, opcode: 0, aa: 0, tc: 0, rd: 1, ra: 0, z: 0, cd: q.cd ? 1 : 0, rcode: 0 } as unknown as typeof p.header;
  p.questions = [{ name: q.question!.name, type: q.question!.type, class: q.question!.class } as unknown as (typeof p.questions)[number]];
  const opt = Packet.Resource.EDNS([], { udpPayloadSize: EDNS_PAYLOAD, doFlag: !!q.edns?.do });
  p.additionals = [opt as unknown as (typeof p.additionals)[number]];
  return p.toBuffer();
}

export class Forwarder {
  readonly cache: ForwardCache;
  private socket: Socket | undefined;
  private readonly pending = new Map<number, Pending>();
  private readonly inflight = new Map<string, Promise<Buffer | undefined>>();
  private readonly deadlineMs: number;
  private readonly attemptMs: number;
  private readonly maxPending: number;
  private closed = false;
  private next = 0;
  /** Counts for metrics. */
  readonly stats = { forwarded: 0, cacheHits: 0, failures: 0, tcpRetries: 0 };

  constructor(private readonly opts: ForwarderOptions) {
    this.cache = new ForwardCache(opts.cacheEntries ?? 10_000);
    this.deadlineMs = opts.deadlineMs ?? 1800;
    this.attemptMs = opts.attemptMs ?? 700;
    this.maxPending = opts.maxPending ?? 2000;
  }

  get enabled(): boolean {
    return this.opts.upstreams.length > 0;
  }

  private udp(): Socket {
    if (this.socket) return this.socket;
    const s = createSocket('udp4');
    s.on('message', (msg, rinfo) => this.onMessage(msg, rinfo.address, rinfo.port));
    s.on('error', () => undefined); // ICMP errors and the like: the attempt times out and the next upstream is tried
    s.bind(0);
    s.unref();
    this.socket = s;
    return s;
  }

  private onMessage(msg: Buffer, address: string, port: number): void {
    if (msg.length < HEADER || (msg[2]! & 0x80) === 0) return;
    const id = msg.readUInt16BE(0);
    const p = this.pending.get(id);
    if (!p || p.upstream.host !== address || p.upstream.port !== port) return;
    // The question must be ours, byte for byte (case aside).
    const qEnd = HEADER + p.question.length;
    if (msg.length < qEnd || msg.readUInt16BE(4) !== 1) return;
    if (msg.toString('latin1', HEADER, qEnd).toLowerCase() !== p.question.toString('latin1').toLowerCase()) return;
    this.pending.delete(id);
    clearTimeout(p.timer);
    p.resolve(msg);
  }

  private freeId(): number {
    for (let i = 0; i < 8; i++) {
      const id = randomInt(0x10000);
      if (!this.pending.has(id)) return id;
    }
    return -1;
  }

  private askUdp(query: Buffer, question: Buffer, upstream: HostPort, timeoutMs: number): Promise<Buffer | undefined> {
    const id = query.readUInt16BE(0);
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        resolve(undefined);
      }, timeoutMs);
      this.pending.set(id, { question, upstream, resolve, timer });
      this.udp().send(query, upstream.port, upstream.host, (err) => {
        if (err && this.pending.get(id)?.timer === timer) {
          this.pending.delete(id);
          clearTimeout(timer);
          resolve(undefined);
        }
      });
    });
  }

  private askTcp(query: Buffer, upstream: HostPort, timeoutMs: number): Promise<Buffer | undefined> {
    return new Promise((resolve) => {
      const sock = connect({ host: upstream.host, port: upstream.port });
      let buf = Buffer.alloc(0);
      const done = (b: Buffer | undefined) => {
        clearTimeout(timer);
        sock.destroy();
        resolve(b);
      };
      const timer = setTimeout(() => done(undefined), timeoutMs);
      sock.on('error', () => done(undefined));
      sock.on('close', () => done(undefined));
      sock.on('connect', () => {
        const len = Buffer.alloc(2);
        len.writeUInt16BE(query.length);
        sock.write(Buffer.concat([len, query]));
      });
      sock.on('data', (d: Buffer) => {
        buf = Buffer.concat([buf, d]);
        if (buf.length > 2 && buf.length >= 2 + buf.readUInt16BE(0)) {
          const msg = buf.subarray(2, 2 + buf.readUInt16BE(0));
          done(msg.length >= HEADER && msg.readUInt16BE(0) === query.readUInt16BE(0) ? Buffer.from(msg) : undefined);
        }
      });
    });
  }

  /**
   * Resolves a query of an allowed client through the cache or the upstreams.
   * The answer carries the client's ID and question bytes, and fits `limit`.
   */
  async forward(q: Query, limit: number): Promise<ForwardResult> {
    const question = q.question!;
    const key = `${question.name.toLowerCase()}/${question.type}/${question.class}/${q.edns?.do ? 'D' : ''}`;
    const cached = this.cache.get(key, Date.now());
    if (cached) {
      this.stats.cacheHits++;
      return { kind: 'answer', bytes: this.forClient(cached, q, limit), cached: true };
    }
    // Clients asking the same question while it is out share one upstream query.
    let reply = this.inflight.get(key);
    const joined = reply !== undefined;
    if (!reply) {
      reply = this.ask(q, key).finally(() => this.inflight.delete(key));
      this.inflight.set(key, reply);
    }
    const bytes = await reply;
    if (!bytes) {
      this.stats.failures++;
      return { kind: 'servfail' };
    }
    if (joined) this.stats.cacheHits++;
    else this.stats.forwarded++;
    return { kind: 'answer', bytes: this.forClient(bytes, q, limit), cached: joined };
  }

  /** One question to the upstreams in turn until one answers usefully or the deadline passes. */
  private async ask(q: Query, key: string): Promise<Buffer | undefined> {
    if (this.closed || !this.enabled || this.pending.size >= this.maxPending) return undefined;
    const id = this.freeId();
    if (id < 0) return undefined;
    let query: Buffer;
    try {
      query = upstreamQuery(q, id);
    } catch {
      return undefined;
    }
    const qLay = layout(query);
    if (!qLay) return undefined;
    const qBytes = query.subarray(HEADER, qLay.questionEnd);
    const deadline = Date.now() + this.deadlineMs;
    const ups = this.opts.upstreams;
    const first = this.next++ % ups.length;
    const attempts = Math.max(3, ups.length * 2);
    for (let attempt = 0; attempt < attempts && Date.now() < deadline - 20; attempt++) {
      const upstream = ups[(first + attempt) % ups.length]!;
      const left = deadline - Date.now();
      let reply = await this.askUdp(query, qBytes, upstream, Math.min(this.attemptMs, left));
      if (reply && reply[2]! & 0x02) {
        this.stats.tcpRetries++;
        reply = (await this.askTcp(query, upstream, Math.max(50, deadline - Date.now()))) ?? reply;
      }
      if (!reply) continue;
      const rcode = reply[3]! & 0x0f;
      if (rcode === 2 || rcode === 5) continue; // SERVFAIL or REFUSED: another upstream may do better
      this.cache.put(key, reply, Date.now());
      return reply;
    }
    return undefined;
  }

  /** The upstream's answer rewritten for the client: its ID, its question case, no OPT unless it sent one, within its size. */
  private forClient(reply: Buffer, q: Query, limit: number): Buffer {
    let out = Buffer.from(reply);
    out.writeUInt16BE(q.id, 0);
    out[2] = (out[2]! & 0xfe) | (q.rd ? 1 : 0);
    const lay = layout(out);
    if (!lay) return truncateMessage(out, HEADER);
    // The client's own spelling of the name.
    const name = Buffer.from(q.question!.name.replace(/\.$/, '').split('.').filter(Boolean).map((l) => String.fromCharCode(l.length) + l).join('') + '\0', 'latin1');
    if (out.length >= HEADER + name.length && out[HEADER + name.length - 1] === 0) {
      const theirs = out.toString('latin1', HEADER, HEADER + name.length).toLowerCase();
      if (theirs === name.toString('latin1').toLowerCase()) name.copy(out, HEADER);
    }
    if (!q.edns) {
      const last = lay.records[lay.records.length - 1];
      if (last && last.type === 41 && last.end === out.length) {
        out = out.subarray(0, last.start);
        out.writeUInt16BE(Math.max(0, out.readUInt16BE(10) - 1), 10);
      }
    }
    if (out.length > limit) return truncateMessage(out, lay.questionEnd);
    return out;
  }

  close(): void {
    this.closed = true;
    for (const [id, p] of this.pending) {
      clearTimeout(p.timer);
      p.resolve(undefined);
      this.pending.delete(id);
    }
    this.socket?.close();
    this.socket = undefined;
  }
}
