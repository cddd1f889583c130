import { expect } from 'chai';
import { orphansOf, planRestart } from '../../../agent/worker/orphans.js';

/** Which stored pods a restarted worker marks dead, on plain data. */
describe('worker orphans', () => {
  const kv = (name: string, value: unknown, modRevision = 7) => ({ key: `resource/pod/${name}`, value: typeof value === 'string' ? value : JSON.stringify(value), modRevision });
  const pod = (name: string, state: string, workedBy?: string, extra: Record<string, unknown> = {}) => ({
    name, type: 'pod', state, metadata: { scheduledBy: 's', ...(workedBy ? { workedBy } : {}) }, spec: { containers: [], ports: [] }, ...extra,
  });

  it('marks dead the pods it left accepted or running, reapedBy itself, the rest of each pod kept', () => {
    const out = orphansOf([kv('a', pod('a', 'accepted', 'w'), 5), kv('b', pod('b', 'running', 'w', { note: 'kept' }), 9)], 'w');
    expect(out).to.deep.equal([
      { key: 'resource/pod/a', modRevision: 5, dead: { ...pod('a', 'dead', 'w'), metadata: { scheduledBy: 's', workedBy: 'w', reapedBy: 'w' } } },
      { key: 'resource/pod/b', modRevision: 9, dead: { ...pod('b', 'dead', 'w', { note: 'kept' }), metadata: { scheduledBy: 's', workedBy: 'w', reapedBy: 'w' } } },
    ]);
  });

  it("leaves other workers' pods, pods in any other state, and values that are not pods", () => {
    const kvs = [
      kv('c', pod('c', 'running', 'other')),
      kv('d', pod('d', 'running')),
      ...['created', 'scheduled', 'exitSuccess', 'killed', 'dead'].map((s) => kv(`e-${s}`, pod(`e-${s}`, s, 'w'))),
      kv('f', '{not json'),
      kv('g', 'null'),
      kv('h', '[]'),
    ];
    expect(orphansOf(kvs, 'w')).to.deep.equal([]);
  });
});

/** What a restarted worker adopts, marks dead and removes, on plain data (SPEC §8). */
describe('worker restart plan', () => {
  const kv = (name: string, value: unknown, modRevision = 7) => ({ key: `resource/pod/${name}`, value: JSON.stringify(value), modRevision });
  const pod = (name: string, state: string, workedBy = 'w') => ({
    name, type: 'pod', state, metadata: { scheduledBy: 's', workedBy }, spec: { containers: [{ name: 'a', image: 'i' }], ports: [] },
  });
  const claims = (...names: [string, string, number][]) => new Map(names.map(([n, value, createRevision]) => [n, { value, createRevision }]));
  const left = (pod: string, running = true, ip: string | null = '10.0.0.5') => ({ runtimeName: `w-${pod}`, pod, running, ...(ip ? { ip } : {}) });

  it('adopts a running pod of its own whose podman pod runs with an address, guarded by its claim', () => {
    const plan = planRestart([kv('a', pod('a', 'running'))], claims(['a', 'w', 40]), [left('a')], 'w');
    expect(plan.adopt).to.have.length(1);
    expect(plan.adopt[0]).to.include({ runtimeName: 'w-a', ip: '10.0.0.5', claimRevision: 40 });
    expect(plan.adopt[0]!.pod.name).to.equal('a');
    expect(plan).to.deep.include({ dead: [], remove: [], staleClaims: [] });
  });

  it('marks dead, and removes from podman, what it cannot adopt: mid-start, stopped, without an address, without its claim', () => {
    const kvs = [kv('accepted', pod('accepted', 'accepted')), kv('stopped', pod('stopped', 'running')), kv('noip', pod('noip', 'running')), kv('noclaim', pod('noclaim', 'running')), kv('gone', pod('gone', 'running'))];
    const plan = planRestart(
      kvs,
      claims(['accepted', 'w', 1], ['stopped', 'w', 2], ['noip', 'w', 3], ['gone', 'w', 4], ['noclaim', 'other', 5]),
      [left('accepted'), left('stopped', false, null), left('noip', true, null), left('noclaim')],
      'w',
    );
    expect(plan.adopt).to.deep.equal([]);
    expect(plan.dead.map((d) => d.dead.name)).to.deep.equal(['accepted', 'stopped', 'noip', 'noclaim', 'gone']);
    expect(plan.dead.every((d) => d.dead.state === 'dead' && d.dead.metadata.reapedBy === 'w')).to.equal(true);
    expect(plan.remove).to.deep.equal(['w-accepted', 'w-stopped', 'w-noip', 'w-noclaim']);
    // The dead pods' claims go with them (orphanTransaction); another worker's claim is not this worker's to touch.
    expect(plan.staleClaims).to.deep.equal([]);
  });

  it('removes podman pods etcd has no pod for, or calls ended or another node\'s, and the claims it left on them', () => {
    const kvs = [kv('ended', pod('ended', 'exitSuccess')), kv('theirs', pod('theirs', 'running', 'other'))];
    const plan = planRestart(kvs, claims(['deleted', 'w', 8], ['ended', 'w', 9], ['theirs', 'other', 10]), [left('deleted'), left('ended'), left('theirs'), left('stray')], 'w');
    expect(plan.adopt).to.deep.equal([]);
    expect(plan.dead).to.deep.equal([]);
    expect(plan.remove).to.deep.equal(['w-deleted', 'w-ended', 'w-theirs', 'w-stray']);
    expect(plan.staleClaims).to.deep.equal([{ pod: 'deleted', createRevision: 8 }, { pod: 'ended', createRevision: 9 }]);
  });

  it('does not adopt a stored value that is not a valid pod', () => {
    const bad = { ...pod('bad', 'running'), spec: { containers: 'nope' } };
    const plan = planRestart([kv('bad', bad)], claims(['bad', 'w', 3]), [left('bad')], 'w');
    expect(plan.adopt).to.deep.equal([]);
    expect(plan.remove).to.deep.equal(['w-bad']);
  });
});
