/**
 * `npm run bench -- soak`: pods churning on a worker for a while, to find
 * what grows when nothing should.
 *
 * One etcd; a control agent (api, scheduler, reaper, replicaset, dns) on
 * loopback; a worker agent (worker, dns) in a test host with real podman and
 * its pod firewall. For BENCH_SOAK_MINUTES (default 10) it keeps
 * BENCH_SOAK_PODS (default 6) short-lived pods in flight (busybox running
 * `sleep 1..3`, one declared port, so each pod also brings firewall rules and
 * DNS records), deletes each once it has ended, scales a ReplicaSet between 1
 * and 3 every 20 s, and asks the control agent's DNS for every pod name it
 * made. Every 30 s it samples each agent's RSS and open file descriptors,
 * etcd's key count, and the worker host's podman pods and iptables rules.
 *
 * Prints the samples and first → last; asserts nothing.
 */
import { readdirSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { TestAgent } from '../support/agent.js';
import { TestEtcd } from '../support/etcd.js';
import { TestLan } from '../support/hosts.js';
import { freePort } from '../support/ports.js';
import { restCaller } from '../support/rest.js';
import { buildQuery, parse, udpAsk } from '../dns/client.js';
import { randomClusterCidr } from '../agent/worker/cluster.js';
import { rssMb } from '../support/proc.js';

const MINUTES = Number(process.env.BENCH_SOAK_MINUTES ?? 10);
const IN_FLIGHT = Number(process.env.BENCH_SOAK_PODS ?? 6);
const IMAGE = 'localhost/kith/busybox';

interface Sample {
  at: number;
  control: { rss: number; fds: number };
  worker: { rss: number; fds: number };
  etcdKeys: number;
  podmanPods: number;
  iptablesRules: number;
  done: number;
}

function proc(pid: number): { rss: number; fds: number } {
  return { rss: rssMb(pid), fds: readdirSync(`/proc/${pid}/fd`).length };
}

async function main(): Promise<void> {
  const etcd = await TestEtcd.start();
  const lan = await TestLan.create({ hosts: 1 });
  const agents: TestAgent[] = [];
  const client = etcd.client();
  try {
    const h = lan.hosts[0]!;
    const etcdUrl = `http://${lan.gateway}:${await lan.relay(etcd.clientPort)}`;
    const apiPort = await freePort();
    const dnsPort = await freePort();
    const api = `http://127.0.0.1:${apiPort}`;
    const control = TestAgent.start({
      args: ['--name', `soak-ctl-${lan.id}`, '--plugins', 'api,scheduler,reaper,replicaset,dns', '--etcd-endpoints', etcd.endpoint,
        '--api-listen', `127.0.0.1:${apiPort}`, '--dns-listen', `127.0.0.1:${dnsPort}`, '--upstream-dns', 'none'],
    });
    const worker = TestAgent.start({
      wrap: h.wrap,
      env: { KITH_WORKER_POLL_MS: '500' },
      args: ['--name', h.name, '--plugins', 'worker,dns', '--etcd-endpoints', etcdUrl, '--pod-network', h.name, '--upstream-dns', 'none',
        '--cluster-cidr', randomClusterCidr(), '--pod-cpu-limit', '64', '--pod-memory-limit', '65536', '--iptables-chain', `K-${h.name}`],
    });
    agents.push(control, worker);
    await Promise.all([control.ready(60_000), worker.ready(60_000)]);

    const call = restCaller(api);
    const rs = (replicas: number) => ({
      name: 'soak', type: 'replicaset', spec: { replicas, template: { spec: { containers: [{ name: 'c', image: IMAGE, cmd: ['sleep', '600'] }], ports: [{ container: 80, name: 'http' }] } } },
    });
    if ((await call('POST', '/resources', rs(1))).status !== 201) throw new Error('replicaset not created');

    const samples: Sample[] = [];
    const t0 = Date.now();
    const sample = async (done: number) => {
      const keys = (await client.getAll().prefix('/kith/').keys()).length;
      const pods = (await h.run('podman', ['pod', 'ls', '-q'])).stdout.split('\n').filter(Boolean).length;
      const rules = (await h.run('iptables-save', [])).stdout.split('\n').filter((l) => l.startsWith('-A')).length;
      samples.push({ at: (Date.now() - t0) / 1000, control: proc(control.proc.pid!), worker: proc(worker.proc.pid!), etcdKeys: keys, podmanPods: pods, iptablesRules: rules, done });
      const s = samples[samples.length - 1]!;
      console.log(
        `${s.at.toFixed(0).padStart(5)} s  pods done ${String(done).padStart(5)}  control ${s.control.rss.toFixed(0)} MB ${s.control.fds} fds  worker ${s.worker.rss.toFixed(0)} MB ${s.worker.fds} fds  etcd keys ${s.etcdKeys}  podman pods ${s.podmanPods}  iptables rules ${s.iptablesRules}`,
      );
    };

    let next = 0;
    let done = 0;
    let failed = 0;
    let dnsMisses = 0;
    const endAt = t0 + MINUTES * 60_000;
    const onePod = async () => {
      const name = `soak-${next++}`;
      const spec = { containers: [{ name: 'c', image: IMAGE, cmd: ['sleep', String(1 + (next % 3))] }], ports: [{ container: 80, name: 'http' }] };
      if ((await call('POST', '/resources', { name, type: 'pod', state: 'created', spec })).status !== 201) throw new Error(`POST ${name} refused`);
      let seenName = false;
      // Bounded: a pod ends in seconds; 120 s is a failure.
      for (let i = 0; i < 600; i++) {
        const st = (await call('GET', `/resources/pod/${name}`)).json?.state;
        if (st === 'running' && !seenName) {
          const b = await udpAsk(dnsPort, buildQuery(`${name}.pod.cluster.local`, 1), 500);
          if (b && parse(b).answers.length > 0) seenName = true;
        }
        if (st && ['exitSuccess', 'exitFailure', 'errored', 'killed', 'dead', 'abandoned'].includes(st)) {
          if (st !== 'exitSuccess') failed++;
          break;
        }
        await sleep(200);
      }
      if (!seenName) dnsMisses++;
      await call('DELETE', `/resources/pod/${name}`);
      done++;
    };
    const lanes = Array.from({ length: IN_FLIGHT }, async () => {
      while (Date.now() < endAt) await onePod();
    });
    const scaler = (async () => {
      let n = 1;
      while (Date.now() < endAt) {
        await sleep(Math.min(20_000, Math.max(0, endAt - Date.now())));
        n = n === 3 ? 1 : n + 1;
        await call('PATCH', '/resources/replicaset/soak', { spec: rs(n).spec });
      }
    })();
    await sample(0);
    const sampler = (async () => {
      while (Date.now() < endAt) {
        await sleep(Math.min(30_000, Math.max(0, endAt - Date.now())));
        await sample(done);
      }
    })();
    await Promise.all([...lanes, scaler, sampler]);
    await call('DELETE', '/resources/replicaset/soak');
    await sleep(15_000);
    await sample(done);

    const first = samples[1] ?? samples[0]!;
    const last = samples[samples.length - 1]!;
    console.log('');
    console.log(`${MINUTES} min, ${IN_FLIGHT} pods in flight: ${done} pods created, run, ended and deleted (${failed} not exitSuccess); ${dnsMisses} never seen in DNS while running`);
    console.log(`from the first sample after start-up to the last (ReplicaSet deleted, 15 s later):`);
    console.log(`  control agent RSS ${first.control.rss.toFixed(0)} → ${last.control.rss.toFixed(0)} MB, fds ${first.control.fds} → ${last.control.fds}`);
    console.log(`  worker agent RSS ${first.worker.rss.toFixed(0)} → ${last.worker.rss.toFixed(0)} MB, fds ${first.worker.fds} → ${last.worker.fds}`);
    console.log(`  etcd keys ${first.etcdKeys} → ${last.etcdKeys}; podman pods in the host ${first.podmanPods} → ${last.podmanPods}; iptables rules ${first.iptablesRules} → ${last.iptablesRules}`);
  } finally {
    for (const a of agents) await a.stop('SIGTERM', 60_000).catch(() => a.stop('SIGKILL').catch(() => undefined));
    client.close();
    await lan.destroy();
    await etcd.stop();
  }
}

// A failure rejects the top-level await: Node prints it and exits 1. Success exits at once, whatever handles linger.
await main();
process.exit(0);
