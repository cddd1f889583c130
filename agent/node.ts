import { node as nodeSchema, type Role } from '../api/schemas.js';
import { NameTakenError } from './errors.js';
import { HEARTBEAT_VALUE, heartbeatKey, heartbeatPrefix, nodeResourceKey, parseHeartbeat } from './keys.js';
import type { StateLayer } from './state.js';

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

/**
 * Registers the node for each of its roles in one transaction: the check that
 * no live node of the same name and role exists is atomic with the puts of its
 * resource and its healthy and alive heartbeats. Returns the resource keys it created.
 */
export async function registerNode(
  state: StateLayer,
  name: string,
  roles: Iterable<Role>,
  spec: (role: Role) => Record<string, unknown>,
): Promise<string[]> {
  const rs = [...roles];
  if (rs.length === 0) return [];
  const existing = await Promise.all(rs.map((r) => state.get(nodeResourceKey(r, name))));
  const res = await state.txn({
    if: rs.map((r) => ({ key: heartbeatKey(r, 'alive', name), createRevision: 0 })),
    then: rs.flatMap((r) => [
      { put: nodeResourceKey(r, name), value: nodeResourceValue(r, name, spec(r)) },
      { put: heartbeatKey(r, 'healthy', name), value: HEARTBEAT_VALUE, lease: 'healthy' as const },
      { put: heartbeatKey(r, 'alive', name), value: HEARTBEAT_VALUE, lease: 'alive' as const },
    ]),
  });
  if (!res.succeeded) {
    throw new NameTakenError(
      `--name '${name}': another node with this name is still alive (its heartbeat expires within --alive-ttl); pick another name`,
    );
  }
  return rs.filter((_, i) => existing[i] === undefined).map((r) => nodeResourceKey(r, name));
}
