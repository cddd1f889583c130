import { expect } from 'chai';
import { choose, type WorkerView } from '../../../agent/scheduler/choose.js';

const w = (name: string, free: { cpu: number; memory: number } | undefined, extra: Partial<WorkerView> = {}): WorkerView => ({
  name, healthy: true, free, replicas: 0, ...extra,
});
const small = { request: { cpu: 100, memory: 128 } };

describe('scheduler choice', () => {
  it('waits without penalty when no worker is healthy', () => {
    const c = choose(small, [w('a', { cpu: 1000, memory: 1024 }, { healthy: false })]);
    expect(c).to.deep.equal({ reason: 'no healthy worker', wait: true });
  });

  it('honours mayBeScheduledOn and cannotBeScheduledOn', () => {
    const ws = [w('a', { cpu: 1000, memory: 4096 }), w('b', { cpu: 1000, memory: 1024 }), w('c', { cpu: 1000, memory: 2048 })];
    expect(choose({ ...small, mayBeScheduledOn: ['b'] }, ws)).to.deep.equal({ worker: 'b' });
    expect(choose({ ...small, cannotBeScheduledOn: ['a'] }, ws)).to.deep.equal({ worker: 'c' });
    expect(choose({ ...small, mayBeScheduledOn: ['a', 'b'], cannotBeScheduledOn: ['a'] }, ws)).to.deep.equal({ worker: 'b' });
    const none = choose({ ...small, mayBeScheduledOn: [] }, ws);
    expect(none).to.have.property('reason').that.matches(/constraints/);
    expect(none).not.to.have.property('wait');
    // null lists mean no constraint
    expect(choose({ ...small, mayBeScheduledOn: null, cannotBeScheduledOn: null }, ws)).to.deep.equal({ worker: 'a' });
  });

  it('needs the request free on the worker, and a published free capacity', () => {
    const ws = [w('a', { cpu: 1000, memory: 100 }), w('b', { cpu: 50, memory: 4096 }), w('c', undefined)];
    const c = choose(small, ws);
    expect(c).to.have.property('reason').that.equals('no allowed worker has 0.1 CPU and 128 MiB free');
    expect(choose(small, [...ws, w('d', { cpu: 100, memory: 128 })])).to.deep.equal({ worker: 'd' });
  });

  it('spreads a ReplicaSet: fewest live replicas first, then most free memory', () => {
    const ws = [w('a', { cpu: 1000, memory: 4096 }, { replicas: 2 }), w('b', { cpu: 1000, memory: 1024 }, { replicas: 1 }), w('c', { cpu: 1000, memory: 2048 }, { replicas: 1 })];
    expect(choose(small, ws)).to.deep.equal({ worker: 'c' });
  });

  it('breaks full ties by CPU, then by name', () => {
    expect(choose(small, [w('b', { cpu: 500, memory: 1024 }), w('a', { cpu: 500, memory: 1024 })])).to.deep.equal({ worker: 'a' });
    expect(choose(small, [w('a', { cpu: 500, memory: 1024 }), w('b', { cpu: 900, memory: 1024 })])).to.deep.equal({ worker: 'b' });
  });
});
