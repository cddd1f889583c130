import { z } from 'zod';
import { storedDecoder } from '../../api/schemas.js';
import { isIPv4, normalizeCidr, overlaps, subnetsOf } from '../ipv4.js';
import { legacySubnetKey, SUBNET_PREFIX, subnetKey, subnetOfKey } from '../keys.js';
import type { LocalSubnet } from '../runtime/runtime.js';
import type { StateLayer } from '../state.js';

/** The value of `node.worker/subnet/<cidr>`: the worker that owns the subnet, and the host address it is routed via. */
const subnetOwner = z.object({
  worker: z.string().min(1),
  hostAddress: z.string().refine((a) => isIPv4(a)).optional(),
});
export type SubnetOwner = z.output<typeof subnetOwner>;

export class SubnetError extends Error {}

/** An owner record as stored; anything else (and a host address that is not IPv4) is no owner. */
export const parseSubnetOwner = storedDecoder(subnetOwner);

/**
 * The first /24 of the cluster CIDR that nobody holds and that overlaps none
 * of `avoid` (subnets this host already uses), or undefined when none is left.
 */
export function pickSubnet(clusterCidr: string, taken: ReadonlySet<string>, avoid: readonly string[] = []): string | undefined {
  return subnetsOf(clusterCidr).find((s) => !taken.has(s) && !avoid.some((a) => overlaps(a, s)));
}

/**
 * The worker's pod subnet: `--pod-subnet` when given, else the /24 of the
 * cluster CIDR this worker already holds (so a restart gets it back), else
 * the first free one. Each claim is one transaction that succeeds only if the
 * key is still absent (or still ours), so two workers never share a subnet.
 * Subnets of `local` (other networks on this host, which the runtime would
 * refuse to overlap) are never picked from the cluster CIDR.
 */
export async function claimSubnet(
  state: StateLayer,
  opts: { worker: string; clusterCidr: string; podSubnet?: string; hostAddress?: string; local?: readonly LocalSubnet[] },
): Promise<string> {
  const local = opts.local ?? [];
  const owner = JSON.stringify({ worker: opts.worker, ...(opts.hostAddress ? { hostAddress: opts.hostAddress } : {}) });
  if (!opts.podSubnet && Number(opts.clusterCidr.split('/')[1]) > 24) {
    throw new SubnetError(`--cluster-cidr '${opts.clusterCidr}' is smaller than a /24; give a /24 or larger, or --pod-subnet`);
  }
  for (let attempt = 0; attempt < 20; attempt++) {
    const { kvs } = await state.snapshot([SUBNET_PREFIX]);
    // By CIDR, every key that holds it (the SPEC spelling and the legacy one).
    const held = new Map<string, { owner: SubnetOwner; keys: { key: string; modRevision: number }[] }>();
    for (const kv of kvs) {
      const cidr = subnetOfKey(kv.key);
      if (!cidr) continue;
      // A claim whose value cannot be read is still a claim: never taken over.
      const o = parseSubnetOwner(kv.value) ?? { worker: '(an unreadable claim)' };
      const h = held.get(cidr);
      if (!h) held.set(cidr, { owner: o, keys: [{ key: kv.key, modRevision: kv.modRevision }] });
      else {
        h.keys.push({ key: kv.key, modRevision: kv.modRevision });
        if (o.worker !== opts.worker) h.owner = o; // another worker's claim counts over ours
      }
    }
    const mine = [...held].filter(([, h]) => h.owner.worker === opts.worker).map(([c]) => c);
    let want: string | undefined;
    if (opts.podSubnet) {
      want = normalizeCidr(opts.podSubnet);
      const clash = local.find((l) => overlaps(l.subnet, want!));
      if (clash) {
        throw new SubnetError(`--pod-subnet '${opts.podSubnet}' overlaps ${clash.subnet} of network '${clash.network}' on this host; pick another subnet`);
      }
      for (const [cidr, h] of held) {
        if (h.owner.worker !== opts.worker && overlaps(cidr, want)) {
          throw new SubnetError(`--pod-subnet '${opts.podSubnet}' overlaps ${cidr}, held by worker '${h.owner.worker}'; pick another subnet`);
        }
      }
    } else {
      const avoid = local.map((l) => l.subnet);
      const ours = subnetsOf(opts.clusterCidr);
      want = mine.find((c) => ours.includes(c) && !avoid.some((a) => overlaps(a, c))) ?? pickSubnet(opts.clusterCidr, new Set(held.keys()), avoid);
      if (!want) {
        throw new SubnetError(
          `--cluster-cidr '${opts.clusterCidr}': every /24 is held by another worker` +
            (avoid.some((a) => overlaps(a, opts.clusterCidr)) ? ' or used by another network on this host' : '') +
            '; give a larger CIDR or --pod-subnet',
        );
      }
    }
    const current = held.get(want)?.keys ?? [];
    const seen = (key: string) => current.find((k) => k.key === key);
    // Each spelling of the key is as we read it: absent, or at the revision we saw.
    const guard = [subnetKey(want), legacySubnetKey(want)].map((key) => {
      const k = seen(key);
      return k ? { key, modRevision: k.modRevision } : { key, createRevision: 0 };
    });
    const res = await state.txn({
      if: guard,
      then: [
        { put: subnetKey(want), value: owner },
        // A claim in the legacy spelling is replaced by this one.
        ...(seen(legacySubnetKey(want)) ? [{ delete: legacySubnetKey(want) }] : []),
        // A worker holds one subnet: give back any other it held before, in either spelling.
        ...mine.filter((c) => c !== want).flatMap((c) => held.get(c)!.keys.map((k) => ({ delete: k.key }))),
      ],
    });
    if (res.succeeded) return want;
  }
  throw new SubnetError('could not claim a pod subnet: etcd kept changing under 20 attempts');
}
