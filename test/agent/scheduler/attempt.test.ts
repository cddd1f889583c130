import { expect } from 'chai';
import { pod as podSchema } from '../../../api/schemas.js';
import { attempt, type AttemptInput } from '../../../agent/scheduler/attempt.js';
import type { WorkerView } from '../../../agent/scheduler/choose.js';

const pod = (metadata: Record<string, string> = {}, constraints?: { mayBeScheduledOn?: string[] }) =>
  podSchema.parse({
    name: 'p', type: 'pod', state: 'created', metadata,
    spec: { containers: [{ name: 'c', image: 'i', resources: { requests: { cpu: '0.1', memory: 128 } } }], schedulingConstraints: constraints },
  });
const roomy: WorkerView = { name: 'w1', healthy: true, free: { cpu: 1000, memory: 1024 }, replicas: 0 };
const full: WorkerView = { ...roomy, free: { cpu: 1000, memory: 64 } };
const input = (a: Partial<AttemptInput>): AttemptInput => ({ pod: pod(), tries: 0, counted: true, maxTries: 3, workers: [roomy], ...a });

describe('scheduler attempt', () => {
  it('places a pod on the chosen worker with its request', () => {
    expect(attempt(input({}))).to.deep.equal({ kind: 'place', worker: 'w1', request: { cpu: 100, memory: 128 } });
  });

  it('abandons a pod handed back as many times as it has tries, even where it fits', () => {
    expect(attempt(input({ pod: pod({ handedBack: '3' }), tries: 1 }))).to.deep.equal({ kind: 'abandon', reason: 'handed back by workers 3 times', tries: 1 });
    expect(attempt(input({ pod: pod({ handedBack: '2' }) }))).to.have.property('kind', 'place');
  });

  it('counts a failed try and retries, then abandons at the last try', () => {
    const reason = 'no allowed worker has 0.1 CPU and 128 MiB free';
    expect(attempt(input({ workers: [full] }))).to.deep.equal({ kind: 'retry', reason, tries: 1 });
    expect(attempt(input({ workers: [full], tries: 2 }))).to.deep.equal({ kind: 'abandon', reason, tries: 3 });
    const constrained = attempt(input({ pod: pod({}, { mayBeScheduledOn: ['w9'] }) }));
    expect(constrained).to.include({ kind: 'retry', tries: 1 });
  });

  it('waits without counting a try while no worker is healthy', () => {
    expect(attempt(input({ workers: [{ ...roomy, healthy: false }], tries: 1 }))).to.deep.equal({ kind: 'retry', reason: 'no healthy worker', tries: 1 });
    expect(attempt(input({ workers: [] }))).to.deep.equal({ kind: 'retry', reason: 'no healthy worker', tries: 0 });
    // Tries used up (its abandon transaction failed before): abandoned still.
    expect(attempt(input({ workers: [], tries: 3 }))).to.deep.equal({ kind: 'abandon', reason: 'no healthy worker', tries: 3 });
  });

  it('leaves an early try that finds nothing without effect: the counted try is still due', () => {
    expect(attempt(input({ workers: [full], counted: false, tries: 2 }))).to.deep.equal({ kind: 'keep' });
    expect(attempt(input({ counted: false }))).to.have.property('kind', 'place');
  });
});
