import { rmSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Logger } from 'pino';
import type { Counter } from 'prom-client';
import type { EventInput } from '../events.js';
import { decodeObservedPod, isTerminal, type Pod } from '../../api/schemas.js';
import { podKey } from '../keys.js';
import { retrying, type RetryTiming } from '../retry.js';
import type { CreatePod, PodRuntime } from '../runtime/runtime.js';
import type { StateLayer, Subscription } from '../state.js';
import { ensurePodLogDir, keptLogFile, podLogDir } from './logs.js';
import { issuePodToken, POD_TOKEN_PATH, revokePodToken } from './pod-token.js';
import { Prober, type ProbeMetrics } from './prober.js';
import { podProbes, restartDelay, withoutLiveMetadata, withReadiness, type Limiter } from './probes.js';
import { podMetadataTransaction, podRecordRemovalTransaction, podStateTransaction } from './transactions.js';

/** The most grace a worker stop gives its pods, seconds (the stop must end within systemd's timeout). */
export const MAX_STOP_GRACE_S = 30;

/** Final states a worker writes (SPEC §3 pod states). */
export type PodOutcome = 'exitSuccess' | 'exitFailure' | 'errored' | 'killed';

/**
 * Around a pod's network life: called with its address before its containers
 * start (a throw makes the pod `errored`) and before it is removed. The
 * firewall hangs its rules here.
 */
export interface PodHooks {
  podStarting?(pod: Pod, ip: string, net: { gateway: string }): Promise<void>;
  podStopping?(pod: Pod, ip: string, net: { gateway: string }): Promise<void>;
}

/** The worker's health checking, shared by its pods (SPEC §10). */
export interface Health {
  /** Bounds the probes in flight across the worker. */
  limiter: Limiter;
  metrics?: ProbeMetrics;
  /** Containers restarted, by reason (liveness, exited). */
  restarts?: Counter<'reason'>;
  /** Restart back-off, ms (tests shorten it). */
  backoff?: { first: number; max: number; reset: number };
}

export interface PodTaskDeps {
  state: StateLayer;
  runtime: PodRuntime;
  log: Logger;
  node: string;
  domain: string;
  clusterAddress: string;
  /** The pod network's gateway: the source of the worker's own probes. */
  gateway: string;
  /** The agent's data dir: pods' own API tokens are kept under it. */
  dataDir: string;
  hooks: PodHooks;
  health: Health;
  /** Where what happens to the pod is recorded (agent/events.ts). */
  events: { record(e: EventInput): void };
  /**
   * How a deleted pod (or every pod, at a worker stop) ends (SPEC §11): out
   * of DNS first, then `graceSeconds` of running on (the pod's own
   * terminationGracePeriodSeconds wins), then SIGTERM and SIGKILL
   * `stopSeconds` later.
   */
  drain: { graceSeconds: number; stopSeconds: number };
  /** The revision of the claim: a resource created after it is another pod of the same name. */
  claimRevision: number;
  /** Aborted when the worker stops: until then a pod's final state is written however long etcd is away. */
  stopping?: AbortSignal;
  retry?: RetryTiming;
  /**
   * A pod an earlier run of this worker started and podman still runs
   * (orphans.ts): it is taken on at this address, not created; its rules are
   * made again and its state and A record written as for a new pod.
   */
  adopt?: { ip: string };
}

/**
 * `deleted`: the resource is gone or is another pod's now; `superseded`: another
 * writer ended it (the reaper's `dead`); both leave the resource's state alone.
 * `stopping`: the worker stops, and writes `killed`. `leaving`: the worker
 * stops with `--keep-pods`, and leaves the pod as it is for the next run.
 * `unhealthy`: a liveness probe failed and the restart policy is `Never`.
 */
type KillReason = 'deleted' | 'superseded' | 'stopping' | 'leaving' | 'unhealthy';

const KILL_MESSAGES: Record<KillReason, string> = {
  deleted: 'the pod was deleted: out of DNS, then stopped after its grace',
  superseded: 'another node ended the pod',
  stopping: 'the worker stops',
  leaving: 'the worker stops and leaves the pod running',
  unhealthy: 'a liveness probe failed',
};

/** The event of each way a pod ends. */
const END_EVENTS: Record<PodOutcome, { reason: string; type: EventInput['type'] }> = {
  exitSuccess: { reason: 'Completed', type: 'Normal' },
  exitFailure: { reason: 'Failed', type: 'Warning' },
  errored: { reason: 'Failed', type: 'Warning' },
  killed: { reason: 'Killed', type: 'Normal' },
};

/**
 * One claimed pod, from `accepted` to its final state. It follows its own
 * resource key from the moment it is claimed, so a delete at any point (also
 * between the claim and the start) kills it.
 */
export class PodTask {
  private readonly ctrl = new AbortController();
  private killReason: KillReason | undefined;
  /** The resource's create revision seen when following began: every write is guarded by it. */
  private createRevision: number | undefined;
  private sub: Subscription | undefined;
  readonly runtimeName: string;
  outcome: PodOutcome | undefined;
  /** Its containers' logs are kept on disk and the pod is being removed: logs are read from the copies now. */
  logsKept = false;
  ip: string | undefined;
  /** Its state `running` and A record are written. */
  private published = false;
  private prober: Prober | undefined;
  /** Whether the running pod is ready (SPEC §10): what etcd is brought to say. */
  private ready = false;
  private readonly restarts = new Map<string, number>();
  private backoff: { restarts: number; lastRestartAt?: number } = { restarts: 0 };
  /** Serialise the metadata writes, and the restarts (counted, so an end seen during one is not taken for the pod's). */
  private liveLane: Promise<void> = Promise.resolve();
  private restartLane: Promise<void> = Promise.resolve();
  private restartsDone = 0;
  private unhealthyReason: string | undefined;
  /** The grace its stored spec gives, as last seen (a `delete --now` sets 0 just before the delete). */
  private graceSeconds: number | undefined;
  done!: Promise<PodOutcome>;
  /** Settles once the pod runs (its rules in, its state and record written) or has ended. */
  started!: Promise<void>;
  private markStarted!: () => void;

  constructor(
    readonly pod: Pod,
    private readonly deps: PodTaskDeps,
  ) {
    this.runtimeName = `${deps.node}-${pod.name}`;
  }

  get killed(): boolean {
    return this.ctrl.signal.aborted;
  }

  /** Left running for the next run of this worker (`--keep-pods`): nothing of it was torn down. */
  get left(): boolean {
    return this.killReason === 'leaving';
  }

  /**
   * `--keep-pods`: stops following the pod and leaves it running, with its
   * name, claim and rules, for the next start to adopt. A pod not yet
   * running (its state and record unwritten) is killed instead: half made,
   * it could not be adopted.
   */
  leave(): void {
    if (this.killed) return;
    if (!this.published) return this.kill('stopping');
    this.killReason = 'leaving';
    this.deps.log.info({ pod: this.pod.name }, 'leaving pod running for the next start');
    this.ctrl.abort();
  }

  kill(reason: KillReason): void {
    if (this.killed) return;
    this.killReason = reason;
    this.deps.log.info({ pod: this.pod.name, reason }, 'killing pod');
    if (reason !== 'superseded') this.event('Killing', KILL_MESSAGES[reason]);
    this.ctrl.abort();
  }

  start(): this {
    this.started = new Promise((resolve) => (this.markStarted = resolve));
    this.done = this.run().finally(() => this.markStarted());
    return this;
  }

  private event(reason: string, message: string, type: EventInput['type'] = 'Normal'): void {
    this.deps.events.record({ type, object: `pod/${this.pod.name}`, reason, message });
  }

  private write(state: PodOutcome | 'running', extra: { dns?: 'put'; error?: string } = {}) {
    const { state: etcd, domain, log } = this.deps;
    // A final state is the only record of how the pod ended: it is kept trying while the worker runs.
    const until = state === 'running' ? undefined : this.deps.stopping;
    // A running pod carries its address (the dashboard and `kith describe` show it); an ended one no longer has one.
    const live = state === 'running' ? { ...withReadiness(this.pod.metadata, this.ready, new Date()), ...(this.ip ? { ip: this.ip } : {}) } : withoutLiveMetadata(this.pod.metadata);
    const metadata = { ...live, ...this.restartMetadata(), ...(extra.error ? { error: extra.error.slice(0, 300) } : {}) };
    const value = JSON.stringify({ ...this.pod, state, metadata });
    return retrying(`writing pod ${this.pod.name} ${state}`, log, () =>
      etcd.txn(podStateTransaction(this.pod.name, this.createRevision ?? -1, value, extra.dns === 'put' && this.ip ? { domain, ip: this.ip } : undefined)),
      { until, timing: this.deps.retry },
    );
  }

  private restartMetadata(): Record<string, string> {
    if (this.restarts.size === 0) return {};
    const total = [...this.restarts.values()].reduce((a, b) => a + b, 0);
    return { restarts: String(total), ...Object.fromEntries([...this.restarts].map(([c, n]) => [`restarts.${c}`, String(n)])) };
  }

  private setReady(ready: boolean): void {
    if (this.killed) return;
    this.ready = ready;
    this.deps.log.info({ pod: this.pod.name, ready }, ready ? 'pod ready' : 'pod not ready');
    if (ready) this.event('Ready', 'its readiness probes pass: in DNS');
    else this.event('NotReady', 'a readiness probe fails: out of DNS until it passes', 'Warning');
    this.publishLive();
  }

  /**
   * Brings the stored pod's readiness and restart counts to what this task
   * knows, changing nothing else of it: read, then a write guarded by that
   * read's mod revision, a bounded number of times. A pod that is no longer
   * this running pod is left alone.
   */
  private publishLive(): void {
    const { state, log } = this.deps;
    const name = this.pod.name;
    const key = podKey(name);
    this.liveLane = this.liveLane.then(async () => {
      for (let attempt = 0; attempt < 5 && !this.killed; attempt++) {
        const kv = await state.get(key);
        if (!kv || kv.createRevision !== this.createRevision) return;
        let stored: { state?: unknown; metadata?: Record<string, string> };
        try {
          stored = JSON.parse(kv.value) as typeof stored;
        } catch {
          return;
        }
        if (stored.state !== 'running') return;
        const before = decodeObservedPod(kv.value)?.metadata ?? {};
        const metadata = { ...withReadiness(before, this.ready, new Date()), ...this.restartMetadata() };
        if (JSON.stringify(metadata) === JSON.stringify(before)) return;
        const r = await state.txn(podMetadataTransaction(name, kv.modRevision, JSON.stringify({ ...stored, metadata })));
        if (r.succeeded) return;
      }
    }).catch((err) => log.warn({ pod: name, err: (err as Error).message }, 'could not write the pod\'s readiness'));
  }

  /** A liveness probe failed: restart the container when the policy allows, else end the pod. */
  private livenessFailed(p: CreatePod, container: string): void {
    if (this.killed) return;
    const policy = this.pod.spec.restartPolicy ?? 'Never';
    this.event('Unhealthy', `liveness probe of container ${container} failed; ${policy === 'Never' ? 'restartPolicy Never: the pod ends' : 'restarting it'}`, 'Warning');
    if (policy === 'Never') {
      this.unhealthyReason = `liveness probe of container ${container} failed`;
      this.killReason = 'unhealthy';
      this.deps.log.warn({ pod: this.pod.name, container }, 'liveness probe failed; restartPolicy Never ends the pod');
      this.ctrl.abort();
      return;
    }
    void this.restart(p, [container], 'liveness probe failed');
  }

  /** Restarts containers in place, after the back-off, one restart at a time; counts each. */
  private restart(p: CreatePod, containers: readonly string[], reason: string): Promise<void> {
    const { runtime, log, health } = this.deps;
    this.restartLane = this.restartLane.then(async () => {
      if (this.killed) return;
      const { delayMs, streak } = restartDelay(this.backoff, Date.now(), health.backoff);
      if (delayMs > 0) {
        log.warn({ pod: this.pod.name, containers, reason, delayMs }, 'restarting after back-off');
        this.event('BackOff', `${reason}: restarting ${containers.join(', ')} in ${(delayMs / 1000).toFixed(1)} s`, 'Warning');
        await sleep(delayMs, undefined, { signal: this.ctrl.signal }).catch(() => undefined);
        if (this.killed) return;
      }
      for (const c of containers) {
        // The run before this restart stays readable as `--previous` (README.md).
        await this.keepLog(c, 'previous');
        await runtime.restartContainer(p, c).catch((err) => log.error({ pod: this.pod.name, container: c, err: (err as Error).message }, 'restart failed'));
        this.restarts.set(c, (this.restarts.get(c) ?? 0) + 1);
        health.restarts?.inc({ reason: reason.startsWith('liveness') ? 'liveness' : 'exited' });
        this.prober?.restarted(c);
        this.event('Restarted', `container ${c} restarted (${reason}); restarts: ${this.restarts.get(c)}`, 'Warning');
      }
      this.backoff = { restarts: streak, lastRestartAt: Date.now() };
      this.restartsDone++;
      log.warn({ pod: this.pod.name, containers, reason, restarts: Object.fromEntries(this.restarts) }, 'containers restarted');
      this.publishLive();
    });
    return this.restartLane;
  }

  /** Copies a container's log so far under the data dir; a failure is logged, the pod goes on. */
  private async keepLog(container: string, kind: 'log' | 'previous'): Promise<void> {
    const { runtime, dataDir, log } = this.deps;
    if (!runtime.saveLog) return;
    try {
      ensurePodLogDir(dataDir, this.runtimeName);
      await runtime.saveLog(this.runtimeName, container, keptLogFile(dataDir, this.runtimeName, container, kind));
    } catch (err) {
      log.warn({ pod: this.pod.name, container, err: (err as Error).message }, 'could not keep the container\'s log');
    }
  }

  /**
   * SPEC §11: the pod is out of every name (its A record, and with it its
   * ReplicaSet's names, SRV records and aliases); it runs on for its grace so
   * clients that resolved it just before finish, then gets SIGTERM, and
   * SIGKILL after the stop timeout. A worker stop waits at most 30 s of grace.
   */
  private async drainOut(): Promise<void> {
    const { runtime, log, drain } = this.deps;
    let grace = this.graceSeconds ?? drain.graceSeconds;
    if (this.killReason === 'stopping') grace = Math.min(grace, MAX_STOP_GRACE_S);
    if (grace > 0) {
      log.info({ pod: this.pod.name, graceSeconds: grace }, 'pod out of DNS; stopping it after its grace');
      await sleep(grace * 1000);
    }
    if (drain.stopSeconds > 0) await runtime.stopPod(this.runtimeName, drain.stopSeconds).catch(() => undefined);
  }

  private async run(): Promise<PodOutcome> {
    const { state, runtime, log, hooks, domain } = this.deps;
    const name = this.pod.name;
    const key = podKey(name);
    this.sub = state.watch(
      [key],
      (ev) => {
        if (ev.key !== key) return;
        if (ev.type === 'delete') return this.kill('deleted');
        if (this.createRevision === undefined) {
          // Created after the claim: not the pod that was claimed.
          if (ev.createRevision > this.deps.claimRevision) return this.kill('deleted');
          this.createRevision = ev.createRevision;
        } else if (ev.createRevision !== this.createRevision) return this.kill('deleted');
        const seen = decodeObservedPod(ev.value);
        const grace = seen?.spec.terminationGracePeriodSeconds;
        this.graceSeconds = typeof grace === 'number' && Number.isInteger(grace) && grace >= 0 ? grace : undefined;
        // This task writes only `running` while it follows the key: a final state is someone else's verdict.
        if (isTerminal(seen?.state)) this.kill('superseded');
      },
      { name: `pod ${name}` },
    );
    await Promise.race([this.sub.synced, new Promise((r) => this.ctrl.signal.addEventListener('abort', r, { once: true }))]);
    // Deleted between the claim and now: nothing was started, nothing runs.
    if (this.createRevision === undefined) this.kill('deleted');

    const p: CreatePod = { runtimeName: this.runtimeName, pod: name, dns: this.deps.clusterAddress };
    const signal = this.ctrl.signal;
    let outcome: PodOutcome | undefined;
    let error: string | undefined;
    try {
      const adopt = this.deps.adopt;
      // The kept logs of an earlier pod of this name are not this pod's.
      if (!adopt) rmSync(podLogDir(this.deps.dataDir, this.runtimeName), { recursive: true, force: true });
      if (!this.killed) this.ip = adopt ? adopt.ip : (await runtime.createPod(p)).ip;
      if (!this.killed && this.ip) await hooks.podStarting?.(this.pod, this.ip, { gateway: this.deps.gateway });
      const probes = podProbes(this.pod.spec.containers);
      // No readiness probe: ready while it runs. An adopted pod stays as it was until its probes say otherwise.
      this.ready = !probes.some((pr) => pr.role === 'readiness') || (adopt !== undefined && this.pod.metadata.ready === 'true');
      for (const [k, v] of Object.entries(this.pod.metadata)) {
        const c = k.startsWith('restarts.') ? k.slice('restarts.'.length) : undefined;
        if (c && Number.isInteger(Number(v))) this.restarts.set(c, Number(v));
      }
      const access = this.pod.spec.apiAccess;
      if (access && !adopt && !this.killed) {
        // SPEC §9: its own token, in each container, with the address of the API.
        const file = await issuePodToken(state, { pod: name, role: access, worker: this.deps.node, dataDir: this.deps.dataDir, runtimeName: this.runtimeName });
        p.extra = { files: [{ source: file, target: POD_TOKEN_PATH }], env: { KITH_API: `http://api.special.${domain}` } };
      }
      for (const c of adopt ? [] : this.pod.spec.containers) {
        if (this.killed) break;
        await runtime.runContainer(p, c);
      }
      if (!this.killed) {
        const r = await this.write('running', { dns: 'put' });
        if (r.succeeded) {
          this.published = true;
          log.info({ pod: name, ip: this.ip }, adopt ? 'pod adopted: it ran on through the restart' : 'pod running');
          this.event(adopt ? 'Adopted' : 'Started', `${adopt ? 'ran on through an agent restart' : 'running'} at ${this.ip} on worker ${this.deps.node}`);
        } else this.kill('deleted');
      }
      this.markStarted();
      if (!this.killed && probes.length > 0) {
        this.prober = new Prober(probes, {
          pod: p, ip: this.ip!, runtime, limiter: this.deps.health.limiter, log, metrics: this.deps.health.metrics, initialReady: this.ready,
          onReady: (ready) => this.setReady(ready),
          onLivenessFailed: (container) => this.livenessFailed(p, container),
        }).start();
      }
      while (!this.killed) {
        const before = this.restartsDone;
        const r = await runtime.wait(p, this.pod.spec.containers.length, signal);
        if (r === 'aborted') break;
        // A liveness restart stops its container for a moment: an end seen meanwhile is not the pod's.
        await this.restartLane;
        if (this.killed) break;
        if (this.restartsDone !== before) continue;
        const policy = this.pod.spec.restartPolicy ?? 'Never';
        if (policy === 'Always' || (policy === 'OnFailure' && r === 'exitFailure')) {
          await this.restart(p, this.pod.spec.containers.map((c) => c.name), r === 'exitFailure' ? 'exited with a failure' : 'exited');
          continue;
        }
        outcome = r;
        break;
      }
      if (this.killReason === 'unhealthy') {
        outcome = 'exitFailure';
        error = this.unhealthyReason;
      }
    } catch (err) {
      error = (err as Error).message;
      outcome = 'errored';
      log.error({ pod: name, err: error }, 'pod failed to start');
    }
    this.prober?.stop();
    if (this.killed && outcome === undefined) outcome = 'killed';
    outcome ??= 'killed';
    if (this.left) {
      await this.sub.close();
      this.outcome = outcome;
      return outcome;
    }

    // Tear down: the name first, then the rules, then the pod itself.
    if (this.published) {
      // Only our record: a pod re-created under this name elsewhere may already have its own.
      await retrying(`deleting the DNS name of ${name}`, log, () => state.txn(podRecordRemovalTransaction(name, domain, this.ip!)), {
        until: this.deps.stopping,
        timing: this.deps.retry,
      }).catch((err) =>
        log.error({ pod: name, err: (err as Error).message }, 'could not delete the pod\'s DNS name'),
      );
    }
    if (this.published && outcome === 'killed' && (this.killReason === 'deleted' || this.killReason === 'stopping')) await this.drainOut();
    if (this.ip) {
      await hooks.podStopping?.(this.pod, this.ip, { gateway: this.deps.gateway }).catch((err) => log.error({ pod: name, err: (err as Error).message }, 'pod stop hook failed'));
    }
    // An ended pod's logs stay readable until its resource is deleted (SPEC §12); a deleted one's are not kept.
    if (this.ip && this.killReason !== 'deleted') {
      for (const c of this.pod.spec.containers) await this.keepLog(c.name, 'log');
    }
    this.logsKept = true;
    await runtime.removePod(this.runtimeName).catch((err) => log.error({ pod: name, err: (err as Error).message }, 'could not remove the pod'));
    if (this.pod.spec.apiAccess) {
      await revokePodToken(state, { pod: name, worker: this.deps.node, dataDir: this.deps.dataDir, runtimeName: this.runtimeName })
        .catch((err) => log.error({ pod: name, err: (err as Error).message }, 'could not delete the pod\'s token'));
    }
    await this.sub.close();
    if (this.createRevision !== undefined && this.killReason !== 'deleted' && this.killReason !== 'superseded') {
      await this.write(outcome, { error }).catch((err) => log.error({ pod: name, err: (err as Error).message }, 'could not write the final state'));
    }
    this.outcome = outcome;
    log.info({ pod: name, state: outcome, reason: this.killReason }, 'pod ended');
    const end = END_EVENTS[outcome];
    this.event(end.reason, `ended ${outcome}${error ? `: ${error}` : ''}`, end.type);
    return outcome;
  }
}

