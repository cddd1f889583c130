import { Gauge, Counter } from 'prom-client';
import { decodeObservedPod, handBacks, pod as podSchema, type Pod } from '../../api/schemas.js';
import { describeAmount, fits, formatCpu, minus, plus, podRequest, toMilli, type Amount } from '../capacity.js';
import { StartupError } from '../errors.js';
import {
  heartbeatPrefix, nodeDnsKey, nodeResourceKey, POD_PREFIX, SUBNET_PREFIX, claimedKey, inboxKey, inboxPrefix, limitsKey, nameUnder, podKey, subnetOfKey, unscheduledKey,
} from '../keys.js';
import { nodeResourceValue } from '../node.js';
import type { Plugin, PluginContext, RunningPlugin } from '../plugin.js';
import { NodeFirewall } from '../../firewall/node-firewall.js';
import { retrying, type RetryTiming } from '../retry.js';
import { PodmanError, PodmanRuntime } from '../runtime/podman.js';
import type { PodRuntime } from '../runtime/runtime.js';
import type { Op, Subscription } from '../state.js';
import type { WorkerConfig } from './flags.js';
import { PodTask, type PodHooks } from './pod-task.js';
import { desiredRoutes, RouteTable } from './routes.js';
import { claimSubnet, parseSubnetOwner, SubnetError, type SubnetOwner } from './subnet-claim.js';

export interface WorkerOptions {
  hooks?: PodHooks;
  /** How etcd writes are retried (tests shorten it). */
  retry?: RetryTiming;
}

/**
 * The worker: claims pods from its inbox and runs them with `runtime`
 * (README.md). `workerPlugin` runs it with podman; benchmarks call this with
 * a simulated runtime.
 */
export async function startWorker(ctx: PluginContext<WorkerConfig>, runtime: PodRuntime, opts: WorkerOptions = {}): Promise<RunningPlugin> {
  const { config, state, log } = ctx;
  const me = config.name;
  const domain = config.clusterDomain;
  const hooks = opts.hooks ?? {};
  const retry = opts.retry;
  /** Aborted at stop: from then on, writes that etcd keeps refusing are given up after a bounded number of tries. */
  const stopCtl = new AbortController();

  const leftovers = await runtime.removeLeftovers();
  if (leftovers.length) log.warn({ pods: leftovers }, 'removed pods left behind by an unclean stop');

  await markOrphansDead(ctx);

  // Failures here name a flag (a subnet taken, a network podman refuses): the agent prints them as they are.
  const asStartupError = (err: unknown): never => {
    throw err instanceof SubnetError || err instanceof PodmanError ? new StartupError(err.message) : err;
  };
  const local = await runtime.subnetsInUse(config.podNetwork).catch(asStartupError);
  const subnet = await claimSubnet(state, { worker: me, clusterCidr: config.clusterCidr, podSubnet: config.podSubnet, hostAddress: config.hostAddress, local }).catch(asStartupError);
  const { gateway } = await runtime.prepareNetwork(config.podNetwork, subnet).catch(asStartupError);
  const clusterAddress = config.clusterAddress ?? gateway;
  // The dns and api plugins start after this one and bind here.
  ctx.node.clusterAddress = clusterAddress;
  log.info({ subnet, gateway, clusterAddress, network: config.podNetwork, runtime: runtime.kind }, 'pod network ready');

  const capacity: Amount = { cpu: toMilli(config.podCpuLimit), memory: config.podMemoryLimit };
  let free: Amount = { ...capacity };
  const limitOps = (): Op[] => [
    { put: limitsKey('cpu', me), value: formatCpu(free.cpu), lease: 'alive' },
    { put: limitsKey('memory', me), value: String(free.memory), lease: 'alive' },
  ];
  await state.txn({
    if: [],
    then: [
      {
        put: nodeResourceKey('worker', me),
        value: nodeResourceValue('worker', me, {
          address: clusterAddress,
          ...(config.hostAddress ? { hostAddress: config.hostAddress } : {}),
          subnet,
          limits: { cpu: formatCpu(capacity.cpu), memory: capacity.memory },
        }),
      },
      { put: nodeDnsKey(me, 'worker', domain), value: clusterAddress, lease: 'alive' },
      ...limitOps(),
    ],
  });

  const running = new Gauge({ name: 'kith_worker_pods', help: 'Pods this worker has claimed and not yet ended', registers: [ctx.metrics] });
  const ended = new Counter({ name: 'kith_worker_pods_ended_total', help: 'Pods ended, by final state', labelNames: ['state'], registers: [ctx.metrics] });

  // ---- routes to other workers' pods (host-gw) ------------------------------------
  let routeSub: Subscription | undefined;
  const routes = new RouteTable(log);
  if (config.hostAddress) {
    // Routes a killed run of this agent left: kept if still wanted, else removed by the first sync.
    await routes.start();
    const subnets = new Map<string, SubnetOwner>();
    const alive = new Set<string>();
    let synced = false;
    const sync = () => {
      if (!synced) return;
      // `subnets` is by key: a claim moving from the legacy key spelling to the SPEC one is a put and a delete.
      const byCidr = new Map([...subnets].map(([key, o]) => [subnetOfKey(key)!, o]));
      void routes.sync(desiredRoutes({ worker: me, hostAddress: config.hostAddress! }, byCidr, alive));
    };
    const alivePrefix = heartbeatPrefix('worker', 'alive');
    routeSub = state.watch(
      [SUBNET_PREFIX, alivePrefix],
      (ev) => {
        const w = nameUnder(ev.key, alivePrefix);
        if (w !== undefined) {
          if (ev.type === 'put') alive.add(w);
          else alive.delete(w);
        } else {
          if (!subnetOfKey(ev.key)) return;
          const owner = ev.type === 'put' ? parseSubnetOwner(ev.value) : undefined;
          if (owner) subnets.set(ev.key, owner);
          else subnets.delete(ev.key);
        }
        sync();
      },
      { name: 'worker routes', onSynced: () => ((synced = true), sync()) },
    );
  }

  // ---- the inbox, the claim and the pods -------------------------------------------
  const tasks = new Map<string, PodTask>();
  /** Per task: settles once it has ended, released its claim and left `tasks`. */
  const gone = new Map<PodTask, Promise<void>>();
  const inbox = new Map<string, { value: string; modRevision: number }>();
  let stopping = false;
  let pumping: Promise<void> | undefined;
  // Every change of `free` and its publication go through this lane, so etcd sees them in order.
  let lane: Promise<unknown> = Promise.resolve();
  const inLane = <T>(fn: () => Promise<T>): Promise<T> => {
    const p = lane.then(fn);
    lane = p.catch(() => undefined);
    return p;
  };

  const release = (task: PodTask, req: Amount) =>
    inLane(async () => {
      free = plus(free, req);
      await retrying(
        'releasing a pod\'s claim',
        log,
        () =>
          state.txn({
            if: [{ key: claimedKey(task.pod.name), value: me }],
            then: [{ delete: claimedKey(task.pod.name) }, ...limitOps()],
            else: limitOps(),
          }),
        { until: stopCtl.signal, timing: retry },
      ).catch((err) => log.error({ pod: task.pod.name, err: (err as Error).message }, 'could not release the claim'));
    });

  const dropInboxEntry = (pod: string, modRevision: number) =>
    state.txn({ if: [{ key: inboxKey(me, pod), modRevision }], then: [{ delete: inboxKey(me, pod) }] });

  const claim = async (name: string, entry: { value: string; modRevision: number }): Promise<void> => {
    let pod: Pod;
    try {
      pod = podSchema.parse(JSON.parse(entry.value));
    } catch (err) {
      log.error({ pod: name, err: (err as Error).message }, 'inbox entry is not a valid pod; dropping it');
      await dropInboxEntry(name, entry.modRevision);
      return;
    }
    const req = podRequest(pod.spec);
    await inLane(async () => {
      if (!fits(free, req)) {
        // Never run a pod the worker cannot hold: hand it back to the scheduler, counting the hand-backs
        // (`metadata.handedBack`) so that a scheduler and workers that disagree cannot pass a pod around for ever.
        const kept = Object.fromEntries(Object.entries(pod.metadata).filter(([k]) => k !== 'scheduledBy' && k !== 'workedBy'));
        const handedBack = String(handBacks(pod) + 1);
        const back = { ...pod, state: 'created', metadata: { ...kept, handedBack } };
        const value = JSON.stringify(back);
        const r = await state.txn({
          if: [{ key: podKey(name), createRevision: 0, op: '!=' }, { key: inboxKey(me, name), modRevision: entry.modRevision }],
          then: [{ delete: inboxKey(me, name) }, { put: podKey(name), value }, { put: unscheduledKey(name), value }],
        });
        if (r.succeeded) log.warn({ pod: name, needs: describeAmount(req), free: describeAmount(free) }, 'not enough free for the pod; returned it to the scheduler');
        else await dropInboxEntry(name, entry.modRevision);
        return;
      }
      const accepted = { ...pod, state: 'accepted' as const };
      const after = minus(free, req);
      // The resource must exist and predate the inbox entry: a pod deleted and
      // created again under the same name is a new pod, not this entry's.
      const r = await state.txn({
        if: [
          { key: podKey(name), createRevision: 0, op: '!=' },
          { key: podKey(name), createRevision: entry.modRevision + 1, op: '<' },
          { key: inboxKey(me, name), modRevision: entry.modRevision },
        ],
        then: [
          { delete: inboxKey(me, name) },
          { put: claimedKey(name), value: me, lease: 'alive' },
          { put: podKey(name), value: JSON.stringify(accepted) },
          { put: limitsKey('cpu', me), value: formatCpu(after.cpu), lease: 'alive' },
          { put: limitsKey('memory', me), value: String(after.memory), lease: 'alive' },
        ],
      });
      let claimRevision = r.revision;
      if (!r.succeeded) {
        // An earlier attempt may have committed with its reply lost (the retry then finds the inbox entry gone).
        const claimed = await state.get(claimedKey(name));
        if (claimed?.value !== me || tasks.has(name)) {
          // The pod was deleted (or created again) before its claim: nothing to run.
          await dropInboxEntry(name, entry.modRevision);
          log.info({ pod: name }, 'pod deleted before its claim');
          return;
        }
        claimRevision = claimed.createRevision;
      }
      free = after;
      const task = new PodTask(accepted, { state, runtime, log, node: me, domain, clusterAddress, hooks, claimRevision, stopping: stopCtl.signal, retry }).start();
      tasks.set(name, task);
      running.set(tasks.size);
      log.info({ pod: name, commits: describeAmount(req) }, 'pod claimed');
      gone.set(
        task,
        task.done.then(async (outcome) => {
          ended.inc({ state: outcome });
          await release(task, req);
          if (tasks.get(name) === task) tasks.delete(name);
          gone.delete(task);
          running.set(tasks.size);
        }),
      );
    });
  };

  const pump = () => {
    pumping ??= (async () => {
      while (!stopping && inbox.size > 0) {
        const [name, entry] = inbox.entries().next().value as [string, { value: string; modRevision: number }];
        inbox.delete(name);
        const previous = tasks.get(name);
        if (previous) {
          // An earlier pod of the same name is still being torn down: claim this one after it.
          void (gone.get(previous) ?? previous.done).finally(() => {
            if (!stopping && !inbox.has(name)) inbox.set(name, entry);
            void pump();
          });
          continue;
        }
        try {
          await claim(name, entry);
        } catch (err) {
          log.error({ pod: name, err: (err as Error).message }, 'claim failed; trying again shortly');
          setTimeout(() => {
            if (!inbox.has(name)) inbox.set(name, entry);
            pump();
          }, 1000).unref();
        }
      }
    })().finally(() => (pumping = undefined));
    return pumping;
  };

  const inboxSub = state.watch(
    [inboxPrefix(me)],
    (ev) => {
      const name = nameUnder(ev.key, inboxPrefix(me));
      if (!name) return;
      if (ev.type === 'put') inbox.set(name, { value: ev.value, modRevision: ev.modRevision });
      else inbox.delete(name);
      if (ev.type === 'put') void pump();
    },
    { name: 'worker inbox' },
  );

  return {
    async stop() {
      stopping = true;
      stopCtl.abort();
      // Every wait here is bounded: with etcd away, a stop must still end (and kill the pods).
      const atMost = (p: Promise<unknown> | undefined, ms: number) =>
        Promise.race([p?.catch(() => undefined), new Promise((r) => setTimeout(r, ms).unref())]);
      await atMost(inboxSub.close(), 10_000);
      await atMost(pumping, 30_000);
      for (const t of tasks.values()) t.kill('stopping');
      await atMost(Promise.allSettled([...gone.values()]), 60_000);
      await atMost(lane, 30_000);
      await routeSub?.close();
      await routes.close();
      await runtime.close();
    },
  };
}

/**
 * Pods this worker was running when it stopped uncleanly: their podman pods
 * are gone (removed above) and so is their claim (it lived on the old alive
 * lease), but the resources still say `accepted` or `running`. No reaper
 * sees them, as their worker is alive again: mark them `dead` here.
 */
async function markOrphansDead(ctx: PluginContext): Promise<void> {
  const { state, log, config } = ctx;
  const me = config.name;
  const { kvs } = await state.snapshot([POD_PREFIX]);
  for (const kv of kvs) {
    const pod = decodeObservedPod(kv.value);
    if (!pod || pod.metadata.workedBy !== me || (pod.state !== 'accepted' && pod.state !== 'running')) continue;
    const r = await state.txn({
      if: [{ key: kv.key, modRevision: kv.modRevision }],
      then: [{ put: kv.key, value: JSON.stringify({ ...pod, state: 'dead', metadata: { ...pod.metadata, reapedBy: me } }) }],
    });
    if (r.succeeded) log.warn({ pod: pod.name }, 'pod left running by an unclean stop marked dead');
  }
}

export const workerPlugin: Plugin<WorkerConfig> = {
  name: 'worker',
  role: 'worker',
  provides: ['clusterAddress'],
  async start(ctx) {
    // Pod rules go in before a pod's containers start and out before it is removed; the chains live as long as the worker.
    const firewall = await NodeFirewall.start({ chain: ctx.config.iptablesChain, log: ctx.log });
    const runtime = new PodmanRuntime({ node: ctx.config.name, log: ctx.log, pollMs: ctx.config.workerPollMs, imagePull: ctx.config.imagePull });
    try {
      const worker = await startWorker(ctx, runtime, { hooks: firewall.hooks });
      return { stop: () => worker.stop().finally(() => firewall.stop()) };
    } catch (err) {
      // Undo a partial start: the holder pod, then the chains.
      await runtime.close().catch(() => undefined);
      await firewall.stop().catch(() => undefined);
      throw err;
    }
  },
};
