import { expect } from 'chai';
import { podInfo, ZONE_PREFIXES, zoneUpdate } from '../../dns/zone-source.js';

describe('dns zone source', () => {
  const put = (key: string, value: string) => zoneUpdate({ type: 'put', key, value, createRevision: 7, modRevision: 9 });
  const del = (key: string) => zoneUpdate({ type: 'delete', key, modRevision: 9 });

  it('watches the DNS keys and the pods', () => {
    expect(ZONE_PREFIXES).to.deep.equal(['dns/', 'resource/pod/']);
  });

  it('turns state events into typed zone changes at their revision', () => {
    expect(put('dns/Web.pod.cluster.local.', ' 10.244.1.5\n')).to.deep.equal({ changes: [{ op: 'putRecord', name: 'web.pod.cluster.local', address: '10.244.1.5' }], malformed: false, revision: 9 });
    expect(del('dns/web.pod.cluster.local.')).to.deep.equal({ changes: [{ op: 'deleteRecord', name: 'web.pod.cluster.local' }], malformed: false, revision: 9 });
    // A value that is no address removes the record it would have replaced.
    expect(put('dns/web.pod.cluster.local.', 'not-an-ip')).to.deep.equal({ changes: [{ op: 'deleteRecord', name: 'web.pod.cluster.local' }], malformed: true, revision: 9 });
    expect(put('dns/bad name.cluster.local.', '10.0.0.1')).to.deep.equal({ changes: [], malformed: true, revision: 9 });
    expect(put('dns/Svc.x.cluster.local./A.pod.cluster.local.', 'alias')!.changes).to.deep.equal([{ op: 'addAlias', from: 'svc.x.cluster.local', to: 'a.pod.cluster.local' }]);
    expect(del('dns/svc.x.cluster.local./a.pod.cluster.local.')!.changes).to.deep.equal([{ op: 'removeAlias', from: 'svc.x.cluster.local', to: 'a.pod.cluster.local' }]);
    expect(put('dns/a.x.cluster.local./b/c', 'alias')!.malformed).to.equal(true);
    const pod = JSON.stringify({ metadata: { replicaSet: 'RS1' }, spec: { ports: [{ container: 80, cluster: 8080, name: 'http' }] } });
    expect(put('resource/pod/Web', pod)!.changes).to.deep.equal([{ op: 'putPod', pod: 'web', info: { replicaSet: 'rs1', ports: new Map([['http', 8080]]) } }]);
    expect(put('resource/pod/web', 'not json')).to.deep.equal({ changes: [{ op: 'deletePod', pod: 'web' }], malformed: true, revision: 9 });
    expect(del('resource/pod/web')!.changes).to.deep.equal([{ op: 'deletePod', pod: 'web' }]);
    expect(put('resource/pod/a/b', pod)).to.deep.equal({ changes: [], malformed: true, revision: 9 });
    expect(put('resource/replicaset/web', pod)).to.equal(undefined);
  });

  it('parses pods defensively', () => {
    expect(podInfo('not json')).to.equal(undefined);
    expect(podInfo('null')).to.equal(undefined);
    expect(podInfo('{"spec":{"ports":[{"container":"x","name":"a"},{"container":70000,"name":"b"},{"container":5,"name":"ok"}]}}')!.ports).to.deep.equal(new Map([['ok', 5]]));
    // An unready pod is in no ReplicaSet's names; ready or not yet told (older workers), it is.
    expect(podInfo('{"metadata":{"replicaSet":"rs","ready":"false"}}')!.replicaSet).to.equal(undefined);
    expect(podInfo('{"metadata":{"replicaSet":"rs","ready":"true"}}')!.replicaSet).to.equal('rs');
    expect(podInfo('{"metadata":{"replicaSet":"rs"}}')!.replicaSet).to.equal('rs');
  });
});
