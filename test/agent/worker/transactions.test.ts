import { expect } from 'chai';
import { pod as podSchema } from '../../../api/schemas.js';
import {
  claimTransaction, dropInboxEntryTransaction, handBackTransaction, limitOps, nodeRecordTransaction, orphanTransaction, podRecordRemovalTransaction,
  podStateTransaction, releaseTransaction, staleClaimTransaction,
} from '../../../agent/worker/transactions.js';

/** The worker's etcd transactions as data: the guards and the writes of SPEC §2, in order. */
describe('worker transactions', () => {
  const pod = podSchema.parse({ name: 'p', type: 'pod', state: 'accepted', metadata: { scheduledBy: 's', workedBy: 'w' }, spec: { containers: [{ name: 'c', image: 'i' }] } });

  it('publishes the free capacity on the alive lease', () => {
    expect(limitOps('w', { cpu: 1500, memory: 300 })).to.deep.equal([
      { put: 'node.worker/limits/cpu/w', value: '1.5', lease: 'alive' },
      { put: 'node.worker/limits/memory/w', value: '300', lease: 'alive' },
    ]);
  });

  it('writes the node resource, its A record and its capacity at start, unguarded', () => {
    const t = nodeRecordTransaction({
      worker: 'w', domain: 'cluster.local', clusterAddress: '10.9.0.1', hostAddress: '192.0.2.1', subnet: '10.9.0.0/24',
      capacity: { cpu: 2000, memory: 1024 }, free: { cpu: 2000, memory: 1024 },
    });
    expect(t.if).to.deep.equal([]);
    expect(t.then.map((op) => ('put' in op ? op.put : op))).to.deep.equal([
      'resource/node.worker/w', 'dns/w.worker.node.cluster.local.', 'node.worker/limits/cpu/w', 'node.worker/limits/memory/w',
    ]);
    const [node, record] = t.then as { put: string; value: string; lease?: string }[];
    expect(JSON.parse(node!.value).spec).to.deep.equal({ address: '10.9.0.1', hostAddress: '192.0.2.1', subnet: '10.9.0.0/24', limits: { cpu: '2', memory: 1024 } });
    expect(node!.lease).to.equal(undefined);
    expect(record).to.deep.equal({ put: 'dns/w.worker.node.cluster.local.', value: '10.9.0.1', lease: 'alive' });
    const bare = nodeRecordTransaction({ worker: 'w', domain: 'd', clusterAddress: '10.9.0.1', subnet: '10.9.0.0/24', capacity: { cpu: 1, memory: 1 }, free: { cpu: 1, memory: 1 } });
    expect(JSON.parse((bare.then[0] as { value: string }).value).spec).to.not.have.property('hostAddress');
  });

  it('claims guarded by the resource existing, predating the inbox entry, and the entry as seen', () => {
    const t = claimTransaction('p', { kind: 'claim', worker: 'w', pod, request: { cpu: 1, memory: 128 }, freeAfter: { cpu: 999, memory: 896 } }, 41);
    expect(t).to.deep.equal({
      if: [
        { key: 'resource/pod/p', createRevision: 0, op: '!=' },
        { key: 'resource/pod/p', createRevision: 42, op: '<' },
        { key: 'node.worker/inbox/w/p', modRevision: 41 },
      ],
      then: [
        { delete: 'node.worker/inbox/w/p' },
        { put: 'pod/claimed/p', value: 'w', lease: 'alive' },
        { put: 'resource/pod/p', value: JSON.stringify(pod) },
        { put: 'node.worker/limits/cpu/w', value: '0.999', lease: 'alive' },
        { put: 'node.worker/limits/memory/w', value: '896', lease: 'alive' },
      ],
    });
  });

  it('hands back guarded by the resource existing and the entry as seen, the pod unscheduled again', () => {
    const back = { ...pod, state: 'created' as const, metadata: { handedBack: '1' } };
    const value = JSON.stringify(back);
    expect(handBackTransaction('w', 'p', back, 41)).to.deep.equal({
      if: [{ key: 'resource/pod/p', createRevision: 0, op: '!=' }, { key: 'node.worker/inbox/w/p', modRevision: 41 }],
      then: [{ delete: 'node.worker/inbox/w/p' }, { put: 'resource/pod/p', value }, { put: 'pod/unscheduled/p', value }],
    });
  });

  it('drops an inbox entry only as seen', () => {
    expect(dropInboxEntryTransaction('w', 'p', 41)).to.deep.equal({ if: [{ key: 'node.worker/inbox/w/p', modRevision: 41 }], then: [{ delete: 'node.worker/inbox/w/p' }] });
  });

  it('releases a claim only while it is its own, and publishes the capacity either way', () => {
    const limits = limitOps('w', { cpu: 1000, memory: 300 });
    expect(releaseTransaction('w', 'p', { cpu: 1000, memory: 300 })).to.deep.equal({
      if: [{ key: 'pod/claimed/p', value: 'w' }],
      then: [{ delete: 'pod/claimed/p' }, ...limits],
      else: limits,
    });
  });

  it('marks an orphan dead only as read, its claim and A record with it', () => {
    const dead = { ...pod, state: 'dead', metadata: { ...pod.metadata, reapedBy: 'w' } };
    expect(orphanTransaction({ key: 'resource/pod/p', modRevision: 9, dead }, 'cluster.local')).to.deep.equal({
      if: [{ key: 'resource/pod/p', modRevision: 9 }],
      then: [{ put: 'resource/pod/p', value: JSON.stringify(dead) }, { delete: 'pod/claimed/p' }, { delete: 'dns/p.pod.cluster.local.' }],
    });
  });

  it('removes a stale claim only as read and still its worker\'s, with the pod\'s A record', () => {
    expect(staleClaimTransaction('w', 'p', 31, 'cluster.local')).to.deep.equal({
      if: [{ key: 'pod/claimed/p', createRevision: 31 }, { key: 'pod/claimed/p', value: 'w' }],
      then: [{ delete: 'pod/claimed/p' }, { delete: 'dns/p.pod.cluster.local.' }],
    });
  });

  it("writes a pod's state guarded by its create revision, with its A record when it runs, and removes only its own record", () => {
    expect(podStateTransaction('p', 12, 'v')).to.deep.equal({ if: [{ key: 'resource/pod/p', createRevision: 12 }], then: [{ put: 'resource/pod/p', value: 'v' }] });
    expect(podStateTransaction('p', 12, 'v', { domain: 'cluster.local', ip: '10.9.0.5' })).to.deep.equal({
      if: [{ key: 'resource/pod/p', createRevision: 12 }],
      then: [{ put: 'resource/pod/p', value: 'v' }, { put: 'dns/p.pod.cluster.local.', value: '10.9.0.5', lease: 'alive' }],
    });
    expect(podRecordRemovalTransaction('p', 'cluster.local', '10.9.0.5')).to.deep.equal({
      if: [{ key: 'dns/p.pod.cluster.local.', value: '10.9.0.5' }],
      then: [{ delete: 'dns/p.pod.cluster.local.' }],
    });
  });
});
