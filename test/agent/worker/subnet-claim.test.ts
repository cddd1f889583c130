import { expect } from 'chai';
import { StateLayer } from '../../../agent/state.js';
import { claimSubnet, parseSubnetOwner, pickSubnet, SubnetError } from '../../../agent/worker/subnet-claim.js';
import { TestEtcd } from '../../support/etcd.js';
import { testLog } from '../../support/log.js';

describe('pod subnets', () => {
  it('picks the first free /24', () => {
    expect(pickSubnet('10.244.0.0/22', new Set(['10.244.0.0/24', '10.244.2.0/24']))).to.equal('10.244.1.0/24');
    expect(pickSubnet('10.244.0.0/24', new Set(['10.244.0.0/24']))).to.equal(undefined);
  });

  it('takes a subnet owner from etcd only when its host address is an IPv4 address', () => {
    expect(parseSubnetOwner('{"worker":"w","hostAddress":"192.0.2.7"}')).to.deep.equal({ worker: 'w', hostAddress: '192.0.2.7' });
    expect(parseSubnetOwner('{"worker":"w"}')).to.deep.equal({ worker: 'w' });
    // These once reached `ip route` (execa throws on an object or a NUL byte) and froze the route table.
    for (const bad of ['{"worker":"w","hostAddress":{}}', '{"worker":"w","hostAddress":"192.0.2.7\\u0000"}', '{"worker":"w","hostAddress":"-x"}',
      '{"worker":""}', '{"worker":5}', 'null', '[]', 'not json']) {
      expect(parseSubnetOwner(bad), bad).to.equal(undefined);
    }
  });
});

describe('pod subnet claims (real etcd)', () => {
  let etcd: TestEtcd;
  let state: StateLayer;
  before(async () => {
    etcd = await TestEtcd.start();
    state = new StateLayer(etcd.client(), '/kith', testLog);
  });
  after(async () => {
    await state.close();
    state.client.close();
    await etcd.stop();
  });
  /** Owners by key name: the CIDR itself (SPEC §2), or the legacy `a.b.c.d_len`. */
  const owners = async () => Object.fromEntries((await state.list('node.worker/subnet/')).kvs.map((kv) => [kv.key.slice('node.worker/subnet/'.length), JSON.parse(kv.value)]));

  it('gives racing workers distinct /24s, and a worker its own /24 back', async () => {
    const cidr = '10.50.0.0/22';
    const got = await Promise.all(['a', 'b', 'c', 'd'].map((w) => claimSubnet(state, { worker: w, clusterCidr: cidr, hostAddress: `192.0.2.${w.charCodeAt(0) - 96}` })));
    expect(new Set(got).size).to.equal(4);
    expect(await claimSubnet(state, { worker: 'c', clusterCidr: cidr })).to.equal(got[2]);
    const o = await owners();
    expect(Object.keys(o)).to.have.length(4);
    // A restart without --host-address rewrites the owner record.
    expect(o[got[2]!]).to.deep.equal({ worker: 'c' });
    try {
      await claimSubnet(state, { worker: 'e', clusterCidr: cidr });
      expect.fail('claimed a fifth /24 of a /22');
    } catch (err) {
      expect(err).to.be.instanceOf(SubnetError);
      expect((err as Error).message).to.match(/--cluster-cidr '10.50.0.0\/22': every \/24 is held/);
    }
  });

  it('takes --pod-subnet when nobody else holds it, and gives back the worker\'s earlier subnet', async () => {
    const first = await claimSubnet(state, { worker: 'f', clusterCidr: '10.60.0.0/16' });
    expect(await claimSubnet(state, { worker: 'f', clusterCidr: '10.60.0.0/16', podSubnet: '10.70.1.7/24' })).to.equal('10.70.1.0/24');
    const o = await owners();
    expect(o['10.70.1.0/24']).to.deep.equal({ worker: 'f' });
    expect(o[first]).to.equal(undefined);
    try {
      await claimSubnet(state, { worker: 'g', clusterCidr: '10.60.0.0/16', podSubnet: '10.70.0.0/16' });
      expect.fail('claimed an overlapping subnet');
    } catch (err) {
      expect((err as Error).message).to.match(/--pod-subnet '10.70.0.0\/16' overlaps 10.70.1.0\/24, held by worker 'f'/);
    }
  });

  it('never picks a /24 that another network on this host uses, and leaves one it held that now clashes', async () => {
    const cidr = '10.80.0.0/22';
    const local = [{ network: 'other', subnet: '10.80.0.0/23' }];
    const got = await claimSubnet(state, { worker: 'h', clusterCidr: cidr, local });
    expect(got).to.equal('10.80.2.0/24');
    // Held in etcd, but a network on this host has it now: the worker moves and gives the old one back.
    const moved = await claimSubnet(state, { worker: 'h', clusterCidr: cidr, local: [{ network: 'late', subnet: '10.80.2.0/24' }] });
    expect(moved).to.equal('10.80.0.0/24');
    const o = await owners();
    expect(o['10.80.0.0/24']).to.deep.equal({ worker: 'h' });
    expect(o['10.80.2.0/24']).to.equal(undefined);
    try {
      await claimSubnet(state, { worker: 'i', clusterCidr: cidr, local: [{ network: 'wide', subnet: '10.80.0.0/16' }] });
      expect.fail('claimed a /24 the host already uses');
    } catch (err) {
      expect(err).to.be.instanceOf(SubnetError);
      expect((err as Error).message).to.equal(
        "--cluster-cidr '10.80.0.0/22': every /24 is held by another worker or used by another network on this host; give a larger CIDR or --pod-subnet",
      );
    }
    try {
      await claimSubnet(state, { worker: 'i', clusterCidr: cidr, podSubnet: '10.90.3.0/24', local: [{ network: 'wide', subnet: '10.90.0.0/16' }] });
      expect.fail('claimed a --pod-subnet the host already uses');
    } catch (err) {
      expect((err as Error).message).to.equal("--pod-subnet '10.90.3.0/24' overlaps 10.90.0.0/16 of network 'wide' on this host; pick another subnet");
    }
    expect((await owners())['10.90.3.0/24']).to.equal(undefined);
  });

  it('reads claims in the legacy key spelling: never takes them, and moves its own to the SPEC key', async () => {
    const cidr = '10.100.0.0/23';
    await state.put('node.worker/subnet/10.100.0.0_24', JSON.stringify({ worker: 'old-other' }));
    await state.put('node.worker/subnet/10.100.1.0_24', JSON.stringify({ worker: 'j' }));
    // j gets back the /24 it held under the legacy key, now under the CIDR itself, and the legacy key is gone.
    expect(await claimSubnet(state, { worker: 'j', clusterCidr: cidr })).to.equal('10.100.1.0/24');
    const o = await owners();
    expect(o['10.100.1.0/24']).to.deep.equal({ worker: 'j' });
    expect(o['10.100.1.0_24']).to.equal(undefined);
    // An unreadable claim is still a claim.
    await state.put('node.worker/subnet/10.110.0.0/24', '{"worker":"w2","hostAddress":{}}');
    expect(await claimSubnet(state, { worker: 'l', clusterCidr: '10.110.0.0/23' })).to.equal('10.110.1.0/24');
    // The other legacy claim still counts: the /23 is full.
    expect(o['10.100.0.0_24']).to.deep.equal({ worker: 'old-other' });
    try {
      await claimSubnet(state, { worker: 'k', clusterCidr: cidr });
      expect.fail('claimed a /24 held under the legacy key');
    } catch (err) {
      expect((err as Error).message).to.match(/every \/24 is held/);
    }
  });
});
