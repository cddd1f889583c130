import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect } from 'chai';
import { execa } from 'execa';
import { bridgeNetfilterProblem, Iptables, IptablesError } from '../../firewall/iptables.js';
import type { PodFirewall } from '../../firewall/rules.js';
import { TestLan, type NamespacePod, type TestHost } from '../support/hosts.js';
import { probe, serve, type Runner } from './probe.js';

/**
 * The pod firewall with real iptables and real connections, inside test hosts
 * (network namespaces; the root namespace's tables are never touched). Pods
 * are namespaces behind a bridge in their host, as podman makes them.
 */
describe('firewall: real iptables in test hosts', function () {
  this.timeout(60_000);

  const chain = `KT-${randomBytes(4).toString('hex')}`;
  let lan: TestLan;
  let h1: TestHost, h2: TestHost;
  let web80: NamespacePod, web8080: NamespacePod, c1: NamespacePod, c2: NamespacePod;
  let fw: Iptables;
  let pod80: PodFirewall, pod8080: PodFirewall;
  let rootBefore: string;

  const rootTables = async () => (await execa('iptables', ['-S'])).stdout + (await execa('iptables', ['-t', 'nat', '-S'])).stdout;

  before(async () => {
    rootBefore = await rootTables();
    lan = await TestLan.create({ hosts: 2, uplink: false });
    [h1, h2] = lan.hosts as [TestHost, TestHost];
    web80 = await h1.addNamespacePod('10.231.1.0/24');
    web8080 = await h1.addNamespacePod('10.231.1.0/24');
    c1 = await h1.addNamespacePod('10.231.1.0/24');
    c2 = await h2.addNamespacePod('10.231.2.0/24');
    // host-gw: each host routes the other's pod subnet via the other's LAN address.
    await h1.route('10.231.2.0/24', h2.address);
    await h2.route('10.231.1.0/24', h1.address);
    await serve(web80, 'web80', [80, 81], [5300]);
    await serve(web8080, 'web8080', [80, 81], [5300]);
    pod80 = { ip: web80.address, ports: [80] };
    pod8080 = { ip: web8080.address, ports: [{ container: 80, cluster: 8080 }] };
    fw = new Iptables({ chain, prefix: h1.wrap });
  });

  after(async () => {
    await lan?.destroy();
  });

  /** Every client of the contract: a pod on the same host, the host itself, a pod on another host, another host. */
  const clients = (): [string, Runner][] => [
    ['pod on the same host', c1],
    ['the host itself', h1],
    ['pod on another host', c2],
    ['another host', h2],
  ];

  it('without rules every port answers (the baseline the rules change)', async () => {
    for (const [who, c] of clients()) {
      expect(await probe(c, 'tcp', web80.address, 81), who).to.equal('answer:web80:81');
      expect(await probe(c, 'udp', web80.address, 5300), who).to.equal('answer:web80:udp5300');
      expect(await probe(c, 'tcp', web8080.address, 8080), who).to.equal('refused');
    }
  });

  it('bridge netfilter is on in the test host', async () => {
    expect(await bridgeNetfilterProblem(h1.wrap)).to.equal(undefined);
  });

  it('exposed and mapped ports answer, everything else is refused, from every kind of client', async () => {
    expect(await fw.removeStale()).to.equal(0);
    await fw.setUp();
    await fw.applyPod(pod80);
    await fw.applyPod(pod8080);
    for (const [who, c] of clients()) {
      expect(await probe(c, 'tcp', web80.address, 80), `${who}: exposed 80`).to.equal('answer:web80:80');
      expect(await probe(c, 'tcp', web80.address, 81), `${who}: undeclared 81`).to.equal('refused');
      expect(await probe(c, 'udp', web80.address, 5300), `${who}: UDP`).to.equal('refused');
      expect(await probe(c, 'tcp', web8080.address, 8080), `${who}: cluster 8080`).to.equal('answer:web8080:80');
      expect(await probe(c, 'tcp', web8080.address, 80), `${who}: mapped container port 80 directly`).to.equal('refused');
      expect(await probe(c, 'tcp', web8080.address, 81), `${who}: undeclared 81`).to.equal('refused');
      expect(await probe(c, 'udp', web8080.address, 5300), `${who}: UDP`).to.equal('refused');
    }
    // Outbound connections and their replies are not the pod's inbound: a firewalled pod still reaches others.
    expect(await probe(web80, 'tcp', web8080.address, 8080)).to.equal('answer:web8080:80');
  });

  it('removing a pod leaves none of its rules and opens its IP again; removing twice is fine', async () => {
    await fw.removePod(pod80);
    const left = [...(await fw.list('nat')), ...(await fw.list('filter'))];
    expect(left.filter((l) => l.includes(web80.address))).to.deep.equal([]);
    expect(left.filter((l) => l.includes(web8080.address))).to.have.length(3);
    expect(await probe(c2, 'tcp', web80.address, 81)).to.equal('answer:web80:81');
    await fw.removePod(pod80);
    await fw.removePod(pod8080);
    expect(await fw.list('nat')).to.deep.equal([`-N ${chain}`, `-A PREROUTING -j ${chain}`, `-A OUTPUT -j ${chain}`]);
    expect(await fw.list('filter')).to.deep.equal([`-N ${chain}`, `-A FORWARD -j ${chain}`, `-A OUTPUT -j ${chain}`]);
  });

  it('rules an earlier pod with the same IP left are replaced, not added to', async () => {
    // A pod whose removal failed left a DNAT of 8080 -> 81; the new pod on that IP exposes only 80.
    await fw.applyPod({ ip: web80.address, ports: [{ container: 81, cluster: 8080 }] });
    await fw.applyPod(pod80);
    expect((await fw.list('nat')).filter((l) => l.includes(web80.address))).to.deep.equal([]);
    expect((await fw.list('filter')).filter((l) => l.includes(web80.address))).to.have.length(2);
    expect(await probe(c2, 'tcp', web80.address, 8080)).to.equal('refused');
    expect(await probe(c2, 'tcp', web80.address, 80)).to.equal('answer:web80:80');
    await fw.removePod(pod80);
  });

  it('tear-down removes the chains and jumps; a second tear-down does nothing', async () => {
    await fw.applyPod(pod8080);
    expect(await fw.tearDown()).to.be.greaterThan(0);
    expect(await fw.list('nat')).to.deep.equal([]);
    expect(await fw.list('filter')).to.deep.equal([]);
    expect(await fw.tearDown()).to.equal(0);
    expect(await probe(c1, 'tcp', web8080.address, 81)).to.equal('answer:web8080:81');
  });

  it('stale clean-up after a crash (rules of a dead run, duplicated jumps) leaves nothing, and is idempotent', async () => {
    const crashed = new Iptables({ chain, prefix: h1.wrap });
    await crashed.setUp();
    await crashed.applyPod(pod80);
    await crashed.applyPod(pod8080);
    // A half-done earlier start may leave a second jump.
    await crashed.exec(['-t', 'nat', '-A', 'OUTPUT', '-j', chain]);
    await crashed.exec(['-t', 'filter', '-I', 'FORWARD', '-j', chain]);
    const restarted = new Iptables({ chain, prefix: h1.wrap });
    expect(await restarted.removeStale()).to.equal(10);
    expect(await restarted.list('nat')).to.deep.equal([]);
    expect(await restarted.list('filter')).to.deep.equal([]);
    expect(await restarted.removeStale()).to.equal(0);
    expect(await probe(c2, 'tcp', web80.address, 81)).to.equal('answer:web80:81');
  });

  it('a failing command is an error naming the command and iptables message, and leaves no partial pod', async () => {
    // No chain set up: the first command fails.
    const err = await fw.applyPod(pod8080).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).to.be.instanceOf(IptablesError);
    expect((err as IptablesError).message).to.contain(`iptables -t filter -I FORWARD 1 -j ${chain}' failed (exit`);
    expect((err as IptablesError).message).to.match(/No chain\/target\/match|does not exist|Couldn't load target/);
    // A failure half-way (the REJECT rule, injected by a wrapper around the real iptables)
    // takes back the DNAT and RETURN rules already appended.
    const dir = mkdtempSync(join(tmpdir(), 'kith-fw-'));
    try {
      const wrapper = join(dir, 'iptables');
      writeFileSync(wrapper, '#!/bin/sh\ncase "$*" in *REJECT*) echo "injected failure" >&2; exit 4;; esac\nexec iptables "$@"\n', { mode: 0o755 });
      const failing = new Iptables({ chain, prefix: h1.wrap, command: wrapper });
      await failing.setUp();
      const err2 = await failing.applyPod(pod8080).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect((err2 as IptablesError).message).to.contain(`-t filter -A ${chain} -d ${web8080.address}/32 -m conntrack ! --ctstate RELATED,ESTABLISHED -j REJECT' failed (exit 4): injected failure`);
      expect(await fw.list('nat')).to.deep.equal([`-N ${chain}`, `-A PREROUTING -j ${chain}`, `-A OUTPUT -j ${chain}`]);
      expect(await fw.list('filter')).to.deep.equal([`-N ${chain}`, `-A FORWARD -j ${chain}`, `-A OUTPUT -j ${chain}`]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
      await fw.tearDown();
    }
    expect(await fw.list('nat')).to.deep.equal([]);
  });

  it("a network backend's jump inserted above the node's (as netavark does) is put back below it", async () => {
    // netavark's FORWARD chain accepts everything from its pod subnet.
    await h1.run('iptables', ['-t', 'filter', '-N', 'KT-BACKEND']);
    try {
      await fw.setUp();
      await fw.applyPod(pod80);
      await h1.run('iptables', ['-t', 'filter', '-A', 'KT-BACKEND', '-s', '10.231.1.0/24', '-j', 'ACCEPT']);
      await h1.run('iptables', ['-t', 'filter', '-I', 'FORWARD', '-j', 'KT-BACKEND']);
      expect(await probe(c1, 'tcp', web80.address, 81), 'the gap such an insert opens').to.equal('answer:web80:81');
      expect(await fw.keepFirst()).to.equal(2);
      expect(await probe(c1, 'tcp', web80.address, 81)).to.equal('refused');
      expect((await h1.run('iptables', ['-S', 'FORWARD'])).stdout.split('\n').slice(1, 3)).to.deep.equal([`-A FORWARD -j ${chain}`, '-A FORWARD -j KT-BACKEND']);
      // applyPod does the same before adding a pod.
      await h1.run('iptables', ['-t', 'filter', '-I', 'FORWARD', '-j', 'KT-BACKEND']);
      await fw.applyPod(pod8080);
      expect(await probe(c1, 'tcp', web8080.address, 81)).to.equal('refused');
      expect(await fw.keepFirst()).to.equal(0);
    } finally {
      await fw.tearDown();
      await h1.run('iptables', ['-t', 'filter', '-D', 'FORWARD', '-j', 'KT-BACKEND'], { reject: false });
      await h1.run('iptables', ['-t', 'filter', '-D', 'FORWARD', '-j', 'KT-BACKEND'], { reject: false });
      await h1.run('iptables', ['-t', 'filter', '-F', 'KT-BACKEND'], { reject: false });
      await h1.run('iptables', ['-t', 'filter', '-X', 'KT-BACKEND'], { reject: false });
    }
  });

  it('connections the host opens take nat OUTPUT, not PREROUTING: without that jump the host misses the mapping', async () => {
    await fw.exec(['-t', 'nat', '-N', chain]);
    await fw.exec(['-t', 'nat', '-A', 'PREROUTING', '-j', chain]);
    await fw.exec(['-t', 'filter', '-N', chain]);
    await fw.exec(['-t', 'filter', '-I', 'FORWARD', '-j', chain]);
    await fw.exec(['-t', 'filter', '-I', 'OUTPUT', '-j', chain]);
    try {
      await fw.applyPod(pod8080);
      expect(await probe(c1, 'tcp', web8080.address, 8080)).to.equal('answer:web8080:80');
      expect(await probe(h1, 'tcp', web8080.address, 8080)).to.equal('refused');
    } finally {
      await fw.tearDown();
    }
  });

  it('the bridge check names the reason when bridged traffic would bypass iptables', async () => {
    await h2.run('sysctl', ['-q', '-w', 'net.bridge.bridge-nf-call-iptables=0']);
    try {
      expect(await bridgeNetfilterProblem(h2.wrap)).to.match(/bridge-nf-call-iptables is 0: traffic between pods on one bridge bypasses iptables/);
    } finally {
      await h2.run('sysctl', ['-q', '-w', 'net.bridge.bridge-nf-call-iptables=1']);
    }
  });

  it('the root namespace tables were never touched', async () => {
    expect(await rootTables()).to.equal(rootBefore);
  });
});
