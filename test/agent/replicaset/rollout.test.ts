import { expect } from 'chai';
import { replicaSetSpec } from '../../../api/schemas.js';
import {
  bounds,
  canonicalJson,
  legacyPodMatches,
  podReady,
  rolloutState,
  rolloutStep,
  templateHash,
  type Bounds,
  type RolloutReplica,
} from '../../../agent/replicaset/rollout.js';
import { nextHistory, type History } from '../../../agent/replicaset/history.js';
import { reconcile, replicaPod, type DesiredReplicaSet, type ObservedPod } from '../../../agent/replicaset/reconcile.js';

const TEMPLATE = { metadata: { app: 'web' }, spec: { containers: [{ name: 'c', image: 'localhost/kith/busybox', cmd: ['httpd', '-f'] }], ports: [{ container: 80, name: 'http' }] } };
const spec = (over: Record<string, unknown> = {}) => replicaSetSpec.parse({ replicas: 3, template: TEMPLATE, ...over });

/** A fleet of replicas on plain data: each step's removals happen, its creations come up unready, and the test decides when they get ready. */
class Fleet {
  private next = 0;
  replicas: RolloutReplica[] = [];
  maxAlive = 0;
  minReady = Infinity;

  constructor(n: number, current = true) {
    for (let i = 0; i < n; i++) this.add(current, true);
  }

  add(current: boolean, ready: boolean): void {
    this.replicas.push({ name: `p${this.next}`, current, ready, seen: true, running: ready, createRevision: this.next++ });
  }

  /** Applies one step; returns what it did. */
  step(replicas: number, b: Bounds): { removed: number; created: number } {
    const s = rolloutStep(replicas, b, this.replicas);
    const gone = new Set(s.remove);
    this.replicas = this.replicas.filter((r) => !gone.has(r.name));
    for (let i = 0; i < s.create; i++) this.add(true, false);
    this.observe();
    return { removed: s.remove.length, created: s.create };
  }

  /** Every replica that is not ready becomes ready (its worker started it and its probes pass). */
  readyAll(): void {
    for (const r of this.replicas) if (r.current) Object.assign(r, { ready: true, running: true });
    this.observe();
  }

  observe(): void {
    this.maxAlive = Math.max(this.maxAlive, this.replicas.length);
    this.minReady = Math.min(this.minReady, this.replicas.filter((r) => r.ready).length);
  }

  get old(): number {
    return this.replicas.filter((r) => !r.current).length;
  }

  get done(): boolean {
    return this.replicas.every((r) => r.current && r.ready);
  }
}

/** Steps and readies until every replica is current and ready (bounded); returns the steps taken. */
function roll(f: Fleet, replicas: number, b: Bounds): number {
  for (let i = 0; i < 200; i++) {
    const { removed, created } = f.step(replicas, b);
    if (f.done && f.replicas.length === replicas) return i;
    if (removed === 0 && created === 0) f.readyAll();
  }
  throw new Error('rollout did not complete in 200 steps');
}

describe('replicaset rollout (pure decisions)', () => {
  describe('template hash', () => {
    it('is stable: the same template with keys in another order gives the same 10 hex digits', () => {
      const a = spec().template;
      const b = replicaSetSpec.parse({ template: { spec: { ports: [{ name: 'http', container: 80 }], containers: [{ cmd: ['httpd', '-f'], image: 'localhost/kith/busybox', name: 'c' }] }, metadata: { app: 'web' } }, replicas: 9 }).template;
      expect(templateHash(a)).to.match(/^[0-9a-f]{10}$/);
      expect(templateHash(b)).to.equal(templateHash(a));
      expect(canonicalJson({ b: 1, a: [{ d: 2, c: 3 }] })).to.equal('{"a":[{"c":3,"d":2}],"b":1}');
    });

    it('changes with the image, the command, the labels; not with metadata keys kith writes', () => {
      const h = templateHash(spec().template);
      const other = (t: unknown) => templateHash(replicaSetSpec.parse({ replicas: 1, template: t }).template);
      expect(other({ ...TEMPLATE, spec: { ...TEMPLATE.spec, containers: [{ ...TEMPLATE.spec.containers[0], image: 'localhost/kith/other' }] } })).not.to.equal(h);
      expect(other({ ...TEMPLATE, spec: { ...TEMPLATE.spec, containers: [{ ...TEMPLATE.spec.containers[0], cmd: ['sleep', '1'] }] } })).not.to.equal(h);
      expect(other({ ...TEMPLATE, metadata: { app: 'api' } })).not.to.equal(h);
      expect(other({ ...TEMPLATE, metadata: { app: 'web', workedBy: 'x', templateHash: 'y' } })).to.equal(h);
    });

    it('new replicas carry it in metadata.templateHash', () => {
      const s = spec();
      expect(replicaPod('web', s, 'web-aaaaa', []).metadata.templateHash).to.equal(templateHash(s.template));
    });

    it('a pod made before hashes counts as the current template when its spec is the template (spreading constraints aside), else as old', () => {
      const s = spec();
      const made = replicaPod('web', s, 'web-aaaaa', ['w1', 'w2']);
      const { templateHash: _h, ...metadata } = made.metadata;
      expect(legacyPodMatches(s.template, { spec: made.spec, metadata })).to.equal(true);
      const changed = spec({ template: { ...TEMPLATE, spec: { ...TEMPLATE.spec, containers: [{ name: 'c', image: 'localhost/kith/other' }] } } });
      expect(legacyPodMatches(changed.template, { spec: made.spec, metadata })).to.equal(false);
      expect(legacyPodMatches(s.template, { spec: made.spec, metadata: { replicaSet: 'web' } }), 'a label missing').to.equal(false);
      expect(legacyPodMatches(s.template, { spec: 'garbage', metadata })).to.equal(false);
    });

    it('reconcile rolls nothing for legacy pods of the current template, and rolls those of another', () => {
      const s = spec();
      const stored = { name: 'web', type: 'replicaset', metadata: {}, spec: s };
      const set: DesiredReplicaSet = { name: 'web', createRevision: 10, modRevision: 10, stored, spec: s };
      const legacy = (name: string, image: string): ObservedPod => {
        const p = replicaPod('web', spec({ template: { ...TEMPLATE, spec: { ...TEMPLATE.spec, containers: [{ ...TEMPLATE.spec.containers[0], image }] } } }), name, []);
        const { templateHash: _h, ...metadata } = p.metadata;
        return { name, replicaSet: 'web', state: 'running', legacy: { spec: p.spec, metadata }, createRevision: 20, modRevision: 20 };
      };
      const run = (image: string) => {
        const pods = ['web-aaaaa', 'web-bbbbb', 'web-ccccc'].map((n) => legacy(n, image));
        return reconcile(
          { pods: new Map(pods.map((p) => [p.name, p])), replicaLists: new Map([['web', { owner: 10, replicas: pods.map((p) => p.name), modRevision: 30 }]]), healthyWorkers: new Set(), created: new Set(), deleted: new Set(), listWritten: new Map(), statusWritten: new Map() },
          new Map([['web', set]]),
          { suffix: () => 'zzzzz', keepEnded: 0 },
        );
      };
      expect(run('localhost/kith/busybox').filter((a) => a.kind === 'replicas')).to.deep.equal([]);
      const rolled = run('localhost/kith/old').find((a) => a.kind === 'replicas');
      expect(rolled && rolled.kind === 'replicas' && rolled.create.map((p) => p.metadata.templateHash)).to.deep.equal([templateHash(s.template)]);
      expect(rolled && rolled.kind === 'replicas' && rolled.remove).to.deep.equal([]);
    });
  });

  describe('strategy bounds', () => {
    it('defaults to maxSurge 1, maxUnavailable 0', () => {
      expect(bounds(spec())).to.deep.equal({ maxSurge: 1, maxUnavailable: 0 });
    });

    it('rounds percentages as Kubernetes: maxSurge up, maxUnavailable down', () => {
      expect(bounds(spec({ replicas: 10, strategy: { maxSurge: '25%', maxUnavailable: '25%' } }))).to.deep.equal({ maxSurge: 3, maxUnavailable: 2 });
      expect(bounds(spec({ replicas: 3, strategy: { maxSurge: '10%', maxUnavailable: '50%' } }))).to.deep.equal({ maxSurge: 1, maxUnavailable: 1 });
      expect(bounds(spec({ replicas: 4, strategy: { maxSurge: '50%', maxUnavailable: '0%' } }))).to.deep.equal({ maxSurge: 2, maxUnavailable: 0 });
      expect(bounds(spec({ replicas: 50, strategy: { maxSurge: 5, maxUnavailable: '100%' } }))).to.deep.equal({ maxSurge: 5, maxUnavailable: 50 });
    });

    it('percentages that both come to 0 give maxUnavailable 1, so the rollout can move', () => {
      expect(bounds(spec({ replicas: 0, strategy: { maxSurge: '25%', maxUnavailable: '25%' } }))).to.deep.equal({ maxSurge: 0, maxUnavailable: 1 });
      expect(bounds(spec({ replicas: 3, strategy: { maxSurge: 0, maxUnavailable: '10%' } }))).to.deep.equal({ maxSurge: 0, maxUnavailable: 1 });
    });

    it('refuses both zero, naming the field, and bad values', () => {
      const issue = (strategy: unknown) => {
        const r = replicaSetSpec.safeParse({ replicas: 3, template: TEMPLATE, strategy });
        return r.success ? undefined : r.error.issues[0]!.path.join('.');
      };
      expect(issue({ maxSurge: 0, maxUnavailable: 0 })).to.equal('strategy.maxUnavailable');
      expect(issue({ maxSurge: '0%' })).to.equal('strategy.maxUnavailable');
      expect(issue({ maxSurge: 'lots' })).to.equal('strategy.maxSurge');
      expect(issue({ maxUnavailable: '150%' })).to.equal('strategy.maxUnavailable');
      expect(issue({ maxSurge: -1 })).to.equal('strategy.maxSurge');
      expect(issue({ maxSurge: 2, maxUnavailable: '30%' })).to.equal(undefined);
      const r = replicaSetSpec.safeParse({ replicas: 3, template: TEMPLATE, progressDeadlineSeconds: 0 });
      expect(r.success ? undefined : r.error.issues[0]!.path.join('.')).to.equal('progressDeadlineSeconds');
    });
  });

  describe('rolling steps', () => {
    it('with the defaults, one new replica at a time, an old one going only once a new one is ready', () => {
      const f = new Fleet(3, false);
      const b = { maxSurge: 1, maxUnavailable: 0 };
      expect(f.step(3, b)).to.deep.equal({ removed: 0, created: 1 });
      expect(f.step(3, b), 'nothing while the new one is not ready').to.deep.equal({ removed: 0, created: 0 });
      f.readyAll();
      expect(f.step(3, b), 'an old one goes, the next new one comes').to.deep.equal({ removed: 1, created: 1 });
      roll(f, 3, b);
      expect(f.old).to.equal(0);
      expect(f.maxAlive).to.equal(4);
      expect(f.minReady).to.equal(3);
    });

    for (const [replicas, b] of [
      [10, { maxSurge: 3, maxUnavailable: 2 }],
      [5, { maxSurge: 0, maxUnavailable: 1 }],
      [50, { maxSurge: 5, maxUnavailable: 0 }],
      [4, { maxSurge: 4, maxUnavailable: 4 }],
    ] as const) {
      it(`${replicas} replicas, maxSurge ${b.maxSurge}, maxUnavailable ${b.maxUnavailable}: never more than replicas + maxSurge, never fewer ready than replicas - maxUnavailable`, () => {
        const f = new Fleet(replicas, false);
        roll(f, replicas, b);
        expect(f.replicas.length).to.equal(replicas);
        expect(f.maxAlive).to.be.at.most(replicas + b.maxSurge);
        expect(f.minReady).to.be.at.least(replicas - b.maxUnavailable);
      });
    }

    it('removes unready old replicas before ready ones, and never lets ready ones fall below the floor', () => {
      const f = new Fleet(3, false);
      f.replicas[0]!.ready = false;
      const b = { maxSurge: 1, maxUnavailable: 0 };
      // As Kubernetes: the unready one stays while removing it leaves no room below the floor; a new one comes in the surge.
      expect(rolloutStep(3, b, f.replicas)).to.deep.equal({ remove: [], create: 1 });
      f.step(3, b);
      f.readyAll();
      // Now one can go: the unready old one, not a ready one.
      expect(rolloutStep(3, b, f.replicas)).to.deep.equal({ remove: ['p0'], create: 1 });
    });

    it('a second template change mid-rollout: the newest template wins, pods of both older ones are old, the bound holds', () => {
      const f = new Fleet(4, false);
      const b = { maxSurge: 1, maxUnavailable: 0 };
      f.step(4, b);
      f.readyAll();
      f.step(4, b);
      // A new template: every replica so far, of either older template, is old now.
      for (const r of f.replicas) r.current = false;
      const unready = f.replicas.filter((r) => !r.ready).map((r) => r.name);
      const s = rolloutStep(4, b, f.replicas);
      expect(s.remove, 'the half-made replica of the middle template goes first').to.include.members(unready);
      roll(f, 4, b);
      expect(f.old).to.equal(0);
      expect(f.maxAlive).to.be.at.most(5);
      expect(f.minReady).to.be.at.least(4);
    });

    it('scale up mid-rollout: new replicas grow to the new count within the new bound', () => {
      const f = new Fleet(3, false);
      const b = { maxSurge: 1, maxUnavailable: 0 };
      f.step(3, b);
      f.readyAll();
      const s = rolloutStep(6, b, f.replicas);
      expect(s.remove, 'ready replicas are below the new floor: no old one goes').to.deep.equal([]);
      expect(s.create).to.equal(3);
      roll(f, 6, b);
      expect(f.replicas.length).to.equal(6);
      expect(f.maxAlive).to.be.at.most(7);
    });

    it('scale down mid-rollout: old replicas go at once down to replicas + maxSurge, then the rollout goes on', () => {
      const f = new Fleet(6, false);
      const b = { maxSurge: 1, maxUnavailable: 0 };
      f.step(6, b);
      const s = rolloutStep(2, b, f.replicas);
      expect(f.replicas.length - s.remove.length + s.create).to.be.at.most(3);
      expect(s.remove.length).to.equal(4);
      roll(f, 2, b);
      expect(f.replicas.length).to.equal(2);
      expect(f.old).to.equal(0);
    });

    it('current replicas beyond replicas go as on a scale-down; unseen ones are left for a later round', () => {
      const live: RolloutReplica[] = [
        { name: 'a', current: true, ready: true, seen: true, running: true, createRevision: 1 },
        { name: 'b', current: true, ready: true, seen: true, running: true, createRevision: 2 },
        { name: 'c', current: true, ready: false, seen: false, running: false, createRevision: 3 },
      ];
      expect(rolloutStep(1, { maxSurge: 1, maxUnavailable: 0 }, live)).to.deep.equal({ remove: ['b', 'a'].slice(0, 2), create: 0 });
    });
  });

  describe('rollout state and readiness', () => {
    const counts = { desired: 3, updated: 3, ready: 3, updatedReady: 3, live: 3 };
    it('complete when every replica is current and ready; stalled once the deadline passes without progress', () => {
      expect(rolloutState(counts, 0, 10_000_000, 600)).to.equal('complete');
      const half = { ...counts, updated: 1, updatedReady: 0, live: 4 };
      expect(rolloutState(half, 1000, 1000 + 599_999, 600)).to.equal('progressing');
      expect(rolloutState(half, 1000, 1000 + 600_000, 600)).to.equal('stalled');
    });

    it('a pod is ready when metadata.ready says so, or while no pod has the field, when it runs', () => {
      expect(podReady({ state: 'running' }, false)).to.equal(true);
      expect(podReady({ state: 'running' }, true)).to.equal(false);
      expect(podReady({ state: 'running', ready: 'true' }, true)).to.equal(true);
      expect(podReady({ state: 'running', ready: 'false' }, true)).to.equal(false);
      expect(podReady({ state: 'scheduled', ready: 'true' }, true)).to.equal(false);
    });
  });
});

describe('replicaset rollout history (pure)', () => {
  const t = (image: string) => replicaSetSpec.parse({ replicas: 1, template: { spec: { containers: [{ name: 'c', image }] } } }).template;
  const add = (h: History | undefined, image: string, owner = 10) => nextHistory('web', owner, t(image), templateHash(t(image)), h, '2026-01-01T00:00:00.000Z') ?? h;

  it('numbers templates as revisions, oldest first, and keeps the last 10', () => {
    let h: History | undefined;
    for (let i = 1; i <= 12; i++) h = add(h, `img${i}`);
    expect(h!.spec.revisions.map((r) => r.revision)).to.deep.equal([3, 4, 5, 6, 7, 8, 9, 10, 11, 12]);
    expect(h!.spec.revisions.at(-1)!.template).to.deep.equal(t('img12'));
    expect(nextHistory('web', 10, t('img12'), templateHash(t('img12')), h, 'x'), 'the newest is current: nothing to write').to.equal(undefined);
  });

  it('a template seen before (an undo) moves to a new revision, listed once', () => {
    let h = add(add(add(undefined, 'a'), 'b'), 'a');
    expect(h!.spec.revisions.map((r) => [r.revision, r.template.spec && (r.template.spec as { containers: { image: string }[] }).containers[0]!.image])).to.deep.equal([[2, 'b'], [3, 'a']]);
    h = add(h, 'c', 99);
    expect(h!.spec.revisions.map((r) => r.revision), 'a history of an earlier ReplicaSet of that name starts over').to.deep.equal([1]);
  });

  it('reconcile writes the history of a new template, guarded on the history seen, and drops that of a deleted ReplicaSet', () => {
    const s = spec();
    const set: DesiredReplicaSet = { name: 'web', createRevision: 10, modRevision: 10, stored: { name: 'web', type: 'replicaset', metadata: {}, spec: s }, spec: s };
    const base = { pods: new Map(), replicaLists: new Map(), healthyWorkers: new Set<string>(), created: new Set<string>(), deleted: new Set<string>(), listWritten: new Map(), statusWritten: new Map() };
    const old = add(undefined, 'old')!;
    const actions = reconcile({ ...base, histories: new Map([['web', { history: old, modRevision: 7 }], ['gone', { history: old, modRevision: 8 }]]) }, new Map([['web', set]]), { suffix: () => 'aaaaa', keepEnded: 0 });
    const h = actions.find((a) => a.kind === 'history');
    expect(h && h.kind === 'history' && [h.modRevision, h.value.spec.revisions.map((r) => r.templateHash)]).to.deep.equal([7, [old.spec.revisions[0]!.templateHash, templateHash(s.template)]]);
    expect(actions.filter((a) => a.kind === 'drop-history')).to.deep.equal([{ kind: 'drop-history', replicaSet: 'gone', modRevision: 8 }]);
    const pending = reconcile({ ...base, histories: new Map([['web', { history: old, modRevision: 7 }]]), historyWritten: new Map([['web', 9]]) }, new Map([['web', set]]), { suffix: () => 'aaaaa', keepEnded: 0 });
    expect(pending.filter((a) => a.kind === 'history'), 'its own write not seen yet').to.deep.equal([]);
  });
});
