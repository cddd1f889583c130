import { expect } from 'chai';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseCidr } from '../../agent/ipv4.js';
import { mayRecurse, resolvConfUpstreams } from '../../dns/recursion.js';

describe('dns recursion', () => {
  it('reads upstreams from a resolv.conf, IPv4 only', () => {
    const dir = mkdtempSync(join(tmpdir(), 'kith-resolv-'));
    try {
      const file = join(dir, 'resolv.conf');
      writeFileSync(file, '# comment\nsearch example.test\nnameserver 192.0.2.53\nnameserver ::1\n  nameserver 198.51.100.1 \noptions ndots:2\n');
      expect(resolvConfUpstreams(file)).to.deep.equal([
        { host: '192.0.2.53', port: 53 },
        { host: '198.51.100.1', port: 53 },
      ]);
      expect(resolvConfUpstreams(join(dir, 'missing'))).to.deep.equal([]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('decides who may recurse', () => {
    const nets = [parseCidr('10.244.0.0/16')!];
    expect(mayRecurse('127.0.0.5', nets)).to.equal(true);
    expect(mayRecurse('::ffff:10.244.3.4', nets)).to.equal(true);
    expect(mayRecurse('10.245.0.1', nets)).to.equal(false);
    expect(mayRecurse('fe80::1', nets)).to.equal(false);
  });
});
