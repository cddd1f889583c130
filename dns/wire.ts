import dns2 from 'dns2';
import { HEADER, RCODE, TYPE, UDP_MIN, type Query, type Response } from './message.js';

const { Packet } = dns2;
type Packet = InstanceType<typeof Packet>;

/**
 * The wire format. dns2 is the codec of record: queries are decoded with
 * `Packet.parse` and responses encoded with `Packet.toBuffer`.
 */

/** Decodes a query; undefined when not even a header could be read (the packet is dropped). */
export function parseQuery(buf: Buffer, transport: 'udp' | 'tcp', loopback: boolean): Query | undefined {
  if (buf.length < HEADER) return undefined;
  let packet: Packet;
  try {
    packet = Packet.parse(buf);
  } catch {
    return undefined;
  }
  return queryFromPacket(packet, transport, loopback);
}

export function queryFromPacket(packet: Packet, transport: 'udp' | 'tcp', loopback: boolean): Query {
  const h = packet.header as Packet['header'] & { cd?: number };
  let malformed = packet.errors.length > 0;
  const q = packet.questions[0];
  const opts = packet.additionals.filter((r) => r && r.type === TYPE.OPT);
  if (opts.length > 1 || (opts.length === 1 && opts[0]!.name !== '')) malformed = true;
  if (packet.questions.length < Math.min(h.qdcount, 1)) malformed = true;
  const opt = opts[0];
  return {
    id: h.id,
    qr: h.qr === 1,
    opcode: h.opcode,
    rd: h.rd === 1,
    cd: h.cd === 1,
    qdcount: h.qdcount,
    question: q ? { name: q.name, type: q.type, class: q.class } : undefined,
    malformed,
    edns: opt ? { payload: opt.class, version: opt.version ?? 0, do: !!opt.doFlag } : undefined,
    transport,
    loopback,
  };
}

/** The largest response the client takes over this transport. */
export function sizeLimit(q: Query): number {
  if (q.transport === 'tcp') return 65535;
  return Math.max(UDP_MIN, Math.min(q.edns?.payload ?? UDP_MIN, 65535));
}

function toPacket(r: Response, withRecords: boolean): Packet {
  const p = new Packet();
  p.header = {
    id: r.id,
    qr: 1,
    opcode: r.opcode,
    aa: r.aa ? 1 : 0,
    tc: r.tc ? 1 : 0,
    rd: r.rd ? 1 : 0,
    ra: r.ra ? 1 : 0,
    z: 0,
    cd: r.cd ? 1 : 0,
    rcode: r.rcode,
  } as unknown as Packet['header'];
  p.questions = r.question ? [{ ...r.question } as unknown as Packet['questions'][number]] : [];
  if (withRecords) {
    p.answers = r.answers as unknown as Packet['answers'];
    p.authorities = r.authorities as unknown as Packet['authorities'];
    p.additionals = [...r.additionals] as unknown as Packet['additionals'];
  }
  if (r.edns) {
    const opt = Packet.Resource.EDNS([], { udpPayloadSize: r.edns.payload, version: r.edns.version, doFlag: r.edns.do });
    (opt as unknown as { name: string }).name = '';
    p.additionals.push(opt as unknown as Packet['additionals'][number]);
  } else if (r.rcode > 15) {
    // An extended rcode cannot travel without OPT; BADVERS without OPT never happens (it answers an OPT).
    p.header.rcode = RCODE.SERVFAIL;
  }
  return p;
}

/** A header-only reply, built by hand: the last resort when dns2 cannot encode a response. */
function bareReply(r: Response, rcode: number): Buffer {
  const b = Buffer.alloc(HEADER);
  b.writeUInt16BE(r.id & 0xffff, 0);
  b[2] = 0x80 | ((r.opcode & 0xf) << 3) | (r.rd ? 1 : 0);
  b[3] = (r.ra ? 0x80 : 0) | (r.cd ? 0x10 : 0) | (rcode & 0xf);
  return b;
}

/**
 * Encodes a response within `limit` bytes: when the full answer does not fit,
 * the records are dropped and TC is set (the OPT record stays, RFC 6891 §7).
 */
export function encodeResponse(r: Response, limit: number): Buffer {
  try {
    const full = toPacket(r, true).toBuffer();
    if (full.length <= limit) return full;
    const cut = toPacket({ ...r, tc: true }, false).toBuffer();
    return cut.length <= limit ? cut : bareReply({ ...r, tc: true }, r.rcode);
  } catch {
    return bareReply(r, RCODE.SERVFAIL);
  }
}

/**
 * Encodes a zone transfer: the answer records split over as many TCP messages
 * as needed, each well under 64 KiB.
 */
export function encodeTransfer(r: Response, recordsPerMessage = 400): Buffer[] {
  const out: Buffer[] = [];
  for (let i = 0; i < r.answers.length || i === 0; i += recordsPerMessage) {
    const part: Response = { ...r, answers: r.answers.slice(i, i + recordsPerMessage), authorities: [], additionals: [] };
    if (i > 0) part.edns = undefined;
    out.push(encodeResponse(part, 65535));
  }
  return out;
}
