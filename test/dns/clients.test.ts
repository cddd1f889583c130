import { expect } from 'chai';
import { randomBytes, randomInt } from 'node:crypto';
import { execa } from 'execa';
import type { Etcd3 } from 'etcd3';
import { TestAgent } from '../support/agent.js';
import { TestEtcd } from '../support/etcd.js';
import { freePort } from '../support/ports.js';
import { StubUpstream } from './stub.js';

/**
 * Who may recurse and transfer: a client in a test host (a network namespace
 * joined by a veth pair) is neither loopback nor, by default, in a pod subnet.
 */
describe('dns clients beyond loopback (a test host)', function () {
  this.timeout(60_000);
  const tag = randomBytes(3).toString('hex');
  const ns = `kithdns-${tag}`;
  const hostIf = `kdh${tag}`;
  const nsIf = `kdn${tag}`;
  const octet = randomInt(1, 250);
  const hostAddr = `198.18.${octet}.1`;
  const clientAddr = `198.18.${octet}.2`;
  let etcd: TestEtcd;
  let client: Etcd3;
  let stub: StubUpstream;
  const agents: TestAgent[] = [];
  let closedPort: number;
  let podPort: number;

  const ip = (...args: string[]) => execa('ip', args);
  const digFrom = (port: number, args: string[]) =>
    execa('nsenter', [`--net=/run/netns/${ns}`, 'dig', `@${hostAddr}`, '-p', String(port), '+tries=1', '+time=3', ...args], { reject: false, timeout: 15_000 });

  before(async () => {
    await ip('netns', 'add', ns);
    await ip('link', 'add', hostIf, 'type', 'veth', 'peer', 'name', nsIf);
    await ip('link', 'set', nsIf, 'netns', ns);
    await ip('addr', 'add', `${hostAddr}/30`, 'dev', hostIf);
    await ip('link', 'set', hostIf, 'up');
    await ip('-n', ns, 'addr', 'add', `${clientAddr}/30`, 'dev', nsIf);
    await ip('-n', ns, 'link', 'set', nsIf, 'up');
    await ip('-n', ns, 'link', 'set', 'lo', 'up');
    etcd = await TestEtcd.start();
    client = etcd.client();
    await client.put('/kith/dns/web.pod.cluster.local.').value('10.244.1.5').exec();
    stub = await new StubUpstream('127.0.0.4').start();
    closedPort = await freePort();
    podPort = await freePort();
    const start = (name: string, port: number, extra: string[]) => {
      const a = TestAgent.start({
        args: ['--name', name, '--plugins', 'dns', '--etcd-endpoints', etcd.endpoint, '--dns-listen', `${hostAddr}:${port}`, '--upstream-dns', `${stub.host}:${stub.port}`, ...extra],
      });
      agents.push(a);
      return a.ready();
    };
    await start(`dnsc-${tag}-a`, closedPort, []);
    // Second agent: the test host's address is inside its pod subnet.
    await start(`dnsc-${tag}-b`, podPort, ['--pod-subnet', `198.18.${octet}.0/30`]);
  });

  after(async () => {
    for (const a of agents) await a.stop().catch(() => undefined);
    await stub?.stop().catch(() => undefined);
    client?.close();
    await etcd?.stop();
    await ip('netns', 'del', ns).catch(() => undefined);
    await ip('link', 'del', hostIf).catch(() => undefined);
  });

  it('answers in-zone names to any client, authoritatively', async () => {
    const r = await digFrom(closedPort, ['web.pod.cluster.local']);
    expect(r.stdout).to.match(/flags: qr aa[ ;]/);
    expect(r.stdout).to.match(/web\.pod\.cluster\.local\.\s+5\s+IN\s+A\s+10\.244\.1\.5/);
  });

  it('refuses to forward for a client outside loopback and the pod subnets', async () => {
    const r = await digFrom(closedPort, ['www.example.test']);
    expect(r.stdout).to.match(/status: REFUSED/);
    expect(stub.count('www.example.test')).to.equal(0);
  });

  it('forwards for a client inside --pod-subnet', async () => {
    const r = await digFrom(podPort, ['www.example.test']);
    expect(r.stdout).to.match(/status: NOERROR/);
    expect(r.stdout).to.match(/www\.example\.test\.\s+60\s+IN\s+A\s+192\.0\.2\.1/);
  });

  it('refuses a zone transfer to a client that is not on loopback', async () => {
    const r = await digFrom(podPort, ['cluster.local', 'AXFR']);
    expect(r.stdout).to.match(/Transfer failed/);
    expect(r.stdout).to.not.match(/web\.pod\.cluster\.local/);
  });
});
