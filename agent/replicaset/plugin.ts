import { randomInt } from 'node:crypto';
import { Counter, Gauge, Histogram } from 'prom-client';
import type { Plugin, PluginContext, RunningPlugin } from '../plugin.js';
import type { StateEvent, Subscription, Transaction } from '../state.js';
import { isTerminal } from '../../api/schemas.js';
import { Backoff, FAILED_STATES } from './backoff.js';
import { Expectations } from './expectations.js';
import { reconcile, type Action, type ObservedPod } from './reconcile.js';
import { DEFAULT_PROGRESS_DEADLINE_S } from './rollout.js';
import { replicaSteps, stepTransaction, transaction } from './transactions.js';
import { PREFIXES, ReplicaSetView } from './view.js';

/** Events are gathered this long before a round, and a round waits at most MAX_WAIT_MS after the first of them. */
const DEBOUNCE_MS = 10;
const MAX_WAIT_MS = 100;
/** Retry after a conflict or an etcd error: doubling, bounded. */
const RETRY_MIN_MS = 50;
const RETRY_MAX_MS = 2000;
/** How long this controller trusts its own writes before it has seen them. */
const EXPECTATION_MS = 10_000;
/** Transactions in flight at once. */
const CONCURRENCY = 16;
/** Ended replicas kept per ReplicaSet for inspection. */
const KEEP_ENDED = 3;

const ALPHABET = 'abcdefghijklmnopqrstuvwxyz0123456789';
const randomSuffix = (): string => Array.from({ length: 5 }, () => ALPHABET[randomInt(ALPHABET.length)]).join('');

/** Keeps the controller's view of etcd and runs reconcile rounds on it. */
class Controller implements RunningPlugin {
  private readonly view = new ReplicaSetView();
  private readonly expectations = new Expectations(EXPECTATION_MS);
  private readonly backoff = new Backoff();
  /** When each replica was first seen running, for the back-off. */
  private readonly runningSince = new Map<string, number>();
  private releaseTimer: NodeJS.Timeout | undefined;
  /** The mod revision of each invalid ReplicaSet already logged, so each bad value is logged once. */
  private readonly invalidLogged = new Map<string, number>();

  private sub: Subscription | undefined;
  private timer: NodeJS.Timeout | undefined;
  private firstEventAt = 0;
  private round: Promise<void> | undefined;
  private dirty = false;
  private retryMs = RETRY_MIN_MS;
  private stopped = false;
  private readonly tick: NodeJS.Timeout;

  private readonly actionsTotal: Counter<'kind' | 'result'>;
  private readonly roundSeconds: Histogram;
  private readonly replicaSetCount: Gauge;

  constructor(private readonly ctx: PluginContext) {
    this.actionsTotal = new Counter({
      name: 'kith_replicaset_actions_total',
      help: 'ReplicaSet controller transactions by action kind and result (committed, conflict, error).',
      labelNames: ['kind', 'result'],
      registers: [ctx.metrics],
    });
    this.roundSeconds = new Histogram({
      name: 'kith_replicaset_round_seconds',
      help: 'Duration of one reconcile round: deciding and performing its transactions.',
      buckets: [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5],
      registers: [ctx.metrics],
    });
    this.replicaSetCount = new Gauge({
      name: 'kith_replicaset_replicasets',
      help: 'ReplicaSets in the controller view.',
      registers: [ctx.metrics],
      collect: () => this.replicaSetCount.set(this.view.replicaSets.size),
    });
    // Expectations expire by time: look again now and then while any is outstanding.
    // Rollout deadlines pass by time too: a round marks a rollout stalled.
    this.tick = setInterval(() => {
      if (this.expectations.outstanding > 0 || this.deadlinePassed(Date.now())) this.schedule();
    }, 1000);
    this.tick.unref();
  }

  /** Whether a rollout in view is still marked progressing past its deadline. */
  private deadlinePassed(now: number): boolean {
    for (const rs of this.view.replicaSets.values()) {
      const st = rs.stored.status as { rollout?: unknown; progressAt?: unknown } | undefined;
      if (!rs.spec || st?.rollout !== 'progressing' || typeof st.progressAt !== 'string') continue;
      if (now - Date.parse(st.progressAt) >= (rs.spec.progressDeadlineSeconds ?? DEFAULT_PROGRESS_DEADLINE_S) * 1000) return true;
    }
    return false;
  }

  async start(): Promise<void> {
    this.sub = this.ctx.state.watch(Object.values(PREFIXES), (ev) => this.onEvent(ev), { name: 'replicaset' });
    await this.sub.synced;
    this.schedule();
  }

  private onEvent(ev: StateEvent): void {
    let before: ObservedPod | undefined;
    if (ev.key.startsWith(PREFIXES.pods)) {
      const name = ev.key.slice(PREFIXES.pods.length);
      this.expectations.podSeen(name, ev.type);
      before = this.view.pods.get(name);
    }
    const invalid = this.view.apply(ev);
    if (ev.key.startsWith(PREFIXES.pods)) this.trackFailures(ev.key.slice(PREFIXES.pods.length), before);
    if (invalid && this.invalidLogged.get(invalid.replicaSet) !== ev.modRevision) {
      this.invalidLogged.set(invalid.replicaSet, ev.modRevision);
      this.ctx.log.warn(invalid, 'stored ReplicaSet is invalid; leaving it alone');
    }
    if (ev.type === 'delete' && ev.key.startsWith(PREFIXES.replicaSets)) this.invalidLogged.delete(ev.key.slice(PREFIXES.replicaSets.length));
    this.schedule();
  }

  /** Feeds the crash-loop back-off: when replicas start running, and when they fail. */
  private trackFailures(name: string, before: ObservedPod | undefined): void {
    const after = this.view.pods.get(name);
    const now = Date.now();
    if (after?.state === 'running' && before?.state !== 'running') this.runningSince.set(name, now);
    if (!after || isTerminal(after.state)) {
      const since = this.runningSince.get(name);
      this.runningSince.delete(name);
      if (after && before && !isTerminal(before.state) && FAILED_STATES.has(after.state)) {
        this.backoff.failed(after.replicaSet, now, since === undefined ? undefined : now - since);
        const failures = this.backoff.failures(after.replicaSet);
        if (failures > 1) {
          this.ctx.log.warn({ replicaSet: after.replicaSet, pod: name, state: after.state, failures }, 'replicas keep failing; holding back new ones');
          this.event(after.replicaSet, 'BackOff', `replicas keep failing (${failures} in a row, the last ${name}: ${after.state}); holding back new ones`, 'Warning');
        }
      }
    }
  }

  /** Runs a round soon: after DEBOUNCE_MS of quiet, at most MAX_WAIT_MS after the first event. */
  private schedule(delay = DEBOUNCE_MS): void {
    if (this.stopped) return;
    if (this.round) {
      this.dirty = true;
      return;
    }
    const now = Date.now();
    if (!this.timer) this.firstEventAt = now;
    else clearTimeout(this.timer);
    const wait = Math.max(0, Math.min(delay, this.firstEventAt + Math.max(MAX_WAIT_MS, delay) - now));
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.round = this.runRound()
        .catch((err: Error) => {
          this.ctx.log.error({ err }, 'replicaset round failed');
          return RETRY_MAX_MS;
        })
        .then((retry) => {
          this.round = undefined;
          if (this.dirty) {
            this.dirty = false;
            this.schedule();
          } else if (retry !== undefined) {
            this.schedule(retry);
          }
        });
    }, wait);
  }

  /** Forgets the streaks of ReplicaSets that are gone, and wakes a round when a hold ends. */
  private settleBackoff(now: number): void {
    for (const rs of this.backoff.tracked()) if (!this.view.replicaSets.has(rs)) this.backoff.forget(rs);
    const next = this.backoff.nextRelease(now);
    if (this.releaseTimer) clearTimeout(this.releaseTimer);
    this.releaseTimer = next === undefined ? undefined : setTimeout(() => this.schedule(), next - now + 5);
  }

  /** One round: decide, then perform. Returns the delay of a retry when one is due. */
  private async runRound(): Promise<number | undefined> {
    // While the state layer rescans, the view may be behind: wait for it.
    if (!this.sub?.live) return RETRY_MAX_MS;
    const end = this.roundSeconds.startTimer();
    const now = Date.now();
    this.expectations.settle(this.view, now);
    this.settleBackoff(now);
    const actions = reconcile(
      {
        pods: this.view.pods,
        replicaLists: this.view.lists,
        healthyWorkers: this.view.healthyWorkers,
        ...this.expectations.snapshot(),
        held: this.backoff.held(now),
        readinessInCluster: this.view.readinessInCluster,
        histories: this.view.histories,
        now,
      },
      this.view.replicaSets,
      { suffix: randomSuffix, keepEnded: KEEP_ENDED },
    );
    let failed = false;
    const queue = [...actions];
    const workers = Array.from({ length: Math.min(CONCURRENCY, queue.length) }, async () => {
      for (let a = queue.shift(); a && !this.stopped; a = queue.shift()) {
        if (!(await this.perform(a))) failed = true;
      }
    });
    await Promise.all(workers);
    end();
    if (!failed) {
      this.retryMs = RETRY_MIN_MS;
      return undefined;
    }
    // Every guarded key is watched, so a conflict's cause is on its way; the retry is a bound, not the mechanism.
    const retry = this.retryMs;
    this.retryMs = Math.min(this.retryMs * 2, RETRY_MAX_MS);
    return retry;
  }

  /** Performs one action: one transaction, or for a replica change a chain of them. True when all committed. */
  private async perform(action: Action): Promise<boolean> {
    if (action.kind === 'replicas') return this.performReplicas(action);
    const res = await this.commit(action.kind, action.replicaSet, transaction(action));
    if (!res) return false;
    this.expectations.committed(action, res.revision, Date.now());
    switch (action.kind) {
      case 'delete':
        this.ctx.log.info({ replicaSet: action.replicaSet, pod: action.pod.name, reason: action.reason }, 'replica deleted');
        this.event(action.replicaSet, 'SuccessfulDelete', `deleted replica ${action.pod.name}: ${action.reason}`);
        break;
      case 'drop-list':
        this.ctx.log.info({ replicaSet: action.replicaSet }, 'replica list of a deleted ReplicaSet removed');
        break;
      case 'history':
        this.ctx.log.info({ replicaSet: action.replicaSet, revision: action.value.spec.revisions.at(-1)?.revision, templateHash: action.value.spec.revisions.at(-1)?.templateHash }, 'new template: rollout history updated');
        this.event(action.replicaSet, 'RolloutStarted', `new template: revision ${action.value.spec.revisions.at(-1)?.revision ?? '?'} (${action.value.spec.revisions.at(-1)?.templateHash ?? '?'})`);
        break;
      case 'drop-history':
        this.ctx.log.info({ replicaSet: action.replicaSet }, 'rollout history of a deleted ReplicaSet removed');
        this.rollouts.delete(action.replicaSet);
        break;
      case 'status':
        this.ctx.log.debug({ replicaSet: action.replicaSet, state: action.state, ...action.status }, 'status written');
        this.rolloutChanged(action.replicaSet, action.status);
        break;
    }
    return true;
  }

  private async performReplicas(action: Extract<Action, { kind: 'replicas' }>): Promise<boolean> {
    let listModRevision = action.listModRevision;
    const steps = replicaSteps(action);
    let done = 0;
    for (const step of steps) {
      if (this.stopped) break;
      const res = await this.commit(action.kind, action.replicaSet, stepTransaction(action, step, listModRevision));
      if (!res) break;
      listModRevision = res.revision;
      this.expectations.stepCommitted(action.replicaSet, step, res.revision, Date.now());
      done++;
    }
    const committed = steps.slice(0, done);
    const created = committed.flatMap((s) => s.created);
    const removed = committed.flatMap((s) => s.removed);
    if (created.length) this.event(action.replicaSet, 'SuccessfulCreate', `created ${plural(created.length, 'replica')}: ${created.join(', ')}`);
    if (removed.length) this.event(action.replicaSet, 'SuccessfulDelete', `removed ${plural(removed.length, 'replica')}: ${removed.join(', ')}`);
    if (done > 0) {
      this.ctx.log.info(
        {
          replicaSet: action.replicaSet,
          created: committed.flatMap((s) => s.created),
          removed: committed.flatMap((s) => s.removed),
          released: action.release.map((p) => p.name),
          forgotten: action.forget,
          adopted: action.adopt.map((p) => p.name),
          replicas: committed.at(-1)!.list.length,
          ...(done < steps.length ? { unfinished: steps.length - done } : {}),
        },
        'replicas updated',
      );
    }
    return done === steps.length;
  }

  private event(replicaSet: string, reason: string, message: string, type: 'Normal' | 'Warning' = 'Normal'): void {
    this.ctx.events.record({ type, object: `replicaset/${replicaSet}`, reason, message });
  }

  /** A rollout's state as last written by this controller, by ReplicaSet: an event when it changes. */
  private readonly rollouts = new Map<string, string | undefined>();

  private rolloutChanged(replicaSet: string, status: { rollout?: string; updated?: number; desired: number; ready?: number }): void {
    const known = this.rollouts.has(replicaSet);
    const before = this.rollouts.get(replicaSet);
    this.rollouts.set(replicaSet, status.rollout);
    if (status.rollout === undefined || status.rollout === before) return;
    // The first status after this controller starts is news only when the rollout is still going or stuck.
    if (!known && status.rollout === 'complete') return;
    const counts = `${status.updated ?? 0} of ${status.desired} updated, ${status.ready ?? 0} ready`;
    if (status.rollout === 'complete') this.event(replicaSet, 'RolloutComplete', `rollout complete: ${counts}`);
    else if (status.rollout === 'stalled') this.event(replicaSet, 'RolloutStalled', `rollout stalled past its progress deadline: ${counts}`, 'Warning');
    else this.event(replicaSet, 'RolloutProgressing', `rollout progressing: ${counts}`);
  }

  /** One guarded transaction; its result when it committed, undefined when it lost a race or failed. */
  private async commit(kind: Action['kind'], replicaSet: string, t: Transaction): Promise<{ revision: number } | undefined> {
    let res;
    try {
      res = await this.ctx.state.txn(t);
    } catch (err) {
      this.actionsTotal.inc({ kind, result: 'error' });
      this.ctx.log.warn({ err: (err as Error).message, action: kind, replicaSet }, 'replicaset transaction failed');
      return undefined;
    }
    this.actionsTotal.inc({ kind, result: res.succeeded ? 'committed' : 'conflict' });
    if (!res.succeeded) {
      this.ctx.log.debug({ action: kind, replicaSet }, 'replicaset transaction lost a race; deciding again');
      return undefined;
    }
    return res;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearInterval(this.tick);
    if (this.releaseTimer) clearTimeout(this.releaseTimer);
    if (this.timer) clearTimeout(this.timer);
    await this.sub?.close();
    await this.round?.catch(() => undefined);
    this.ctx.metrics.removeSingleMetric('kith_replicaset_actions_total');
    this.ctx.metrics.removeSingleMetric('kith_replicaset_round_seconds');
    this.ctx.metrics.removeSingleMetric('kith_replicaset_replicasets');
  }
}

export const replicaSetPlugin: Plugin = {
  name: 'replicaset',
  async start(ctx: PluginContext): Promise<RunningPlugin> {
    const controller = new Controller(ctx);
    await controller.start();
    ctx.log.info({ prefixes: Object.values(PREFIXES) }, 'replicaset controller watching');
    return controller;
  },
};

const plural = (n: number, what: string): string => `${n} ${what}${n === 1 ? '' : 's'}`;
