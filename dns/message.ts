/**
 * DNS messages as kith handles them: the codes it reads and writes, and the
 * parsed shapes of a query and a response that answer.ts, wire.ts, the fast
 * path, the forwarder and the server share.
 */

export const TYPE = {
  A: 1,
  NS: 2,
  SOA: 6,
  PTR: 12,
  HINFO: 13,
  TXT: 16,
  AAAA: 28,
  SRV: 33,
  OPT: 41,
  IXFR: 251,
  AXFR: 252,
  MAILB: 253,
  MAILA: 254,
  ANY: 255,
} as const;

export const CLASS = { IN: 1, CH: 3, ANY: 255 } as const;

export const RCODE = { NOERROR: 0, FORMERR: 1, SERVFAIL: 2, NXDOMAIN: 3, NOTIMP: 4, REFUSED: 5, BADVERS: 16 } as const;

/** The size of a message header. */
export const HEADER = 12;
/** Largest UDP response without EDNS (RFC 1035 §4.2.1). */
export const UDP_MIN = 512;
/** The UDP payload size kith advertises in its OPT record. */
export const EDNS_PAYLOAD = 1232;

export interface Question {
  /** As received: case preserved, no trailing dot. */
  name: string;
  type: number;
  class: number;
}

export interface Query {
  id: number;
  qr: boolean;
  opcode: number;
  rd: boolean;
  cd: boolean;
  qdcount: number;
  question?: Question;
  /** Some section failed to decode, or the OPT record was misplaced or repeated. */
  malformed: boolean;
  edns?: { payload: number; version: number; do: boolean };
  transport: 'udp' | 'tcp';
  /** The client is on loopback (zone transfers are allowed to it). */
  loopback: boolean;
}

/** A resource record in dns2's shape, so dns2 encodes it. */
export interface Rr {
  name: string;
  type: number;
  class: number;
  ttl: number;
  address?: string;
  domain?: string;
  ns?: string;
  data?: string[] | Buffer;
  primary?: string;
  admin?: string;
  serial?: number;
  refresh?: number;
  retry?: number;
  expiration?: number;
  minimum?: number;
  priority?: number;
  weight?: number;
  port?: number;
  target?: string;
}

export interface Response {
  id: number;
  opcode: number;
  aa: boolean;
  tc: boolean;
  rd: boolean;
  ra: boolean;
  cd: boolean;
  /** Full 12-bit rcode; values above 15 need the OPT record. */
  rcode: number;
  question?: Question;
  answers: Rr[];
  authorities: Rr[];
  additionals: Rr[];
  /** The OPT record to send back (present when the query had one). */
  edns?: { payload: number; version: number; do: boolean };
}
