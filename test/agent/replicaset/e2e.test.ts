import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect } from 'chai';
import { execa } from 'execa';
import { StateLayer } from '../../../agent/state.js';
import { MAIN, ROOT, TestAgent } from '../../support/agent.js';
import { TestEtcd } from '../../support/etcd.js';
import { TestLan, type TestHost } from '../../support/hosts.js';
import { testLog } from '../../support/log.js';
import { freePort } from '../../support/ports.js';
import { waitUntil } from '../../support/wait.js';
import { FAST_ENV, podmanIn, podmanPods, randomClusterCidr, startWorkerAgent } from '../worker/cluster.js';

const IMAGE = 'localhost/kith/busybox';
const DOMAIN = 'cluster.local';
const RS = 'web';
const RS_NAME = `${RS}.replicaset.${DOMAIN}`;

interface PodResource {
  name: string;
  state: string;
  metadata: Record<string, string>;
}

/**
 * A ReplicaSet across three worker hosts (network namespaces on one LAN, each
 * running `kith agent --plugins worker,dns`) and a control agent
 * (`api,scheduler,reaper,replicaset,dns`) in the test's own namespace, driven
 * with the `kith` CLI and checked with real podman and `dig`.
 */
describe('ReplicaSet across three workers (end to end: CLI, controller, scheduler, podman, DNS, reaper)', function () {
  this.timeout(240_000);
  let etcd: TestEtcd;
  let lan: TestLan;
  let hosts: TestHost[];
  let etcdUrl: string;
  let api: string;
  let dnsPort: number;
  let control: TestAgent | undefined;
  const workers = new Map<TestHost, TestAgent>();
  let state: StateLayer;
  const clusterCidr = randomClusterCidr();
  const dir = mkdtempSync(join(tmpdir(), 'kith-rs-e2e-'));

  /** The CLI's stdout and stderr; a non-zero exit throws. */
  const kithRun = async (...args: string[]) => {
    const r = await execa(process.execPath, ['--import', 'tsx', MAIN, ...args], {
      cwd: ROOT,
      env: { KITH_API: api },
      reject: false,
      timeout: 90_000,
      stdin: 'ignore',
    });
    if (r.exitCode !== 0) throw new Error(`kith ${args.join(' ')}: exit ${r.exitCode}: ${r.stderr}`);
    return { stdout: String(r.stdout), stderr: String(r.stderr) };
  };
  const kith = async (...args: string[]) => (await kithRun(...args)).stdout;

  const dig = async (name: string, type = 'A') => {
    const r = await execa('dig', [`@127.0.0.1`, '-p', String(dnsPort), '+time=2', '+tries=1', '+noall', '+comments', '+answer', name, type], { reject: false, timeout: 10_000 });
    const out = String(r.stdout);
    const rcode = /status: (\w+)/.exec(out)?.[1];
    const answers = out
      .split('\n')
      .filter((l) => l && !l.startsWith(';'))
      .map((l) => l.split(/\s+/).slice(4).join(' '));
    return { rcode, answers: answers.sort() };
  };

  const replicasOf = async (rs: string): Promise<PodResource[]> => {
    const { kvs } = await state.list('resource/pod/');
    return kvs.map((kv) => JSON.parse(kv.value) as PodResource).filter((p) => p.metadata.replicaSet === rs);
  };
  const replicas = () => replicasOf(RS);
  const running = async () => (await replicas()).filter((p) => p.state === 'running');
  const podIp = async (pod: string) => (await state.get(`dns/${pod}.pod.${DOMAIN}.`))?.value;
  const runningIps = async () => {
    const ips: string[] = [];
    for (const p of await running()) {
      const ip = await podIp(p.name);
      if (ip) ips.push(ip);
    }
    return ips.sort();
  };
  /** Waits until exactly `n` replicas run (and none is on its way), and dig answers their addresses. */
  const settle = async (n: number, what: string, timeoutMs = 60_000) => {
    const pods = await waitUntil(
      async () => {
        const all = await replicas();
        const live = all.filter((p) => !['exitSuccess', 'exitFailure', 'errored', 'killed', 'abandoned', 'dead'].includes(p.state));
        return live.length === n && live.every((p) => p.state === 'running') ? live : undefined;
      },
      { timeoutMs, what: `${n} running replicas (${what})` },
    );
    const ips = await waitUntil(async () => {
      const want = await runningIps();
      const got = (await dig(RS_NAME)).answers;
      return want.length === n && JSON.stringify(got) === JSON.stringify(want) ? want : undefined;
    }, { timeoutMs: 10_000, what: `dig ${RS_NAME} = the running replicas' addresses (${what})` });
    return { pods, ips };
  };

  const startWorker = async (h: TestHost) => {
    const a = startWorkerAgent({ lan, host: h, etcd, etcdUrl, clusterCidr, plugins: 'worker,dns' });
    workers.set(h, a);
    await a.ready(60_000);
  };

  before(async () => {
    etcd = await TestEtcd.start();
    lan = await TestLan.create({ hosts: 3 });
    hosts = lan.hosts;
    etcdUrl = `http://${lan.gateway}:${await lan.relay(etcd.clientPort)}`;
    state = new StateLayer(etcd.client(), '/kith', testLog);
    const apiPort = await freePort();
    dnsPort = await freePort();
    api = `http://127.0.0.1:${apiPort}`;
    control = TestAgent.start({
      env: FAST_ENV,
      args: [
        '--name', `ctl-${lan.id}`,
        '--plugins', 'api,scheduler,reaper,replicaset,dns',
        '--etcd-endpoints', etcd.endpoint,
        '--api-listen', `127.0.0.1:${apiPort}`,
        '--dns-listen', `127.0.0.1:${dnsPort}`,
        '--upstream-dns', 'none',
        '--cluster-cidr', clusterCidr,
        '--healthy-ttl', '2',
        '--alive-ttl', '4',
      ],
    });
    await Promise.all([control.ready(60_000), ...hosts.map((h) => startWorker(h))]);
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
    rmSync(dir, { recursive: true, force: true });
  });

  it('kith apply -f rs.yaml: 3 replicas, one per worker; dig returns 3 addresses and an SRV record per replica', async () => {
    const file = join(dir, 'rs.yaml');
    writeFileSync(
      file,
      [
        `name: ${RS}`,
        'type: replicaset',
        'spec:',
        '  replicas: 3',
        '  template:',
        '    metadata: { app: web }',
        '    spec:',
        '      containers:',
        '        - name: web',
        `          image: ${IMAGE}`,
        '          entrypoint: /bin/sh',
        "          cmd: ['-c', 'mkdir -p /www && echo replica-$(hostname) > /www/index.html && exec httpd -f -p 8080 -h /www']",
        '      ports: [{ container: 8080, cluster: 80, name: http }]',
        '',
      ].join('\n'),
    );
    await kith('apply', '-f', file);
    const { pods, ips } = await settle(3, 'created');
    expect(new Set(pods.map((p) => p.metadata.workedBy))).to.deep.equal(new Set(hosts.map((h) => h.name)));
    expect(ips).to.have.length(3);
    const srv = await dig(`_http._tcp.${RS_NAME}`, 'SRV');
    expect(srv.rcode).to.equal('NOERROR');
    expect(srv.answers).to.have.length(3);
    for (const a of srv.answers) expect(a).to.match(/^0 100 80 [a-z0-9-]+\./);
    // kith get shows the ReplicaSet and the state the controller wrote.
    const got = JSON.parse(await kith('-o', 'json', 'get', 'replicaset', RS)) as { state?: string; spec: { replicas: number } };
    expect(got.spec.replicas).to.equal(3);
    const shown = await waitUntil(async () => {
      const r = JSON.parse(await kith('-o', 'json', 'get', 'replicaset', RS)) as { state?: string; status?: unknown };
      return r.state === 'ready' && (r.status as { rollout?: string } | undefined)?.rollout === 'complete' ? r : undefined;
    }, { what: "state 'ready', rollout complete" });
    expect(shown.status).to.deep.include({ desired: 3, live: 3, running: 3, updated: 3, ready: 3, available: 3, rollout: 'complete' });
  });

  it('a pod on any worker reaches the ReplicaSet by name', async () => {
    // One probe pod per worker, all at once.
    await Promise.all(hosts.map(async (h) => {
      const probe = `probe-${h.index}`;
      await kith('run', '--name', probe, '--may-be-scheduled-on', h.name, '--wait', IMAGE, 'sleep', '600');
      const container = `${h.name}-${probe}-${probe}`;
      const existing = await podmanIn(h, ['ps', '--format', '{{.Names}}']);
      const name = existing.split('\n').find((n) => n.startsWith(`${h.name}-${probe}-`) && !n.endsWith('-infra')) ?? container;
      const page = await waitUntil(async () => {
        const out = await podmanIn(h, ['exec', name, 'sh', '-c', `printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 3 ${RS_NAME} 80`]).catch(() => '');
        return out.includes('replica-') ? out : undefined;
      }, { timeoutMs: 20_000, what: `${probe} on ${h.name} fetches ${RS_NAME}` });
      expect(page).to.match(/replica-/);
      await kith('delete', 'pod', probe);
    }));
  });

  it('kith scale replicaset web 1 leaves one address; deleting that replica brings a new one', async () => {
    await kith('scale', 'replicaset', RS, '1');
    const { pods, ips } = await settle(1, 'scaled to 1');
    expect(ips).to.have.length(1);
    const [only] = pods;
    await kith('delete', 'pod', only!.name);
    const after = await settle(1, 'replica deleted');
    expect(after.pods[0]!.name).to.not.equal(only!.name);
    expect(after.ips).to.have.length(1);
    // The deleted replica's container is gone from its worker.
    const h = hosts.find((x) => x.name === only!.metadata.workedBy)!;
    await waitUntil(async () => !(await podmanPods(h, h.name)).includes(`${h.name}-${only!.name}`), { timeoutMs: 20_000, what: 'container removed' });
  });

  it("kill -9 of a worker's agent brings its replica back on another worker once the worker is dead; DNS follows", async () => {
    // --wait shows its progress (a line per change when not on a terminal) and returns once all 3 run.
    const scaled = await kithRun('scale', 'replicaset', RS, '3', '--wait', '--timeout', '60');
    expect(scaled.stdout).to.equal(`replicaset/${RS} scaled to 3`);
    const steps = scaled.stderr.trimEnd().split('\n');
    expect(steps.at(-1)).to.equal(`replicaset ${RS}: 3 of 3 running`);
    for (const l of steps) expect(l).to.match(new RegExp(`^replicaset ${RS}: [0-3] of 3 running$`));
    expect((await running()).length).to.equal(3);
    const { pods, ips } = await settle(3, 'scaled back to 3');

    // describe: the counts, and the controller's events of the scale-up.
    const d = await kith('describe', 'rs', RS);
    expect(d).to.match(/^Replicas:\s+3 desired, 3 live, 3 running/m);
    expect(d).to.match(/^ {2}\S+\s+Normal\s+SuccessfulCreate\s+\d+\s+\S+\s+created 2 replicas: /m);
    expect(new Set(pods.map((p) => p.metadata.workedBy))).to.deep.equal(new Set(hosts.map((h) => h.name)));
    const victimHost = hosts[2]!;
    const victim = pods.find((p) => p.metadata.workedBy === victimHost.name)!;
    const victimIp = await podIp(victim.name);
    expect(ips).to.include(victimIp);
    await workers.get(victimHost)!.stop('SIGKILL');
    // The reaper marks it dead once the worker's alive lease (4 s here) has expired.
    await waitUntil(async () => (await replicas()).find((p) => p.name === victim.name)?.state === 'dead', { timeoutMs: 30_000, what: `${victim.name} dead` });
    const after = await settle(3, 'worker killed', 60_000);
    expect(after.pods.map((p) => p.metadata.workedBy)).to.not.include(victimHost.name);
    expect(after.ips).to.not.include(victimIp);
    expect(after.pods.map((p) => p.name)).to.not.include(victim.name);
  });

  it('rolls a new template, a replica delete and a scale-down with a client that never fails (two workers, SPEC §11)', async () => {
    // Two workers are left (the kill above took the third); the client pod runs on one of them.
    const ROLL = 'roll';
    const manifest = (version: string) => {
      const file = join(dir, `roll-${version}.yaml`);
      writeFileSync(file, [
        `name: ${ROLL}`,
        'type: replicaset',
        'spec:',
        '  replicas: 3',
        '  template:',
        '    spec:',
        '      terminationGracePeriodSeconds: 2',
        '      containers:',
        '        - name: web',
        `          image: ${IMAGE}`,
        // A server that ends on SIGTERM, and that is ready once it listens.
        `          cmd: ['sh', '-c', 'echo ${version} > /www/index.html; trap "exit 0" TERM; httpd -f -p 80 -h /www & wait']`,
        '          readiness: { tcp: 80, periodSeconds: 1, failureThreshold: 1 }',
        '      ports: [80]',
        '',
      ].join('\n'));
      return file;
    };
    const mine = async () => (await replicasOf(ROLL)).filter((p) => !['exitSuccess', 'exitFailure', 'errored', 'killed', 'abandoned', 'dead'].includes(p.state));
    const ready = (ps: PodResource[]) => ps.filter((p) => p.state === 'running' && p.metadata.ready === 'true');
    await kith('apply', '-f', manifest('v1'));
    await waitUntil(async () => ready(await mine()).length === 3, { timeoutMs: 60_000, what: '3 ready v1 replicas' });

    // The client resolves the name for every request (busybox nslookup), takes the answers in turn, fetches with nc.
    const loop = [
      'i=0; while [ $i -lt 3000 ]; do',
      `  set -- $(nslookup ${ROLL}.replicaset.${DOMAIN} 2>/dev/null | sed -n "s/^Address: //p")`,
      '  if [ $# -gt 0 ]; then k=$(( i % $# + 1 )); eval ip=\\${$k};',
      '    body=$(printf "GET / HTTP/1.0\\r\\n\\r\\n" | nc -w 2 "$ip" 80 | tail -n 1); echo "${body:-FAIL $ip}"',
      '  else echo "FAIL no address"; fi >> /tmp/log',
      '  i=$((i+1)); sleep 0.1',
      'done; sleep 600',
    ].join('\n');
    await kith('run', '--name', 'roll-client', '--wait', '--', IMAGE, 'sh', '-c', loop);
    const client = JSON.parse(await kith('-o', 'json', 'get', 'pod', 'roll-client')) as PodResource;
    const ch = hosts.find((h) => h.name === client.metadata.workedBy)!;
    const clientLog = async () => (await podmanIn(ch, ['exec', `${ch.name}-roll-client-run`, 'cat', '/tmp/log']).catch(() => '')).split('\n').filter(Boolean);
    await waitUntil(async () => {
      const l = await clientLog();
      return l.length >= 10 && l.slice(-10).every((x) => x === 'v1');
    }, { timeoutMs: 30_000, what: 'the client fetching v1' });
    await podmanIn(ch, ['exec', `${ch.name}-roll-client-run`, 'sh', '-c', ': > /tmp/log']);

    // Alive and ready replicas, sampled every 100 ms while the changes go on.
    let most = 0;
    let fewestReady = 3;
    let sampling = true;
    const sampler = (async () => {
      for (let i = 0; i < 3000 && sampling; i++) {
        const live = await mine();
        most = Math.max(most, live.length);
        fewestReady = Math.min(fewestReady, ready(live).length);
        await new Promise((r) => setTimeout(r, 100));
      }
    })();
    try {
      await kith('apply', '-f', manifest('v2'));
      await kith('rollout', 'status', 'replicaset', ROLL, '--timeout', '120s');
    } finally {
      sampling = false;
      await sampler;
    }
    expect(most, 'most replicas alive during the rollout').to.be.at.most(4);
    expect(fewestReady, 'fewest ready replicas during the rollout').to.be.at.least(3);
    // The rollout's steps are events of the ReplicaSet, oldest first: started, then complete.
    const steps = (await kith('events', `rs/${ROLL}`)).split('\n').slice(1).map((l) => l.split(/\s+/)[2]);
    expect(steps).to.include('RolloutStarted');
    expect(steps.lastIndexOf('RolloutComplete')).to.be.greaterThan(steps.lastIndexOf('RolloutStarted'));
    await waitUntil(async () => (await clientLog()).slice(-10).every((x) => x === 'v2'), { timeoutMs: 20_000, what: 'the client seeing only v2' });

    // A replica deleted, then a scale-down to 1: the client keeps being served.
    const victim = ready(await mine())[0]!;
    await kith('delete', 'pod', victim.name);
    await waitUntil(async () => ready(await mine()).length === 3 && !(await mine()).some((p) => p.name === victim.name), { timeoutMs: 60_000, what: 'the deleted replica replaced' });
    await kith('scale', 'replicaset', ROLL, '1');
    await waitUntil(async () => (await mine()).length === 1, { timeoutMs: 30_000, what: 'scaled to 1' });
    const seenBefore = (await clientLog()).length;
    await waitUntil(async () => (await clientLog()).length >= seenBefore + 30, { timeoutMs: 30_000, what: 'the client fetching after the scale-down' });

    const log = await clientLog();
    expect(log.filter((l) => l !== 'v1' && l !== 'v2'), `${log.length} requests`).to.deep.equal([]);
    expect(log.slice(-20).every((l) => l === 'v2')).to.equal(true);
    await kith('delete', 'pod', 'roll-client', '--now');
    await kith('delete', 'replicaset', ROLL);
  });

  it('deleting the ReplicaSet removes all its pods and its name', async () => {
    const before = await replicas();
    // --wait returns once no pod of it is left, showing how many are.
    const deleted = await kithRun('delete', 'replicaset', RS, '--wait', '--timeout', '60');
    expect(deleted.stderr.trimEnd().split('\n').at(-1)).to.equal(`replicaset ${RS}: 0 pods left`);
    expect(await replicas()).to.deep.equal([]);
    await waitUntil(async () => (await dig(RS_NAME)).rcode === 'NXDOMAIN', { timeoutMs: 10_000, what: `${RS_NAME} NXDOMAIN` });
    for (const h of hosts.slice(0, 2)) {
      await waitUntil(async () => {
        const left = await podmanPods(h, h.name);
        return !before.some((p) => left.includes(`${h.name}-${p.name}`));
      }, { timeoutMs: 20_000, what: `replica containers removed on ${h.name}` });
    }
  });
});
