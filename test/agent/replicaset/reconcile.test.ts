import { expect } from 'chai';
import { replicaSetSpec, type ReplicaSetSpec } from '../../../api/schemas.js';
import {
  reconcile,
  type Action,
  type DesiredReplicaSet,
  type Observed,
  type ObservedPod,
  type ReconcileOptions,
  type ReplicaList,
} from '../../../agent/replicaset/reconcile.js';
import { replicaListKey, replicaSetKey } from '../../../agent/keys.js';
import { MAX_GUARDS, MAX_PODS_PER_STEP, replicaSteps, stepTransaction, transaction } from '../../../agent/replicaset/transactions.js';
import { templateHash } from '../../../agent/replicaset/rollout.js';
import { KvModel } from './kv-model.js';

// ---- plain data --------------------------------------------------------------

const TEMPLATE = { metadata: { app: 'web', workedBy: 'forged' }, spec: { containers: [{ name: 'c', image: 'localhost/kith/busybox' }], ports: [{ container: 80, name: 'http' }] } };

function rs(name: string, replicas: number, over: Partial<DesiredReplicaSet> & { template?: unknown } = {}): DesiredReplicaSet {
  const spec: ReplicaSetSpec = replicaSetSpec.parse({ replicas, template: over.template ?? TEMPLATE });
  return {
    name,
    createRevision: over.createRevision ?? 10,
    modRevision: over.modRevision ?? 10,
    stored: over.stored ?? { name, type: 'replicaset', metadata: {}, spec },
    spec: 'spec' in over ? over.spec : spec,
  };
}

/** The hash of TEMPLATE: the replicas of these tests are of the current template unless they say otherwise. */
const HASH = templateHash(replicaSetSpec.parse({ replicas: 1, template: TEMPLATE }).template);

let nextRevision = 100;
function pod(name: string, replicaSet: string, state: string, over: Partial<ObservedPod> = {}): ObservedPod {
  const rev = nextRevision++;
  return { name, replicaSet, state, templateHash: HASH, createRevision: rev, modRevision: rev, ...over };
}

function observed(pods: ObservedPod[], lists: Record<string, Omit<ReplicaList, 'modRevision'> & { modRevision?: number }> = {}, over: Partial<Observed> = {}): Observed {
  return {
    pods: new Map(pods.map((p) => [p.name, p])),
    replicaLists: new Map(Object.entries(lists).map(([k, l]) => [k, { modRevision: 50, ...l }])),
    healthyWorkers: new Set(['w1', 'w2', 'w3']),
    created: new Set(),
    deleted: new Set(),
    listWritten: new Map(),
    statusWritten: new Map(),
    ...over,
  };
}

/** Suffixes s0000, s0001, ...: deterministic stand-ins for the random ones. */
function suffixes(first = 's'): ReconcileOptions['suffix'] {
  let i = 0;
  return () => `${first}${String(i++).padStart(4, '0')}`;
}

const opts = (over: Partial<ReconcileOptions> = {}): ReconcileOptions => ({ suffix: suffixes(), keepEnded: 0, ...over });
/** Commits a replica change's chain of steps on the model; true when every step committed. */
function commitChain(kv: KvModel, a: Extract<Action, { kind: 'replicas' }>): boolean {
  let rev = a.listModRevision;
  for (const step of replicaSteps(a)) {
    const res = kv.txn(stepTransaction(a, step, rev));
    if (!res.succeeded) return false;
    rev = res.revision;
  }
  return true;
}

const desired = (...sets: DesiredReplicaSet[]) => new Map(sets.map((s) => [s.name, s]));
const ofKind = <K extends Action['kind']>(actions: Action[], kind: K) => actions.filter((a): a is Extract<Action, { kind: K }> => a.kind === kind);
const only = <K extends Action['kind']>(actions: Action[], kind: K) => {
  const found = ofKind(actions, kind);
  expect(found, `one '${kind}' action in ${JSON.stringify(actions)}`).to.have.length(1);
  return found[0]!;
};

/** Three running replicas of `web` on w1..w3, listed. */
function steady(): { pods: ObservedPod[]; list: Omit<ReplicaList, 'modRevision'> } {
  const pods = ['web-aaaaa', 'web-bbbbb', 'web-ccccc'].map((n, i) => pod(n, 'web', 'running', { workedBy: `w${i + 1}` }));
  return { pods, list: { owner: 10, replicas: pods.map((p) => p.name) } };
}

describe('replicaset reconcile', () => {
  describe('creating replicas', () => {
    it('creates every missing replica from the template, listed in the same action', () => {
      const actions = reconcile(observed([]), desired(rs('web', 3)), opts());
      const a = only(actions, 'replicas');
      expect(a.create.map((p) => p.name)).to.deep.equal(['web-s0000', 'web-s0001', 'web-s0002']);
      expect(a.list).to.deep.equal({ owner: 10, replicas: ['web-s0000', 'web-s0001', 'web-s0002'] });
      expect(a.listModRevision).to.equal(0);
      expect(a.replicaSetModRevision).to.equal(10);
      const p = a.create[0]!;
      expect(p.type).to.equal('pod');
      expect(p.state).to.equal('created');
      // The template's metadata, minus keys only kith writes, plus the owner.
      expect(p.metadata).to.deep.equal({ app: 'web', replicaSet: 'web', templateHash: HASH });
      expect(p.spec.containers[0]!.image).to.equal('localhost/kith/busybox');
      expect(p.spec.ports).to.deep.equal([{ container: 80, name: 'http' }]);
      // Nothing runs yet, so there is nothing to avoid: the scheduler spreads the first batch.
      expect(p.spec.schedulingConstraints ?? null).to.equal(null);
    });

    it('names replicas <rs>-<5 [a-z0-9]> from the suffix source, skipping names already taken', () => {
      const taken = pod('web-dupe1', 'other', 'running');
      const source = ['dupe1', 'dupe1', 'fresh'];
      const a = only(reconcile(observed([taken]), desired(rs('web', 1)), opts({ suffix: () => source.shift() ?? 'zzzzz' })), 'replicas');
      expect(a.create.map((p) => p.name)).to.deep.equal(['web-fresh']);
    });

    it('creates nothing while the suffix source only collides, and tries again next round', () => {
      const taken = pod('web-dupe1', 'other', 'running');
      const actions = reconcile(observed([taken]), desired(rs('web', 1)), opts({ suffix: () => 'dupe1' }));
      expect(ofKind(actions, 'replicas')).to.deep.equal([
        { kind: 'replicas', replicaSet: 'web', replicaSetModRevision: 10, listModRevision: 0, members: [], list: { owner: 10, replicas: [] }, create: [], remove: [], release: [], forget: [], adopt: [] },
      ]);
    });

    it('does nothing for a ReplicaSet whose replicas are all live and listed', () => {
      const { pods, list } = steady();
      const status = { desired: 3, live: 3, running: 3, updated: 3, ready: 3, available: 3, updatedReady: 3, templateHash: HASH, rollout: 'complete', progressAt: new Date(0).toISOString() };
      const set = rs('web', 3, { stored: { name: 'web', state: 'ready', status } });
      expect(reconcile(observed(pods, { web: list }), desired(set), opts())).to.deep.equal([]);
    });

    it('counts replicas at every live state: created, scheduled, accepted, running', () => {
      const pods = ['created', 'scheduled', 'accepted', 'running'].map((s, i) => pod(`web-p000${i}`, 'web', s));
      const actions = reconcile(observed(pods, { web: { owner: 10, replicas: pods.map((p) => p.name) } }), desired(rs('web', 4)), opts());
      expect(ofKind(actions, 'replicas')).to.deep.equal([]);
    });

    it('leaves a ReplicaSet whose stored spec is invalid alone', () => {
      const bad = rs('web', 3, { spec: undefined });
      const { pods, list } = steady();
      expect(reconcile(observed(pods.slice(0, 1), { web: list }), desired(bad), opts())).to.deep.equal([]);
    });
  });

  describe('spreading', () => {
    it('keeps a replacement off workers that already run a live replica while a healthy one is free', () => {
      const { pods, list } = steady();
      const dead = { ...pods[0]!, state: 'dead' };
      const a = only(reconcile(observed([dead, pods[1]!, pods[2]!], { web: list }), desired(rs('web', 3)), opts()), 'replicas');
      expect(a.create).to.have.length(1);
      expect(a.create[0]!.spec.schedulingConstraints).to.deep.equal({ cannotBeScheduledOn: ['w2', 'w3'] });
    });

    it('adds no constraint when every healthy worker already runs one (the scheduler then doubles up)', () => {
      const { pods, list } = steady();
      const dead = { ...pods[0]!, state: 'dead' };
      const o = observed([dead, pods[1]!, pods[2]!], { web: list }, { healthyWorkers: new Set(['w2', 'w3']) });
      const a = only(reconcile(o, desired(rs('web', 3)), opts()), 'replicas');
      expect(a.create[0]!.spec.schedulingConstraints ?? null).to.equal(null);
    });

    it('counts only the workers the template allows, and keeps the template constraints', () => {
      const template = { spec: { containers: [], schedulingConstraints: { mayBeScheduledOn: ['w1', 'w2'], cannotBeScheduledOn: ['w9'] } } };
      const p = pod('web-aaaaa', 'web', 'running', { workedBy: 'w1' });
      const list = { owner: 10, replicas: ['web-aaaaa'] };
      // w3 is healthy and free, but not allowed: w2 is the only free one.
      let a = only(reconcile(observed([p], { web: list }), desired(rs('web', 2, { template })), opts()), 'replicas');
      expect(a.create[0]!.spec.schedulingConstraints).to.deep.equal({ mayBeScheduledOn: ['w1', 'w2'], cannotBeScheduledOn: ['w1', 'w9'] });
      // With w2 unhealthy no allowed worker is free: the template's constraints stand alone.
      a = only(reconcile(observed([p], { web: list }, { healthyWorkers: new Set(['w1', 'w3']) }), desired(rs('web', 2, { template })), opts()), 'replicas');
      expect(a.create[0]!.spec.schedulingConstraints).to.deep.equal({ mayBeScheduledOn: ['w1', 'w2'], cannotBeScheduledOn: ['w9'] });
    });

    it('constrains only as many new replicas as there are free workers', () => {
      const p = pod('web-aaaaa', 'web', 'running', { workedBy: 'w1' });
      const a = only(reconcile(observed([p], { web: { owner: 10, replicas: ['web-aaaaa'] } }), desired(rs('web', 5)), opts()), 'replicas');
      const constrained = a.create.filter((c) => c.spec.schedulingConstraints?.cannotBeScheduledOn?.includes('w1'));
      expect(a.create).to.have.length(4);
      expect(constrained).to.have.length(2);
    });
  });

  describe('replacing replicas', () => {
    for (const state of ['exitSuccess', 'exitFailure', 'errored', 'killed', 'abandoned', 'dead']) {
      it(`replaces a replica that ended ${state}: released from the list (guarded), a new one created`, () => {
        const { pods, list } = steady();
        const ended = { ...pods[1]!, state, modRevision: 300 };
        const a = only(reconcile(observed([pods[0]!, ended, pods[2]!], { web: list }), desired(rs('web', 3)), opts()), 'replicas');
        expect(a.release).to.deep.equal([{ name: 'web-bbbbb', modRevision: 300 }]);
        expect(a.create.map((p) => p.name)).to.deep.equal(['web-s0000']);
        expect(a.list.replicas).to.deep.equal(['web-aaaaa', 'web-ccccc', 'web-s0000']);
        expect(a.remove).to.deep.equal([]);
      });
    }

    it('replaces a replica whose pod was deleted: forgotten (guarded on its absence), a new one created', () => {
      const { pods, list } = steady();
      const a = only(reconcile(observed([pods[0]!, pods[2]!], { web: list }), desired(rs('web', 3)), opts()), 'replicas');
      expect(a.forget).to.deep.equal(['web-bbbbb']);
      expect(a.create).to.have.length(1);
      expect(a.list.replicas).to.deep.equal(['web-aaaaa', 'web-ccccc', 'web-s0000']);
    });

    it('treats a replica this controller created and has not seen yet as live', () => {
      const { pods, list } = steady();
      const o = observed([pods[0]!, pods[2]!], { web: list }, { created: new Set(['web-bbbbb']) });
      expect(ofKind(reconcile(o, desired(rs('web', 3)), opts()), 'replicas')).to.deep.equal([]);
    });

    it('treats a pod this controller deleted and still sees as gone', () => {
      const { pods, list } = steady();
      const o = observed(pods, { web: list }, { deleted: new Set(['web-bbbbb']) });
      const a = only(reconcile(o, desired(rs('web', 3)), opts()), 'replicas');
      expect(a.forget).to.deep.equal(['web-bbbbb']);
      expect(a.create).to.have.length(1);
    });

    it('while the ReplicaSet is held back (its replicas keep failing), releases ended replicas but creates none', () => {
      const { pods, list } = steady();
      const failed = { ...pods[1]!, state: 'errored', modRevision: 301 };
      const o = observed([pods[0]!, failed, pods[2]!], { web: list }, { held: new Set(['web']) });
      const a = only(reconcile(o, desired(rs('web', 3)), opts()), 'replicas');
      expect(a.release).to.deep.equal([{ name: 'web-bbbbb', modRevision: 301 }]);
      expect(a.create).to.deep.equal([]);
      expect(a.list.replicas).to.deep.equal(['web-aaaaa', 'web-ccccc']);
      // Held back, it still scales down.
      const down = only(reconcile(observed(pods, { web: list }, { held: new Set(['web']) }), desired(rs('web', 1)), opts()), 'replicas');
      expect(down.remove).to.have.length(2);
    });

    it('deletes ended replicas outside the list beyond the few kept, oldest first', () => {
      const { pods, list } = steady();
      const ended = [1, 2, 3, 4].map((i) => pod(`web-old0${i}`, 'web', 'exitFailure', { modRevision: 200 + i }));
      const o = observed([...pods, ...ended], { web: list });
      const deletes = ofKind(reconcile(o, desired(rs('web', 3)), opts({ keepEnded: 2 })), 'delete');
      expect(deletes.map((d) => [d.pod.name, d.reason, d.ownerAbsent])).to.deep.equal([
        ['web-old02', 'ended', false],
        ['web-old01', 'ended', false],
      ]);
      expect(deletes[0]!.pod.modRevision).to.equal(202);
    });

    it('deletes a replaced replica once released when nothing is kept, never while still listed', () => {
      const { pods, list } = steady();
      const ended = { ...pods[0]!, state: 'dead' };
      // Round 1: released and replaced; not deleted yet (it is still in the list being rewritten).
      const r1 = reconcile(observed([ended, pods[1]!, pods[2]!], { web: list }), desired(rs('web', 3)), opts());
      expect(ofKind(r1, 'delete')).to.deep.equal([]);
      // Round 2: the list no longer names it.
      const newList = { owner: 10, replicas: ['web-bbbbb', 'web-ccccc', 'web-s0000'] };
      const fresh = pod('web-s0000', 'web', 'created');
      const r2 = reconcile(observed([ended, pods[1]!, pods[2]!, fresh], { web: newList }), desired(rs('web', 3)), opts());
      expect(ofKind(r2, 'delete').map((d) => d.pod.name)).to.deep.equal(['web-aaaaa']);
      expect(ofKind(r2, 'replicas')).to.deep.equal([]);
    });
  });

  describe('scaling', () => {
    it('scales up by creating the difference', () => {
      const { pods, list } = steady();
      const a = only(reconcile(observed(pods, { web: list }), desired(rs('web', 5)), opts()), 'replicas');
      expect(a.create).to.have.length(2);
      expect(a.list.replicas).to.have.length(5);
    });

    it('scales down removing replicas not yet running first, then the newest', () => {
      const pods = [
        pod('web-run01', 'web', 'running', { createRevision: 10 }),
        pod('web-run02', 'web', 'running', { createRevision: 20 }),
        pod('web-sch01', 'web', 'scheduled', { createRevision: 5 }),
        pod('web-new01', 'web', 'created', { createRevision: 30 }),
      ];
      const list = { owner: 10, replicas: pods.map((p) => p.name) };
      const removed = (n: number) => only(reconcile(observed(pods, { web: list }), desired(rs('web', n)), opts()), 'replicas').remove.map((r) => r.name);
      expect(removed(3)).to.deep.equal(['web-new01']);
      expect(removed(2)).to.deep.equal(['web-new01', 'web-sch01']);
      expect(removed(1)).to.deep.equal(['web-new01', 'web-sch01', 'web-run02']);
      expect(removed(0)).to.deep.equal(['web-new01', 'web-sch01', 'web-run02', 'web-run01']);
      const a = only(reconcile(observed(pods, { web: list }), desired(rs('web', 1)), opts()), 'replicas');
      expect(a.list.replicas).to.deep.equal(['web-run01']);
      expect(a.create).to.deep.equal([]);
      expect(a.remove.find((r) => r.name === 'web-run02')!.modRevision).to.equal(pods[1]!.modRevision);
    });

    it('on scale-down leaves replicas it has not seen yet for a later round (they cannot be guarded)', () => {
      const p = pod('web-run01', 'web', 'running');
      const o = observed([p], { web: { owner: 10, replicas: ['web-run01', 'web-unseen'] } }, { created: new Set(['web-unseen']) });
      const a = only(reconcile(o, desired(rs('web', 0)), opts()), 'replicas');
      expect(a.remove.map((r) => r.name)).to.deep.equal(['web-run01']);
      expect(a.list.replicas).to.deep.equal(['web-unseen']);
    });
  });

  describe('ReplicaSet deletion', () => {
    it('deletes every pod of a ReplicaSet that no longer exists, guarded on its absence, and drops its list', () => {
      const { pods, list } = steady();
      const ended = pod('web-old01', 'web', 'dead');
      const other = pod('api-aaaaa', 'api', 'running');
      const lists = { web: { ...list, modRevision: 77 }, api: { owner: 10, replicas: ['api-aaaaa'] } };
      const actions = reconcile(observed([...pods, ended, other], lists), desired(rs('api', 1)), opts());
      const deletes = ofKind(actions, 'delete');
      expect(deletes.map((d) => d.pod.name).sort()).to.deep.equal(['web-aaaaa', 'web-bbbbb', 'web-ccccc', 'web-old01']);
      expect(deletes.every((d) => d.ownerAbsent && d.reason === 'owner-deleted' && d.replicaSet === 'web')).to.equal(true);
      expect(ofKind(actions, 'delete').some((d) => d.pod.name === 'api-aaaaa')).to.equal(false);
      expect(only(actions, 'drop-list')).to.deep.equal({ kind: 'drop-list', replicaSet: 'web', listModRevision: 77 });
    });

    it('does not drop a list this controller has just written and not seen', () => {
      const actions = reconcile(observed([], { web: { owner: 10, replicas: [], modRevision: 77 } }, { listWritten: new Map([['web', 80]]) }), desired(), opts());
      expect(actions).to.deep.equal([]);
    });

    it('treats a list left by an earlier ReplicaSet of the same name as empty, and adopts the live pods', () => {
      const { pods, list } = steady();
      const recreated = rs('web', 2, { createRevision: 500, modRevision: 500 });
      const a = only(reconcile(observed(pods, { web: { ...list, owner: 10 } }), desired(recreated), opts()), 'replicas');
      expect(a.list.owner).to.equal(500);
      expect(a.adopt.map((p) => p.name)).to.deep.equal(['web-aaaaa', 'web-bbbbb']);
      expect(a.remove.map((p) => p.name)).to.deep.equal(['web-ccccc']);
      expect(a.list.replicas).to.deep.equal(['web-aaaaa', 'web-bbbbb']);
    });
  });

  describe('a damaged list', () => {
    it('rewrites a list that names a replica twice, counting it once', () => {
      const { pods, list } = steady();
      const a = only(reconcile(observed(pods, { web: { owner: 10, replicas: [...list.replicas, 'web-aaaaa'] } }), desired(rs('web', 3)), opts()), 'replicas');
      expect(a.list.replicas).to.deep.equal(list.replicas);
      expect(a.create).to.deep.equal([]);
    });
  });

  describe('strays', () => {
    it('adopts live pods of the ReplicaSet missing from its list while there is room, deletes the rest', () => {
      const listed = pod('web-aaaaa', 'web', 'running');
      const strays = [pod('web-xxxx1', 'web', 'running'), pod('web-xxxx2', 'web', 'created')];
      const a = only(reconcile(observed([listed, ...strays], { web: { owner: 10, replicas: ['web-aaaaa'] } }), desired(rs('web', 2)), opts()), 'replicas');
      expect(a.adopt).to.deep.equal([{ name: 'web-xxxx1', modRevision: strays[0]!.modRevision }]);
      expect(a.remove).to.deep.equal([{ name: 'web-xxxx2', modRevision: strays[1]!.modRevision }]);
      expect(a.create).to.deep.equal([]);
      expect(a.list.replicas).to.deep.equal(['web-aaaaa', 'web-xxxx1']);
    });
  });

  describe('status', () => {
    it('writes desired, live and running into the stored ReplicaSet, keeping its other fields, guarded by its mod revision', () => {
      const pods = [pod('web-a0001', 'web', 'running'), pod('web-a0002', 'web', 'scheduled'), pod('web-a0003', 'web', 'dead')];
      const stored = { name: 'web', type: 'replicaset', metadata: { team: 'x' }, spec: { replicas: 2 } };
      const s = only(reconcile(observed(pods, { web: { owner: 10, replicas: ['web-a0001', 'web-a0002'] } }), desired(rs('web', 2, { stored, modRevision: 42 })), opts()), 'status');
      expect(s.modRevision).to.equal(42);
      const status = { desired: 2, live: 2, running: 1, updated: 2, ready: 1, available: 1, updatedReady: 1, templateHash: HASH, rollout: 'progressing', progressAt: new Date(0).toISOString() };
      expect(s.status).to.deep.equal(status);
      expect(s.state).to.equal('progressing');
      expect(s.value).to.deep.equal({ ...stored, state: 'progressing', status });
    });

    it('writes no status in a round that changes the replicas (it would void their guard)', () => {
      const actions = reconcile(observed([]), desired(rs('web', 3)), opts());
      expect(actions.map((a) => a.kind)).to.deep.equal(['replicas']);
    });

    it("is 'ready' when every desired replica runs, and not rewritten when unchanged", () => {
      const { pods, list } = steady();
      const s = only(reconcile(observed(pods, { web: list }), desired(rs('web', 3)), opts()), 'status');
      expect(s.state).to.equal('ready');
      const written = rs('web', 3, { stored: s.value });
      expect(ofKind(reconcile(observed(pods, { web: list }), desired(written), opts()), 'status')).to.deep.equal([]);
    });

    it('waits for its own last status write to be seen before writing another', () => {
      const o = observed([], {}, { statusWritten: new Map([['web', 11]]) });
      expect(ofKind(reconcile(o, desired(rs('web', 0)), opts()), 'status')).to.deep.equal([]);
    });
  });

  describe('own writes not yet seen', () => {
    it('plans nothing for a ReplicaSet whose list it changed at a revision the view has not reached', () => {
      const o = observed([], { web: { owner: 10, replicas: [], modRevision: 50 } }, { listWritten: new Map([['web', 60]]) });
      expect(ofKind(reconcile(o, desired(rs('web', 3)), opts()), 'replicas')).to.deep.equal([]);
    });
  });

  describe('transactions', () => {
    it('creates a replica exactly as the API creates a pod, with the list, in one guarded transaction', () => {
      const a = only(reconcile(observed([]), desired(rs('web', 1, { modRevision: 12 })), opts()), 'replicas');
      const steps = replicaSteps(a);
      expect(steps).to.have.length(1);
      const t = stepTransaction(a, steps[0]!, 0);
      expect(t.if).to.deep.equal([
        { key: 'resource/replicaset/web', modRevision: 12 },
        { key: 'replicaset/replicas/web', modRevision: 0 },
        { key: 'resource/pod/web-s0000', createRevision: 0 },
      ]);
      const podJson = JSON.stringify(a.create[0]);
      expect(t.then).to.deep.equal([
        { put: 'replicaset/replicas/web', value: JSON.stringify({ owner: 10, replicas: ['web-s0000'] }) },
        { put: 'resource/pod/web-s0000', value: podJson },
        { put: 'pod/unscheduled/web-s0000', value: podJson },
      ]);
    });

    it('splits a replica change into bounded steps, the list growing and shrinking with them', () => {
      const { pods, list } = steady();
      const dead = { ...pods[0]!, state: 'dead' };
      const strays = [pod('web-xxxx1', 'web', 'running'), pod('web-xxxx2', 'web', 'running')];
      // Two listed live, one ended, one vanished listed name, two live strays; desired 5.
      const o = observed([dead, pods[1]!, pods[2]!, ...strays], { web: { owner: 10, replicas: [...list.replicas, 'web-gone1'] } });
      const a = only(reconcile(o, desired(rs('web', 5)), opts()), 'replicas');
      const steps = replicaSteps(a);
      expect(steps.map((s) => [s.created, s.removed, s.list])).to.deep.equal([
        [['web-s0000'], [], ['web-bbbbb', 'web-ccccc', 'web-xxxx1', 'web-xxxx2', 'web-s0000']],
      ]);
      expect(steps[0]!.if).to.deep.include({ key: 'resource/pod/web-aaaaa', modRevision: dead.modRevision });
      expect(steps[0]!.if).to.deep.include({ key: 'resource/pod/web-gone1', createRevision: 0 });
      expect(steps.at(-1)!.list).to.deep.equal(a.list.replicas);

      const many = only(reconcile(observed([]), desired(rs('big', 250)), opts()), 'replicas');
      const bigSteps = replicaSteps(many);
      expect(bigSteps).to.have.length(Math.ceil(250 / MAX_PODS_PER_STEP));
      expect(bigSteps.every((s) => s.then.length <= 2 * MAX_PODS_PER_STEP && s.if.length <= MAX_GUARDS)).to.equal(true);
      expect(bigSteps.map((s) => s.list.length)).to.deep.equal(bigSteps.map((_, i) => Math.min(250, (i + 1) * MAX_PODS_PER_STEP)));
      expect(bigSteps.flatMap((s) => s.created)).to.deep.equal(many.create.map((p) => p.name));
    });

    it('packs the guards of many ended replicas into steps of a bounded size', () => {
      const ended = Array.from({ length: 230 }, (_, i) => pod(`web-e${String(i).padStart(4, '0')}`, 'web', 'exitSuccess'));
      const o = observed(ended, { web: { owner: 10, replicas: ended.map((p) => p.name) } });
      const a = only(reconcile(o, desired(rs('web', 1)), opts()), 'replicas');
      const steps = replicaSteps(a);
      expect(steps.every((s) => s.if.length <= MAX_GUARDS)).to.equal(true);
      expect(steps.flatMap((s) => s.if)).to.have.length(231);
      expect(steps.at(-1)!.list).to.deep.equal(['web-s0000']);
    });

    it('deletes a pod and its unscheduled marker guarded by its mod revision (and its owner’s absence)', () => {
      const t = transaction({ kind: 'delete', pod: { name: 'web-aaaaa', modRevision: 9 }, replicaSet: 'web', reason: 'owner-deleted', ownerAbsent: true });
      expect(t).to.deep.equal({
        if: [
          { key: 'resource/pod/web-aaaaa', modRevision: 9 },
          { key: 'resource/replicaset/web', createRevision: 0 },
        ],
        then: [{ delete: 'resource/pod/web-aaaaa' }, { delete: 'pod/unscheduled/web-aaaaa' }],
      });
    });
  });

  describe('controllers racing (on a model of etcd’s compares)', () => {
    it('two controllers with the same view: one fills the gap, the other loses on the list guard', () => {
      const kv = new KvModel();
      const r = kv.put(replicaSetKey('web'), '{}');
      const set = rs('web', 3, { createRevision: r, modRevision: r });
      const a = only(reconcile(observed([]), desired(set), opts()), 'replicas');
      const b = only(reconcile(observed([]), desired(set), opts({ suffix: suffixes('b') })), 'replicas');
      expect(commitChain(kv, a)).to.equal(true);
      expect(commitChain(kv, b)).to.equal(false);
      expect(kv.list('resource/pod/')).to.have.length(3);
    });

    it('a controller that sees the list before the pods of the same commit still cannot add a replica', () => {
      const kv = new KvModel();
      const r = kv.put(replicaSetKey('web'), '{}');
      const set = rs('web', 2, { createRevision: r, modRevision: r });
      const first = only(reconcile(observed([]), desired(set), opts()), 'replicas');
      commitChain(kv, first);
      const committed = { revision: kv.get(replicaListKey('web'))!.modRevision };
      // The other controller: the new list is in view, its pods are not (another watch stream, behind).
      const list = JSON.parse(kv.get(replicaListKey('web'))!.value) as { owner: number; replicas: string[] };
      const lagging = observed([], { web: { ...list, modRevision: committed.revision } });
      const a = only(reconcile(lagging, desired(set), opts({ suffix: () => 'zzzzz' })), 'replicas');
      // It takes the listed names for deleted pods and would replace them, but the absence guard fails.
      expect(a.forget).to.have.length(2);
      expect(commitChain(kv, a)).to.equal(false);
      expect(kv.list('resource/pod/')).to.have.length(2);
    });

    it('a controller that sees the pods before the list cannot take them for strays and add more', () => {
      const kv = new KvModel();
      const r = kv.put(replicaSetKey('web'), '{}');
      const set = rs('web', 2, { createRevision: r, modRevision: r });
      commitChain(kv, only(reconcile(observed([]), desired(set), opts()), 'replicas'));
      const pods = kv.list('resource/pod/').map((p) => pod(p.key.slice('resource/pod/'.length), 'web', 'created', { createRevision: p.createRevision, modRevision: p.modRevision }));
      // Pods in view, the list not yet: it adopts them, guarded by the list it saw (none), and loses.
      const a = only(reconcile(observed(pods), desired(set), opts()), 'replicas');
      expect(a.adopt).to.have.length(2);
      expect(commitChain(kv, a)).to.equal(false);
    });
  });
});
