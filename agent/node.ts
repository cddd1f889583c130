import type { Role } from './plugin.js';
import type { StateLayer } from './state.js';

/** Effective node state, derived from its two heartbeats (SPEC §3). */
export type NodeState = 'healthy' | 'degraded' | 'dead';

export function nodeState(heartbeats: { healthy: boolean; alive: boolean }): NodeState {
  if (!heartbeats.alive) return 'dead';
  return heartbeats.healthy ? 'healthy' : 'degraded';
}

export const heartbeatKey = (role: Role, kind: 'healthy' | 'alive', name: string): string =>
  `node.${role}/heartbeat/${kind}/${name}`;
export const nodeResourceKey = (role: Role, name: string): string => `resource/node.${role}/${name}`;

/** Reads a node's heartbeats (at one revision) and derives its state. */
export async function readNodeState(state: StateLayer, role: Role, name: string): Promise<NodeState> {
  const res = await state.client
    .if(state.abs(heartbeatKey(role, 'alive', name)), 'Create', '>', -1)
    .then(state.client.get(state.abs(heartbeatKey(role, 'healthy', name))), state.client.get(state.abs(heartbeatKey(role, 'alive', name))))
    .commit();
  const present = (i: number) => (res.responses[i]?.response_range?.kvs?.length ?? 0) > 0;
  return nodeState({ healthy: present(0), alive: present(1) });
}

export class NameTakenError extends Error {}

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
      {
        put: nodeResourceKey(r, name),
        value: JSON.stringify({ name, type: `node.${r}`, state: 'healthy', metadata: {}, spec: spec(r) }),
      },
      { put: heartbeatKey(r, 'healthy', name), value: 'lease-established', lease: 'healthy' as const },
      { put: heartbeatKey(r, 'alive', name), value: 'lease-established', lease: 'alive' as const },
    ]),
  });
  if (!res.succeeded) {
    throw new NameTakenError(
      `--name '${name}': another node with this name is still alive (its heartbeat expires within --alive-ttl); pick another name`,
    );
  }
  return rs.filter((_, i) => existing[i] === undefined).map((r) => nodeResourceKey(r, name));
}
