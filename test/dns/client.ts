import { createSocket } from 'node:dgram';
import { connect } from 'node:net';
import dns2 from 'dns2';
import { execa } from 'execa';

const { Packet } = dns2;
export type Message = InstanceType<typeof Packet>;

/** Builds a query on the wire. */
export function buildQuery(
  name: string,
  type: number,
  opts: { id?: number; rd?: boolean; cls?: number; edns?: number; ednsVersion?: number; do?: boolean; opcode?: number; qr?: boolean } = {},
): Buffer {
  const p = new Packet();
  p.header = { id: opts.id ?? 1234, qr: opts.qr ? 1 : 0, opcode: opts.opcode ?? 0, aa: 0, tc: 0, rd: opts.rd === false ? 0 : 1, ra: 0, z: 0, rcode: 0 } as never;
  p.questions = [{ name, type, class: opts.cls ?? 1 } as never];
  if (opts.edns) p.additionals = [Packet.Resource.EDNS([], { udpPayloadSize: opts.edns, version: opts.ednsVersion, doFlag: opts.do }) as never];
  return p.toBuffer();
}

/** Sends one datagram and waits for one reply (undefined after `timeoutMs`). */
export function udpAsk(port: number, msg: Buffer, timeoutMs = 1000, host = '127.0.0.1'): Promise<Buffer | undefined> {
  return new Promise((resolve) => {
    const s = createSocket('udp4');
    const t = setTimeout(() => {
      s.close();
      resolve(undefined);
    }, timeoutMs);
    s.on('message', (m) => {
      clearTimeout(t);
      s.close();
      resolve(m);
    });
    s.on('error', () => undefined);
    s.send(msg, port, host);
  });
}

/** Writes framed messages on one TCP connection and collects `expect` framed replies. */
export function tcpAsk(port: number, msgs: Buffer[], expect = msgs.length, timeoutMs = 3000, host = '127.0.0.1'): Promise<Buffer[]> {
  return new Promise((resolve) => {
    const out: Buffer[] = [];
    let buf = Buffer.alloc(0);
    const sock = connect({ host, port });
    const done = () => {
      clearTimeout(t);
      sock.destroy();
      resolve(out);
    };
    const t = setTimeout(done, timeoutMs);
    sock.on('error', done);
    sock.on('close', done);
    sock.on('connect', () => {
      sock.write(Buffer.concat(msgs.map((m) => Buffer.concat([Buffer.from([m.length >> 8, m.length & 0xff]), m]))));
    });
    sock.on('data', (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      while (buf.length >= 2 && buf.length >= 2 + buf.readUInt16BE(0)) {
        out.push(buf.subarray(2, 2 + buf.readUInt16BE(0)));
        buf = buf.subarray(2 + buf.readUInt16BE(0));
      }
      if (out.length >= expect) done();
    });
  });
}

export const parse = (b: Buffer): Message => Packet.parse(b);

export interface DigResult {
  status: string;
  flags: string[];
  answer: string[];
  authority: string[];
  additional: string[];
  raw: string;
}

/** Runs dig against the agent and splits its output into sections. */
export async function dig(port: number, args: string[]): Promise<DigResult> {
  const r = await execa('dig', ['@127.0.0.1', '-p', String(port), '+tries=1', '+time=3', '+nocookie', ...args], { reject: false, timeout: 10_000 });
  const raw = r.stdout;
  const status = /status: (\w+)/.exec(raw)?.[1] ?? 'none';
  const flags = (/;; flags: ([^;]*);/.exec(raw)?.[1] ?? '').trim().split(/\s+/);
  const section = (title: string) => {
    const m = new RegExp(`;; ${title} SECTION:\\n([\\s\\S]*?)(\\n\\n|$)`).exec(raw);
    return m ? m[1]!.split('\n').filter((l) => l && !l.startsWith(';')).map((l) => l.replace(/\s+/g, ' ').trim()) : [];
  };
  return { status, flags, answer: section('ANSWER'), authority: section('AUTHORITY'), additional: section('ADDITIONAL'), raw };
}

/** Polls `check` until it returns true (at most `timeoutMs`); returns the elapsed ms. */
export async function until(check: () => Promise<boolean>, timeoutMs = 3000, stepMs = 2): Promise<number> {
  const t0 = performance.now();
  for (let i = 0; i < 100_000; i++) {
    if (await check()) return performance.now() - t0;
    if (performance.now() - t0 > timeoutMs) throw new Error(`condition not met within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, stepMs));
  }
  throw new Error('condition not met');
}
