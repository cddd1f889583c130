import { Counter } from 'prom-client';
import { heartbeatPrefix, parseHeartbeat } from '../keys.js';
import type { Plugin, PluginContext, RunningPlugin } from '../plugin.js';
import { reapActions, type ReapAction } from './reap.js';
import { reapTransaction } from './transactions.js';
import { ReaperView, WATCHED } from './view.js';

export async function startReaper(ctx: PluginContext): Promise<RunningPlugin> {
  const { state, log, config } = ctx;
  const me = config.name;
  const view = new ReaperView();
  /** Actions sent and not yet answered, by a key that changes whenever the facts change. */
  const inFlight = new Set<string>();
  let synced = false;
  let stopped = false;
  let sweepQueued = false;
  let retryTimer: NodeJS.Timeout | undefined;

  const reaped = new Counter({ name: 'kith_reaper_pods_total', help: 'Pods marked dead and inbox entries removed', labelNames: ['action'], registers: [ctx.metrics] });

  const perform = async (a: ReapAction): Promise<void> => {
    const r = await state.txn(reapTransaction(a, view.pods.get(a.pod)?.value, me));
    // A failed compare means a fact changed; its event brings a fresh sweep.
    if (r.succeeded) {
      reaped.inc({ action: a.kind });
      log.info({ pod: a.pod, worker: a.worker, action: a.kind }, a.kind === 'markDead' ? 'pod of a dead worker marked dead' : 'inbox entry of a dead worker removed');
      if (a.kind === 'markDead' || a.podRevision !== undefined) {
        ctx.events.record({ type: 'Warning', object: `pod/${a.pod}`, reason: 'Dead', message: `its worker ${a.worker} is dead (no alive heartbeat)` });
      }
    }
  };

  const sweep = () => {
    sweepQueued = false;
    if (!synced || stopped) return;
    for (const a of reapActions(view)) {
      const id = JSON.stringify(a);
      if (inFlight.has(id)) continue;
      inFlight.add(id);
      perform(a)
        .catch((err) => {
          log.warn({ pod: a.pod, err: (err as Error).message }, 'reap failed; retrying');
          retryTimer ??= setTimeout(() => ((retryTimer = undefined), queueSweep()), 2000);
        })
        .finally(() => inFlight.delete(id));
    }
  };
  const queueSweep = () => {
    if (sweepQueued) return;
    sweepQueued = true;
    setImmediate(sweep);
  };

  /** A worker's heartbeats coming and going are its node's state changes (SPEC §3): events, once the first scan is in. */
  const nodeEvent = (key: string, type: 'put' | 'delete') => {
    const hb = parseHeartbeat(key, 'worker');
    if (!hb || !synced) return;
    const object = `node.worker/${hb.name}`;
    if (hb.kind === 'alive') {
      if (type === 'put') ctx.events.record({ object, reason: 'NodeAlive', message: `worker ${hb.name} is alive` });
      else ctx.events.record({ type: 'Warning', object, reason: 'NodeDead', message: `worker ${hb.name} is dead: its alive heartbeat is gone` });
    } else if (type === 'put') ctx.events.record({ object, reason: 'NodeHealthy', message: `worker ${hb.name} is healthy` });
    else if (view.alive.has(hb.name)) ctx.events.record({ type: 'Warning', object, reason: 'NodeDegraded', message: `worker ${hb.name} is degraded: its healthy heartbeat is gone` });
  };

  const sub = state.watch(
    [...WATCHED, heartbeatPrefix('worker', 'healthy')],
    (ev) => {
      // Only a change is news: a put of a key already there (a lease moved to a new run) is not.
      if (ev.type === 'delete' || ev.createRevision === ev.modRevision) nodeEvent(ev.key, ev.type);
      const bad = view.apply(ev);
      if (bad) {
        log.warn({ pod: bad.ignoredPod }, 'pod resource is not a JSON object; ignoring it');
        return;
      }
      queueSweep();
    },
    { name: 'reaper', onSynced: () => ((synced = true), queueSweep()) },
  );

  return {
    async stop() {
      stopped = true;
      if (retryTimer) clearTimeout(retryTimer);
      await sub.close();
    },
  };
}

export const reaperPlugin: Plugin = {
  name: 'reaper',
  role: 'reaper',
  start: (ctx) => startReaper(ctx),
};
