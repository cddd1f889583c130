import { expect } from 'chai';
import { isTerminal } from '../../../api/schemas.js';
import { Expectations } from '../../../agent/replicaset/expectations.js';
import { reconcile, type Action } from '../../../agent/replicaset/reconcile.js';
import { replicaListKey, replicaSetKey, unscheduledKey } from '../../../agent/keys.js';
import { replicaSteps, stepTransaction, transaction, type ReplicaStep } from '../../../agent/replicaset/transactions.js';
import { PREFIXES, ReplicaSetView } from '../../../agent/replicaset/view.js';
import { KvModel } from './kv-model.js';
import { prng } from '../../support/prng.js';

/**
 * Several controllers, each with its own view that lags behind etcd by a
 * different amount on each watched prefix (as separate watch streams do),
 * deciding and committing in every interleaving a seeded random schedule
 * produces, while the "world" (scheduler, worker, reaper, users) moves pods
 * through their states, deletes them and scales the ReplicaSet. Checked after
 * every commit: no controller transaction ever leaves more live replicas than
 * desired. Checked at the end: once the world is quiet, the controllers
 * converge to exactly the desired number, listed.
 */

const WATCHED = Object.values(PREFIXES);

class SimController {
  readonly view = new ReplicaSetView();
  readonly expectations = new Expectations(1e12);
  /** Per prefix: the revision its (simulated) watch stream has delivered up to. */
  private readonly seen = new Map<string, number>(WATCHED.map((p) => [p, 0]));
  /** Decided and not yet committed: whole actions, or what is left of a replica change's chain of steps. */
  pending: Pending[] = [];
  private n = 0;

  constructor(
    readonly id: string,
    private readonly kv: KvModel,
  ) {}

  /** Delivers one prefix's changes up to `to`, as its watch stream would. */
  advance(prefix: string, to: number): void {
    const from = this.seen.get(prefix)!;
    if (to <= from) return;
    const before = new Map(this.kv.list(prefix, from).map((k) => [k.key, k]));
    const after = this.kv.list(prefix, to);
    for (const k of after) {
      if (before.get(k.key)?.modRevision === k.modRevision) continue;
      this.view.apply({ type: 'put', key: k.key, value: k.value, createRevision: k.createRevision, modRevision: k.modRevision });
      if (prefix === PREFIXES.pods) this.expectations.podSeen(k.key.slice(prefix.length), 'put');
    }
    const present = new Set(after.map((k) => k.key));
    for (const key of before.keys()) {
      if (present.has(key)) continue;
      this.view.apply({ type: 'delete', key, modRevision: to });
      if (prefix === PREFIXES.pods) this.expectations.podSeen(key.slice(prefix.length), 'delete');
    }
    this.seen.set(prefix, to);
  }

  catchUp(): void {
    for (const p of WATCHED) this.advance(p, this.kv.revision);
  }

  lag(rng: () => number): void {
    const p = WATCHED[Math.floor(rng() * WATCHED.length)]!;
    const from = this.seen.get(p)!;
    this.advance(p, from + Math.ceil(rng() * (this.kv.revision - from)));
  }

  decide(): void {
    this.expectations.settle(this.view, 0);
    this.pending = reconcile(
      { pods: this.view.pods, replicaLists: this.view.lists, healthyWorkers: this.view.healthyWorkers, ...this.expectations.snapshot() },
      this.view.replicaSets,
      { suffix: () => `${this.id}${String(this.n++).padStart(4, '0')}`, keepEnded: 2 },
    ).map((action) =>
      action.kind === 'replicas' ? { action, steps: replicaSteps(action), listModRevision: action.listModRevision } : { action },
    );
  }

  /** Commits one pending action, or the next step of one; returns it and whether it committed. */
  commitOne(rng: () => number): { action: Action; created: boolean; ok: boolean } | undefined {
    if (this.pending.length === 0) return undefined;
    const i = Math.floor(rng() * this.pending.length);
    const item = this.pending[i]!;
    if (item.action.kind !== 'replicas') {
      this.pending.splice(i, 1);
      const res = this.kv.txn(transaction(item.action));
      if (res.succeeded) this.expectations.committed(item.action, res.revision, 0);
      return { action: item.action, created: false, ok: res.succeeded };
    }
    const step = item.steps!.shift()!;
    const res = this.kv.txn(stepTransaction(item.action, step, item.listModRevision!));
    if (res.succeeded) {
      this.expectations.stepCommitted(item.action.replicaSet, step, res.revision, 0);
      item.listModRevision = res.revision;
    }
    // A chain that lost a race stops; one that is done leaves.
    if (!res.succeeded || item.steps!.length === 0) this.pending.splice(i, 1);
    return { action: item.action, created: step.created.length > 0, ok: res.succeeded };
  }
}

interface Pending {
  action: Action;
  steps?: ReplicaStep[];
  listModRevision?: number;
}

function livePods(kv: KvModel, rs: string): string[] {
  return kv
    .list(PREFIXES.pods)
    .map((k) => JSON.parse(k.value) as { name: string; state: string; metadata: Record<string, string> })
    .filter((p) => p.metadata.replicaSet === rs && !isTerminal(p.state))
    .map((p) => p.name);
}

function desiredOf(kv: KvModel, rs: string): number {
  const v = kv.get(replicaSetKey(rs));
  return v ? (JSON.parse(v.value) as { spec: { replicas: number } }).spec.replicas : 0;
}

function putReplicaSet(kv: KvModel, rs: string, replicas: number): void {
  const prev = kv.get(replicaSetKey(rs));
  const stored = prev ? (JSON.parse(prev.value) as Record<string, unknown>) : { name: rs, type: 'replicaset', metadata: {} };
  kv.put(replicaSetKey(rs), JSON.stringify({ ...stored, spec: { replicas, template: { spec: { containers: [{ name: 'c', image: 'img' }] } } } }));
}

const NEXT: Record<string, string[]> = {
  created: ['scheduled', 'abandoned'],
  scheduled: ['accepted', 'dead'],
  accepted: ['running', 'errored', 'dead'],
  running: ['running', 'exitSuccess', 'exitFailure', 'killed', 'dead'],
};

/** One move of the world: a pod's state advances, or a user deletes a pod, or scales. */
function worldStep(kv: KvModel, rng: () => number, scale: boolean): void {
  const pods = kv.list(PREFIXES.pods);
  const r = rng();
  if (scale && r < 0.05) {
    putReplicaSet(kv, 'web', Math.floor(rng() * 6));
    return;
  }
  if (pods.length === 0) return;
  const k = pods[Math.floor(rng() * pods.length)]!;
  const name = k.key.slice(PREFIXES.pods.length);
  if (r < 0.12) {
    // A user deletes the pod, as the API does: the resource and its marker.
    kv.txn({ if: [], then: [{ delete: k.key }, { delete: unscheduledKey(name) }] });
    return;
  }
  const p = JSON.parse(k.value) as { state: string; metadata: Record<string, string> };
  const next = NEXT[p.state];
  if (!next) return;
  p.state = next[Math.floor(rng() * next.length)]!;
  if (p.state === 'scheduled') p.metadata.workedBy = `w${1 + Math.floor(rng() * 3)}`;
  // Scheduling or abandoning consumes the unscheduled marker, as the scheduler does.
  kv.txn({ if: [], then: [{ put: k.key, value: JSON.stringify(p) }, ...(next === NEXT.created ? [{ delete: unscheduledKey(name) }] : [])] });
}

function simulate(seed: number, opts: { controllers: number; steps: number; scale: boolean }): { commits: number; conflicts: number } {
  const rng = prng(seed);
  const kv = new KvModel();
  for (const w of ['w1', 'w2', 'w3']) kv.put(`${PREFIXES.healthyWorkers}${w}`, 'lease-established');
  putReplicaSet(kv, 'web', 3);
  const cs = Array.from({ length: opts.controllers }, (_, i) => new SimController(String.fromCharCode(97 + i), kv));
  let commits = 0;
  let conflicts = 0;
  for (let step = 0; step < opts.steps; step++) {
    const c = cs[Math.floor(rng() * cs.length)]!;
    const r = rng();
    if (r < 0.3) c.lag(rng);
    else if (r < 0.45) c.decide();
    else if (r < 0.8) {
      const desiredBefore = desiredOf(kv, 'web');
      const done = c.commitOne(rng);
      if (!done) continue;
      if (!done.ok) {
        conflicts++;
        continue;
      }
      commits++;
      if (done.created) {
        const live = livePods(kv, 'web').length;
        expect(live, `seed ${seed} step ${step}: controller ${c.id} created replicas and left ${live} live, ${desiredBefore} desired`).to.be.at.most(desiredOf(kv, 'web'));
      }
    } else worldStep(kv, rng, opts.scale);
    if (!opts.scale) expect(livePods(kv, 'web').length, `seed ${seed} step ${step}`).to.be.at.most(3);
  }
  // The world is quiet: every controller catches up and decides until nothing is left to do.
  for (let round = 0; round < 50; round++) {
    let acted = false;
    for (const c of cs) {
      c.catchUp();
      c.decide();
      while (c.pending.length > 0) acted = c.commitOne(rng)!.ok || acted;
    }
    if (!acted) break;
  }
  const want = desiredOf(kv, 'web');
  const live = livePods(kv, 'web').sort();
  expect(live, `seed ${seed}: converged`).to.have.length(want);
  const list = JSON.parse(kv.get(replicaListKey('web'))!.value) as { replicas: string[] };
  expect([...list.replicas].sort(), `seed ${seed}: the list names the live replicas`).to.deep.equal(live);
  const stored = JSON.parse(kv.get(replicaSetKey('web'))!.value) as { status: { desired: number; live: number } };
  expect(stored.status.desired).to.equal(want);
  expect(stored.status.live).to.equal(want);
  return { commits, conflicts };
}

describe('replicaset reconcile: controllers racing with lagging views', () => {
  it('three controllers, fixed size: never more than 3 live replicas, in 200 random schedules', () => {
    let conflicts = 0;
    for (let seed = 1; seed <= 200; seed++) conflicts += simulate(seed, { controllers: 3, steps: 400, scale: false }).conflicts;
    // The schedules really race: many decisions lose on a guard.
    expect(conflicts).to.be.greaterThan(100);
  });

  it('three controllers while users scale: no creation ever exceeds the desired count, in 200 random schedules', () => {
    for (let seed = 1000; seed < 1200; seed++) simulate(seed, { controllers: 3, steps: 400, scale: true });
  });

  it('deleting the ReplicaSet while controllers race removes every replica and the list', () => {
    for (let seed = 5000; seed < 5050; seed++) {
      const rng = prng(seed);
      const kv = new KvModel();
      putReplicaSet(kv, 'web', 4);
      const cs = [new SimController('a', kv), new SimController('b', kv)];
      for (let step = 0; step < 150; step++) {
        const c = cs[Math.floor(rng() * cs.length)]!;
        const r = rng();
        if (step === 80) kv.delete(replicaSetKey('web'));
        if (r < 0.3) c.lag(rng);
        else if (r < 0.5) c.decide();
        else if (r < 0.85) c.commitOne(rng);
        else worldStep(kv, rng, false);
      }
      for (let round = 0; round < 20; round++) {
        for (const c of cs) {
          c.catchUp();
          c.decide();
          while (c.pending.length > 0) c.commitOne(rng);
        }
      }
      const left = kv.list(PREFIXES.pods).filter((k) => (JSON.parse(k.value) as { metadata: Record<string, string> }).metadata.replicaSet === 'web');
      expect(left, `seed ${seed}`).to.deep.equal([]);
      expect(kv.get(replicaListKey('web')), `seed ${seed}`).to.equal(undefined);
      expect(kv.list('pod/unscheduled/'), `seed ${seed}`).to.deep.equal([]);
    }
  });
});
