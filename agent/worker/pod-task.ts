import type { Logger } from 'pino';
import { decodeObservedPod, isTerminal, type Pod } from '../../api/schemas.js';
import { podKey } from '../keys.js';
import { retrying, type RetryTiming } from '../retry.js';
import type { CreatePod, PodRuntime } from '../runtime/runtime.js';
import type { StateLayer, Subscription } from '../state.js';
import { podRecordRemovalTransaction, podStateTransaction } from './transactions.js';

/** Final states a worker writes (SPEC §3 pod states). */
export type PodOutcome = 'exitSuccess' | 'exitFailure' | 'errored' | 'killed';

/**
 * Around a pod's network life: called with its address before its containers
 * start (a throw makes the pod `errored`) and before it is removed. The
 * firewall hangs its rules here.
 */
export interface PodHooks {
  podStarting?(pod: Pod, ip: string): Promise<void>;
  podStopping?(pod: Pod, ip: string): Promise<void>;
}

export interface PodTaskDeps {
  state: StateLayer;
  runtime: PodRuntime;
  log: Logger;
  node: string;
  domain: string;
  clusterAddress: string;
  hooks: PodHooks;
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
 */
type KillReason = 'deleted' | 'superseded' | 'stopping' | 'leaving';

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
  ip: string | undefined;
  /** Its state `running` and A record are written. */
  private published = false;
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
    this.ctrl.abort();
  }

  start(): this {
    this.started = new Promise((resolve) => (this.markStarted = resolve));
    this.done = this.run().finally(() => this.markStarted());
    return this;
  }

  private write(state: PodOutcome | 'running', extra: { dns?: 'put'; error?: string } = {}) {
    const { state: etcd, domain, log } = this.deps;
    // A final state is the only record of how the pod ended: it is kept trying while the worker runs.
    const until = state === 'running' ? undefined : this.deps.stopping;
    const metadata = { ...this.pod.metadata, ...(extra.error ? { error: extra.error.slice(0, 300) } : {}) };
    const value = JSON.stringify({ ...this.pod, state, metadata });
    return retrying(`writing pod ${this.pod.name} ${state}`, log, () =>
      etcd.txn(podStateTransaction(this.pod.name, this.createRevision ?? -1, value, extra.dns === 'put' && this.ip ? { domain, ip: this.ip } : undefined)),
      { until, timing: this.deps.retry },
    );
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
        // This task writes only `running` while it follows the key: a final state is someone else's verdict.
        if (isTerminal(decodeObservedPod(ev.value)?.state)) this.kill('superseded');
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
      if (!this.killed) this.ip = adopt ? adopt.ip : (await runtime.createPod(p)).ip;
      if (!this.killed && this.ip) await hooks.podStarting?.(this.pod, this.ip);
      for (const c of adopt ? [] : this.pod.spec.containers) {
        if (this.killed) break;
        await runtime.runContainer(p, c);
      }
      if (!this.killed) {
        const r = await this.write('running', { dns: 'put' });
        if (r.succeeded) {
          this.published = true;
          log.info({ pod: name, ip: this.ip }, adopt ? 'pod adopted: it ran on through the restart' : 'pod running');
        } else this.kill('deleted');
      }
      this.markStarted();
      if (!this.killed) {
        const r = await runtime.wait(p, this.pod.spec.containers.length, signal);
        if (r !== 'aborted') outcome = r;
      }
    } catch (err) {
      error = (err as Error).message;
      outcome = 'errored';
      log.error({ pod: name, err: error }, 'pod failed to start');
    }
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
    if (this.ip) {
      await hooks.podStopping?.(this.pod, this.ip).catch((err) => log.error({ pod: name, err: (err as Error).message }, 'pod stop hook failed'));
    }
    await runtime.removePod(this.runtimeName).catch((err) => log.error({ pod: name, err: (err as Error).message }, 'could not remove the pod'));
    await this.sub.close();
    if (this.createRevision !== undefined && this.killReason !== 'deleted' && this.killReason !== 'superseded') {
      await this.write(outcome, { error }).catch((err) => log.error({ pod: name, err: (err as Error).message }, 'could not write the final state'));
    }
    this.outcome = outcome;
    log.info({ pod: name, state: outcome, reason: this.killReason }, 'pod ended');
    return outcome;
  }
}

