import { HEADER } from './wire.js';

/**
 * Precomputed wire answers for the common query: one question, class IN or
 * CH, no records but an optional EDNS version 0 OPT. dns2 decodes and encodes
 * bit by bit (about 48k queries/s on the test machines, against about 100k for
 * a bare UDP responder); this cache keeps the bytes dns2 produced for a
 * question and replays them, with the query's ID, RD and CD bits and the
 * query's own question bytes copied in (so case is preserved exactly).
 *
 * Entries carry the zone generation they were made at: any zone change makes
 * every older entry stale, so an answer never outlives the data it came from.
 */

export interface FastKey {
  key: string;
  /** Offset just past the question name. */
  nameEnd: number;
  qtype: number;
  /** The client's UDP size (512 without EDNS). */
  limit: number;
}

interface Entry {
  generation: number;
  bytes: Buffer;
  rcode: number;
}

/** Reads the cache key of a plain query, or undefined when it needs the full decoder. */
export function fastKey(buf: Buffer): FastKey | undefined {
  const len = buf.length;
  if (len < HEADER + 5) return undefined;
  // QR=0, opcode QUERY; QDCOUNT 1, ANCOUNT 0, NSCOUNT 0, ARCOUNT 0 or 1.
  if ((buf[2]! & 0xf8) !== 0) return undefined;
  if (buf[4] !== 0 || buf[5] !== 1 || buf[6] !== 0 || buf[7] !== 0 || buf[8] !== 0 || buf[9] !== 0 || buf[10] !== 0) return undefined;
  const ar = buf[11]!;
  if (ar > 1) return undefined;
  let off = HEADER;
  for (;;) {
    const l = buf[off]!;
    if (l === 0) break;
    if (l > 63) return undefined;
    off += l + 1;
    if (off >= len || off - HEADER > 254) return undefined;
  }
  const nameEnd = off + 1;
  if (nameEnd + 4 > len) return undefined;
  const qtype = (buf[nameEnd]! << 8) | buf[nameEnd + 1]!;
  const qclass = (buf[nameEnd + 2]! << 8) | buf[nameEnd + 3]!;
  let p = nameEnd + 4;
  let limit = 512;
  let edns = 'N';
  if (ar === 1) {
    // OPT: root name, type 41, class = payload, TTL = ext-rcode 0, version 0, flags; RDATA to the end.
    if (p + 11 > len || buf[p] !== 0 || buf[p + 1] !== 0 || buf[p + 2] !== 41) return undefined;
    if (buf[p + 5] !== 0 || buf[p + 6] !== 0) return undefined;
    const payload = (buf[p + 3]! << 8) | buf[p + 4]!;
    const rdlen = (buf[p + 9]! << 8) | buf[p + 10]!;
    if (p + 11 + rdlen !== len) return undefined;
    limit = payload > 512 ? payload : 512;
    edns = buf[p + 7]! & 0x80 ? 'D' : 'E';
    p = len;
  }
  if (p !== len) return undefined;
  const key = `${buf.toString('latin1', HEADER, nameEnd).toLowerCase()}/${qtype}/${qclass}/${edns}`;
  return { key, nameEnd, qtype, limit };
}

export class AnswerCache {
  private readonly entries = new Map<string, Entry>();
  hits = 0;

  constructor(private readonly maxEntries = 50_000) {}

  /** The cached answer for this query, ready to send; undefined on a miss or when it does not fit. */
  lookup(query: Buffer, k: FastKey, generation: number): { bytes: Buffer; rcode: number } | undefined {
    const e = this.entries.get(k.key);
    if (!e) return undefined;
    if (e.generation !== generation) {
      this.entries.delete(k.key);
      return undefined;
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
    return { bytes: out, rcode: e.rcode };
  }

  /** Remembers a response produced by the full path for a query with this key. */
  store(k: FastKey, response: Buffer, generation: number): void {
    // Only responses whose question sits where the query's did, byte for byte but case.
    if (response.length < k.nameEnd + 4 || response[2]! & 0x02) return;
    if (response.toString('latin1', HEADER, k.nameEnd).toLowerCase() !== k.key.slice(0, k.nameEnd - HEADER)) return;
    if (this.entries.size >= this.maxEntries) this.entries.clear();
    const rcode = response[3]! & 0x0f;
    this.entries.set(k.key, { generation, bytes: Buffer.from(response), rcode });
  }

  get size(): number {
    return this.entries.size;
  }
}
