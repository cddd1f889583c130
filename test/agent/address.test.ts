import { expect } from 'chai';
import { bindError, listensAt, madeByWorker, parseHostPort } from '../../agent/address.js';
import { StartupError } from '../../agent/errors.js';

describe('addresses', () => {
  it('parses IPv4 addr:port and nothing else', () => {
    expect(parseHostPort('127.0.0.1:53')).to.deep.equal({ host: '127.0.0.1', port: 53 });
    for (const bad of ['127.0.0.1', 'localhost:53', '::1:53', '10.0.0.1:99999', '10.0.0.1:']) expect(parseHostPort(bad), bad).to.equal(undefined);
  });

  it('knows where it listens, the wildcard included', () => {
    expect(listensAt([{ host: '0.0.0.0', port: 53 }], '10.1.1.1', 53)).to.equal(true);
    expect(listensAt([{ host: '10.1.1.1', port: 5353 }], '10.1.1.1', 53)).to.equal(false);
  });

  it('leaves the pod network\'s addresses to the start when a worker runs, and only then', () => {
    const c = { plugins: ['worker', 'dns'], clusterCidr: '10.244.0.0/16' };
    expect(madeByWorker(c, '10.244.7.1')).to.equal(true);
    expect(madeByWorker({ ...c, podSubnet: '192.168.5.0/24' }, '192.168.5.1')).to.equal(true);
    expect(madeByWorker(c, '127.0.0.1')).to.equal(false);
    expect(madeByWorker(c, '0.0.0.0')).to.equal(false);
    expect(madeByWorker({ ...c, plugins: ['dns'] }, '10.244.7.1')).to.equal(false);
  });

  it('says what a failed bind means in one line naming the flag', () => {
    const hp = { host: '127.0.0.1', port: 53 };
    const err = (code: string) => Object.assign(new Error(code), { code });
    expect(bindError('--dns-listen', hp, 'UDP', err('EADDRINUSE'))).to.be.instanceOf(StartupError);
    expect(bindError('--dns-listen', hp, 'UDP', err('EADDRINUSE')).message).to.equal('--dns-listen 127.0.0.1:53: UDP port 53 is in use on 127.0.0.1; stop what holds it or pick another address');
    expect(bindError('--api-listen', hp, 'TCP', err('EACCES')).message).to.equal('--api-listen 127.0.0.1:53: no permission to bind TCP port 53 (ports below 1024 need root or CAP_NET_BIND_SERVICE)');
    expect(bindError('--api-listen', { host: '192.0.2.7', port: 80 }, 'TCP', err('EADDRNOTAVAIL')).message).to.equal('--api-listen 192.0.2.7:80: 192.0.2.7 is not an address of this host');
  });
});
