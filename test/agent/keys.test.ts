import { expect } from 'chai';
import {
  claimedKey, heartbeatKey, inboxKey, inboxPrefix, legacySubnetKey, limitsKey, nameUnder, nodeDnsKey, parseHeartbeat, podDnsKey, podKey, SUBNET_PREFIX,
  subnetKey, subnetOfKey, unscheduledKey,
} from '../../agent/keys.js';

describe('the SPEC §2 key layout', () => {
  it('names subnet keys in the SPEC spelling and reads the legacy one', () => {
    expect(subnetKey('10.244.3.0/24')).to.equal('node.worker/subnet/10.244.3.0/24');
    expect(legacySubnetKey('10.244.3.0/24')).to.equal('node.worker/subnet/10.244.3.0_24');
    expect(subnetOfKey(`${SUBNET_PREFIX}10.244.3.0/24`)).to.equal('10.244.3.0/24');
    expect(subnetOfKey(`${SUBNET_PREFIX}10.244.3.0_24`)).to.equal('10.244.3.0/24');
    expect(subnetOfKey(`${SUBNET_PREFIX}junk`)).to.equal(undefined);
  });

  it("builds the keys of a pod's way to a worker and of its name", () => {
    expect(podKey('web')).to.equal('resource/pod/web');
    expect(unscheduledKey('web')).to.equal('pod/unscheduled/web');
    expect(inboxKey('w1', 'web')).to.equal('node.worker/inbox/w1/web');
    expect(claimedKey('web')).to.equal('pod/claimed/web');
    expect(limitsKey('cpu', 'w1')).to.equal('node.worker/limits/cpu/w1');
    expect(limitsKey('memory', 'w1')).to.equal('node.worker/limits/memory/w1');
    expect(podDnsKey('web', 'cluster.local')).to.equal('dns/web.pod.cluster.local.');
    expect(nodeDnsKey('w1', 'worker', 'cluster.local')).to.equal('dns/w1.worker.node.cluster.local.');
  });

  it('parses names under a prefix and heartbeats, and nothing of another shape', () => {
    expect(nameUnder(inboxKey('w1', 'web'), inboxPrefix('w1'))).to.equal('web');
    expect(nameUnder('node.worker/inbox/w1/a/b', inboxPrefix('w1'))).to.equal(undefined);
    expect(nameUnder(inboxPrefix('w1'), inboxPrefix('w1'))).to.equal(undefined);
    expect(nameUnder(inboxKey('w2', 'web'), inboxPrefix('w1'))).to.equal(undefined);
    expect(parseHeartbeat(heartbeatKey('worker', 'alive', 'w1'), 'worker')).to.deep.equal({ kind: 'alive', name: 'w1' });
    expect(parseHeartbeat('node.worker/heartbeat/other/w1', 'worker')).to.equal(undefined);
    expect(parseHeartbeat(heartbeatKey('worker', 'healthy', 'w1'), 'scheduler')).to.equal(undefined);
  });
});
