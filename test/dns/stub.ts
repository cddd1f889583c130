import { createSocket, type Socket } from 'node:dgram';
import { createServer, type Server, type Socket as TcpSocket } from 'node:net';
import dns2 from 'dns2';
import { freePort } from '../support/ports.js';

const { Packet } = dns2;

/**
 * An upstream resolver stub on a 127.0.0.x address, for the forwarding tests.
 * Names: `*.silent.test` never answered; `*.slow.test` answered after 200 ms;
 * `big.example.test` truncated over UDP
 * and 40 A records over TCP; `nx.example.test` NXDOMAIN; anything else one A
 * record 192.0.2.1 with TTL 60.
 */
export class StubUpstream {
  readonly seen: { name: string; type: number; transport: 'udp' | 'tcp' }[] = [];
  private udp!: Socket;
  private tcp!: Server;
  private readonly conns = new Set<TcpSocket>();
  port = 0;

  constructor(readonly host = '127.0.0.2') {}

  async start(): Promise<this> {
    this.port = await freePort(this.host);
    this.udp = createSocket('udp4');
    this.udp.on('message', (m, r) => {
      const reply = this.reply(m, 'udp');
      if (!reply) return;
      const slow = this.seen[this.seen.length - 1]?.name.endsWith('.slow.test');
      if (slow) setTimeout(() => this.udp.send(reply, r.port, r.address), 200);
      else this.udp.send(reply, r.port, r.address);
    });
    await new Promise<void>((res, rej) => {
      this.udp.once('error', rej);
      this.udp.bind(this.port, this.host, () => res());
    });
    this.tcp = createServer((c) => {
      this.conns.add(c);
      c.on('close', () => this.conns.delete(c));
      c.on('error', () => undefined);
      let buf = Buffer.alloc(0);
      c.on('data', (d: Buffer) => {
        buf = Buffer.concat([buf, d]);
        while (buf.length >= 2 && buf.length >= 2 + buf.readUInt16BE(0)) {
          const msg = buf.subarray(2, 2 + buf.readUInt16BE(0));
          buf = buf.subarray(2 + msg.length);
          const reply = this.reply(msg, 'tcp');
          if (reply) c.write(Buffer.concat([Buffer.from([reply.length >> 8, reply.length & 0xff]), reply]));
        }
      });
    });
    await new Promise<void>((res, rej) => {
      this.tcp.once('error', rej);
      this.tcp.listen(this.port, this.host, () => res());
    });
    return this;
  }

  private reply(msg: Buffer, transport: 'udp' | 'tcp'): Buffer | undefined {
    let q: InstanceType<typeof Packet>;
    try {
      q = Packet.parse(msg);
    } catch {
      return undefined;
    }
    const question = q.questions[0];
    if (!question) return undefined;
    const name = question.name.toLowerCase();
    this.seen.push({ name, type: question.type, transport });
    if (name.endsWith('.silent.test')) return undefined;
    const r = new Packet();
    r.header = { ...q.header, qr: 1, ra: 1, aa: 0, rcode: 0 } as never;
    r.questions = [question];
    if (name === 'big.example.test') {
      if (transport === 'udp') {
        r.header.tc = 1;
      } else {
        for (let i = 1; i <= 40; i++) r.answers.push({ name: question.name, type: 1, class: 1, ttl: 60, address: `192.0.2.${i}` } as never);
      }
    } else if (name === 'nx.example.test') {
      r.header.rcode = 3;
      r.authorities.push({ name: 'example.test', type: 6, class: 1, ttl: 30, primary: 'ns.example.test', admin: 'h.example.test', serial: 1, refresh: 1, retry: 1, expiration: 1, minimum: 30 } as never);
    } else if (question.type === 1) {
      r.answers.push({ name: question.name, type: 1, class: 1, ttl: 60, address: '192.0.2.1' } as never);
    }
    if (q.additionals.some((a) => a.type === 41)) r.additionals = [Packet.Resource.EDNS([], { udpPayloadSize: 1232 }) as never];
    return r.toBuffer();
  }

  count(name: string): number {
    return this.seen.filter((s) => s.name === name).length;
  }

  async stop(): Promise<void> {
    for (const c of this.conns) c.destroy();
    await new Promise<void>((r) => this.udp.close(() => r()));
    await new Promise<void>((r) => this.tcp.close(() => r()));
  }
}
