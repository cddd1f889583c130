import { randomBytes } from 'node:crypto';
import { node as nodeSchema, type Role } from '../api/schemas.js';
import { NameTakenError } from './errors.js';
import { heartbeatKey, heartbeatPrefix, nodeResourceKey, parseHeartbeat } from './keys.js';
import { heartbeatValue, judgeHolder, parseInstance, processRunning, thisInstance, type Instance } from './identity.js';
import type { LeaseName, StateLayer } from './state.js';

/** Effective node state, derived from its two heartbeats (SPEC §3). */
export type NodeState = 'healthy' | 'degraded' | 'dead';

export function nodeState(heartbeats: { healthy: boolean; alive: boolean }): NodeState {
  if (!heartbeats.alive) return 'dead';
  return heartbeats.healthy ? 'healthy' : 'degraded';
}

/** The stored value of a node resource, built through the node schema (its state is derived on read). */
export function nodeResourceValue(role: Role, name: string, spec: Record<string, unknown> = {}): string {
  return JSON.stringify(nodeSchema.parse({ name, type: `node.${role}`, state: 'healthy', metadata: {}, spec }));
}

/** The state of every node of a role, from its heartbeats read at one revision. */
export async function readNodeStates(state: StateLayer, role: Role): Promise<(name: string) => NodeState> {
  const { kvs } = await state.snapshot([heartbeatPrefix(role)]);
  const healthy = new Set<string>();
  const alive = new Set<string>();
  for (const kv of kvs) {
    const hb = parseHeartbeat(kv.key, role);
    if (hb) (hb.kind === 'healthy' ? healthy : alive).add(hb.name);
  }
  return (name) => nodeState({ healthy: healthy.has(name), alive: alive.has(name) });
}

/** What a registration did: the resource keys it created, and the previous run it took over, if any. */
export interface Registration {
  created: string[];
  tookOver?: { pid: number; host: string; moved: number };
}

/**
 * Registers the node for each of its roles in one transaction: the check that
 * no live node of the same name and role exists is atomic with the puts of its
 * resource and its healthy and alive heartbeats (their values name `me`).
 *
 * A name held by this node's own previous run (same id, its process gone:
 * identity.ts) is taken over at once (SPEC §8): the heartbeats are put on this
 * run's leases in a transaction guarded by the revisions seen, the old run's
 * other leased keys (claims, DNS records, memberships, limits) are moved onto
 * this run's leases, never absent, and the old leases are revoked. Any other
 * holder is refused with a NameTakenError naming it.
 */
export async function registerNode(
  state: StateLayer,
  name: string,
  roles: Iterable<Role>,
  spec: (role: Role) => Record<string, unknown>,
  me: Instance = thisInstance(randomBytes(16).toString('hex')),
): Promise<Registration> {
  const rs = [...roles];
  if (rs.length === 0) return { created: [] };
  const value = heartbeatValue(me);
  // Bounded: each round loses only to a start or a stop of the same name in between.
  for (let round = 0; round < 3; round++) {
    const existing = await Promise.all(rs.map((r) => state.get(nodeResourceKey(r, name))));
    const alive = await Promise.all(rs.map((r) => state.get(heartbeatKey(r, 'alive', name))));
    const healthy = await Promise.all(rs.map((r) => state.get(heartbeatKey(r, 'healthy', name))));
    let holder: Instance | undefined;
    for (const kv of alive) {
      if (!kv) continue;
      const verdict = judgeHolder(name, (holder = parseInstance(kv.value)), me, processRunning);
      if (verdict.kind === 'refuse') throw new NameTakenError(verdict.message);
    }
    const res = await state.txn({
      if: rs.map((r, i) => (alive[i] ? { key: heartbeatKey(r, 'alive', name), modRevision: alive[i]!.modRevision } : { key: heartbeatKey(r, 'alive', name), createRevision: 0 })),
      then: rs.flatMap((r) => [
        { put: nodeResourceKey(r, name), value: nodeResourceValue(r, name, spec(r)) },
        { put: heartbeatKey(r, 'healthy', name), value, lease: 'healthy' as const },
        { put: heartbeatKey(r, 'alive', name), value, lease: 'alive' as const },
      ]),
    });
    if (!res.succeeded) continue;
    const created = rs.filter((_, i) => existing[i] === undefined).map((r) => nodeResourceKey(r, name));
    if (!holder) return { created };
    // The old run's leases, as its heartbeats named them: what was on its alive lease goes on ours, and so for healthy.
    const old = new Map<string, LeaseName>();
    for (const kv of alive) if (kv && kv.lease !== '0') old.set(kv.lease, 'alive');
    for (const kv of healthy) if (kv && kv.lease !== '0' && !old.has(kv.lease)) old.set(kv.lease, 'healthy');
    let moved = 0;
    for (const [id, to] of old) moved += await state.moveLeaseKeys(id, to);
    for (const id of old.keys()) await state.revokeLeaseId(id);
    return { created, tookOver: { pid: holder.pid, host: holder.host, moved } };
  }
  throw new NameTakenError(`--name '${name}': another start of this name raced with this one; try again`);
}
