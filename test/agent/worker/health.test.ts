import { expect } from 'chai';
import { execa } from 'execa';
import type { StateLayer } from '../../../agent/state.js';
import { TestAgent } from '../../support/agent.js';
import type { TestHost } from '../../support/hosts.js';
import { freePort } from '../../support/ports.js';
import { waitUntil } from '../../support/wait.js';
import { createPod } from '../scheduler/context.js';
import { FAST_ENV, oneHost, podmanIn, randomClusterCidr, startWorkerAgent, storedPod, waitPod as waitStored, type OneHost } from './cluster.js';

const IMAGE = 'localhost/kith/busybox';
const DOMAIN = 'cluster.local';
const RS = 'web';
const RS_NAME = `${RS}.replicaset.${DOMAIN}`;

/**
 * Health checks (SPEC §10) with real podman pods in a test host, real
 * probes from its worker and real `dig` against a DNS agent fed from the
 * same etcd: readiness decides who is in a ReplicaSet's name, liveness
 * restarts containers in place.
 */
describe('health checks (real podman, real probes, real dig)', function () {
  this.timeout(180_000);
  let bed: OneHost | undefined;
  let host: TestHost;
  let state: StateLayer;
  let worker: TestAgent | undefined;
  let dnsAgent: TestAgent | undefined;
  let dnsPort: number;
  const clusterCidr = randomClusterCidr();

  before(async () => {
    bed = await oneHost();
    ({ host, state } = bed);
    const { lan, etcd, etcdUrl } = bed;
    dnsPort = await freePort();
    dnsAgent = TestAgent.start({
      env: FAST_ENV,
      args: ['--name', `dns-${lan.id}`, '--plugins', 'dns,scheduler', '--etcd-endpoints', etcd.endpoint, '--dns-listen', `127.0.0.1:${dnsPort}`, '--upstream-dns', 'none', '--dns-ttl', '1'],
    });
    worker = startWorkerAgent({ lan, host, etcd, etcdUrl, clusterCidr, extra: ['--pod-cpu-limit', '8', '--pod-memory-limit', '8192', '--restart-backoff-ms', '1000'] });
    await Promise.all([dnsAgent.ready(60_000), worker.ready(60_000)]);
  });

  after(async () => {
    await worker?.stop('SIGTERM', 60_000).catch(() => worker?.stop('SIGKILL'));
    await dnsAgent?.stop('SIGKILL').catch(() => undefined);
    await bed?.destroy();
  });

  const podOf = (name: string) => storedPod(state, name);
  const waitPod = (name: string, what: string, ok: Parameters<typeof waitStored>[3], timeoutMs = 30_000) => waitStored(state, name, what, ok, timeoutMs);
  const ipOf = async (name: string) => (await state.get(`dns/${name}.pod.${DOMAIN}.`))?.value;
  const dig = async (name: string) => {
    const r = await execa('dig', ['@127.0.0.1', '-p', String(dnsPort), '+time=2', '+tries=1', '+noall', '+comments', '+answer', name, 'A'], { reject: false, timeout: 10_000 });
    const out = String(r.stdout);
    const answers = out.split('\n').filter((l) => l && !l.startsWith(';')).map((l) => l.split(/\s+/)[4]!).sort();
    return { rcode: /status: (\w+)/.exec(out)?.[1], answers };
  };
  const waitDig = (name: string, want: { rcode?: string; answers: string[] }, what: string) =>
    waitUntil(async () => {
      const got = await dig(name);
      return JSON.stringify(got.answers) === JSON.stringify([...want.answers].sort()) && (!want.rcode || got.rcode === want.rcode) ? got : undefined;
    }, { timeoutMs: 15_000, what: `dig ${name}: ${what}` });
  const exec = (pod: string, container: string, ...cmd: string[]) => podmanIn(host, ['exec', `${host.name}-${pod}-${container}`, ...cmd]);
  const fast = { periodSeconds: 1, failureThreshold: 1, successThreshold: 1 };

  it('takes a pod whose exec readiness probe fails out of its ReplicaSet\'s name at once, and puts it back when it passes; none ready is NXDOMAIN', async () => {
    const spec = {
      containers: [{ name: 'main', image: IMAGE, cmd: ['sh', '-c', 'touch /tmp/ready; exec sleep 600'], readiness: { exec: ['cat', '/tmp/ready'], ...fast } }],
    };
    for (const name of ['web-a', 'web-b']) await createPod(state, { name, metadata: { replicaSet: RS }, spec });
    for (const name of ['web-a', 'web-b']) await waitPod(name, 'ready', (p) => p.state === 'running' && p.metadata.ready === 'true');
    const a = (await ipOf('web-a'))!;
    const b = (await ipOf('web-b'))!;
    expect((await podOf('web-a'))!.metadata.readySince).to.match(/^\d{4}-\d\d-\d\dT/);
    await waitDig(RS_NAME, { rcode: 'NOERROR', answers: [a, b] }, 'both ready');

    await exec('web-a', 'main', 'rm', '/tmp/ready');
    await waitDig(RS_NAME, { answers: [b] }, 'web-a unready');
    const unready = (await podOf('web-a'))!;
    expect(unready).to.deep.include({ state: 'running' });
    expect(unready.metadata.ready).to.equal('false');
    expect(unready.metadata.readySince).to.equal(undefined);
    // Its own name stays while it runs, for debugging.
    expect((await dig(`web-a.pod.${DOMAIN}`)).answers).to.deep.equal([a]);

    await exec('web-b', 'main', 'rm', '/tmp/ready');
    await waitDig(RS_NAME, { rcode: 'NXDOMAIN', answers: [] }, 'no replica ready');

    await exec('web-a', 'main', 'touch', '/tmp/ready');
    await waitDig(RS_NAME, { rcode: 'NOERROR', answers: [a] }, 'web-a ready again');
    await state.txn({ if: [], then: [{ delete: 'resource/pod/web-a' }, { delete: 'resource/pod/web-b' }] });
  });

  it('probes http and tcp on ports no rule declares: the probes pass while another pod is still refused there', async () => {
    const httpd = (port: number) => ['sh', '-c', `mkdir -p /www && echo ok > /www/ok && exec httpd -f -p ${port} -h /www`];
    await createPod(state, {
      name: 'probed',
      metadata: { replicaSet: 'probed' },
      spec: {
        containers: [
          { name: 'http', image: IMAGE, cmd: httpd(8080), readiness: { http: { port: 8080, path: '/ok' }, ...fast } },
          // A daemon the test can stop and start again, under a shell that stays.
          { name: 'tcp', image: IMAGE, cmd: ['sh', '-c', 'mkdir -p /www && httpd -p 9090 -h /www && exec sleep 600'], readiness: { tcp: 9090, ...fast } },
        ],
      },
    });
    await createPod(state, { name: 'client', spec: { containers: [{ name: 'main', image: IMAGE, cmd: ['sleep', '600'] }] } });
    await waitPod('probed', 'ready', (p) => p.state === 'running' && p.metadata.ready === 'true');
    await waitPod('client', 'running', (p) => p.state === 'running');
    const ip = (await ipOf('probed'))!;
    await waitDig(`probed.replicaset.${DOMAIN}`, { answers: [ip] }, 'ready');
    // Another pod cannot reach the probed ports: the firewall lets only the worker's own probes through.
    const fetch = async (port: number) => (await exec('client', 'main', 'sh', '-c', `printf 'GET /ok HTTP/1.0\\r\\n\\r\\n' | nc -w 3 ${ip} ${port}; true`).catch((e: Error) => e.message)).trim();
    for (const port of [8080, 9090]) expect(await fetch(port), `port ${port}`).to.not.match(/HTTP\/1/);
    // The same request does reach the pod from the worker's host: the refusal is the firewall's, not a dead server.
    const fromHost = await host.run('sh', ['-c', `printf 'GET /ok HTTP/1.0\\r\\n\\r\\n' | busybox nc -w 3 ${ip} 8080`], { reject: false });
    expect(String(fromHost.stdout)).to.match(/^HTTP\/1\.[01] 200/);
    // http: a 404 fails.
    await exec('probed', 'http', 'rm', '/www/ok');
    await waitPod('probed', 'unready (http 404)', (p) => p.metadata.ready === 'false');
    await waitDig(`probed.replicaset.${DOMAIN}`, { rcode: 'NXDOMAIN', answers: [] }, 'http probe fails');
    await exec('probed', 'http', 'sh', '-c', 'echo ok > /www/ok');
    await waitPod('probed', 'ready again', (p) => p.metadata.ready === 'true');
    // tcp: a closed port fails, an open one passes again.
    await exec('probed', 'tcp', 'killall', 'httpd');
    await waitPod('probed', 'unready (tcp refused)', (p) => p.metadata.ready === 'false');
    await exec('probed', 'tcp', 'httpd', '-p', '9090', '-h', '/www');
    await waitPod('probed', 'ready again (tcp)', (p) => p.metadata.ready === 'true');
    await state.txn({ if: [], then: [{ delete: 'resource/pod/probed' }, { delete: 'resource/pod/client' }] });
  });

  it('restarts a container whose liveness probe fails under Always: same pod, IP and name, the restart counted', async () => {
    await createPod(state, {
      name: 'phoenix',
      spec: {
        restartPolicy: 'Always',
        // A shell that ends on SIGTERM, so the restart does not wait out podman's 10 s.
        containers: [{ name: 'main', image: IMAGE, cmd: ['sh', '-c', 'trap "exit 0" TERM; touch /tmp/alive; sleep 600 & wait'], liveness: { exec: ['cat', '/tmp/alive'], ...fast } }],
      },
    });
    await waitPod('phoenix', 'running', (p) => p.state === 'running');
    const ip = await ipOf('phoenix');
    const started = (await podmanIn(host, ['container', 'inspect', '-f', '{{.State.StartedAt}}', `${host.name}-phoenix-main`])).trim();
    await exec('phoenix', 'main', 'rm', '/tmp/alive');
    const p = await waitPod('phoenix', 'restarted once', (x) => x.metadata.restarts === '1');
    expect(p.state).to.equal('running');
    expect(p.metadata['restarts.main']).to.equal('1');
    expect(await ipOf('phoenix')).to.equal(ip);
    const after = (await podmanIn(host, ['container', 'inspect', '-f', '{{.State.Status}} {{.State.StartedAt}}', `${host.name}-phoenix-main`])).trim();
    expect(after).to.match(/^running /);
    expect(after).to.not.include(started);
    // The new run made the file again: it passes, and is not restarted again.
    await new Promise((r) => setTimeout(r, 3000));
    expect((await podOf('phoenix'))!.metadata.restarts).to.equal('1');
    await state.txn({ if: [], then: [{ delete: 'resource/pod/phoenix' }] });
  });

  it('ends a pod whose liveness probe fails under Never (the default) exitFailure, with the reason', async () => {
    await createPod(state, {
      name: 'mortal',
      spec: { containers: [{ name: 'main', image: IMAGE, cmd: ['sh', '-c', 'touch /tmp/alive; exec sleep 600'], liveness: { exec: ['cat', '/tmp/alive'], ...fast } }] },
    });
    await waitPod('mortal', 'running', (p) => p.state === 'running');
    await exec('mortal', 'main', 'rm', '/tmp/alive');
    const p = await waitPod('mortal', 'exitFailure', (x) => x.state === 'exitFailure');
    expect(p.metadata.error).to.equal('liveness probe of container main failed');
    expect(p.metadata.ready).to.equal(undefined);
    expect(await ipOf('mortal')).to.equal(undefined);
  });

  it('backs off a crash loop under Always: 0, then 1 s doubling (with --restart-backoff-ms 1000)', async () => {
    await createPod(state, { name: 'crashy', spec: { restartPolicy: 'Always', containers: [{ name: 'main', image: IMAGE, cmd: ['sh', '-c', 'exit 1'] }] } });
    await waitPod('crashy', 'restarted 4 times', (x) => Number(x.metadata.restarts ?? 0) >= 4, 60_000);
    const delays = worker!.lines
      .filter((l) => l.includes('restarting after back-off') && l.includes('"crashy"'))
      .map((l) => (JSON.parse(l) as { delayMs: number }).delayMs);
    expect(delays.slice(0, 3)).to.deep.equal([1000, 2000, 4000]);
    expect((await podOf('crashy'))!.state).to.equal('running');
    await state.txn({ if: [], then: [{ delete: 'resource/pod/crashy' }] });
  });

  it('restarts an exited container under OnFailure only when it failed', async () => {
    await createPod(state, { name: 'once', spec: { restartPolicy: 'OnFailure', containers: [{ name: 'main', image: IMAGE, cmd: ['true'] }] } });
    const p = await waitPod('once', 'exitSuccess', (x) => x.state === 'exitSuccess');
    expect(p.metadata.restarts).to.equal(undefined);
    await createPod(state, { name: 'retry', spec: { restartPolicy: 'OnFailure', containers: [{ name: 'main', image: IMAGE, cmd: ['sh', '-c', 'exit 2'] }] } });
    await waitPod('retry', 'restarted', (x) => Number(x.metadata.restarts ?? 0) >= 1);
    await state.txn({ if: [], then: [{ delete: 'resource/pod/retry' }] });
  });
});
