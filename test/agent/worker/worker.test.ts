import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect } from 'chai';
import { execa } from 'execa';
import { bridgeMac } from '../../../agent/runtime/podman-args.js';
import { StateLayer } from '../../../agent/state.js';
import { TestAgent } from '../../support/agent.js';
import { TestEtcd } from '../../support/etcd.js';
import { TestLan, type TestHost } from '../../support/hosts.js';
import { testLog } from '../../support/log.js';
import { waitUntil } from '../../support/wait.js';
import { createPod } from '../scheduler/context.js';
import { podmanIn, podmanPods, randomClusterCidr, startWorkerAgent } from './cluster.js';

/** The capacity the assertions count against, given as flags (the defaults follow the host). */
const CAPACITY = ['--pod-cpu-limit', '1', '--pod-memory-limit', '1024'];

const IMAGE = 'localhost/kith/busybox';
const DOMAIN = 'cluster.local';

describe('worker plugin (real podman in a test host, real etcd)', function () {
  this.timeout(120_000);
  let etcd: TestEtcd;
  let lan: TestLan;
  let host: TestHost;
  let etcdUrl: string;
  let state: StateLayer;
  let agent: TestAgent | undefined;
  const clusterCidr = randomClusterCidr();
  // Another podman network on this machine already has the cluster CIDR's first /24.
  const taken = clusterCidr.replace(/\.0\.0\/16$/, '.0.0/24');
  let blocker: string | undefined;

  before(async () => {
    etcd = await TestEtcd.start();
    lan = await TestLan.create({ hosts: 1 });
    host = lan.hosts[0]!;
    blocker = `${host.name}-other`;
    await execa('podman', ['network', 'create', '--disable-dns', `--subnet=${taken}`, blocker], { stdin: 'ignore', timeout: 30_000 });
    etcdUrl = `http://${lan.gateway}:${await lan.relay(etcd.clientPort)}`;
    const client = etcd.client();
    state = new StateLayer(client, '/kith', testLog);
    agent = startWorkerAgent({ lan, host, etcd, etcdUrl, clusterCidr, plugins: 'worker,scheduler,reaper', extra: CAPACITY });
    await agent.ready(60_000);
  });

  after(async () => {
    await agent?.stop('SIGKILL').catch(() => undefined);
    await state?.close();
    state?.client.close();
    await lan?.destroy();
    if (blocker) await execa('podman', ['network', 'rm', '-f', blocker], { stdin: 'ignore', reject: false, timeout: 30_000 });
    await etcd?.stop();
  });

  afterEach(async function () {
    // A failed test may leave its agent up: stop it cleanly (its leases revoked), so the next test can use the name.
    if (this.currentTest?.state !== 'failed' || !agent) return;
    await agent.stop('SIGTERM', 60_000).catch(() => undefined);
    agent = undefined;
  });

  const podOf = async (name: string) => {
    const kv = await state.get(`resource/pod/${name}`);
    return kv ? (JSON.parse(kv.value) as { state: string; metadata: Record<string, string> }) : undefined;
  };
  const waitState = (name: string, want: string, timeoutMs = 30_000) =>
    waitUntil(async () => (await podOf(name))?.state === want, { timeoutMs, what: `pod ${name} ${want}` });
  const dnsOf = async (name: string) => (await state.get(`dns/${name}.pod.${DOMAIN}.`))?.value;
  /** The MAC of the host's pod bridge, as the kernel has it. */
  const bridgeMacIn = async (h: TestHost) => {
    const iface = (JSON.parse(await podmanIn(h, ['network', 'inspect', h.name])) as { network_interface: string }[])[0]!.network_interface;
    return (JSON.parse((await h.run('ip', ['-j', 'link', 'show', 'dev', iface])).stdout) as { address: string }[])[0]!.address;
  };

  it('claims a subnet no other network on the host uses, publishes its node, name and capacity', async () => {
    const subnets = (await state.list('node.worker/subnet/')).kvs;
    expect(subnets).to.have.length(1);
    expect(JSON.parse(subnets[0]!.value)).to.deep.equal({ worker: host.name, hostAddress: host.address });
    // The key is the CIDR itself (SPEC §2).
    const subnet = subnets[0]!.key.slice('node.worker/subnet/'.length);
    // The first /24 belongs to another network on this host: the worker took the next one.
    expect(subnet).to.equal(clusterCidr.replace(/\.0\.0\/16$/, '.1.0/24'));
    const gw = subnet.replace(/\.0\/24$/, '.1');
    const node = JSON.parse((await state.get(`resource/node.worker/${host.name}`))!.value);
    expect(node.spec).to.deep.equal({ address: gw, hostAddress: host.address, subnet, limits: { cpu: '1', memory: 1024 } });
    expect(await state.get(`dns/${host.name}.worker.node.${DOMAIN}.`)).to.include({ value: gw });
    expect((await state.get(`node.worker/limits/cpu/${host.name}`))?.value).to.equal('1');
    expect((await state.get(`node.worker/limits/memory/${host.name}`))?.value).to.equal('1024');
    // The gateway is bound in the host (a holder keeps the bridge up), so the agent can listen there.
    const addrs = (await host.run('ip', ['-4', '-o', 'addr'])).stdout;
    expect(addrs).to.include(`${gw}/24`);
    // The bridge has a fixed MAC, derived from the subnet, so pods' ARP entry for their gateway stays right.
    expect(await bridgeMacIn(host)).to.equal(bridgeMac(subnet));
  });

  it('refuses a cluster CIDR smaller than a /24 with one line naming the flag, exit 2', async () => {
    const bad = TestAgent.start({
      wrap: host.wrap,
      args: ['--name', `${host.name.slice(0, 20)}-bad`, '--plugins', 'worker', '--etcd-endpoints', etcdUrl, '--cluster-cidr', '10.1.2.0/25', '--pod-network', `${host.name}-bad`],
    });
    expect(await bad.exited).to.equal(2);
    await bad.stop();
    expect(bad.stderr.trim()).to.equal("kith agent: --cluster-cidr '10.1.2.0/25' is smaller than a /24; give a /24 or larger, or --pod-subnet");
  });

  it('runs a pod: env, entrypoint and cmd reach podman, the name points at its IP, CPU and memory are committed', async () => {
    await createPod(state, {
      name: 'envy',
      spec: {
        containers: [{
          name: 'main', image: IMAGE, entrypoint: '/bin/sh', cmd: ['-c', 'echo "$GREETING" > /tmp/out; exec sleep 600'],
          env: { GREETING: 'hello there' }, resources: { requests: { cpu: '0.25', memory: 200 }, limits: { cpu: '0.5', memory: 256 } },
        }],
      },
    });
    await waitState('envy', 'running');
    const ip = await dnsOf('envy');
    expect(ip).to.match(/^10\.\d+\.\d+\.\d+$/);
    const out = await podmanIn(host, ['exec', `${host.name}-envy-main`, 'cat', '/tmp/out']);
    expect(out.trim()).to.equal('hello there');
    const inspect = JSON.parse(await podmanIn(host, ['container', 'inspect', `${host.name}-envy-main`]))[0];
    expect(inspect.HostConfig.Memory).to.equal(256 * 1024 * 1024);
    expect(inspect.HostConfig.NanoCpus).to.equal(500_000_000);
    expect((await state.get(`node.worker/limits/cpu/${host.name}`))?.value).to.equal('0.75');
    expect((await state.get(`node.worker/limits/memory/${host.name}`))?.value).to.equal('824');
    expect((await state.get('pod/claimed/envy'))?.value).to.equal(host.name);
    const p = await podOf('envy');
    expect(p!.metadata).to.include({ workedBy: host.name });

    // Deleting the pod kills it: its container and its name go, its capacity comes back.
    await state.txn({ if: [], then: [{ delete: 'resource/pod/envy' }, { delete: 'pod/unscheduled/envy' }] });
    await waitUntil(async () => !(await podmanPods(host, host.name)).includes(`${host.name}-envy`), { timeoutMs: 20_000, what: 'podman pod removed' });
    await waitUntil(async () => (await dnsOf('envy')) === undefined, { what: 'DNS name removed' });
    await waitUntil(async () => (await state.get(`node.worker/limits/memory/${host.name}`))?.value === '1024', { what: 'memory released' });
    expect(await state.get('pod/claimed/envy')).to.equal(undefined);
  });

  it('writes how pods end: exitSuccess, exitFailure, errored (with the reason)', async () => {
    await createPod(state, { name: 'ok', spec: { containers: [{ name: 'a', image: IMAGE, cmd: ['true'] }, { name: 'b', image: IMAGE, cmd: ['sleep', '1'] }] } });
    await createPod(state, { name: 'bad', spec: { containers: [{ name: 'a', image: IMAGE, cmd: ['sh', '-c', 'exit 3'] }] } });
    await createPod(state, { name: 'noimage', spec: { containers: [{ name: 'a', image: 'localhost/kith/no-such-image' }] } });
    await waitState('ok', 'exitSuccess');
    await waitState('bad', 'exitFailure');
    await waitState('noimage', 'errored');
    expect((await podOf('noimage'))!.metadata.error).to.match(/no-such-image/);
    // The default --image-pull missing: podman tried a registry for the image it did not have.
    expect((await podOf('noimage'))!.metadata.error).to.match(/registry/);
    await waitUntil(async () => (await podmanPods(host, host.name)).length === 1, { what: 'ended pods removed (the holder stays)' });
    for (const p of ['ok', 'bad', 'noimage']) {
      expect(await dnsOf(p)).to.equal(undefined);
      expect(await state.get(`pod/claimed/${p}`)).to.equal(undefined);
    }
  });

  it('a burst of pods all run and keep running', async () => {
    const names = Array.from({ length: 6 }, (_, i) => `burst-${i}`);
    await Promise.all(names.map((name) => createPod(state, { name, spec: { containers: [{ name: 'a', image: IMAGE, cmd: ['sleep', '600'] }] } })));
    for (const n of names) await waitState(n, 'running');
    await new Promise((r) => setTimeout(r, 1500)); // several polls of podman
    for (const n of names) expect((await podOf(n))!.state, n).to.equal('running');
    // Six ports came to the bridge and go again: its MAC stays the fixed one throughout.
    const fixed = bridgeMac((await state.list('node.worker/subnet/')).kvs[0]!.key.slice('node.worker/subnet/'.length));
    expect(await bridgeMacIn(host)).to.equal(fixed);
    await state.txn({ if: [], then: names.flatMap((n) => [{ delete: `resource/pod/${n}` }, { delete: `pod/unscheduled/${n}` }]) });
    await waitUntil(async () => (await podmanPods(host, host.name)).length === 1, { timeoutMs: 30_000, what: 'burst removed' });
    expect(await bridgeMacIn(host)).to.equal(fixed);
  });

  it('kills a pod deleted right after its claim, before it starts', async () => {
    await createPod(state, { name: 'shortlived', spec: { containers: [{ name: 'a', image: IMAGE, cmd: ['sleep', '600'] }] } });
    await waitUntil(async () => ['accepted', 'running'].includes((await podOf('shortlived'))?.state ?? ''), { what: 'claimed', intervalMs: 5 });
    await state.txn({ if: [], then: [{ delete: 'resource/pod/shortlived' }, { delete: 'pod/unscheduled/shortlived' }] });
    await waitUntil(async () => (await state.get('pod/claimed/shortlived')) === undefined, { timeoutMs: 20_000, what: 'claim released' });
    expect(await podmanPods(host, host.name)).to.deep.equal([`${host.name}--holder`]);
    expect(await dnsOf('shortlived')).to.equal(undefined);
  });

  it('after kill -9 and a restart, removes the pods it left behind; a clean stop kills its pods', async () => {
    await createPod(state, { name: 'orphan', spec: { containers: [{ name: 'a', image: IMAGE, cmd: ['sleep', '600'] }] } });
    await waitState('orphan', 'running');
    await agent!.stop('SIGKILL');
    expect(await podmanPods(host, host.name)).to.include(`${host.name}-orphan`);
    // The old alive lease (4 s) must run out before the name can be used again; the reaper ran in the dead agent.
    await waitUntil(async () => (await state.get(`node.worker/heartbeat/alive/${host.name}`)) === undefined, { timeoutMs: 15_000, what: 'old lease expired' });
    agent = startWorkerAgent({ lan, host, etcd, etcdUrl, clusterCidr, plugins: 'worker,scheduler,reaper', extra: CAPACITY });
    await agent.ready(60_000);
    expect(agent.lines.some((l) => l.includes('removed pods an earlier run left'))).to.equal(true);
    expect(await podmanPods(host, host.name)).to.deep.equal([`${host.name}--holder`]);
    await waitState('orphan', 'dead'); // the restarted agent's reaper found the death

    await createPod(state, { name: 'last', spec: { containers: [{ name: 'a', image: IMAGE, cmd: ['sleep', '600'] }] } });
    await waitState('last', 'running');
    expect(await agent.stop('SIGTERM')).to.equal(0);
    agent = undefined;
    expect((await podOf('last'))!.state).to.equal('killed');
    expect(await podmanPods(host, host.name)).to.deep.equal([]);
    expect(await dnsOf('last')).to.equal(undefined);
    expect(await state.get(`node.worker/limits/cpu/${host.name}`)).to.equal(undefined);
  });

  it('after kill -9, starts again at once with the same data dir: adopts the pods still running (same IP, record, rules), ends those that stopped meanwhile, removes those deleted meanwhile', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'kith-worker-'));
    /** The host's iptables rules that name an address, sorted (every table). */
    const rulesOf = async (ip: string) => (await host.run('iptables-save', [])).stdout.split('\n').filter((l) => l.includes(`${ip}/`) || l.includes(`${ip} `)).sort();
    try {
      // An alive lease far longer than the test: only the takeover lets the name be used again now.
      const long = [...CAPACITY, '--data-dir', dataDir, '--alive-ttl', '300'];
      agent = startWorkerAgent({ lan, host, etcd, etcdUrl, clusterCidr, plugins: 'worker,scheduler', extra: long });
      await agent.ready(60_000);
      const sleeper = { containers: [{ name: 'a', image: IMAGE, cmd: ['sleep', '600'] }], ports: [80] };
      for (const name of ['kept', 'ending', 'gone']) await createPod(state, { name, spec: sleeper });
      for (const name of ['kept', 'ending', 'gone']) await waitState(name, 'running');
      const record = await dnsOf('kept');
      const ip = record!; // an A record's value is the address
      const rules = await rulesOf(ip);
      expect(rules.length).to.be.greaterThan(0);
      const keptClaim = await state.get('pod/claimed/kept');
      const stateOf = async (container: string) => {
        const [status, startedAt] = (await podmanIn(host, ['container', 'inspect', '-f', '{{.State.Status}} {{.State.StartedAt}}', container])).trim().split(' ', 2);
        return { status, startedAt };
      };
      const startedBefore = await stateOf(`${host.name}-kept-a`);
      expect(startedBefore.status).to.equal('running');

      await agent.stop('SIGKILL');
      // While the agent is down, one pod's container exits and another pod is deleted.
      await podmanIn(host, ['kill', `${host.name}-ending-a`]);
      await state.txn({ if: [], then: [{ delete: 'resource/pod/gone' }] });

      agent = startWorkerAgent({ lan, host, etcd, etcdUrl, clusterCidr, plugins: 'worker,scheduler', extra: long });
      await agent.ready(60_000);
      expect(agent.lines.some((l) => l.includes('took over from the previous run of this node'))).to.equal(true);
      expect(agent.lines.some((l) => l.includes('adopted the pods an earlier run left running'))).to.equal(true);

      // Adopted: still running, the same record and claim (now on the new lease), its rules made again and not doubled.
      expect((await podOf('kept'))!.state).to.equal('running');
      expect(await dnsOf('kept')).to.equal(record);
      expect((await state.get('pod/claimed/kept'))?.createRevision).to.equal(keptClaim!.createRevision);
      expect(await rulesOf(ip)).to.deep.equal(rules);
      // The very container that ran before: not made again, still running.
      expect(await stateOf(`${host.name}-kept-a`)).to.deep.equal({ ...startedBefore, status: 'running' });
      // It ended while nobody watched: its true end state, written by the new run.
      await waitState('ending', 'exitFailure');
      // Deleted meanwhile: its podman pod, claim and record are gone.
      expect(await podmanPods(host, host.name)).to.deep.equal([`${host.name}--holder`, `${host.name}-kept`].sort());
      expect(await state.get('pod/claimed/gone')).to.equal(undefined);
      expect(await dnsOf('gone')).to.equal(undefined);

      // The adopted pod is a pod like any other: deleting it stops it.
      await state.txn({ if: [], then: [{ delete: 'resource/pod/kept' }] });
      await waitUntil(async () => (await podmanPods(host, host.name)).length === 1, { timeoutMs: 20_000, what: 'adopted pod removed once deleted' });
      expect(await rulesOf(ip)).to.deep.equal([]);
      // And new pods run.
      await createPod(state, { name: 'after', spec: { containers: [{ name: 'a', image: IMAGE, cmd: ['sleep', '600'] }] } });
      await waitState('after', 'running');
      expect(await agent.stop('SIGTERM')).to.equal(0);
      agent = undefined;
    } finally {
      rmSync(dataDir, { recursive: true, force: true });
    }
  });

  it('with --keep-pods a stop leaves the pods running, named and claimed; the next start adopts them, and a stop without it drains', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'kith-worker-'));
    const startedAt = async () => (await podmanIn(host, ['container', 'inspect', '-f', '{{.State.Status}} {{.State.StartedAt}}', `${host.name}-upgrade-a`])).trim();
    try {
      const long = [...CAPACITY, '--data-dir', dataDir, '--alive-ttl', '300'];
      agent = startWorkerAgent({ lan, host, etcd, etcdUrl, clusterCidr, plugins: 'worker,scheduler', extra: [...long, '--keep-pods'] });
      await agent.ready(60_000);
      await createPod(state, { name: 'upgrade', spec: { containers: [{ name: 'a', image: IMAGE, cmd: ['sleep', '600'] }], ports: [80] } });
      await waitState('upgrade', 'running');
      const record = await dnsOf('upgrade');
      const started = await startedAt();
      expect(started).to.match(/^running /);
      const rulesOf = async () => (await host.run('iptables-save', [])).stdout.split('\n').filter((l) => l.includes(`${record}/`)).sort();
      const rules = await rulesOf();
      expect(rules.length).to.be.greaterThan(0);

      expect(await agent.stop('SIGTERM')).to.equal(0);
      expect(agent.lines.some((l) => l.includes('leaving pod running for the next start'))).to.equal(true);
      // Stopped, and out of the scheduler's choice (no healthy heartbeat), but its pod runs on as it was, isolated as before.
      expect(await state.get(`node.worker/heartbeat/healthy/${host.name}`)).to.equal(undefined);
      expect(await state.get(`node.worker/heartbeat/alive/${host.name}`)).to.not.equal(undefined);
      expect((await podOf('upgrade'))!.state).to.equal('running');
      expect(await dnsOf('upgrade')).to.equal(record);
      expect(await state.get('pod/claimed/upgrade')).to.not.equal(undefined);
      expect(await startedAt()).to.equal(started);
      expect(await rulesOf()).to.deep.equal(rules);

      // The next start (a new version of kith, say) adopts it: the same container, the same name.
      agent = startWorkerAgent({ lan, host, etcd, etcdUrl, clusterCidr, plugins: 'worker,scheduler', extra: long });
      await agent.ready(60_000);
      expect(agent.lines.some((l) => l.includes('adopted the pods an earlier run left running'))).to.equal(true);
      expect(await startedAt()).to.equal(started);
      expect(await dnsOf('upgrade')).to.equal(record);
      expect(await rulesOf()).to.deep.equal(rules);
      // Without --keep-pods a stop drains: the pod is killed, its name and rules go.
      expect(await agent.stop('SIGTERM')).to.equal(0);
      agent = undefined;
      expect((await podOf('upgrade'))!.state).to.equal('killed');
      expect(await dnsOf('upgrade')).to.equal(undefined);
      expect(await rulesOf()).to.deep.equal([]);
      expect(await podmanPods(host, host.name)).to.deep.equal([]);
    } finally {
      rmSync(dataDir, { recursive: true, force: true });
    }
  });

  it('binds --dns-listen and --api-listen on the pod network\'s gateway once the worker has made it; one it will not make is one line, exit 2', async () => {
    const subnet = clusterCidr.replace(/\.0\.0\/16$/, '.200.0/24');
    const gw = subnet.replace(/\.0\/24$/, '.1');
    const listen = ['--pod-subnet', subnet, '--dns-listen', `127.0.0.1:5353,${gw}:53`, '--api-listen', `127.0.0.1:8080,${gw}:80`];
    agent = startWorkerAgent({ lan, host, etcd, etcdUrl, clusterCidr, plugins: 'worker,dns,api', extra: [...CAPACITY, ...listen] });
    await agent.ready(60_000);
    const name = `${host.name}.worker.node.${DOMAIN}`;
    const dig = await host.run('dig', ['+short', '+time=2', '+tries=1', `@${gw}`, name]);
    expect(dig.stdout.trim()).to.equal(gw);
    // Where pods ask: the agent answers at <gateway>:53 and :80, so it joins dns.special and api.special.
    expect(await state.get(`dns/dns.special.${DOMAIN}./${name}.`)).to.not.equal(undefined);
    expect(await state.get(`dns/api.special.${DOMAIN}./${host.name}.api.node.${DOMAIN}.`)).to.not.equal(undefined);
    expect(await agent.stop('SIGTERM')).to.equal(0);
    agent = undefined;

    // Inside the cluster CIDR but not this worker's subnet: nobody makes that address here.
    const foreign = clusterCidr.replace(/\.0\.0\/16$/, '.201.1');
    const bad = startWorkerAgent({ lan, host, etcd, etcdUrl, clusterCidr, plugins: 'worker,dns', extra: [...CAPACITY, '--pod-subnet', subnet, '--dns-listen', `127.0.0.1:5353,${foreign}:53`] });
    expect(await bad.exited).to.equal(2);
    await bad.stop();
    expect(bad.stderr.trim()).to.equal(`kith agent: --dns-listen ${foreign}:53: ${foreign} is not an address of this host`);
    expect(await podmanPods(host, host.name)).to.deep.equal([]);
  });
});
