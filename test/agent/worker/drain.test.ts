import { expect } from 'chai';
import type { StateLayer } from '../../../agent/state.js';
import type { TestAgent } from '../../support/agent.js';
import type { TestHost } from '../../support/hosts.js';
import { waitUntil } from '../../support/wait.js';
import { createPod } from '../scheduler/context.js';
import { oneHost, podmanIn, podmanPods, randomClusterCidr, startWorkerAgent, waitPod, type OneHost } from './cluster.js';

const IMAGE = 'localhost/kith/busybox';
const DOMAIN = 'cluster.local';

/**
 * SPEC §11: a deleted pod leaves every DNS name at once and is stopped only
 * after its grace, so a client that resolves its ReplicaSet's name for each
 * request never fails. Real podman pods in a test host whose agent runs the
 * worker and DNS (the pods' resolver is their gateway); a client pod fetches
 * from the ReplicaSet's name every 100 ms.
 */
describe('graceful drain of deleted pods (real podman, DNS from inside pods)', function () {
  this.timeout(180_000);
  let bed: OneHost | undefined;
  let host: TestHost;
  let state: StateLayer;
  let worker: TestAgent | undefined;
  const clusterCidr = randomClusterCidr();
  let gateway: string;

  before(async () => {
    bed = await oneHost();
    ({ host, state } = bed);
    const { lan, etcd, etcdUrl } = bed;
    // Explicit flags (the harness's default is no grace): 2 s of grace, SIGKILL 3 s after SIGTERM.
    worker = startWorkerAgent({
      lan, host, etcd, etcdUrl, clusterCidr, plugins: 'worker,dns,scheduler',
      extra: ['--pod-cpu-limit', '8', '--pod-memory-limit', '8192', '--termination-grace', '2', '--stop-timeout', '3', '--dns-ttl', '1'],
    });
    await worker.ready(60_000);
    gateway = (await state.get(`dns/${host.name}.worker.node.${DOMAIN}.`))!.value;
  });

  after(async () => {
    await worker?.stop('SIGKILL').catch(() => undefined);
    await bed?.destroy();
  });

  const waitRunning = (name: string) => waitPod(state, name, 'running', (p) => p.state === 'running');
  const digRs = async () => (await host.run('dig', ['+short', '+time=1', '+tries=1', `@${gateway}`, `srv.replicaset.${DOMAIN}`])).stdout.trim().split('\n').filter(Boolean).sort();
  const ipOf = async (name: string) => (await state.get(`dns/${name}.pod.${DOMAIN}.`))?.value;
  const containerState = async (c: string) => (await podmanIn(host, ['container', 'inspect', '-f', '{{.State.Status}}', c]).catch(() => 'gone')).trim();
  const clientLog = async () => (await podmanIn(host, ['exec', `${host.name}-client-main`, 'cat', '/tmp/log']).catch(() => '')).split('\n').filter(Boolean);
  const del = (name: string) => state.txn({ if: [], then: [{ delete: `resource/pod/${name}` }, { delete: `pod/unscheduled/${name}` }] });

  it('takes a deleted replica out of its name first, stops it after its grace, and the client never fails', async () => {
    // httpd under a shell that ends on SIGTERM, as a server that shuts down cleanly does.
    const server = { containers: [{ name: 'web', image: IMAGE, cmd: ['sh', '-c', 'echo ok > /www/index.html; trap "exit 0" TERM; httpd -f -p 80 -h /www & wait'] }], ports: [80] };
    for (const name of ['srv-a', 'srv-b', 'srv-c']) await createPod(state, { name, metadata: { replicaSet: 'srv' }, spec: server });
    for (const name of ['srv-a', 'srv-b', 'srv-c']) await waitRunning(name);
    // Resolves the name for every request (busybox's nslookup), takes each answer in turn, fetches with nc (the static busybox wget crashes here).
    const loop = [
      'i=0; while [ $i -lt 1200 ]; do',
      '  set -- $(nslookup srv.replicaset.cluster.local 2>/dev/null | sed -n "s/^Address: //p")',
      '  if [ $# -gt 0 ]; then k=$(( i % $# + 1 )); eval ip=\\${$k};',
      '    if printf "GET / HTTP/1.0\\r\\n\\r\\n" | nc -w 2 "$ip" 80 | grep -q "200 OK"; then echo ok; else echo "FAIL $ip"; fi',
      '  else echo "FAIL no address"; fi >> /tmp/log',
      '  i=$((i+1)); sleep 0.1',
      'done; sleep 600',
    ].join('\n');
    await createPod(state, { name: 'client', spec: { containers: [{ name: 'main', image: IMAGE, cmd: ['sh', '-c', loop] }] } });
    await waitRunning('client');
    // Its first requests may go before its own network is up: from ten good ones in a row on, every request counts.
    await waitUntil(async () => {
      const l = await clientLog();
      return l.length >= 10 && l.slice(-10).every((x) => x === 'ok');
    }, { timeoutMs: 30_000, what: 'the client fetching' });
    await podmanIn(host, ['exec', `${host.name}-client-main`, 'sh', '-c', ': > /tmp/log']);

    // Delete one replica: it leaves the name while its container still runs.
    const a = (await ipOf('srv-a'))!;
    await del('srv-a');
    await waitUntil(async () => !(await digRs()).includes(a), { timeoutMs: 5000, what: 'srv-a out of the name' });
    expect(await containerState(`${host.name}-srv-a-web`)).to.equal('running');
    await waitUntil(async () => !(await podmanPods(host, host.name)).includes(`${host.name}-srv-a`), { timeoutMs: 20_000, what: 'srv-a stopped and removed after its grace' });
    expect(worker!.lines.some((l) => l.includes('pod out of DNS; stopping it after its grace') && l.includes('"srv-a"'))).to.equal(true);

    // A scale-down of two at once (as the controller deletes), with a grace of its own in the spec.
    const before = (await clientLog()).length;
    await del('srv-b');
    await waitUntil(async () => !(await podmanPods(host, host.name)).includes(`${host.name}-srv-b`), { timeoutMs: 20_000, what: 'srv-b removed' });
    await waitUntil(async () => (await clientLog()).length >= before + 20, { timeoutMs: 20_000, what: 'the client fetching on' });
    const log = await clientLog();
    expect(log.filter((l) => l.startsWith('FAIL')), `${log.length} requests`).to.deep.equal([]);
    expect(await digRs()).to.deep.equal([(await ipOf('srv-c'))!]);
  });

  it('a pod whose spec gives no grace (as `kith delete --now` leaves it) stops at once', async () => {
    await createPod(state, { name: 'quick', spec: { terminationGracePeriodSeconds: 0, containers: [{ name: 'main', image: IMAGE, cmd: ['sleep', '600'] }] } });
    await waitRunning('quick');
    await del('quick');
    await waitUntil(async () => !(await podmanPods(host, host.name)).includes(`${host.name}-quick`), { timeoutMs: 20_000, what: 'quick removed' });
    expect(worker!.lines.some((l) => l.includes('stopping it after its grace') && l.includes('"quick"'))).to.equal(false);
  });
});
