import { expect } from 'chai';
import { gatewayOf, normalizeCidr, overlaps, subnetsOf } from '../../agent/ipv4.js';

describe('pod subnets: IPv4 arithmetic', () => {
  it('splits a cluster CIDR into /24s', () => {
    expect(subnetsOf('10.244.0.0/22')).to.deep.equal(['10.244.0.0/24', '10.244.1.0/24', '10.244.2.0/24', '10.244.3.0/24']);
    expect(subnetsOf('10.244.7.9/16')).to.have.length(256);
    expect(() => subnetsOf('10.244.0.0/25')).to.throw(/smaller than a \/24/);
  });

  it('names gateways and overlaps', () => {
    expect(gatewayOf('10.244.3.0/24')).to.equal('10.244.3.1');
    expect(normalizeCidr('10.244.3.77/24')).to.equal('10.244.3.0/24');
    expect(overlaps('10.244.0.0/16', '10.244.3.0/24')).to.equal(true);
    expect(overlaps('10.245.0.0/24', '10.244.3.0/24')).to.equal(false);
  });
});
