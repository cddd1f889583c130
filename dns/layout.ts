import { HEADER } from './message.js';

/**
 * Walking a message's bytes without decoding its records: where each record
 * and its TTL sit, for the forwarder, which rewrites and ages upstream
 * answers it never decodes.
 */

/** The offset just past a (possibly compressed) name at `off`, or -1 when malformed. */
export function skipName(buf: Buffer, off: number): number {
  let total = 0;
  for (let i = 0; i < 128; i++) {
    if (off >= buf.length) return -1;
    const len = buf[off]!;
    if (len === 0) return off + 1;
    if ((len & 0xc0) === 0xc0) return off + 2 <= buf.length ? off + 2 : -1;
    if (len & 0xc0) return -1;
    total += len + 1;
    if (total > 255) return -1;
    off += len + 1;
  }
  return -1;
}

export interface RecordSpan {
  start: number;
  type: number;
  /** Offset of the 32-bit TTL. */
  ttlAt: number;
  rdataAt: number;
  end: number;
  section: 'answer' | 'authority' | 'additional';
}

export interface MessageLayout {
  questionEnd: number;
  records: RecordSpan[];
}

/** Walks a message's sections without decoding records; undefined when malformed. */
export function layout(buf: Buffer): MessageLayout | undefined {
  if (buf.length < HEADER) return undefined;
  const qd = buf.readUInt16BE(4);
  const counts = [buf.readUInt16BE(6), buf.readUInt16BE(8), buf.readUInt16BE(10)] as const;
  let off = HEADER;
  for (let i = 0; i < qd; i++) {
    off = skipName(buf, off);
    if (off < 0 || off + 4 > buf.length) return undefined;
    off += 4;
  }
  const questionEnd = off;
  const records: RecordSpan[] = [];
  const sections = ['answer', 'authority', 'additional'] as const;
  for (let s = 0; s < 3; s++) {
    for (let i = 0; i < counts[s]!; i++) {
      const start = off;
      off = skipName(buf, off);
      if (off < 0 || off + 10 > buf.length) return undefined;
      const type = buf.readUInt16BE(off);
      const rdlen = buf.readUInt16BE(off + 8);
      const rdataAt = off + 10;
      const end = rdataAt + rdlen;
      if (end > buf.length) return undefined;
      records.push({ start, type, ttlAt: off + 4, rdataAt, end, section: sections[s]! });
      off = end;
    }
  }
  return { questionEnd, records };
}

/**
 * A response of `full` cut to header and question with TC set, for a UDP
 * client whose size it exceeds.
 */
export function truncateMessage(full: Buffer, questionEnd: number): Buffer {
  const out = Buffer.from(full.subarray(0, questionEnd));
  out[2]! |= 0x02;
  out.writeUInt16BE(0, 6);
  out.writeUInt16BE(0, 8);
  out.writeUInt16BE(0, 10);
  return out;
}
