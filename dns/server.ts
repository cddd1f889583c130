import { createSocket, type RemoteInfo } from 'node:dgram';
import { createServer as createTcpServer, type Socket as TcpSocket } from 'node:net';
import { performance } from 'node:perf_hooks';
import { setImmediate as yieldLoop } from 'node:timers/promises';
import dns2 from 'dns2';
import type { Logger } from 'pino';
import { bindError, formatHostPort, type HostPort } from '../agent/address.js';
import { StartupError } from '../agent/errors.js';
import { isLoopback, type Cidr } from '../agent/ipv4.js';
import { answer, refused, servfail } from './answer.js';
import { AnswerCache, fastKey, questionName, signature, type FastKey, type Revalidator } from './fastpath.js';
import type { Forwarder } from './forward.js';
import { HEADER, TYPE, type Query } from './message.js';
import { loadNativeUdp, type EngineHandle, type NativeStats, type NativeUdp } from './native.js';
import { mayRecurse } from './recursion.js';
import { encodeResponse, encodeTransfer, parseQuery, queryFromPacket, sizeLimit } from './wire.js';
import type { Zone } from './zone.js';

const { UDPServer, TCPServer } = dns2;
type Packet = InstanceType<typeof dns2.Packet>;

/**
 * The sockets: UDP and TCP on every listen address. UDP datagrams go through
 * the fast path (precomputed answers) first and through dns2's decoder
 * otherwise; TCP uses dns2's pipelining reader. UDP is read by one of two
 * engines: the native one (dns/native.ts), which replays the fast path's
 * answers on a thread of its own and hands everything else to this server,
 * or dns2's UDP server (node:dgram), where this server sees every datagram.
 * The dns2 defects of MACHINE.md are handled here: datagrams from source
 * port 0 are dropped before anything answers them, and a failed bind (which
 * dns2's listen() never reports) is raced against the socket's 'error' event.
 */

export type UdpEngine = 'auto' | 'native' | 'node';

export interface ServerOptions {
  listen: HostPort[];
  zone: Zone;
  forwarder: Forwarder;
  /** Clients (besides loopback) whose out-of-zone queries are forwarded. */
  recurseNets: Cidr[];
  log: Logger;
  /** Called once per answered query. */
  observe?: (qtype: number, rcode: number, seconds: number) => void;
  tcpIdleMs?: number;
  maxTcpConnections?: number;
  /** `native` refuses to start without the native engine; `auto` (the default) falls back to node:dgram. */
  udpEngine?: UdpEngine;
}

/** Where a UDP reply goes out, and the native engine behind it, if any. */
interface UdpOut {
  send(bytes: Buffer, port: number, address: string): void;
  engine?: EngineHandle;
}

const SOCKET_BUFFER = 4 * 1024 * 1024;
/**
 * Answers a TCP client may leave unread before its connection is closed: a
 * client that pipelines queries and never reads would otherwise pile them up
 * in the agent's memory (dns2 reads on regardless). A zone transfer waits for
 * the client to read instead, up to the idle timeout.
 */
export const TCP_MAX_UNREAD = 256 * 1024;

/** Binds and releases UDP and TCP on each address: a busy or foreign address fails here, before the agent writes anything. */
export async function probeListen(addresses: HostPort[]): Promise<void> {
  for (const hp of addresses) {
    const udp = createSocket('udp4');
    try {
      await raceListen(udp, () => udp.bind(hp.port, hp.host), hp, 'UDP');
    } finally {
      try {
        udp.close();
      } catch {
        /* never bound */
      }
    }
    const tcp = createTcpServer();
    try {
      await raceListen(tcp, () => tcp.listen(hp.port, hp.host), hp, 'TCP');
    } finally {
      if (tcp.listening) tcp.close();
    }
  }
}

/** Resolves when `listening` fires, rejects on 'error': dns2's listen() alone never settles on a failed bind. */
function raceListen(emitter: NodeJS.EventEmitter, listen: () => unknown, hp: HostPort, proto: 'UDP' | 'TCP'): Promise<void> {
  return new Promise((resolve, reject) => {
    const onError = (err: NodeJS.ErrnoException) => {
      emitter.off('listening', onListening);
      reject(bindError('--dns-listen', hp, proto, err));
    };
    const onListening = () => {
      emitter.off('error', onError);
      resolve();
    };
    emitter.once('error', onError);
    emitter.once('listening', onListening);
    try {
      const p = listen();
      if (p && typeof (p as Promise<void>).catch === 'function') (p as Promise<void>).catch(() => undefined);
    } catch (err) {
      onError(err as NodeJS.ErrnoException);
    }
  });
}

/** Resolves true once the socket has written what it holds, false if it closes or `ms` pass first. */
function drained(socket: TcpSocket, ms: number): Promise<boolean> {
  return new Promise((resolve) => {
    const done = (ok: boolean) => {
      clearTimeout(timer);
      socket.off('drain', onDrain);
      socket.off('close', onClose);
      resolve(ok);
    };
    const onDrain = () => done(true);
    const onClose = () => done(false);
    const timer = setTimeout(() => done(false), ms);
    socket.on('drain', onDrain);
    socket.on('close', onClose);
  });
}

function literalLookup(address: string, _family: unknown, cb: (err: null, address: string, family: number) => void): void {
  cb(null, address, 4);
}

export class DnsServer implements Revalidator {
  readonly fast = new AnswerCache();
  private readonly udp: InstanceType<typeof UDPServer>[] = [];
  private readonly engines: EngineHandle[] = [];
  private native: NativeUdp | undefined;
  private unsubscribe: (() => void) | undefined;
  /** Which UDP engine answers: decided in start(). */
  udpEngine: 'native' | 'node' = 'node';
  private readonly tcp: InstanceType<typeof TCPServer>[] = [];
  private readonly connections = new Set<TcpSocket>();
  private droppedHere = 0;

  /** Packets dropped unanswered (QR=1, source port 0, undecodable, or more than the native engine's queue holds). */
  get dropped(): number {
    const n = this.nativeStats();
    return this.droppedHere + (n ? n.dropped + n.overflow : 0);
  }

  constructor(private readonly opts: ServerOptions) {}

  async start(): Promise<void> {
    const want = this.opts.udpEngine ?? 'auto';
    if (want !== 'node') {
      const { udp, error } = loadNativeUdp();
      if (udp) this.native = udp;
      else if (want === 'native') throw new StartupError(`--dns-udp-engine native: the native UDP engine cannot be loaded: ${error}`);
      else this.opts.log.warn({ reason: error }, 'dns: native UDP engine unavailable, UDP is read through node:dgram');
    }
    this.udpEngine = this.native ? 'native' : 'node';
    if (this.native) {
      const native = this.native;
      const push = () => {
        for (const e of this.engines) native.setGeneration(e, this.opts.zone.generation >>> 0);
      };
      this.unsubscribe = this.opts.zone.onGeneration(push);
    }
    try {
      for (const hp of this.opts.listen) {
        if (this.native) this.listenNative(this.native, hp);
        else await this.listenNode(hp);
        const t = new TCPServer({ idleTimeout: this.opts.tcpIdleMs ?? 10_000 } as never);
        t.maxConnections = this.opts.maxTcpConnections ?? 256;
        t.on('request', (packet: Packet, send: (b: Buffer) => void, client: TcpSocket) => this.onTcp(packet, send, client));
        t.on('requestError', () => this.droppedHere++);
        t.on('connection', (c: TcpSocket) => {
          this.connections.add(c);
          c.once('close', () => this.connections.delete(c));
          // dns2 only half-closes an idle connection; a peer that never reads or closes would keep it.
          c.on('timeout', () => c.destroy());
        });
        this.tcp.push(t);
        await raceListen(t, () => t.listen(hp.port, hp.host), hp, 'TCP');
        t.on('error', (err) => this.opts.log.warn({ err: err.message }, 'dns tcp server error'));
        this.opts.log.info({ address: formatHostPort(hp), udp: this.udpEngine }, 'dns listening (udp, tcp)');
      }
    } catch (err) {
      await this.stop();
      throw err;
    }
  }

  private listenNative(native: NativeUdp, hp: HostPort): void {
    let engine: EngineHandle;
    try {
      engine = native.open(hp.host, hp.port, SOCKET_BUFFER);
    } catch (err) {
      throw bindError('--dns-listen', hp, 'UDP', err as NodeJS.ErrnoException);
    }
    this.engines.push(engine);
    native.setGeneration(engine, this.opts.zone.generation >>> 0);
    const out: UdpOut = {
      engine,
      send: (bytes, port, address) => {
        try {
          native.send(engine, bytes, address, port);
        } catch {
          /* closed at shutdown */
        }
      },
    };
    native.start(engine, (msg, address, port) => this.onUdp(out, msg, address, port), 16384);
  }

  private async listenNode(hp: HostPort): Promise<void> {
    // Replies go to the literal address the query came from: a synchronous lookup spares dgram its
    // dns.lookup round through process.nextTick on every send.
    const u = new UDPServer({ type: { type: 'udp4', lookup: literalLookup } } as never);
    u.removeAllListeners('message');
    const out: UdpOut = {
      send: (bytes, port, address) => {
        try {
          u.send(bytes, port, address);
        } catch {
          /* socket closed */
        }
      },
    };
    u.on('message', (msg: Buffer, rinfo: RemoteInfo) => this.onUdp(out, msg, rinfo.address, rinfo.port));
    this.udp.push(u);
    await raceListen(u, () => u.listen(hp.port, hp.host), hp, 'UDP');
    u.on('error', (err) => this.opts.log.warn({ err: err.message }, 'dns udp socket error'));
    try {
      u.setRecvBufferSize(SOCKET_BUFFER);
      u.setSendBufferSize(SOCKET_BUFFER);
    } catch {
      /* the kernel's limits apply */
    }
  }

  /** Gives the native engine an answer to replay for queries like `query` while the zone stays at `generation`. */
  private teach(engine: EngineHandle, query: Buffer, response: Buffer, generation: number, rcode: number): void {
    try {
      this.native!.store(engine, query, response, generation >>> 0, rcode);
    } catch {
      /* the engine closed at shutdown while this query was on its way */
    }
  }

  /** What the native engines answered and dropped, summed; undefined on node:dgram. */
  nativeStats(): NativeStats | undefined {
    if (!this.native || this.engines.length === 0) return undefined;
    const sum: NativeStats = { counts: [], buckets: [], sum: 0, count: 0, hits: 0, misses: 0, dropped: 0, overflow: 0, entries: 0 };
    const counts = new Map<number, number>();
    for (const e of this.engines) {
      const st = this.native.stats(e);
      for (const [k, n] of st.counts) counts.set(k, (counts.get(k) ?? 0) + n);
      st.buckets.forEach((n, i) => (sum.buckets[i] = (sum.buckets[i] ?? 0) + n));
      for (const f of ['sum', 'count', 'hits', 'misses', 'dropped', 'overflow', 'entries'] as const) sum[f] += st[f];
    }
    sum.counts = [...counts];
    return sum;
  }

  /** A stale precomputed answer still holds when the zone answers the same query the same way. */
  revalidate(query: Buffer, k: FastKey, sig: string): boolean {
    const q: Query = {
      id: 0,
      qr: false,
      opcode: 0,
      rd: (query[2]! & 1) === 1,
      cd: (query[3]! & 0x10) !== 0,
      qdcount: 1,
      question: { name: questionName(query, k.nameEnd), type: k.qtype, class: k.qclass },
      malformed: false,
      edns: k.edns ? { payload: k.limit, version: 0, do: k.edns === 2 } : undefined,
      transport: 'udp',
      loopback: false,
    };
    const out = answer(this.opts.zone, q, { recursionAvailable: this.recursionAvailable });
    return out.kind === 'reply' && out.cacheable && signature(out.response) === sig;
  }

  private get recursionAvailable(): boolean {
    return this.opts.forwarder.enabled;
  }

  private onUdp(out: UdpOut, msg: Buffer, address: string, port: number): void {
    // dns2 would crash replying to port 0; and QR=1 is never answered (no reflection loops).
    if (port === 0 || msg.length < HEADER || msg[2]! & 0x80) {
      this.droppedHere++;
      return;
    }
    const t0 = performance.now();
    const k = fastKey(msg);
    const generation = this.opts.zone.generation;
    if (k) {
      const hit = this.fast.lookup(msg, k, generation, this);
      if (hit) {
        out.send(hit.bytes, port, address);
        // The native engine missed it (new to it, or stale there): from now on it answers this query itself.
        if (out.engine) this.teach(out.engine, msg, hit.template, generation, hit.rcode);
        this.opts.observe?.(k.qtype, hit.rcode, (performance.now() - t0) / 1000);
        return;
      }
    }
    const q = parseQuery(msg, 'udp', isLoopback(address));
    if (!q) {
      this.droppedHere++;
      return;
    }
    const reply = (bytes: Buffer) => {
      out.send(bytes, port, address);
      this.opts.observe?.(q.question?.type ?? 0, bytes.length >= 4 ? bytes[3]! & 0x0f : 0, (performance.now() - t0) / 1000);
    };
    try {
      const res = this.handle(q, address, k, msg, out.engine);
      if (res instanceof Promise) res.then((b) => b.forEach(reply), () => this.droppedHere++);
      else res.forEach(reply);
    } catch (err) {
      this.opts.log.warn({ err }, 'dns query failed');
    }
  }

  private onTcp(packet: Packet, send: (b: Buffer) => void, client: TcpSocket): void {
    const t0 = performance.now();
    try {
      const q = queryFromPacket(packet, 'tcp', isLoopback(client.remoteAddress ?? ''));
      if (q.qr) {
        // Never answered; the idle timeout closes a connection that sends only these.
        this.droppedHere++;
        return;
      }
      if (client.writableLength > TCP_MAX_UNREAD) {
        // The client is not reading its answers.
        this.droppedHere++;
        client.destroy();
        return;
      }
      const write = async (bufs: Buffer[]) => {
        // Every message but the last goes straight to the socket: dns2's send() may half-close after its first call.
        for (let i = 0; i < bufs.length - 1; i++) {
          const len = Buffer.alloc(2);
          len.writeUInt16BE(bufs[i]!.length);
          if (!client.writable) return;
          client.write(Buffer.concat([len, bufs[i]!]));
        }
        const last = bufs[bufs.length - 1];
        if (!last) return;
        send(last);
        this.opts.observe?.(q.question?.type ?? 0, last.length >= 4 ? last[3]! & 0x0f : 0, (performance.now() - t0) / 1000);
      };
      if (q.question?.type === TYPE.AXFR && q.qdcount === 1) {
        void this.transfer(q, client.remoteAddress ?? '', client, write).catch(() => this.droppedHere++);
        return;
      }
      const out = this.handle(q, client.remoteAddress ?? '', undefined);
      if (out instanceof Promise) void out.then(write, () => this.droppedHere++);
      else void write(out);
    } catch (err) {
      this.opts.log.warn({ err }, 'dns tcp query failed');
    }
  }

  /**
   * A zone transfer: messages of 100 records, each written as soon as it is
   * encoded, with the event loop let go between them so that other clients
   * keep being answered (dns2 encodes about 10,000 records a second).
   */
  private async transfer(q: Query, address: string, client: TcpSocket, write: (bufs: Buffer[]) => Promise<void>): Promise<void> {
    const out = answer(this.opts.zone, q, { recursionAvailable: this.recursionAvailable });
    if (out.kind !== 'reply' || out.response.rcode !== 0) return write(await this.handle(q, address, undefined));
    const r = out.response;
    const step = 100;
    for (let i = 0; i < r.answers.length; i += step) {
      const last = i + step >= r.answers.length;
      const [msg] = encodeTransfer({ ...r, answers: r.answers.slice(i, i + step), edns: i === 0 ? r.edns : undefined }, step);
      if (last) return write([msg!]);
      if (!client.writable) return;
      client.write(Buffer.concat([Buffer.from([msg!.length >> 8, msg!.length & 0xff]), msg!]));
      await yieldLoop();
      if (client.writableLength > TCP_MAX_UNREAD && !(await drained(client, this.opts.tcpIdleMs ?? 10_000))) {
        client.destroy();
        return;
      }
    }
  }

  /** The full path: decode, answer or forward or refuse, encode. */
  private handle(q: Query, address: string, k: FastKey | undefined, raw?: Buffer, engine?: EngineHandle): Buffer[] | Promise<Buffer[]> {
    const { zone, forwarder } = this.opts;
    const ra = { recursionAvailable: this.recursionAvailable };
    const out = answer(zone, q, ra);
    if (out.kind === 'drop') return [];
    const limit = sizeLimit(q);
    if (out.kind === 'reply') {
      const bytes = encodeResponse(out.response, limit);
      if (out.cacheable && k && raw && q.transport === 'udp' && this.fast.store(raw, k, bytes, zone.generation, signature(out.response)) && engine) {
        this.teach(engine, raw, bytes, zone.generation, bytes[3]! & 0x0f);
      }
      return [bytes];
    }
    if (!q.rd || !forwarder.enabled || !mayRecurse(address, this.opts.recurseNets)) return [encodeResponse(refused(q, ra), limit)];
    return forwarder.forward(q, limit).then((r) => [r.kind === 'answer' ? r.bytes : encodeResponse(servfail(q, ra), limit)]);
  }

  async stop(): Promise<void> {
    this.unsubscribe?.();
    this.unsubscribe = undefined;
    for (const e of this.engines) this.native?.close(e);
    this.engines.length = 0;
    for (const c of this.connections) c.destroy();
    await Promise.all([
      ...this.udp.map((u) => new Promise<void>((r) => {
        try {
          u.close(() => r());
        } catch {
          r(); // never bound
        }
      })),
      ...this.tcp.map((t) => new Promise<void>((r) => (t.listening ? t.close(() => r()) : r()))),
    ]);
    this.udp.length = 0;
    this.tcp.length = 0;
  }
}
