import { expect } from 'chai';
import { PLUGINS } from '../../../agent/plugins.js';
import { StateLayer } from '../../../agent/state.js';
import { TestAgent } from '../../support/agent.js';
import { TestEtcd } from '../../support/etcd.js';
import { TestLan, type TestHost } from '../../support/hosts.js';
import { testLog } from '../../support/log.js';
import { freePort } from '../../support/ports.js';
import { waitUntil } from '../../support/wait.js';
import { FAST_ENV, podmanIn, podmanPods, randomClusterCidr, startWorkerAgent } from './cluster.js';

const IMAGE = 'localhost/kith/busybox';
const DOMAIN = 'cluster.local';
const HAVE_DNS = PLUGINS.dns !== undefined;

/**
 * Two worker hosts (network namespaces on one LAN, each running `kith agent
 * --plugins worker,dns`) and a control agent (`api,scheduler,reaper`) in the
 * test's own namespace; pods created over REST.
 */
describe('pods across two worker hosts (end to end: REST, scheduler, podman, DNS, reaper)', function () {
  this.timeout(180_000);
  let etcd: TestEtcd;
  let lan: TestLan;
  let h1: TestHost;
  let h2: TestHost;
  let etcdUrl: string;
  let api: string;
  let control: TestAgent | undefined;
  const workers = new Map<TestHost, TestAgent>();
  let state: StateLayer;
  const clusterCidr = randomClusterCidr();

  const startWorker = async (h: TestHost) => {
    const a = startWorkerAgent({ lan, host: h, etcd, etcdUrl, clusterCidr, plugins: HAVE_DNS ? 'worker,dns' : 'worker' });
    workers.set(h, a);
    await a.ready(60_000);
  };

  before(async () => {
    etcd = await TestEtcd.start();
    lan = await TestLan.create({ hosts: 2 });
    [h1, h2] = lan.hosts as [TestHost, TestHost];
    etcdUrl = `http://${lan.gateway}:${await lan.relay(etcd.clientPort)}`;
    state = new StateLayer(etcd.client(), '/kith', testLog);
    const port = await freePort();
    api = `http://127.0.0.1:${port}`;
    control = TestAgent.start({
      env: FAST_ENV,
      args: ['--name', `ctl-${lan.id}`, '--plugins', 'api,scheduler,reaper', '--etcd-endpoints', etcd.endpoint, '--api-listen', `127.0.0.1:${port}`, '--healthy-ttl', '2', '--alive-ttl', '4'],
    });
    await Promise.all([control.ready(60_000), startWorker(h1), startWorker(h2)]);
  });

  after(async () => {
    for (const a of workers.values()) await a.stop('SIGKILL').catch(() => undefined);
    await control?.stop('SIGKILL').catch(() => undefined);
    if (state) {
      await state.close();
      state.client.close();
    }
    await lan?.destroy();
    await etcd?.stop();
  });

  const rest = async (method: string, path: string, body?: unknown) => {
    const r = await fetch(`${api}${path}`, { method, headers: { 'content-type': 'application/json' }, body: body === undefined ? undefined : JSON.stringify(body) });
    const text = await r.text();
    return { status: r.status, body: text ? JSON.parse(text) : undefined };
  };
  const run = async (name: string, spec: Record<string, unknown>) => {
    const r = await rest('POST', '/resources', { name, type: 'pod', state: 'created', spec });
    expect(r.status, JSON.stringify(r.body)).to.equal(201);
  };
  const getPod = async (name: string) => (await rest('GET', `/resources/pod/${name}`)).body as { state: string; metadata: Record<string, string> };
  const waitState = (name: string, states: string[], timeoutMs = 30_000) =>
    waitUntil(async () => (states.includes((await getPod(name))?.state) ? getPod(name) : undefined), { timeoutMs, what: `pod ${name} ${states.join('|')}` });
  const web = (text: string, on: Record<string, string[]>) => ({
    containers: [{ name: 'web', image: IMAGE, entrypoint: '/bin/sh', cmd: ['-c', `echo ${text} > /www/index.html && exec httpd -f -p 80 -h /www`] }],
    ports: [80],
    schedulingConstraints: on,
  });
  const dnsKey = (pod: string) => `dns/${pod}.pod.${DOMAIN}.`;
  /** Resolves a name from inside a pod's container with busybox nslookup (the pod's resolver is its agent's DNS). */
  const lookup = async (h: TestHost, container: string, name: string): Promise<string | undefined> => {
    const out = await podmanIn(h, ['exec', container, 'nslookup', name]).catch((e: Error) => e.message);
    const after = out.split(/Name:\s+\S+/)[1] ?? '';
    return /Address(?: \d+)?:\s+(\d+\.\d+\.\d+\.\d+)/.exec(after)?.[1];
  };
  /** An HTTP GET with busybox nc from inside a pod; `target` is a name (resolved by the pod's resolver) or an IP. */
  const fetchFrom = async (h: TestHost, container: string, target: string) =>
    podmanIn(h, ['exec', container, 'sh', '-c', `printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 3 ${target} 80`]).catch((e: Error) => e.message);

  const subnetOf = async (h: TestHost) =>
    (JSON.parse((await state.get(`resource/node.worker/${h.name}`))!.value) as { spec: { subnet: string } }).spec.subnet;
  const routesIn = async (h: TestHost) => (await h.run('ip', ['-4', 'route'])).stdout;

  it('routes each worker\'s pod subnet via its host address on the other', async () => {
    const [s1, s2] = [await subnetOf(h1), await subnetOf(h2)];
    expect(s1).to.not.equal(s2);
    await waitUntil(async () => (await routesIn(h1)).includes(`${s2} via ${h2.address}`), { what: 'h1 routes to h2 pods' });
    await waitUntil(async () => (await routesIn(h2)).includes(`${s1} via ${h1.address}`), { what: 'h2 routes to h1 pods' });
  });

  it('runs a pod on each worker; each resolves the other by name through its own agent and fetches its page', async () => {
    await run('web-a', web('I am a', { mayBeScheduledOn: [h1.name] }));
    await run('web-b', web('I am b', { mayBeScheduledOn: [h2.name] }));
    const a = await waitState('web-a', ['running']);
    const b = await waitState('web-b', ['running']);
    expect(a.metadata.workedBy).to.equal(h1.name);
    expect(b.metadata.workedBy).to.equal(h2.name);
    const ipA = (await state.get(dnsKey('web-a')))!.value;
    const ipB = (await state.get(dnsKey('web-b')))!.value;
    if (HAVE_DNS) {
      expect(await waitUntil(() => lookup(h1, `${h1.name}-web-a-web`, `web-b.pod.${DOMAIN}`), { what: 'a resolves b' })).to.equal(ipB);
      expect(await waitUntil(() => lookup(h2, `${h2.name}-web-b-web`, `web-a.pod.${DOMAIN}`), { what: 'b resolves a' })).to.equal(ipA);
      // And back: the pod's address has its PTR.
      const ptr = await podmanIn(h1, ['exec', `${h1.name}-web-a-web`, 'nslookup', ipB]);
      expect(ptr).to.include(`web-b.pod.${DOMAIN}`);
    }
    // By name when the pods' resolver is there (the dns plugin), else by the published address.
    const [targetA, targetB] = HAVE_DNS ? [`web-a.pod.${DOMAIN}`, `web-b.pod.${DOMAIN}`] : [ipA, ipB];
    expect(await waitUntil(async () => (await fetchFrom(h1, `${h1.name}-web-a-web`, targetB)).includes('I am b'), { what: 'a fetches b', timeoutMs: 15_000 })).to.equal(true);
    expect(await waitUntil(async () => (await fetchFrom(h2, `${h2.name}-web-b-web`, targetA)).includes('I am a'), { what: 'b fetches a', timeoutMs: 15_000 })).to.equal(true);
  });

  it('honours cannotBeScheduledOn and abandons a pod too big for any worker', async () => {
    await run('not-h2', { containers: [{ name: 'c', image: IMAGE, cmd: ['sleep', '600'] }], schedulingConstraints: { cannotBeScheduledOn: [h2.name] } });
    await run('not-h1', { containers: [{ name: 'c', image: IMAGE, cmd: ['sleep', '600'] }], schedulingConstraints: { cannotBeScheduledOn: [h1.name] } });
    await run('huge', { containers: [{ name: 'c', image: IMAGE, resources: { requests: { memory: 1 << 20 } } }] });
    expect((await waitState('not-h2', ['running'])).metadata.workedBy).to.equal(h1.name);
    expect((await waitState('not-h1', ['running'])).metadata.workedBy).to.equal(h2.name);
    await waitState('huge', ['abandoned']);
  });

  it('deleting a pod removes its container and its name', async () => {
    expect((await rest('DELETE', '/resources/pod/not-h2')).status).to.equal(204);
    await waitUntil(async () => !(await podmanPods(h1, h1.name)).includes(`${h1.name}-not-h2`), { timeoutMs: 20_000, what: 'container removed' });
    await waitUntil(async () => (await state.get(dnsKey('not-h2'))) === undefined, { what: 'name removed' });
    if (HAVE_DNS) {
      await waitUntil(async () => (await lookup(h2, `${h2.name}-web-b-web`, `not-h2.pod.${DOMAIN}`)) === undefined, { what: 'name gone from DNS' });
    }
  });

  it('kill -9 of a worker\'s agent makes its pods dead and their names vanish; restarted, it removes what it left', async () => {
    await workers.get(h2)!.stop('SIGKILL');
    await waitState('web-b', ['dead'], 30_000);
    const b = await getPod('not-h1');
    expect(b.state).to.equal('dead');
    expect(b.metadata.reapedBy).to.equal(`ctl-${lan.id}`);
    expect(await state.get(dnsKey('web-b'))).to.equal(undefined);
    if (HAVE_DNS) {
      await waitUntil(async () => (await lookup(h1, `${h1.name}-web-a-web`, `web-b.pod.${DOMAIN}`)) === undefined, { what: 'web-b gone from DNS' });
    }
    expect(await podmanPods(h2, h2.name)).to.include.members([`${h2.name}-web-b`, `${h2.name}-not-h1`]);
    const s2 = await subnetOf(h2);
    await waitUntil(async () => !(await routesIn(h1)).includes(s2), { what: 'route to the dead worker removed' });
    await startWorker(h2);
    expect(await subnetOf(h2)).to.equal(s2);
    await waitUntil(async () => (await routesIn(h1)).includes(`${s2} via ${h2.address}`), { what: 'route back' });
    expect(await podmanPods(h2, h2.name)).to.deep.equal([`${h2.name}--holder`]);
    // The restarted worker can run pods again, on the same subnet.
    await run('again', web('back', { mayBeScheduledOn: [h2.name] }));
    await waitState('again', ['running']);
    const ip = (await state.get(dnsKey('again')))!.value;
    expect(await waitUntil(async () => (await fetchFrom(h1, `${h1.name}-web-a-web`, ip)).includes('back'), { what: 'a fetches again', timeoutMs: 15_000 })).to.equal(true);
  });
});
