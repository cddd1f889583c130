/**
 * Pod subnets: each worker owns a /24 of the cluster CIDR, claimed in etcd at
 * `node.worker/subnet/<a.b.c.d_len>` (SPEC §2).
 */

/** `a.b.c.d/len`, IPv4 only. */
export const IPV4_CIDR = /^\d{1,3}(?:\.\d{1,3}){3}\/\d{1,2}$/;

export function ipToInt(ip: string): number {
  const p = ip.split('.').map(Number);
  return ((p[0]! << 24) | (p[1]! << 16) | (p[2]! << 8) | p[3]!) >>> 0;
}

export function intToIp(n: number): string {
  return [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join('.');
}

/** `a.b.c.d/len` with the host bits cleared. */
export function normalizeCidr(cidr: string): string {
  const [ip, lenS] = cidr.split('/');
  const len = Number(lenS);
  const mask = len === 0 ? 0 : (0xffffffff << (32 - len)) >>> 0;
  return `${intToIp((ipToInt(ip!) & mask) >>> 0)}/${len}`;
}

/** The first host address of a subnet: the bridge's gateway and the node's cluster address. */
export function gatewayOf(subnet: string): string {
  const [ip] = normalizeCidr(subnet).split('/');
  return intToIp(ipToInt(ip!) + 1);
}

/** The key name of a subnet under `node.worker/subnet/`: the CIDR itself (SPEC §2). */
export const subnetKeyName = (cidr: string): string => cidr;
/** The key name earlier versions wrote (`a.b.c.d_len`); read, and replaced on the owner's next claim. */
export const legacySubnetKeyName = (cidr: string): string => cidr.replace('/', '_');
/** The CIDR a key name stands for, in either spelling; undefined for anything else. */
export const subnetFromKeyName = (name: string): string | undefined => {
  const m = /^(\d{1,3}(?:\.\d{1,3}){3})[/_](\d{1,2})$/.exec(name);
  return m ? `${m[1]}/${m[2]}` : undefined;
};

/** The /24s of a CIDR, in order. Throws when the CIDR is smaller than a /24. */
export function subnetsOf(cidr: string): string[] {
  const [ip, lenS] = normalizeCidr(cidr).split('/');
  const len = Number(lenS);
  if (len > 24) throw new Error(`--cluster-cidr '${cidr}' is smaller than a /24; give a /24 or larger`);
  const base = ipToInt(ip!);
  const out: string[] = [];
  for (let i = 0; i < 2 ** (24 - len); i++) out.push(`${intToIp((base + i * 256) >>> 0)}/24`);
  return out;
}

/**
 * The first /24 of the cluster CIDR that nobody holds and that overlaps none
 * of `avoid` (subnets this host already uses), or undefined when none is left.
 */
export function pickSubnet(clusterCidr: string, taken: ReadonlySet<string>, avoid: readonly string[] = []): string | undefined {
  return subnetsOf(clusterCidr).find((s) => !taken.has(s) && !avoid.some((a) => overlaps(a, s)));
}

/** Whether two CIDRs overlap. */
export function overlaps(a: string, b: string): boolean {
  const [ai, al] = normalizeCidr(a).split('/');
  const [bi, bl] = normalizeCidr(b).split('/');
  const len = Math.min(Number(al), Number(bl));
  const mask = len === 0 ? 0 : (0xffffffff << (32 - len)) >>> 0;
  return ((ipToInt(ai!) & mask) >>> 0) === ((ipToInt(bi!) & mask) >>> 0);
}
