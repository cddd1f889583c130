import type { ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { expect } from 'chai';
import type { Etcd3 } from 'etcd3';
import { TestAgent } from '../support/agent.js';
import { TestEtcd } from '../support/etcd.js';
import { nsWrap, TestLan, type RunResult, type TestHost } from '../support/hosts.js';
import { freePort } from '../support/ports.js';
import { waitUntil } from '../support/wait.js';
import { randomClusterCidr } from '../agent/worker/cluster.js';
import { probe, serve, type Runner } from './probe.js';

/**
 * Issue 6 end to end: two worker agents in two test hosts (network namespaces
 * on one LAN, host-gw routes between their pod subnets), an agent with the API
 * and scheduler in the root namespace, real podman pods, real iptables.
 * The reference's container-networking test, from a pod on the same host, a
 * pod on the other host, and both hosts themselves:
 *   web80   on host 1, ports [80]                          (Expose)
 *   web8080 on host 2, ports [{container: 80, cluster: 8080}] (mapping)
 *   test1   on host 1, test2 on host 2                    (clients, busybox nc)
 */
const IMAGE = 'localhost/kith/busybox';
const PREFIX = '/kith';
const DOMAIN = 'cluster.local';

/** A busybox shell that serves `<label>` over HTTP on 80 and a line on 81 (undeclared). */
const webCmd = (label: string) => [
  'sh', '-c', `echo ${label} > /www/index.html; nc -ll -p 81 -e echo open81 & exec httpd -f -p 80 -h /www`,
];

describe('firewall end to end: worker agents, podman pods, real iptables', function () {
  this.timeout(180_000);

  let etcd: TestEtcd;
  let kv: Etcd3;
  let lan: TestLan;
  let h1: TestHost, h2: TestHost;
  let ctl: TestAgent | undefined;
  const workers = new Map<TestHost, TestAgent>();
  let api = '';
  let etcdUrl = '';
  let cidr = '';
  const extra: ChildProcess[] = [];
  const ips: Record<string, string> = {};

  const workerArgs = (h: TestHost) => [
    '--name', h.name,
    '--plugins', 'worker',
    '--etcd-endpoints', etcdUrl,
    '--host-address', h.address,
    '--pod-network', h.name,
    '--cluster-cidr', cidr,
    '--healthy-ttl', '4',
    '--alive-ttl', '4',
  ];
  const startWorker = async (h: TestHost) => {
    const a = TestAgent.start({ wrap: h.wrap, args: workerArgs(h), env: { KITH_WORKER_POLL_MS: '300' } });
    workers.set(h, a);
    await a.ready(60_000);
    return a;
  };

  async function createPod(name: string, host: TestHost, spec: Record<string, unknown>): Promise<void> {
    const res = await fetch(`${api}/resources`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ type: 'pod', name, state: 'created', spec: { ...spec, schedulingConstraints: { mayBeScheduledOn: [host.name] } } }),
    });
    expect(res.status, await res.clone().text()).to.equal(201);
  }

  async function podState(name: string): Promise<{ state?: string; metadata?: Record<string, string> }> {
    return (await (await fetch(`${api}/resources/pod/${name}`)).json()) as { state?: string };
  }

  /** The network namespace of a running pod (podman's sandbox), as a place to run probes. */
  async function podNetns(host: TestHost, pod: string): Promise<Runner> {
    const r = await host.run('podman', ['inspect', '-f', '{{.NetworkSettings.SandboxKey}}', `${host.name}-${pod}-infra`]);
    const wrap = ['nsenter', `--net=${r.stdout.trim()}`];
    return {
      run: (cmd, args, opts) => host.run(wrap[0]!, [...wrap.slice(1), cmd, ...args], opts as never),
      spawn: (cmd, args) => {
        const p = host.spawn(wrap[0]!, [...wrap.slice(1), cmd, ...args]);
        extra.push(p);
        return p;
      },
    };
  }

  /** One HTTP exchange with busybox nc, from inside a pod's container or on a host. */
  async function http(from: { host: TestHost; pod?: string }, ip: string, port: number): Promise<string> {
    const script = `printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 3 ${ip} ${port}`;
    const r: RunResult = from.pod
      ? await from.host.run('podman', ['exec', `${from.host.name}-${from.pod}-main`, 'sh', '-c', script], { reject: false })
      : await from.host.run('busybox', ['sh', '-c', script], { reject: false });
    const out = `${r.stdout}\n${r.stderr}`;
    if (/Connection refused/.test(out)) return 'refused';
    const body = /\r?\n\r?\n([\s\S]*)$/.exec(r.stdout)?.[1]?.trim();
    if (/^HTTP\/1\.[01] 200/.test(r.stdout) && body) return `answer:${body}`;
    if (r.stdout.trim()) return `answer:${r.stdout.trim()}`;
    return `failed: exit ${r.exitCode} ${out.trim()}`;
  }

  /** This node's chain, its jumps and every rule mentioning one of `needles`, in nat and filter of a host. */
  async function rulesOf(h: TestHost, needles: string[]): Promise<string[]> {
    const out: string[] = [];
    for (const table of ['nat', 'filter']) {
      const lines = (await h.run('iptables', ['-t', table, '-S'])).stdout.split('\n');
      out.push(...lines.filter((l) => needles.some((n) => l.includes(n))).map((l) => `${table}: ${l}`));
    }
    return out;
  }

  before(async () => {
    etcd = await TestEtcd.start();
    kv = etcd.client();
    lan = await TestLan.create({ hosts: 2 });
    [h1, h2] = lan.hosts as [TestHost, TestHost];
    etcdUrl = `http://${lan.gateway}:${await lan.relay(etcd.clientPort)}`;
    // podman refuses a subnet another network on this machine already has: a /16 of its own per run.
    cidr = randomClusterCidr();
    const apiPort = await freePort();
    api = `http://127.0.0.1:${apiPort}`;
    ctl = TestAgent.start({
      args: ['--name', `${lan.id}-ctl`, '--plugins', 'api,scheduler', '--etcd-endpoints', etcd.endpoint, '--api-listen', `127.0.0.1:${apiPort}`],
    });
    await ctl.ready();
    await Promise.all([startWorker(h1), startWorker(h2)]);

    await createPod('web80', h1, { containers: [{ name: 'main', image: IMAGE, cmd: webCmd('web80') }], ports: [80] });
    await createPod('web8080', h2, { containers: [{ name: 'main', image: IMAGE, cmd: webCmd('web8080') }], ports: [{ container: 80, cluster: 8080 }] });
    await createPod('test1', h1, { containers: [{ name: 'main', image: IMAGE, cmd: ['sleep', '3600'] }] });
    await createPod('test2', h2, { containers: [{ name: 'main', image: IMAGE, cmd: ['sleep', '3600'] }] });
    for (const p of ['web80', 'web8080', 'test1', 'test2']) {
      await waitUntil(async () => (await podState(p)).state === 'running', { timeoutMs: 60_000, intervalMs: 200, what: `pod ${p} running` });
      ips[p] = (await kv.get(`${PREFIX}/dns/${p}.pod.${DOMAIN}.`).string()) ?? '';
      expect(ips[p], `IP of ${p}`).to.match(/^10\.\d+\.\d+\.\d+$/);
    }
    // httpd needs a moment after `running`.
    await waitUntil(async () => (await http({ host: h1, pod: 'test1' }, ips.web80!, 80)) === 'answer:web80', { timeoutMs: 15_000, intervalMs: 200, what: 'web80 answering' });
  });

  after(async () => {
    for (const p of extra) if (p.exitCode === null && p.signalCode === null) p.kill('SIGKILL');
    for (const a of workers.values()) await a.stop('SIGKILL').catch(() => undefined);
    await ctl?.stop('SIGKILL').catch(() => undefined);
    kv?.close();
    await lan?.destroy();
    await etcd?.stop();
  });

  const clients = (): [string, { host: TestHost; pod?: string }][] => [
    ['pod test1 on host 1', { host: h1, pod: 'test1' }],
    ['pod test2 on host 2', { host: h2, pod: 'test2' }],
    ['host 1', { host: h1 }],
    ['host 2', { host: h2 }],
  ];

  /** What every client gets for each target, the clients in parallel (each one's probes in order). */
  async function fromEveryClient(targets: [string, number][]): Promise<Record<string, string>> {
    const rows = await Promise.all(
      clients().map(async ([who, c]) => {
        const out: [string, string][] = [];
        for (const [pod, port] of targets) out.push([`${who} -> ${pod}:${port}`, await http(c, ips[pod]!, port)]);
        return out;
      }),
    );
    return Object.fromEntries(rows.flat());
  }
  const expected = (targets: [string, number, string][]) =>
    Object.fromEntries(clients().flatMap(([who]) => targets.map(([pod, port, want]) => [`${who} -> ${pod}:${port}`, want])));

  it('an exposed port 80 answers from pods and hosts, on the same host and across hosts', async () => {
    expect(await fromEveryClient([['web80', 80]])).to.deep.equal(expected([['web80', 80, 'answer:web80']]));
  });

  it('a mapped cluster port 8080 answers, and the same pod\'s container port 80 is refused', async () => {
    expect(await fromEveryClient([['web8080', 8080], ['web8080', 80]])).to.deep.equal(
      expected([['web8080', 8080, 'answer:web8080'], ['web8080', 80, 'refused']]),
    );
  });

  it('an undeclared port is refused', async () => {
    expect(await fromEveryClient([['web80', 81], ['web8080', 81], ['test1', 81]])).to.deep.equal(
      expected([['web80', 81, 'refused'], ['web8080', 81, 'refused'], ['test1', 81, 'refused']]),
    );
  });

  it('UDP is refused (a UDP server in the pod answers only inside it)', async () => {
    const web = await podNetns(h1, 'web80');
    await serve(web, 'web80', [], [5300]);
    expect(await probe(web, 'udp', ips.web80!, 5300), 'inside the pod').to.equal('answer:web80:udp5300');
    const from: [string, Runner][] = [
      ['pod test1 on host 1', await podNetns(h1, 'test1')],
      ['pod test2 on host 2', await podNetns(h2, 'test2')],
      ['host 1', h1],
      ['host 2', h2],
    ];
    for (const [who, r] of from) expect(await probe(r, 'udp', ips.web80!, 5300), who).to.equal('refused');
  });

  it('after kill -9 of a worker agent and a restart, no rule of the old run is left', async () => {
    const chain = `KITH-${h1.name}`.slice(0, 28);
    const old = [ips.web80!, ips.test1!];
    expect((await rulesOf(h1, old)).length, 'rules of the running pods').to.be.greaterThan(0);
    await workers.get(h1)!.stop('SIGKILL');
    // The name is free again once the old run's alive lease has expired.
    await waitUntil(async () => (await kv.get(`${PREFIX}/node.worker/heartbeat/alive/${h1.name}`).string()) === null, {
      timeoutMs: 15_000, intervalMs: 200, what: 'the killed worker\'s alive lease to expire',
    });
    await startWorker(h1);
    expect(await rulesOf(h1, old)).to.deep.equal([]);
    expect(await rulesOf(h1, [chain])).to.have.members([
      `nat: -N ${chain}`, `nat: -A PREROUTING -j ${chain}`, `nat: -A OUTPUT -j ${chain}`,
      `filter: -N ${chain}`, `filter: -A FORWARD -j ${chain}`, `filter: -A OUTPUT -j ${chain}`,
    ]);
    // The pods of the old run are gone from podman too.
    expect((await h1.run('podman', ['pod', 'ps', '--format', '{{.Name}}'])).stdout).not.to.match(/-(web80|test1)\b/);
  });

  it('after a clean stop, the node\'s chains are gone', async () => {
    for (const h of [h1, h2]) {
      const chain = `KITH-${h.name}`.slice(0, 28);
      expect(await rulesOf(h, [chain]), `${h.name} before`).not.to.deep.equal([]);
      const agent = workers.get(h)!;
      const code = await agent.stop('SIGTERM');
      expect(code, `${h.name} exit code (signal ${agent.proc.signalCode}); stderr: ${agent.stderr}; log: ${agent.lines.slice(-5).join('\n')}`).to.equal(0);
      expect(await rulesOf(h, [chain]), `${h.name} after`).to.deep.equal([]);
    }
  });
});
