import { expect } from 'chai';
import { age, describeResource, eventTable, objectMatcher } from '../../../agent/cli/describe.js';
import { Progress, type Io } from '../../../agent/cli/io.js';
import { UsageError } from '../../../agent/cli/run.js';

const io = (tty: boolean, sink: string[]): Io => ({ api: undefined as never, format: 'table', domain: 'cluster.local', out: (s) => sink.push(s), err: (s) => sink.push(s), tty });

describe('cli: events and describe (pure parts)', () => {
  it('says how long ago in the largest unit that fits', () => {
    const now = Date.parse('2026-01-01T12:00:00Z');
    expect(age('2026-01-01T11:59:55Z', now)).to.equal('5s');
    expect(age('2026-01-01T11:50:00Z', now)).to.equal('10m');
    expect(age('2026-01-01T09:00:00Z', now)).to.equal('3h');
    expect(age('2025-12-25T12:00:00Z', now)).to.equal('7d');
    expect(age('not a time', now)).to.equal('?');
    expect(age('2026-01-01T12:00:09Z', now)).to.equal('0s');
  });

  it('matches TYPE/NAME with the short type names; node/NAME is the node of every role; a bad one is a usage error', () => {
    expect(objectMatcher('pods/web-1')('pod/web-1')).to.equal(true);
    expect(objectMatcher('rs/web')('replicaset/web')).to.equal(true);
    expect(objectMatcher('pod/web-1')('pod/web-10')).to.equal(false);
    const node = objectMatcher('node/h1');
    expect(['node.worker/h1', 'node.api/h1', 'node.worker/h2'].map(node)).to.deep.equal([true, true, false]);
    expect(objectMatcher(undefined)('anything/x')).to.equal(true);
    for (const bad of ['web-1', 'pod/', '/web']) expect(() => objectMatcher(bad), bad).to.throw(UsageError);
  });

  it('tables events with their age, type, reason, object, count, node and message', () => {
    const now = Date.parse('2026-01-01T12:00:00Z');
    const t = eventTable([{ name: 'e', spec: { time: '2026-01-01T11:59:30Z', type: 'Warning', object: 'pod/p', reason: 'Failed', message: 'ended errored: no image', node: 'w1', count: 2 } }], true, now);
    expect(t.split('\n')).to.deep.equal([
      'LAST SEEN  TYPE     REASON  OBJECT  COUNT  FROM  MESSAGE',
      '30s        Warning  Failed  pod/p   2      w1    ended errored: no image',
      '',
    ]);
    expect(eventTable([], false, now).split('\n')[0]).to.equal('LAST SEEN  TYPE  REASON  COUNT  FROM  MESSAGE');
  });

  it('describes a pod: its state, readiness, restarts, worker, address, ReplicaSet, containers, then metadata and spec', () => {
    const out = describeResource({
      name: 'web-1', type: 'pod', state: 'running',
      metadata: { ready: 'true', readySince: '2026-01-01T00:00:00Z', restarts: '2', 'restarts.main': '2', workedBy: 'w1', ip: '10.244.1.5', replicaSet: 'web', team: 'blue' },
      spec: { containers: [{ name: 'main', image: 'busybox' }] },
    });
    expect(out).to.match(/^Name:\s+web-1$/m);
    expect(out).to.match(/^Ready:\s+yes \(since 2026-01-01T00:00:00Z\)$/m);
    expect(out).to.match(/^Restarts:\s+2$/m);
    expect(out).to.match(/^Worker:\s+w1$/m);
    expect(out).to.match(/^IP:\s+10\.244\.1\.5$/m);
    expect(out).to.match(/^ReplicaSet:\s+web$/m);
    expect(out).to.match(/^Containers:\s+main \(busybox\), 2 restarts$/m);
    expect(out).to.match(/^Metadata:\n {2}team: blue\n/m);
    expect(out).to.match(/^Spec:\n {2}containers:\n/m);
    // What a pod that ended no longer has is not shown as if it had it.
    const ended = describeResource({ name: 'p', type: 'pod', state: 'exitFailure', metadata: {}, spec: {} });
    expect(ended).to.not.match(/^Ready:/m);
    expect(ended).to.not.match(/^IP:/m);
  });

  it('describes a ReplicaSet by its counts and rollout, a node by its addresses and capacity', () => {
    const rs = describeResource({ name: 'web', type: 'replicaset', spec: { replicas: 3 }, status: { live: 3, running: 3, ready: 2, updated: 3, available: 2, rollout: 'progressing' } });
    expect(rs).to.match(/^Replicas:\s+3 desired, 3 live, 3 running, 2 ready, 3 updated, 2 available$/m);
    expect(rs).to.match(/^Rollout:\s+progressing$/m);
    const node = describeResource({ name: 'w1', type: 'node.worker', state: 'healthy', spec: { address: '10.244.1.1', hostAddress: '192.168.1.5', limits: { cpu: '8', memory: 16000 } } });
    expect(node).to.match(/^Capacity:\s+cpu 8, memory 16000 MiB$/m);
    expect(node).to.match(/^Host address:\s+192\.168\.1\.5$/m);
  });

  it('draws progress in place on a terminal and a line per change elsewhere', () => {
    const term: string[] = [];
    const p = new Progress(io(true, term));
    p.show('1 of 3');
    p.show('1 of 3');
    p.show('3 of 3');
    p.done();
    expect(term).to.deep.equal(['\r1 of 3\x1b[K', '\r3 of 3\x1b[K', '\n']);
    const pipe: string[] = [];
    const q = new Progress(io(false, pipe));
    q.show('a');
    q.show('a');
    q.show('b');
    q.done();
    expect(pipe).to.deep.equal(['a\n', 'b\n']);
  });
});
