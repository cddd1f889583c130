import { expect } from 'chai';
import { orphansOf } from '../../../agent/worker/orphans.js';

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
