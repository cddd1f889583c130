import { isIPv4 } from 'node:net';

/** IPv4 arithmetic: addresses as unsigned 32-bit integers, CIDRs as base and mask. */

export { isIPv4 };

/** `a.b.c.d/len`, IPv4 only (the octets and length are not range-checked: see parseCidr). */
export const IPV4_CIDR = /^\d{1,3}(?:\.\d{1,3}){3}\/\d{1,2}$/;

export function ipToInt(ip: string): number {
  const p = ip.split('.').map(Number);
  return ((p[0]! << 24) | (p[1]! << 16) | (p[2]! << 8) | p[3]!) >>> 0;
}

export function intToIp(n: number): string {
  return [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join('.');
}

const maskOf = (len: number): number => (len === 0 ? 0 : (0xffffffff << (32 - len)) >>> 0);

export interface Cidr {
  base: number;
  mask: number;
  len: number;
}

/** A CIDR already known to be well formed (a flag that parsed): base with host bits cleared, and length. */
function known(cidr: string): Cidr {
  const [ip, lenS] = cidr.split('/');
  const len = Number(lenS);
  const mask = maskOf(len);
  return { base: (ipToInt(ip!) & mask) >>> 0, mask, len };
}

/** A CIDR with its host bits cleared, or undefined when it is not `a.b.c.d/len` with len 0 to 32. */
export function parseCidr(cidr: string): Cidr | undefined {
  const [a, l] = cidr.split('/');
  const len = Number(l);
  if (!a || !isIPv4(a) || l === undefined || !/^\d+$/.test(l) || len > 32) return undefined;
  return known(cidr);
}

/** Whether an IPv4 address (dotted, or as its integer) is inside a CIDR. */
export const cidrContains = (c: Cidr, address: string | number): boolean =>
  (((typeof address === 'number' ? address : ipToInt(address)) & c.mask) >>> 0) === c.base;

/** `a.b.c.d/len` with the host bits cleared. */
export function normalizeCidr(cidr: string): string {
  const c = known(cidr);
  return `${intToIp(c.base)}/${c.len}`;
}

/** Whether two CIDRs overlap. */
export function overlaps(a: string, b: string): boolean {
  const ca = known(a);
  const cb = known(b);
  const mask = maskOf(Math.min(ca.len, cb.len));
  return ((ca.base & mask) >>> 0) === ((cb.base & mask) >>> 0);
}

/** The first host address of a subnet: the bridge's gateway and the node's cluster address. */
export function gatewayOf(subnet: string): string {
  return intToIp(known(subnet).base + 1);
}

/** The /24s of a CIDR, in order. Throws when the CIDR is smaller than a /24. */
export function subnetsOf(cidr: string): string[] {
  const { base, len } = known(cidr);
  if (len > 24) throw new Error(`--cluster-cidr '${cidr}' is smaller than a /24; give a /24 or larger`);
  const out: string[] = [];
  for (let i = 0; i < 2 ** (24 - len); i++) out.push(`${intToIp((base + i * 256) >>> 0)}/24`);
  return out;
}

/** Whether a client address is loopback (IPv4, IPv6, or IPv4-mapped). */
export function isLoopback(address: string): boolean {
  const a = unmapped(address);
  return a.startsWith('127.') || a === '::1';
}

/** An IPv4-mapped IPv6 address (`::ffff:a.b.c.d`) as its IPv4 address; any other as it is. */
export const unmapped = (address: string): string => (address.startsWith('::ffff:') ? address.slice(7) : address);
