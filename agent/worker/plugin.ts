import { existsSync, readdirSync, rmSync } from 'node:fs';
import { createServer } from 'node:http';
import { join } from 'node:path';
import { Gauge, Counter, Histogram } from 'prom-client';
import { pod as podSchema, type Pod } from '../../api/schemas.js';
import { describeAmount, minus, plus, podRequest, toMilli, type Amount } from '../capacity.js';
import { settleWithin } from '../deadline.js';
import { StartupError } from '../errors.js';
import { POD_TOKEN_PREFIX } from '../../api/tokens.js';
import { CLAIMED_PREFIX, POD_PREFIX, TOKEN_PREFIX, claimedKey, inboxPrefix, logsEndpointKey, nameUnder } from '../keys.js';
import { LogsVerifier } from '../pod-logs.js';
import { bindError } from '../address.js';
import { LogServer, podLogDir, removeStaleLogs } from './logs.js';
import type { Plugin, PluginContext, RunningPlugin } from '../plugin.js';
import { NodeFirewall } from '../../firewall/node-firewall.js';
import { retrying, type RetryTiming } from '../retry.js';
import { PodmanError, PodmanRuntime } from '../runtime/podman.js';
import { runtimeName, type PodRuntime } from '../runtime/runtime.js';
import type { WorkerConfig } from './flags.js';
import { afterLostClaim, decideClaim } from './claim.js';
import { planRestart, type RestartPlan } from './orphans.js';
import { PodTask, type Health, type PodHooks } from './pod-task.js';
import { isOwnPodToken, podTokenDir } from './pod-token.js';
import { Limiter } from './probes.js';
import { followRoutes } from './routes.js';
import { claimSubnet, SubnetError } from './subnet-claim.js';
import {
  claimTransaction, dropInboxEntryTransaction, handBackTransaction, nodeRecordTransaction, orphanTransaction, releaseTransaction, staleClaimTransaction,
} from './transactions.js';

export interface WorkerOptions {
  hooks?: PodHooks;
  /** Restart back-off, ms (tests and benchmarks shorten it). */
  backoff?: Health['backoff'];
  /** How etcd writes are retried (tests shorten it). */
  retry?: RetryTiming;
}

/** Probe checks in flight at once on one worker. */
const PROBES_IN_FLIGHT = 32;

/**
 * The worker: claims pods from its inbox and runs them with `runtime`
 * (README.md). `workerPlugin` runs it with podman; benchmarks call this with
 * a simulated runtime. The decisions are in `claim.ts` and `orphans.ts`, the
 * writes in `transactions.ts`; this is the shell that performs them.
 */
export async function startWorker(ctx: PluginContext<WorkerConfig>, runtime: PodRuntime, opts: WorkerOptions = {}): Promise<RunningPlugin> {
  const { config, state, log } = ctx;
  const me = config.name;
  const domain = config.clusterDomain;
  const hooks = opts.hooks ?? {};
  const retry = opts.retry;
  /** Aborted at stop: from then on, writes that etcd keeps refusing are given up after a bounded number of tries. */
  const stopCtl = new AbortController();

  // What an earlier run left (SPEC §8): pods to adopt, stored pods to mark dead, podman pods to remove.
  const plan = await planStart(ctx, runtime);

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
  // Adopted pods hold their share from the start.
  let free: Amount = plan.adopt.reduce((f, a) => minus(f, podRequest(a.pod.spec)), { ...capacity });
  await state.txn(nodeRecordTransaction({ worker: me, domain, clusterAddress, hostAddress: config.hostAddress, subnet, capacity, free }));

  const running = new Gauge({ name: 'kith_worker_pods', help: 'Pods this worker has claimed and not yet ended', registers: [ctx.metrics] });
  const ended = new Counter({ name: 'kith_worker_pods_ended_total', help: 'Pods ended, by final state', labelNames: ['state'], registers: [ctx.metrics] });
  const health: Health = {
    // Probes of every pod share this bound: a burst of slow checks cannot take the host's sockets or fork podman without end.
    limiter: new Limiter(PROBES_IN_FLIGHT),
    metrics: {
      results: new Counter({ name: 'kith_probe_results_total', help: 'Probe checks, by kind, role and result', labelNames: ['kind', 'role', 'result'], registers: [ctx.metrics] }),
      duration: new Histogram({ name: 'kith_probe_duration_seconds', help: 'Seconds per probe check, by kind', labelNames: ['kind'], buckets: [0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5], registers: [ctx.metrics] }),
    },
    restarts: new Counter({ name: 'kith_container_restarts_total', help: 'Containers restarted in place, by reason', labelNames: ['reason'], registers: [ctx.metrics] }),
    backoff: opts.backoff ?? { first: config.restartBackoffMs, max: config.restartBackoffMs * 30, reset: config.restartBackoffMs * 60 },
  };
  // SPEC §11: a client that resolved a pod just before it left DNS holds its address for a TTL at most.
  const dnsTtl = (config as { dnsTtl?: number }).dnsTtl ?? 5;
  const drain = { graceSeconds: config.terminationGrace ?? dnsTtl + 1, stopSeconds: config.stopTimeout };

  // Routes to other workers' pods (host-gw).
  const routes = config.hostAddress ? await followRoutes(state, log, { worker: me, hostAddress: config.hostAddress }) : undefined;

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
      await retrying('releasing a pod\'s claim', log, () => state.txn(releaseTransaction(me, task.pod.name, free)), { until: stopCtl.signal, timing: retry })
        .catch((err) => log.error({ pod: task.pod.name, err: (err as Error).message }, 'could not release the claim'));
    });

  const dropInboxEntry = (pod: string, modRevision: number) => state.txn(dropInboxEntryTransaction(me, pod, modRevision));

  const claim = async (name: string, entry: { value: string; modRevision: number }): Promise<void> => {
    let pod: Pod;
    try {
      pod = podSchema.parse(JSON.parse(entry.value));
    } catch (err) {
      log.error({ pod: name, err: (err as Error).message }, 'inbox entry is not a valid pod; dropping it');
      await dropInboxEntry(name, entry.modRevision);
      return;
    }
    await inLane(async () => {
      const decision = decideClaim(pod, free, me);
      const req = decision.request;
      if (decision.kind === 'hand-back') {
        const r = await state.txn(handBackTransaction(me, name, decision.pod, entry.modRevision));
        if (r.succeeded) {
          log.warn({ pod: name, needs: describeAmount(req), free: describeAmount(free) }, 'not enough free for the pod; returned it to the scheduler');
          ctx.events.record({ type: 'Warning', object: `pod/${name}`, reason: 'HandedBack', message: `worker ${me} has not enough free (needs ${describeAmount(req)}, free ${describeAmount(free)}); returned to the scheduler` });
        }
        else await dropInboxEntry(name, entry.modRevision);
        return;
      }
      const r = await state.txn(claimTransaction(name, decision, entry.modRevision));
      let claimRevision = r.revision;
      if (!r.succeeded) {
        const next = afterLostClaim(await state.get(claimedKey(name)), me, tasks.has(name));
        if (next.kind === 'drop') {
          await dropInboxEntry(name, entry.modRevision);
          log.info({ pod: name }, 'pod deleted before its claim');
          return;
        }
        claimRevision = next.claimRevision;
      }
      free = decision.freeAfter;
      run(decision.pod, req, claimRevision);
      log.info({ pod: name, commits: describeAmount(req) }, 'pod claimed');
    });
  };

  /** Runs a claimed (or adopted) pod until it ends, then gives back what it committed. */
  const run = (pod: Pod, req: Amount, claimRevision: number, adopt?: { ip: string }) => {
    const name = pod.name;
    const task = new PodTask(pod, { state, runtime, log, node: me, domain, clusterAddress, gateway, dataDir: config.dataDir, hooks, health, events: ctx.events, drain, claimRevision, stopping: stopCtl.signal, retry, adopt }).start();
    tasks.set(name, task);
    running.set(tasks.size);
    gone.set(
      task,
      task.done.then(async (outcome) => {
        // Left for the next run: its claim and its share stay as they are.
        if (!task.left) {
          ended.inc({ state: outcome });
          await release(task, req);
        }
        if (tasks.get(name) === task) tasks.delete(name);
        gone.delete(task);
        running.set(tasks.size);
      }),
    );
    return task;
  };

  // ---- pod logs (README.md) -----------------------------------------------------------
  const logsHost = config.hostAddress ?? clusterAddress;
  // A runtime without logs (the simulated one of benchmarks) serves none.
  const logsKeys = runtime.logs ? new LogsVerifier(state, log) : undefined;
  const logServer = runtime.logs && (await LogServer.start({
    host: logsHost,
    port: config.logsListenPort,
    authorized: (auth, method, path) => logsKeys?.check(auth, method, path) ?? false,
    dataDir: config.dataDir,
    runtimeName: (pod) => runtimeName(me, pod),
    running: (pod) => {
      const t = tasks.get(pod);
      return t && !t.logsKept ? { runtimeName: t.runtimeName, containers: t.pod.spec.containers.map((c) => c.name) } : undefined;
    },
    runtime,
    log,
  }));
  if (logServer) {
    await state.put(logsEndpointKey(me), `${logsHost}:${config.logsListenPort}`, 'alive');
    log.info({ address: `${logsHost}:${config.logsListenPort}` }, 'pod logs served');
  }
  // Kept logs last as long as their pod's resource (SPEC §12).
  const logsSub = state.watch(
    [POD_PREFIX],
    (ev) => {
      const name = nameUnder(ev.key, POD_PREFIX);
      if (ev.type === 'delete' && name) rmSync(podLogDir(config.dataDir, runtimeName(me, name)), { recursive: true, force: true });
    },
    { name: 'worker pod logs' },
  );

  const adopted = plan.adopt.map((a) => run(a.pod, podRequest(a.pod.spec), a.claimRevision, { ip: a.ip }));
  // The chains were made again empty: the worker is ready once every adopted pod has its rules back.
  await settleWithin(Promise.all(adopted.map((t) => t.started)), 30_000);
  if (plan.adopt.length) log.info({ pods: plan.adopt.map((a) => a.pod.name) }, 'adopted the pods an earlier run left running');

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
      await settleWithin(inboxSub.close(), 10_000);
      await settleWithin(pumping, 30_000);
      for (const t of tasks.values()) (config.keepPods ? t.leave() : t.kill('stopping'));
      await settleWithin(Promise.allSettled([...gone.values()]), 60_000);
      await settleWithin(lane, 30_000);
      await settleWithin(logsSub.close(), 10_000);
      if (logServer) {
        await logServer.close();
        await logsKeys?.close();
        await settleWithin(state.delete(logsEndpointKey(me)).catch(() => undefined), 2000);
      }
      // Left pods keep reaching the other hosts' pods until the next start takes the routes on.
      await routes?.close({ keep: config.keepPods });
      await runtime.close();
    },
  };
}

/**
 * At start, before anything new runs: what an earlier run of this worker
 * left, in podman and in etcd, decided by `planRestart` (orphans.ts). Pods
 * etcd no longer gives this worker are removed from podman and the stored
 * ones marked dead; the rest are returned to be adopted.
 */
async function planStart(ctx: PluginContext<WorkerConfig>, runtime: PodRuntime): Promise<RestartPlan> {
  const { state, log, config } = ctx;
  const left = await runtime.podsLeft(config.podNetwork);
  const { kvs } = await state.snapshot([POD_PREFIX, CLAIMED_PREFIX, TOKEN_PREFIX]);
  const claims = new Map(kvs.filter((kv) => kv.key.startsWith(CLAIMED_PREFIX)).map((kv) => [nameUnder(kv.key, CLAIMED_PREFIX) ?? '', kv]));
  const plan = planRestart(kvs.filter((kv) => kv.key.startsWith(POD_PREFIX)), claims, left, config.name);
  for (const name of plan.remove) await runtime.removePod(name);
  if (plan.remove.length) log.warn({ pods: plan.remove }, 'removed pods an earlier run left that etcd no longer gives this worker');
  for (const orphan of plan.dead) {
    const r = await state.txn(orphanTransaction(orphan, config.clusterDomain));
    if (r.succeeded) log.warn({ pod: orphan.dead.name }, 'pod an earlier run left unfinished marked dead');
  }
  for (const c of plan.staleClaims) {
    const r = await state.txn(staleClaimTransaction(config.name, c.pod, c.createRevision, config.clusterDomain));
    if (r.succeeded) log.warn({ pod: c.pod }, 'removed the claim an earlier run left on a pod deleted or ended meanwhile');
  }
  // Pods' own tokens (SPEC §9): an earlier run's stay only with the pods adopted; the others go, from etcd and from disk.
  const adopted = new Set(plan.adopt.map((a) => a.pod.name));
  const prefix = `${TOKEN_PREFIX}${POD_TOKEN_PREFIX}`;
  for (const kv of kvs.filter((x) => x.key.startsWith(prefix) && isOwnPodToken(x, config.name) && !adopted.has(x.key.slice(prefix.length)))) {
    const r = await state.txn({ if: [{ key: kv.key, modRevision: kv.modRevision }], then: [{ delete: kv.key }] });
    if (r.succeeded) log.warn({ token: kv.key.slice(TOKEN_PREFIX.length) }, 'removed the token an earlier run made for a pod it no longer runs');
  }
  const tokenDirs = join(config.dataDir, 'pod-tokens');
  if (existsSync(tokenDirs)) {
    const keep = new Set(plan.adopt.map((a) => podTokenDir(config.dataDir, runtimeName(config.name, a.pod.name))));
    for (const d of readdirSync(tokenDirs)) if (!keep.has(join(tokenDirs, d))) rmSync(join(tokenDirs, d), { recursive: true, force: true });
  }
  // Kept pod logs whose pod's resource is gone (deleted while this worker was away).
  const pods = new Set(kvs.filter((kv) => kv.key.startsWith(POD_PREFIX)).map((kv) => runtimeName(config.name, nameUnder(kv.key, POD_PREFIX) ?? '')));
  const stale = removeStaleLogs(config.dataDir, (d) => pods.has(d));
  if (stale.length) log.info({ pods: stale }, 'removed the kept logs of pods deleted meanwhile');
  return plan;
}

export const workerPlugin: Plugin<WorkerConfig> = {
  name: 'worker',
  role: 'worker',
  provides: ['clusterAddress'],
  async preflight(config) {
    // The cluster address is made at start; only the host address can be checked this early.
    if (!config.hostAddress) return;
    const probe = createServer();
    await new Promise<void>((resolve, reject) => {
      probe.once('error', (err: NodeJS.ErrnoException) => reject(bindError('--logs-listen-port', { host: config.hostAddress!, port: config.logsListenPort }, 'TCP', err)));
      probe.listen(config.logsListenPort, config.hostAddress, () => probe.close(() => resolve()));
    });
  },
  async start(ctx) {
    // Pod rules go in before a pod's containers start and out before it is removed; the chains live as long as the worker.
    const firewall = await NodeFirewall.start({ chain: ctx.config.iptablesChain, log: ctx.log });
    const runtime = new PodmanRuntime({ node: ctx.config.name, log: ctx.log, pollMs: ctx.config.workerPollMs, imagePull: ctx.config.imagePull });
    try {
      const worker = await startWorker(ctx, runtime, { hooks: firewall.hooks });
      // With --keep-pods the chains stay too, so the pods left running stay isolated until the next start makes them again.
      return { stop: () => worker.stop().finally(() => (ctx.config.keepPods ? undefined : firewall.stop())) };
    } catch (err) {
      // Undo a partial start: the holder pod, then the chains.
      await runtime.close().catch(() => undefined);
      await firewall.stop().catch(() => undefined);
      throw err;
    }
  },
};
