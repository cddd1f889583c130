import { expect } from 'chai';
import { decodeObservedPod } from '../../../api/schemas.js';
import { reapTransaction } from '../../../agent/reaper/transactions.js';

const stored = decodeObservedPod(JSON.stringify({ name: 'p1', type: 'pod', state: 'running', metadata: { workedBy: 'w1' }, spec: { containers: [], extra: 1 } }))!;
const dead = JSON.stringify({ ...stored, state: 'dead', metadata: { workedBy: 'w1', reapedBy: 'r1' } });
const workerDead = { key: 'node.worker/heartbeat/alive/w1', createRevision: 0 };

describe('reaper transactions', () => {
  it('marks a pod dead, signed, with its claim, while its worker has no alive heartbeat and the pod is as seen', () => {
    expect(reapTransaction({ kind: 'markDead', pod: 'p1', worker: 'w1', modRevision: 10, claimRevision: 9 }, stored, 'r1')).to.deep.equal({
      if: [workerDead, { key: 'resource/pod/p1', modRevision: 10 }],
      then: [{ put: 'resource/pod/p1', value: dead }, { delete: 'pod/claimed/p1' }],
    });
    expect(reapTransaction({ kind: 'markDead', pod: 'p1', worker: 'w1', modRevision: 10 }, stored, 'r1').then).to.deep.equal([{ put: 'resource/pod/p1', value: dead }]);
  });

  it('deletes an inbox entry of a dead worker, marking its pod dead when it is still on its way there', () => {
    expect(reapTransaction({ kind: 'emptyInbox', worker: 'w1', pod: 'p1', inboxRevision: 8, podRevision: 10 }, stored, 'r1')).to.deep.equal({
      if: [workerDead, { key: 'node.worker/inbox/w1/p1', modRevision: 8 }, { key: 'resource/pod/p1', modRevision: 10 }],
      then: [{ delete: 'node.worker/inbox/w1/p1' }, { put: 'resource/pod/p1', value: dead }],
    });
    expect(reapTransaction({ kind: 'emptyInbox', worker: 'w1', pod: 'gone', inboxRevision: 7 }, undefined, 'r1')).to.deep.equal({
      if: [workerDead, { key: 'node.worker/inbox/w1/gone', modRevision: 7 }],
      then: [{ delete: 'node.worker/inbox/w1/gone' }],
    });
  });
});
