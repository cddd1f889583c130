import { randomBytes } from 'node:crypto';
import { Writable } from 'node:stream';
import { expect } from 'chai';
import { pino } from 'pino';
import { Iptables } from '../../firewall/iptables.js';
import { NodeFirewall } from '../../firewall/node-firewall.js';
import { TestLan, type NamespacePod, type TestHost } from '../support/hosts.js';
import { probe, serve } from './probe.js';

/** The worker's view of the firewall, in a test host with real iptables. */
describe('firewall: NodeFirewall (start, pod hooks, stop)', function () {
  this.timeout(60_000);

  const chain = `KT-${randomBytes(4).toString('hex')}`;
  let lan: TestLan;
  let h: TestHost;
  let web: NamespacePod, client: NamespacePod;
  const logs: Record<string, unknown>[] = [];
  const log = pino(
    { level: 'debug' },
    new Writable({
      write(chunk, _enc, cb) {
        for (const l of String(chunk).split('\n').filter(Boolean)) logs.push(JSON.parse(l));
        cb();
      },
    }),
  );
  const logged = (msg: string) => logs.filter((l) => l.msg === msg);

  before(async () => {
    lan = await TestLan.create({ hosts: 1, uplink: false });
    h = lan.hosts[0]!;
    web = await h.addNamespacePod('10.231.1.0/24');
    client = await h.addNamespacePod('10.231.1.0/24');
    await serve(web, 'web', [80, 81]);
  });

  after(async () => {
    await lan?.destroy();
  });

  it('start removes what a crashed run left, hooks firewall a pod, stop removes the chains', async () => {
    const crashed = new Iptables({ chain, prefix: h.wrap });
    await crashed.setUp();
    await crashed.applyPod({ ip: '10.231.1.200', ports: [80] });

    const fw = await NodeFirewall.start({ chain, log, prefix: h.wrap });
    expect(fw.bridgeProblem).to.equal(undefined);
    expect(logged('removed firewall chains left by an unclean stop')).to.have.length(1);
    expect((await fw.iptables.list('filter')).filter((l) => l.includes('10.231.1.200'))).to.deep.equal([]);

    const pod = { name: 'web', spec: { ports: [{ container: 80, cluster: 8080 }] } };
    await fw.hooks.podStarting(pod, web.address);
    expect(await probe(client, 'tcp', web.address, 8080)).to.equal('answer:web:80');
    expect(await probe(client, 'tcp', web.address, 80)).to.equal('refused');
    await fw.hooks.podStopping(pod, web.address);
    expect(await probe(client, 'tcp', web.address, 81)).to.equal('answer:web:81');

    await fw.stop();
    expect(await fw.iptables.list('nat')).to.deep.equal([]);
    expect(await fw.iptables.list('filter')).to.deep.equal([]);
  });

  it('with bridge netfilter off it says so at start and refuses pods with ports, not pods without', async () => {
    await h.run('sysctl', ['-q', '-w', 'net.bridge.bridge-nf-call-iptables=0']);
    let fw: NodeFirewall | undefined;
    try {
      fw = await NodeFirewall.start({ chain, log, prefix: h.wrap });
      expect(fw.bridgeProblem).to.match(/bridge-nf-call-iptables is 0/);
      expect(logged('bridge netfilter is off: pods with ports will be refused')).to.have.length(1);
      const err = await fw.hooks.podStarting({ name: 'web', spec: { ports: [80] } }, web.address).then(
        () => undefined,
        (e: unknown) => e as Error,
      );
      expect(err?.message).to.match(/^pod web declares ports, but their mapping and isolation would not hold on this node: .*bridge-nf-call-iptables is 0/);
      expect((await fw.iptables.list('filter')).filter((l) => l.includes(web.address))).to.deep.equal([]);
      await fw.hooks.podStarting({ name: 'quiet', spec: { ports: [] } }, web.address);
      expect((await fw.iptables.list('filter')).filter((l) => l.includes(web.address))).to.have.length(1);
    } finally {
      await h.run('sysctl', ['-q', '-w', 'net.bridge.bridge-nf-call-iptables=1']);
      await fw?.stop();
    }
  });
});
