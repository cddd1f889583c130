import { expect } from 'chai';
import { parseAgentConfig } from '../../agent/config.js';
import type { Role } from '../../api/schemas.js';
import { membershipKey } from '../../dns/plugin.js';

describe('dns.special membership', () => {
  const ctx = (roles: Role[], clusterAddress?: string) => ({
    config: parseAgentConfig(['--name', 'n1'], {}),
    node: { name: 'n1', roles: new Set(roles), clusterAddress },
  });
  const on = (host: string) => [{ host: '127.0.0.1', port: 53 }, { host, port: 53 }];

  it('joins under the worker name, else the api name, when serving on the cluster address', () => {
    expect(membershipKey(ctx(['worker', 'api'], '10.244.3.1'), on('10.244.3.1'))).to.equal('dns/dns.special.cluster.local./n1.worker.node.cluster.local.');
    expect(membershipKey(ctx(['api'], '10.244.3.1'), on('10.244.3.1'))).to.equal('dns/dns.special.cluster.local./n1.api.node.cluster.local.');
    // Every address covers the cluster address.
    expect(membershipKey(ctx(['worker'], '10.244.3.1'), [{ host: '0.0.0.0', port: 53 }])).to.equal('dns/dns.special.cluster.local./n1.worker.node.cluster.local.');
  });

  it('does not join where pods could not reach it', () => {
    expect(membershipKey(ctx(['worker'], '10.244.3.1'), [{ host: '127.0.0.1', port: 53 }])).to.equal(undefined);
    expect(membershipKey(ctx(['worker']), on('10.244.3.1'))).to.equal(undefined);
    expect(membershipKey(ctx(['scheduler'], '10.244.3.1'), on('10.244.3.1'))).to.equal(undefined);
    // Pods ask port 53 of the cluster address, nothing else.
    expect(membershipKey(ctx(['worker'], '10.244.3.1'), [{ host: '10.244.3.1', port: 5353 }])).to.equal(undefined);
    expect(membershipKey(ctx(['worker'], '10.244.3.1'), [{ host: '0.0.0.0', port: 5353 }])).to.equal(undefined);
  });
});
