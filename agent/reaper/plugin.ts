import { Counter } from 'prom-client';
import { decodeObservedPod, type ObservedPod } from '../../api/schemas.js';
import { CLAIMED_PREFIX, INBOX_PREFIX, POD_PREFIX, claimedKey, heartbeatKey, heartbeatPrefix, inboxKey, nameUnder, podKey, splitTwo } from '../keys.js';
import type { Plugin, PluginContext, RunningPlugin } from '../plugin.js';
import type { Compare, Op } from '../state.js';
import { reapActions, type ReapAction } from './reap.js';

interface PodEntry {
  state?: string;
  workedBy?: string;
  reapedBy?: string;
  modRevision: number;
  value: ObservedPod;
}

const ALIVE_PREFIX = heartbeatPrefix('worker', 'alive');

export async function startReaper(ctx: PluginContext): Promise<RunningPlugin> {
  const { state, log, config } = ctx;
  const me = config.name;
  const alive = new Set<string>();
  const pods = new Map<string, PodEntry>();
  const claims = new Map<string, { worker: string; modRevision: number }>();
  const inboxes = new Map<string, Map<string, number>>();
  /** Actions sent and not yet answered, by a key that changes whenever the facts change. */
  const inFlight = new Set<string>();
  let synced = false;
  let stopped = false;
  let sweepQueued = false;
  let retryTimer: NodeJS.Timeout | undefined;

  const reaped = new Counter({ name: 'kith_reaper_pods_total', help: 'Pods marked dead and inbox entries removed', labelNames: ['action'], registers: [ctx.metrics] });

  const deadValue = (e: PodEntry) =>
    JSON.stringify({ ...e.value, state: 'dead', metadata: { ...e.value.metadata, reapedBy: me } });

  const perform = async (a: ReapAction): Promise<void> => {
    // Every action is guarded by the worker's alive heartbeat being absent, atomically.
    const workerDead: Compare = { key: heartbeatKey('worker', 'alive', a.worker), createRevision: 0 };
    let ifs: Compare[];
    let then: Op[];
    if (a.kind === 'markDead') {
      const e = pods.get(a.pod)!;
      ifs = [workerDead, { key: podKey(a.pod), modRevision: a.modRevision }];
      then = [{ put: podKey(a.pod), value: deadValue(e) }];
      if (a.claimRevision !== undefined) then.push({ delete: claimedKey(a.pod) });
    } else {
      ifs = [workerDead, { key: inboxKey(a.worker, a.pod), modRevision: a.inboxRevision }];
      then = [{ delete: inboxKey(a.worker, a.pod) }];
      if (a.podRevision !== undefined) {
        ifs.push({ key: podKey(a.pod), modRevision: a.podRevision });
        then.push({ put: podKey(a.pod), value: deadValue(pods.get(a.pod)!) });
      }
    }
    const r = await state.txn({ if: ifs, then });
    // A failed compare means a fact changed; its event brings a fresh sweep.
    if (r.succeeded) {
      reaped.inc({ action: a.kind });
      log.info({ pod: a.pod, worker: a.worker, action: a.kind }, a.kind === 'markDead' ? 'pod of a dead worker marked dead' : 'inbox entry of a dead worker removed');
    }
  };

  const sweep = () => {
    sweepQueued = false;
    if (!synced || stopped) return;
    for (const a of reapActions({ alive, pods, claims, inboxes })) {
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

  const sub = state.watch(
    [ALIVE_PREFIX, CLAIMED_PREFIX, INBOX_PREFIX, POD_PREFIX],
    (ev) => {
      let name: string | undefined;
      let two: [string, string] | undefined;
      if ((name = nameUnder(ev.key, ALIVE_PREFIX)) !== undefined) {
        if (ev.type === 'put') alive.add(name);
        else alive.delete(name);
      } else if ((name = nameUnder(ev.key, CLAIMED_PREFIX)) !== undefined) {
        if (ev.type === 'put') claims.set(name, { worker: ev.value, modRevision: ev.modRevision });
        else claims.delete(name);
      } else if ((two = splitTwo(ev.key, INBOX_PREFIX))) {
        const [worker, pod] = two;
        const box = inboxes.get(worker) ?? new Map<string, number>();
        if (ev.type === 'put') box.set(pod, ev.modRevision);
        else box.delete(pod);
        if (box.size) inboxes.set(worker, box);
        else inboxes.delete(worker);
      } else if ((name = nameUnder(ev.key, POD_PREFIX)) !== undefined) {
        if (ev.type === 'delete') pods.delete(name);
        else {
          const value = decodeObservedPod(ev.value);
          if (!value) {
            log.warn({ pod: name }, 'pod resource is not a JSON object; ignoring it');
            pods.delete(name);
            return;
          }
          const md = value.metadata;
          pods.set(name, { state: value.state, workedBy: md.workedBy, reapedBy: md.reapedBy, modRevision: ev.modRevision, value });
        }
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
