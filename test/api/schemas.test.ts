import { expect } from 'chai';
import { decodeObservedPod, decodePod, handBacks, namedPorts } from '../../api/schemas.js';

describe('schemas: pods as observed in etcd', () => {
  it('decodes what an older or hand-written value holds, part by part', () => {
    const p = decodeObservedPod(JSON.stringify({ name: 'p', state: 'running', metadata: { workedBy: 'w1', replicaSet: 'front', n: 3 }, spec: { ports: [80], extra: true }, custom: 1 }))!;
    expect(p.state).to.equal('running');
    expect(p.metadata).to.deep.equal({ workedBy: 'w1', replicaSet: 'front' });
    // Fields it does not know stay, so a writer that rewrites the pod loses nothing.
    expect(p).to.include({ name: 'p', custom: 1 });
    expect(p.spec).to.deep.equal({ ports: [80], extra: true });
    const bare = decodeObservedPod('{"state": 7, "metadata": null, "spec": "x"}')!;
    expect(bare.state).to.equal(undefined);
    expect(bare.metadata).to.deep.equal({});
    expect(bare.spec.ports).to.deep.equal([]);
  });

  it('is no pod when the value is not a JSON object', () => {
    for (const v of ['not json', 'null', '[1]', '"pod"', '42']) expect(decodeObservedPod(v), v).to.equal(undefined);
  });

  it('names the ports reached by name: the cluster port when mapped, bad entries skipped', () => {
    const p = decodeObservedPod(JSON.stringify({
      spec: { ports: [80, { container: 8080, name: 'http' }, { container: 80, cluster: 9090, name: 'web' }, { container: 'x', name: 'a' }, { container: 70000, name: 'b' }, { container: 5 }, null] },
    }))!;
    expect(namedPorts(p)).to.deep.equal([{ name: 'http', port: 8080 }, { name: 'web', port: 9090 }]);
  });

  it('decodes strictly where a valid pod is needed', () => {
    expect(decodePod(JSON.stringify({ name: 'p', type: 'pod', state: 'created', spec: { containers: [{ name: 'c', image: 'i' }] } }))?.name).to.equal('p');
    expect(decodePod(JSON.stringify({ name: 'P!', type: 'pod', state: 'created', spec: {} }))).to.equal(undefined);
    expect(decodePod('{')).to.equal(undefined);
  });

  it('counts hand-backs from metadata.handedBack', () => {
    expect(handBacks({ metadata: {} })).to.equal(0);
    expect(handBacks({ metadata: { handedBack: '3' } })).to.equal(3);
    expect(handBacks({ metadata: { handedBack: '-1' } })).to.equal(0);
    expect(handBacks({ metadata: { handedBack: 'x' } })).to.equal(0);
  });
});
