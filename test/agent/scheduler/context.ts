import { Registry } from 'prom-client';
import type { Role } from '../../../api/schemas.js';
import { parseAgentConfig, type AgentConfig } from '../../../agent/config.js';
import { podKey, unscheduledKey } from '../../../agent/keys.js';
import type { PluginContext } from '../../../agent/plugin.js';
import { StateLayer } from '../../../agent/state.js';
import { EventRecorder } from '../../../agent/events.js';
import type { TestEtcd } from '../../support/etcd.js';
import { testLog } from '../../support/log.js';

/** A plugin context on a real etcd, as the agent would build it (leases granted). */
export async function pluginContext(etcd: TestEtcd, name: string, roles: Role[], args: string[] = [], prefix = '/kith'): Promise<PluginContext<AgentConfig> & { close(): Promise<void> }> {
  const client = etcd.client();
  const config = parseAgentConfig(['--name', name, '--etcd-endpoints', etcd.endpoint, '--healthy-ttl', '5', '--alive-ttl', '10', '--etcd-prefix', prefix, ...args], {});
  const state = new StateLayer(client, config.etcdPrefix, testLog);
  await state.grantLease('healthy', config.healthyTtl);
  await state.grantLease('alive', config.aliveTtl);
  return {
    config,
    node: { name, roles: new Set(roles) },
    state,
    log: testLog.child({ node: name }),
    metrics: new Registry(),
    events: new EventRecorder(state, name, config.eventTtl, testLog, new Registry()),
    async close() {
      await state.revokeLease('healthy').catch(() => undefined);
      await state.revokeLease('alive').catch(() => undefined);
      await state.close();
      client.close();
    },
  };
}

/** Writes a pod the way `POST /resources` does: the resource and its unscheduled marker in one transaction. */
export async function createPod(state: StateLayer, pod: Record<string, unknown>): Promise<void> {
  const name = pod.name as string;
  const value = JSON.stringify({ type: 'pod', state: 'created', metadata: {}, ...pod });
  const r = await state.txn({
    if: [{ key: podKey(name), createRevision: 0 }],
    then: [{ put: podKey(name), value }, { put: unscheduledKey(name), value }],
  });
  if (!r.succeeded) throw new Error(`pod ${name} exists`);
}

/** Polls (bounded) until `fn` returns a value other than undefined. */
export async function eventually<T>(what: string, fn: () => Promise<T | undefined>, timeoutMs = 10_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await fn();
      if (v !== undefined) return v;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}${last ? `: ${(last as Error).message}` : ''}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}
