import { Counter } from 'prom-client';
import { decodePod, type Pod } from '../../api/schemas.js';
import { heartbeatPrefix, INBOX_PREFIX, LIMITS_PREFIX, nameUnder, POD_PREFIX, UNSCHEDULED_PREFIX, podKey } from '../keys.js';
import type { Plugin, PluginContext, RunningPlugin } from '../plugin.js';
import { attempt } from './attempt.js';
import type { SchedulerConfig } from './flags.js';
import { abandonTransaction, dropMarkerTransaction, placeTransaction } from './transactions.js';
import { SchedulerView } from './view.js';

/** How unschedulable pods are retried: `--scheduler-retry-ms` and `--scheduler-max-tries`. */
export interface RetryPolicy {
  intervalMs: number;
  maxTries: number;
}

interface Pending {
  pod: Pod;
  value: string;
  modRevision: number;
  tries: number;
  busy: boolean;
  /** Set while the pod waits for its next counted try. */
  timer?: NodeJS.Timeout;
}

/** How many schedule transactions may be in flight at once. */
const IN_FLIGHT = 64;

export async function startScheduler(ctx: PluginContext, policy: RetryPolicy): Promise<RunningPlugin> {
  const { state, log, config } = ctx;
  const me = config.name;
  const view = new SchedulerView();
  const pending = new Map<string, Pending>();
  /** Pods to try; `counted` tries use up one of the pod's tries when they fail. */
  const ready: { name: string; counted: boolean }[] = [];
  let kickTimer: NodeJS.Timeout | undefined;
  const timers = new Set<NodeJS.Timeout>();
  let inFlight = 0;
  let stopped = false;
  let synced = false;

  const placed = new Counter({ name: 'kith_scheduler_pods_total', help: 'Pods placed or abandoned by this scheduler', labelNames: ['outcome'], registers: [ctx.metrics] });

  const later = (p: Pending) => {
    if (p.timer) return;
    const t = setTimeout(() => {
      timers.delete(t);
      p.timer = undefined;
      if (pending.get(p.pod.name) === p) {
        ready.push({ name: p.pod.name, counted: true });
        drain();
      }
    }, policy.intervalMs);
    p.timer = t;
    timers.add(t);
  };

  /** A worker came or freed room: try the waiting pods now, without using up their tries. */
  const kick = () => {
    kickTimer ??= setTimeout(() => {
      kickTimer = undefined;
      for (const p of pending.values()) if (p.timer && !p.busy) ready.push({ name: p.pod.name, counted: false });
      drain();
    }, 50);
  };

  const abandon = async (p: Pending, reason: string) => {
    const r = await state.txn(abandonTransaction(p, me, reason));
    if (r.succeeded) {
      placed.inc({ outcome: 'abandoned' });
      log.warn({ pod: p.pod.name, tries: p.tries, reason }, 'pod abandoned');
      ctx.events.record({ type: 'Warning', object: `pod/${p.pod.name}`, reason: 'Abandoned', message: `not placed after ${p.tries} tries: ${reason}` });
    }
  };

  const place = async (p: Pending, worker: string) => {
    const r = await state.txn(placeTransaction(p, worker, me));
    if (r.succeeded) {
      placed.inc({ outcome: 'scheduled' });
      log.debug({ pod: p.pod.name, worker }, 'pod scheduled');
      ctx.events.record({ object: `pod/${p.pod.name}`, reason: 'Scheduled', message: `placed on worker ${worker}` });
    } else {
      // Another scheduler placed it, or it was deleted or re-created: nothing to do for this copy.
      view.unreserve(p.pod.name);
      log.debug({ pod: p.pod.name }, 'pod already scheduled or gone');
    }
    if (pending.get(p.pod.name) === p) pending.delete(p.pod.name);
  };

  /** Performs one try (attempt.ts decides): the transaction it started, or undefined when there is none. */
  const tryPod = (p: Pending, counted: boolean) => {
    const replicaSet = p.pod.metadata.replicaSet;
    const next = attempt({ pod: p.pod, tries: p.tries, counted, maxTries: policy.maxTries, workers: view.workers(replicaSet) });
    switch (next.kind) {
      case 'abandon':
        p.tries = next.tries;
        return abandon(p, next.reason).catch((err) => {
          log.warn({ pod: p.pod.name, err: (err as Error).message }, 'abandon transaction failed; retrying');
          later(p);
        });
      case 'place':
        view.reserve(p.pod.name, next.worker, next.request, replicaSet);
        if (p.timer) {
          clearTimeout(p.timer);
          timers.delete(p.timer);
          p.timer = undefined;
        }
        return place(p, next.worker).catch((err) => {
          view.unreserve(p.pod.name);
          log.warn({ pod: p.pod.name, err: (err as Error).message }, 'schedule transaction failed; retrying');
          later(p);
        });
      case 'retry':
        p.tries = next.tries;
        log.info({ pod: p.pod.name, reason: next.reason, tries: p.tries, retryInMs: policy.intervalMs }, 'pod not schedulable yet');
        ctx.events.record({ type: 'Warning', object: `pod/${p.pod.name}`, reason: 'FailedScheduling', message: next.reason });
        later(p);
        return undefined;
      case 'keep':
        return undefined;
    }
  };

  const drain = () => {
    if (!synced || stopped) return;
    while (ready.length > 0 && inFlight < IN_FLIGHT) {
      const { name, counted } = ready.shift()!;
      const p = pending.get(name);
      if (!p || p.busy) continue;
      const work = tryPod(p, counted);
      if (!work) continue;
      p.busy = true;
      inFlight++;
      void work.finally(() => {
        p.busy = false;
        inFlight--;
        drain();
      });
    }
  };

  /** The mod revision of each unscheduled entry last seen, so a late lookup never overrides a newer entry. */
  const latestMarker = new Map<string, number>();

  const queue = (name: string, pod: Pod, value: string, modRevision: number) => {
    pending.set(name, { pod, value, modRevision, tries: 0, busy: false });
    ready.push({ name, counted: true });
    drain();
  };

  /**
   * An unscheduled entry that is not a valid pod (written by hand, or cut short) is only a marker:
   * the pod is placed from its resource. A marker whose resource is gone is removed; one whose
   * resource is not a valid pod either is logged and left alone.
   */
  const fromResource = async (name: string, modRevision: number, why: string) => {
    try {
      const kv = await state.get(podKey(name));
      if (latestMarker.get(name) !== modRevision || stopped) return;
      if (!kv) {
        await state.txn(dropMarkerTransaction(name, modRevision));
        log.warn({ pod: name, err: why }, 'removed an unscheduled entry that is not a pod and has no resource');
        return;
      }
      const parsed = decodePod(kv.value);
      if (!parsed || parsed.state !== 'created') {
        log.error({ pod: name, err: why }, 'unscheduled entry is not a valid pod, nor is its resource one waiting to be placed; skipping it');
        return;
      }
      log.warn({ pod: name, err: why }, 'unscheduled entry is not a valid pod; placing the pod from its resource');
      queue(name, parsed, kv.value, modRevision);
    } catch (err) {
      log.error({ pod: name, err: (err as Error).message }, 'unscheduled entry is not a valid pod, and its resource could not be read; skipping it');
    }
  };

  const healthyPrefix = heartbeatPrefix('worker', 'healthy');
  const sub = state.watch(
    [healthyPrefix, LIMITS_PREFIX, INBOX_PREFIX, POD_PREFIX, UNSCHEDULED_PREFIX],
    (ev) => {
      const name = nameUnder(ev.key, UNSCHEDULED_PREFIX);
      if (name === undefined) {
        view.apply(ev);
        if (ev.type === 'put' && (ev.key.startsWith(healthyPrefix) || ev.key.startsWith(LIMITS_PREFIX))) kick();
        return;
      }
      const old = pending.get(name);
      if (old?.timer) {
        clearTimeout(old.timer);
        timers.delete(old.timer);
      }
      if (ev.type === 'delete') {
        pending.delete(name);
        latestMarker.delete(name);
        return;
      }
      latestMarker.set(name, ev.modRevision);
      const pod = decodePod(ev.value);
      if (!pod) {
        pending.delete(name);
        void fromResource(name, ev.modRevision, 'not a valid pod');
        return;
      }
      queue(name, pod, ev.value, ev.modRevision);
    },
    { name: 'scheduler', onSynced: () => ((synced = true), drain()) },
  );

  return {
    async stop() {
      stopped = true;
      for (const t of timers) clearTimeout(t);
      if (kickTimer) clearTimeout(kickTimer);
      await sub.close();
    },
  };
}

export const schedulerPlugin: Plugin<SchedulerConfig> = {
  name: 'scheduler',
  role: 'scheduler',
  start: (ctx) => startScheduler(ctx, { intervalMs: ctx.config.schedulerRetryMs, maxTries: ctx.config.schedulerMaxTries }),
};
