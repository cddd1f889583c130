import { expect } from 'chai';
import { reapActions } from '../../../agent/reaper/reap.js';
import { ReaperView } from '../../../agent/reaper/view.js';
import type { StateEvent } from '../../../agent/state.js';

let rev = 1;
const put = (key: string, value: string): StateEvent => ({ type: 'put', key, value, createRevision: rev, modRevision: rev++ });
const del = (key: string): StateEvent => ({ type: 'delete', key, modRevision: rev++ });
const pod = (state: string, metadata: Record<string, string>) => JSON.stringify({ name: 'p1', type: 'pod', state, metadata, spec: { containers: [] } });

describe('reaper view', () => {
  it('keeps alive workers, pods, claims and inbox entries with the revisions seen', () => {
    const v = new ReaperView();
    v.apply(put('node.worker/heartbeat/alive/w1', 'lease-established'));
    v.apply(put('node.worker/heartbeat/healthy/w2', 'lease-established'));
    const p = put('resource/pod/p1', pod('running', { workedBy: 'w1', reapedBy: 'r0', other: 'x' }));
    v.apply(p);
    v.apply(put('pod/claimed/p1', 'w1'));
    const i = put('node.worker/inbox/w1/p2', pod('scheduled', {}));
    v.apply(i);
    expect([...v.alive]).to.deep.equal(['w1']);
    expect(v.pods.get('p1')).to.deep.include({ state: 'running', workedBy: 'w1', reapedBy: 'r0', modRevision: p.modRevision });
    expect(v.pods.get('p1')!.value.metadata).to.deep.equal({ workedBy: 'w1', reapedBy: 'r0', other: 'x' });
    expect(v.claims.get('p1')).to.deep.equal({ worker: 'w1', modRevision: p.modRevision + 1 });
    expect(v.inboxes.get('w1')).to.deep.equal(new Map([['p2', i.modRevision]]));
  });

  it('forgets what is deleted, an emptied inbox included', () => {
    const v = new ReaperView();
    v.apply(put('node.worker/heartbeat/alive/w1', 'x'));
    v.apply(put('resource/pod/p1', pod('running', { workedBy: 'w1' })));
    v.apply(put('pod/claimed/p1', 'w1'));
    v.apply(put('node.worker/inbox/w1/p2', '{}'));
    for (const k of ['node.worker/heartbeat/alive/w1', 'resource/pod/p1', 'pod/claimed/p1', 'node.worker/inbox/w1/p2']) expect(v.apply(del(k))).to.equal(undefined);
    expect([v.alive.size, v.pods.size, v.claims.size, v.inboxes.size]).to.deep.equal([0, 0, 0, 0]);
  });

  it('drops a pod whose resource is not a JSON object, and says so', () => {
    const v = new ReaperView();
    v.apply(put('resource/pod/p1', pod('running', { workedBy: 'w1' })));
    for (const bad of ['not json', 'null', '[1]']) {
      expect(v.apply(put('resource/pod/p1', bad))).to.deep.equal({ ignoredPod: 'p1' });
      expect(v.pods.has('p1')).to.equal(false);
    }
  });

  it('feeds the decision: a pod of a worker whose heartbeat went is reaped', () => {
    const v = new ReaperView();
    v.apply(put('node.worker/heartbeat/alive/w1', 'x'));
    const p = put('resource/pod/p1', pod('running', { workedBy: 'w1' }));
    v.apply(p);
    expect(reapActions(v)).to.deep.equal([]);
    v.apply(del('node.worker/heartbeat/alive/w1'));
    expect(reapActions(v)).to.deep.equal([{ kind: 'markDead', pod: 'p1', worker: 'w1', modRevision: p.modRevision }]);
  });
});
