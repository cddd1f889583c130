import { HEADER, type Response, type Rr } from './message.js';

/**
 * Precomputed wire answers for the common query: one question, class IN or
 * CH, no records but an optional EDNS version 0 OPT. dns2 decodes and encodes
 * bit by bit (about 48k queries/s on the test machines, against about 100k for
 * a bare UDP responder); this cache keeps the bytes dns2 produced for a
 * question and replays them, with the query's ID, RD and CD bits and the
 * query's own question bytes copied in (so case is preserved exactly).
 *
 * Entries carry the zone generation they were made at and a signature of the
 * answer they encode. After any zone change an entry is stale: its next use
 * asks the zone again (`answer()`, microseconds) and keeps the bytes only when
 * the signature is unchanged, so an answer never outlives the data it came
 * from, and a busy zone does not send every query back through dns2's encoder.
 */

export interface FastKey {
  /** FNV-1a of the lowercased question name, type, class and EDNS flags. */
  hash: number;
  /** Offset just past the question name. */
  nameEnd: number;
  qtype: number;
  qclass: number;
  /** 0: no EDNS, 1: EDNS, 2: EDNS with DO. */
  edns: number;
  /** The client's UDP size (512 without EDNS). */
  limit: number;
}

interface Entry {
  /** The question name's wire bytes, lowercased. */
  name: Buffer;
  qtype: number;
  qclass: number;
  edns: number;
  generation: number;
  /** `signature()` of the response the bytes encode. */
  sig: string;
  bytes: Buffer;
  rcode: number;
}

/** Decides whether a stale entry still holds: the zone's answer to this query has the same signature. */
export interface Revalidator {
  revalidate(query: Buffer, k: FastKey, sig: string): boolean;
}

/**
 * What an answer says, without the parts each query supplies (ID, RD, CD, the
 * spelling of the question). Owner names in the answer section follow from the
 * question, so only their data counts there.
 */
export function signature(r: Response): string {
  // Parts joined once: a string built with += is a rope of every piece, and
  // the cache keeps one signature per entry.
  const parts = [`${r.rcode}/${r.aa ? 1 : 0}${r.ra ? 1 : 0}${r.tc ? 1 : 0}${r.edns ? (r.edns.do ? 2 : 1) : 0}`];
  const add = (rrs: Rr[], owners: boolean) => {
    parts.push('|');
    for (const rr of rrs) {
      parts.push(`${owners ? rr.name : ''} ${rr.type} ${rr.ttl} ${rr.address ?? rr.domain ?? rr.ns ?? rr.target ?? rr.primary ?? ''}`);
      if (rr.port !== undefined) parts.push(` ${rr.priority} ${rr.weight} ${rr.port}`);
      if (rr.minimum !== undefined) parts.push(` ${rr.admin} ${rr.serial} ${rr.minimum}`);
      if (rr.data !== undefined) parts.push(` ${String(rr.data)}`);
      parts.push(';');
    }
  };
  add(r.answers, false);
  add(r.authorities, true);
  add(r.additionals, true);
  return parts.join('');
}

/** The question name of a plain query as a dotted string (as received). */
export function questionName(query: Buffer, nameEnd: number): string {
  let out = '';
  let off = HEADER;
  while (off < nameEnd - 1) {
    const l = query[off]!;
    if (out) out += '.';
    out += query.toString('latin1', off + 1, off + 1 + l);
    off += l + 1;
  }
  return out;
}

const lower = (c: number) => (c >= 0x41 && c <= 0x5a ? c | 0x20 : c);

/** Reads the cache key of a plain query, or undefined when it needs the full decoder. */
export function fastKey(buf: Buffer): FastKey | undefined {
  const len = buf.length;
  if (len < HEADER + 5) return undefined;
  // QR=0, opcode QUERY; QDCOUNT 1, ANCOUNT 0, NSCOUNT 0, ARCOUNT 0 or 1.
  if ((buf[2]! & 0xf8) !== 0) return undefined;
  if (buf[4] !== 0 || buf[5] !== 1 || buf[6] !== 0 || buf[7] !== 0 || buf[8] !== 0 || buf[9] !== 0 || buf[10] !== 0) return undefined;
  const ar = buf[11]!;
  if (ar > 1) return undefined;
  let hash = 0x811c9dc5;
  let off = HEADER;
  for (;;) {
    const l = buf[off]!;
    if (l === 0) break;
    if (l > 63 || off + l + 1 >= len || off + l + 1 - HEADER > 254) return undefined;
    hash = Math.imul(hash ^ l, 0x01000193);
    for (let i = off + 1; i <= off + l; i++) hash = Math.imul(hash ^ lower(buf[i]!), 0x01000193);
    off += l + 1;
  }
  const nameEnd = off + 1;
  if (nameEnd + 4 > len) return undefined;
  const qtype = (buf[nameEnd]! << 8) | buf[nameEnd + 1]!;
  const qclass = (buf[nameEnd + 2]! << 8) | buf[nameEnd + 3]!;
  let p = nameEnd + 4;
  let limit = 512;
  let edns = 0;
  if (ar === 1) {
    // OPT: root name, type 41, class = payload, TTL = ext-rcode 0, version 0, flags; RDATA to the end.
    if (p + 11 > len || buf[p] !== 0 || buf[p + 1] !== 0 || buf[p + 2] !== 41) return undefined;
    if (buf[p + 5] !== 0 || buf[p + 6] !== 0) return undefined;
    const payload = (buf[p + 3]! << 8) | buf[p + 4]!;
    const rdlen = (buf[p + 9]! << 8) | buf[p + 10]!;
    if (p + 11 + rdlen !== len) return undefined;
    limit = payload > 512 ? payload : 512;
    edns = buf[p + 7]! & 0x80 ? 2 : 1;
    p = len;
  }
  if (p !== len) return undefined;
  hash = Math.imul(hash ^ qtype, 0x01000193);
  hash = Math.imul(hash ^ qclass, 0x01000193);
  hash = Math.imul(hash ^ edns, 0x01000193) >>> 0;
  return { hash, nameEnd, qtype, qclass, edns, limit };
}

/**
 * The entries, in two generations: new entries go to the young map; when it
 * holds half the bound it becomes the old one and the previous old one is
 * dropped; a hit in the old map moves the entry back to the young one. So
 * answers asked for stay, answers nobody asks for any more (names long
 * deleted) leave within two turns, and there are never more than
 * `maxEntries`.
 *
 * Each entry's bytes live in one allocation of their own: a small Buffer from
 * Node's shared pool would keep its whole 8 KiB slab alive for as long as the
 * entry lives.
 */
export class AnswerCache {
  private young = new Map<number, Entry>();
  private old = new Map<number, Entry>();
  hits = 0;
  revalidated = 0;

  constructor(private readonly maxEntries = 50_000) {}

  /** The cached answer for this query, ready to send; undefined on a miss or when it does not fit. */
  lookup(query: Buffer, k: FastKey, generation: number, check?: Revalidator): { bytes: Buffer; rcode: number; template: Buffer } | undefined {
    let e = this.young.get(k.hash);
    if (!e) {
      e = this.old.get(k.hash);
      if (!e) return undefined;
      this.old.delete(k.hash);
      this.add(k.hash, e);
    }
    if (e.qtype !== k.qtype || e.qclass !== k.qclass || e.edns !== k.edns || e.name.length !== k.nameEnd - HEADER) return undefined;
    const name = e.name;
    for (let i = 0; i < name.length; i++) if (name[i] !== lower(query[HEADER + i]!)) return undefined;
    if (e.generation !== generation) {
      if (!check?.revalidate(query, k, e.sig)) {
        this.young.delete(k.hash);
        return undefined;
      }
      e.generation = generation;
      this.revalidated++;
    }
    if (e.bytes.length > k.limit) return undefined;
    const out = Buffer.allocUnsafe(e.bytes.length);
    e.bytes.copy(out);
    out[0] = query[0]!;
    out[1] = query[1]!;
    out[2] = (out[2]! & 0xfe) | (query[2]! & 0x01);
    out[3] = (out[3]! & 0xef) | (query[3]! & 0x10);
    query.copy(out, HEADER, HEADER, k.nameEnd);
    this.hits++;
    return { bytes: out, rcode: e.rcode, template: e.bytes };
  }

  /** Remembers a response produced by the full path for a query with this key; false when it cannot be replayed. */
  store(query: Buffer, k: FastKey, response: Buffer, generation: number, sig: string): boolean {
    // Only responses whose question sits where the query's did, the same bytes but for case.
    if (response.length < k.nameEnd + 4 || response[2]! & 0x02) return false;
    const nameLen = k.nameEnd - HEADER;
    for (let i = 0; i < nameLen; i++) if (lower(response[HEADER + i]!) !== lower(query[HEADER + i]!)) return false;
    const own = Buffer.allocUnsafeSlow(response.length + nameLen);
    response.copy(own);
    const name = own.subarray(response.length);
    for (let i = 0; i < nameLen; i++) name[i] = lower(query[HEADER + i]!);
    const rcode = response[3]! & 0x0f;
    this.old.delete(k.hash);
    this.add(k.hash, { name, qtype: k.qtype, qclass: k.qclass, edns: k.edns, generation, sig, bytes: own.subarray(0, response.length), rcode });
    return true;
  }

  private add(hash: number, e: Entry): void {
    if (this.young.size >= Math.max(1, this.maxEntries >> 1) && !this.young.has(hash)) {
      this.old = this.young;
      this.young = new Map();
    }
    this.young.set(hash, e);
  }

  get size(): number {
    return this.young.size + this.old.size;
  }
}
