import { expect } from 'chai';
import { pod as podSchema } from '../../../api/schemas.js';
import { abandonTransaction, dropMarkerTransaction, placeTransaction } from '../../../agent/scheduler/transactions.js';

const web = podSchema.parse({ name: 'web', type: 'pod', state: 'created', metadata: { replicaSet: 'rs' }, spec: { containers: [{ name: 'c', image: 'i' }] } });
const seen = { pod: web, modRevision: 7 };
// Guarded on the marker as seen and on the resource still existing.
const markerAsSeen = [
  { key: 'pod/unscheduled/web', modRevision: 7 },
  { key: 'resource/pod/web', createRevision: 0, op: '!=' },
];

describe('scheduler transactions', () => {
  it('places a pod: marker deleted, resource scheduled on the worker, the same value in its inbox', () => {
    const value = JSON.stringify({ ...web, state: 'scheduled', metadata: { replicaSet: 'rs', scheduledBy: 's1', workedBy: 'w1' } });
    expect(placeTransaction(seen, 'w1', 's1')).to.deep.equal({
      if: markerAsSeen,
      then: [{ delete: 'pod/unscheduled/web' }, { put: 'resource/pod/web', value }, { put: 'node.worker/inbox/w1/web', value }],
    });
  });

  it('abandons a pod: marker deleted, resource abandoned, signed by the scheduler with its reason, no inbox entry', () => {
    const value = JSON.stringify({ ...web, state: 'abandoned', metadata: { replicaSet: 'rs', scheduledBy: 's1', error: 'no worker has room' } });
    expect(abandonTransaction(seen, 's1', 'no worker has room')).to.deep.equal({
      if: markerAsSeen,
      then: [{ delete: 'pod/unscheduled/web' }, { put: 'resource/pod/web', value }],
    });
  });

  it('drops a marker only while it is as seen and its resource is absent', () => {
    expect(dropMarkerTransaction('web', 9)).to.deep.equal({
      if: [{ key: 'pod/unscheduled/web', modRevision: 9 }, { key: 'resource/pod/web', createRevision: 0 }],
      then: [{ delete: 'pod/unscheduled/web' }],
    });
  });
});
