/**
 * `npm run bench -- schedule`: how fast pods get from creation to `running`.
 *
 * 1. Real podman, one worker host (a test network namespace): N pods POSTed
 *    to the REST API at once; pods/s from the first POST to the last
 *    `running`, and each pod's POST → running latency. Then one pod at a
 *    time, for the latency of a pod alone.
 * 2. Scheduling throughput: 10,000 pods over 100 workers whose runtime is
 *    SIMULATED (no containers; see agent/runtime/simulated.ts). The pods are
 *    written first (the API's transaction), then a scheduler agent is started;
 *    pods/s until all are placed, and until all are `running` on their
 *    (simulated) workers.
 * 3. The scheduler alone: the same pods over workers that exist only as
 *    keys, so nothing competes with it for etcd.
 *
 * Prints figures; asserts nothing.
 */
import { Registry } from 'prom-client';
import { Etcd3 } from 'etcd3';
import { parseAgentConfig } from '../../agent/config.js';
import { registerNode } from '../../agent/node.js';
import type { RunningPlugin } from '../../agent/plugin.js';
import { SimulatedRuntime } from '../../agent/runtime/simulated.js';
import { StateLayer } from '../../agent/state.js';
import { EventRecorder } from '../../agent/events.js';
import { startWorker } from '../../agent/worker/plugin.js';
import { TestAgent } from '../support/agent.js';
import { TestEtcd } from '../support/etcd.js';
import { TestLan } from '../support/hosts.js';
import { testLog } from '../support/log.js';
import { freePort } from '../support/ports.js';
import { createPod } from '../agent/scheduler/context.js';
import { randomClusterCidr } from '../agent/worker/cluster.js';

/** Writes `count` pods as `POST /resources` does, 64 transactions in flight. */
async function writePods(state: StateLayer, count: number): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: 64 }, async () => {
      while (next < count) {
        const name = `p-${next++}`;
        await createPod(state, { name, spec: { containers: [{ name: 'c', image: IMAGE }] } });
      }
    }),
  );
}

const PODMAN_PODS = Number(process.env.BENCH_PODMAN_PODS ?? 30);
const SIM_PODS = Number(process.env.BENCH_SIM_PODS ?? 10_000);
const SIM_WORKERS = Number(process.env.BENCH_SIM_WORKERS ?? 100);
const IMAGE = 'localhost/kith/busybox';

const pct = (xs: number[], p: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))] ?? NaN;
};
const ms = (x: number) => `${x.toFixed(0)} ms`;

/** Records when each pod first reaches each state, from a watch on `resource/pod/`. */
function stateTimes(state: StateLayer) {
  const times = new Map<string, Map<string, number>>();
  const waiters: (() => void)[] = [];
  const sub = state.watch(['resource/pod/'], (ev) => {
    if (ev.type !== 'put') return;
    const name = ev.key.slice('resource/pod/'.length);
    const s = (JSON.parse(ev.value) as { state: string }).state;
    const m = times.get(name) ?? new Map<string, number>();
    if (!m.has(s)) m.set(s, performance.now());
    times.set(name, m);
    for (const w of waiters.splice(0)) w();
  });
  const count = (s: string) => [...times.values()].filter((m) => m.has(s)).length;
  const until = async (s: string, n: number, timeoutMs: number) => {
    const deadline = Date.now() + timeoutMs;
    while (count(s) < n) {
      if (Date.now() > deadline) throw new Error(`only ${count(s)} of ${n} pods reached ${s} within ${timeoutMs} ms`);
      await new Promise<void>((r) => {
        waiters.push(r);
        setTimeout(r, 200);
      });
    }
  };
  return { times, sub, count, until };
}

async function podmanBench(): Promise<void> {
  console.log(`\n-- real podman: ${PODMAN_PODS} pods on one worker host`);
  const etcd = await TestEtcd.start();
  const lan = await TestLan.create({ hosts: 1 });
  const agents: TestAgent[] = [];
  const client = etcd.client();
  const state = new StateLayer(client, '/kith', testLog);
  try {
    const h = lan.hosts[0]!;
    const etcdUrl = `http://${lan.gateway}:${await lan.relay(etcd.clientPort)}`;
    const port = await freePort();
    const api = `http://127.0.0.1:${port}`;
    const control = TestAgent.start({ args: ['--name', `ctl-${lan.id}`, '--plugins', 'api,scheduler', '--etcd-endpoints', etcd.endpoint, '--api-listen', `127.0.0.1:${port}`] });
    const worker = TestAgent.start({
      wrap: h.wrap,
      env: { KITH_WORKER_POLL_MS: '500' },
      args: [
        '--name', h.name, '--plugins', 'worker', '--etcd-endpoints', etcdUrl, '--pod-network', h.name,
        '--cluster-cidr', randomClusterCidr(), '--pod-cpu-limit', '64', '--pod-memory-limit', '65536',
        '--iptables-chain', `K-${h.name}`,
      ],
    });
    agents.push(control, worker);
    await Promise.all([control.ready(60_000), worker.ready(60_000)]);
    const post = async (name: string) => {
      const r = await fetch(`${api}/resources`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ name, type: 'pod', state: 'created', spec: { containers: [{ name: 'c', image: IMAGE, cmd: ['sleep', '600'] }] } }),
      });
      if (r.status !== 201) throw new Error(`POST ${name}: ${r.status} ${await r.text()}`);
    };
    const t = stateTimes(state);
    await t.sub.synced;

    // Alone, one after another.
    const alone: number[] = [];
    for (let i = 0; i < 5; i++) {
      const start = performance.now();
      await post(`alone-${i}`);
      await t.until('running', i + 1, 60_000);
      alone.push(t.times.get(`alone-${i}`)!.get('running')! - start);
    }
    console.log(`one pod at a time: POST → running median ${ms(pct(alone, 50))}, max ${ms(Math.max(...alone))} (5 pods)`);

    // A burst.
    const posted = new Map<string, number>();
    const start = performance.now();
    await Promise.all(
      Array.from({ length: PODMAN_PODS }, async (_, i) => {
        posted.set(`burst-${i}`, performance.now());
        await post(`burst-${i}`);
      }),
    );
    const postedAll = performance.now() - start;
    await t.until('running', PODMAN_PODS + 5, 300_000);
    const last = Math.max(...[...posted.keys()].map((n) => t.times.get(n)!.get('running')!));
    const lat = [...posted].map(([n, at]) => t.times.get(n)!.get('running')! - at);
    const sched = [...posted].map(([n, at]) => t.times.get(n)!.get('scheduled')! - at);
    console.log(`burst of ${PODMAN_PODS}: all POSTed in ${ms(postedAll)}, all running after ${ms(last - start)} → ${(PODMAN_PODS / ((last - start) / 1000)).toFixed(1)} pods/s`);
    console.log(`  POST → scheduled p50 ${ms(pct(sched, 50))}, p95 ${ms(pct(sched, 95))}`);
    console.log(`  POST → running   p50 ${ms(pct(lat, 50))}, p95 ${ms(pct(lat, 95))}, max ${ms(Math.max(...lat))}`);
    await t.sub.close();
    // A clean stop kills them all.
    const stopStart = performance.now();
    await worker.stop('SIGTERM', 120_000);
    console.log(`worker stop with ${PODMAN_PODS + 5} pods running (all killed and removed): ${ms(performance.now() - stopStart)}`);
  } finally {
    for (const a of agents) await a.stop('SIGKILL').catch(() => undefined);
    await state.close();
    client.close();
    await lan.destroy();
    await etcd.stop();
  }
}

async function simulatedBench(): Promise<void> {
  console.log(`\n-- scheduling: ${SIM_PODS} pods over ${SIM_WORKERS} workers with a SIMULATED runtime (no containers)`);
  const etcd = await TestEtcd.start();
  const clients = Array.from({ length: 4 }, () => etcd.client());
  const workers: { plugin: RunningPlugin; state: StateLayer }[] = [];
  const agents: TestAgent[] = [];
  const own = new StateLayer(clients[0]!, '/kith', testLog);
  try {
    const t0 = performance.now();
    for (let i = 0; i < SIM_WORKERS; i++) {
      const name = `sim-${String(i).padStart(3, '0')}`;
      const config = parseAgentConfig(
        ['--name', name, '--etcd-endpoints', etcd.endpoint, '--plugins', 'worker', '--cluster-cidr', '10.0.0.0/16', '--pod-cpu-limit', '1000', '--pod-memory-limit', String(1 << 22), '--termination-grace', '0'],
        {},
      );
      const state = new StateLayer(clients[i % clients.length] as Etcd3, '/kith', testLog);
      await state.grantLease('healthy', config.healthyTtl);
      await state.grantLease('alive', config.aliveTtl);
      await registerNode(state, name, ['worker'], () => ({}));
      const plugin = await startWorker(
        { config, node: { name, roles: new Set(['worker']) }, state, log: testLog, metrics: new Registry(), events: new EventRecorder(state, name, 3600, testLog, new Registry()) },
        new SimulatedRuntime(),
      );
      workers.push({ plugin, state });
    }
    console.log(`${SIM_WORKERS} simulated workers up in ${ms(performance.now() - t0)}`);

    const c0 = performance.now();
    await writePods(own, SIM_PODS);
    console.log(`${SIM_PODS} pods written (resource + unscheduled marker per transaction) in ${ms(performance.now() - c0)}`);

    const t = stateTimes(own);
    await t.sub.synced;
    const start = performance.now();
    const scheduler = TestAgent.start({ args: ['--name', 'bench-scheduler', '--plugins', 'scheduler', '--etcd-endpoints', etcd.endpoint] });
    agents.push(scheduler);
    await scheduler.ready(60_000);
    const ready = performance.now();
    await t.until('scheduled', SIM_PODS, 600_000);
    const firstSched = Math.min(...[...t.times.values()].map((m) => m.get('scheduled')!));
    const lastSched = Math.max(...[...t.times.values()].map((m) => m.get('scheduled')!));
    await t.until('running', SIM_PODS, 600_000);
    const lastRunning = Math.max(...[...t.times.values()].map((m) => m.get('running')!));
    console.log(`scheduler process ready after ${ms(ready - start)}`);
    console.log(`placed all ${SIM_PODS}: ${ms(lastSched - start)} after the scheduler was started; first to last placement ${ms(lastSched - firstSched)} → ${(SIM_PODS / ((lastSched - firstSched) / 1000)).toFixed(0)} pods/s`);
    console.log(`all ${SIM_PODS} running on their simulated workers: ${ms(lastRunning - start)} after the scheduler was started → ${(SIM_PODS / ((lastRunning - start) / 1000)).toFixed(0)} pods/s end to end`);
    const perWorker = new Map<string, number>();
    for (const kv of (await own.list('resource/pod/')).kvs) {
      const w = (JSON.parse(kv.value) as { metadata: Record<string, string> }).metadata.workedBy!;
      perWorker.set(w, (perWorker.get(w) ?? 0) + 1);
    }
    const counts = [...perWorker.values()];
    console.log(`pods per worker: min ${Math.min(...counts)}, max ${Math.max(...counts)} over ${perWorker.size} workers`);
    await t.sub.close();
  } finally {
    for (const a of agents) await a.stop('SIGKILL').catch(() => undefined);
    for (const w of workers) await w.plugin.stop().catch(() => undefined);
    for (const w of workers) await w.state.close().catch(() => undefined);
    await own.close();
    for (const c of clients) c.close();
    await etcd.stop();
  }
}

/** The scheduler alone: workers exist only as keys (healthy heartbeat, published limits), nothing claims. */
async function schedulerOnlyBench(): Promise<void> {
  console.log(`\n-- the scheduler alone: ${SIM_PODS} pods over ${SIM_WORKERS} workers that exist only as keys (nothing claims)`);
  const etcd = await TestEtcd.start();
  const client = etcd.client();
  const own = new StateLayer(client, '/kith', testLog);
  const agents: TestAgent[] = [];
  try {
    for (let i = 0; i < SIM_WORKERS; i++) {
      const name = `key-${i}`;
      await own.txn({
        if: [],
        then: [
          { put: `node.worker/heartbeat/healthy/${name}`, value: 'lease-established' },
          { put: `node.worker/limits/cpu/${name}`, value: '1000' },
          { put: `node.worker/limits/memory/${name}`, value: String(1 << 22) },
        ],
      });
    }
    await writePods(own, SIM_PODS);
    const t = stateTimes(own);
    await t.sub.synced;
    const start = performance.now();
    const scheduler = TestAgent.start({ args: ['--name', 'bench-scheduler', '--plugins', 'scheduler', '--etcd-endpoints', etcd.endpoint] });
    agents.push(scheduler);
    await scheduler.ready(60_000);
    await t.until('scheduled', SIM_PODS, 600_000);
    const first = Math.min(...[...t.times.values()].map((m) => m.get('scheduled')!));
    const last = Math.max(...[...t.times.values()].map((m) => m.get('scheduled')!));
    console.log(`placed all ${SIM_PODS}: ${ms(last - start)} after the scheduler was started; first to last placement ${ms(last - first)} → ${(SIM_PODS / ((last - first) / 1000)).toFixed(0)} pods/s`);
    await t.sub.close();
  } finally {
    for (const a of agents) await a.stop('SIGKILL').catch(() => undefined);
    await own.close();
    client.close();
    await etcd.stop();
  }
}

const which = process.env.BENCH_PART;
if (!which || which === 'podman') await podmanBench();
if (!which || which === 'simulated') await simulatedBench();
if (!which || which === 'scheduler') await schedulerOnlyBench();
process.exit(0);
