import { expect } from 'chai';
import { nodeResourceValue } from '../../agent/node.js';

describe('node resources', () => {
  it('are built through the node schema, in the reference shape', () => {
    expect(JSON.parse(nodeResourceValue('reaper', 'n1'))).to.deep.equal({ name: 'n1', type: 'node.reaper', state: 'healthy', metadata: {}, spec: {} });
    const worker = JSON.parse(nodeResourceValue('worker', 'w1', { address: '10.244.3.1', subnet: '10.244.3.0/24', limits: { cpu: '1.5', memory: 512 } }));
    expect(worker).to.deep.equal({
      name: 'w1', type: 'node.worker', state: 'healthy', metadata: {},
      spec: { address: '10.244.3.1', subnet: '10.244.3.0/24', limits: { cpu: '1.5', memory: 512 } },
    });
  });

  it('refuses what the node schema refuses, before anything reaches etcd', () => {
    expect(() => nodeResourceValue('api', 'Not_A_Name')).to.throw();
    expect(() => nodeResourceValue('worker', 'w1', { limits: { cpu: 'lots', memory: 1 } })).to.throw();
  });
});
