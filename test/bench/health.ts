/**
 * `npm run bench -- health`: BENCH_PODS (200) pods with an http readiness
 * probe every second on one worker. The pods are SIMULATED (no containers),
 * but their probes are real: each pod's address is a loopback address
 * (127.1.0.x) where a small HTTP server in a child process answers `/ok`
 * with 200, or 503 once told to fail. Prints the worker's CPU while probing,
 * and the lag from the first answer that changes a probe's verdict (as the
 * server saw it) to a DNS query of the pod's ReplicaSet seeing the change.
 * Asserts nothing.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { createServer } from 'node:http';
import { performance } from 'node:perf_hooks';
import { createInterface } from 'node:readline';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { Registry } from 'prom-client';
import { parseAgentConfig } from '../../agent/config.js';
import { registerNode } from '../../agent/node.js';
import type { RunningPlugin } from '../../agent/plugin.js';
import { SimulatedRuntime } from '../../agent/runtime/simulated.js';
import { StateLayer } from '../../agent/state.js';
import { EventRecorder } from '../../agent/events.js';
import { startWorker } from '../../agent/worker/plugin.js';
import { buildQuery, parse, udpAsk } from '../dns/client.js';
import { TestEtcd } from '../support/etcd.js';
import { testLog } from '../support/log.js';
import { freePort } from '../support/ports.js';
import { createPod } from '../agent/scheduler/context.js';
import { startBenchAgent, type BenchAgent } from './built-agent.js';

const PODS = Number(process.env.BENCH_PODS ?? 200);
const SAMPLES = Number(process.env.BENCH_SAMPLES ?? 40);
const CPU_WINDOW_MS = Number(process.env.BENCH_CPU_MS ?? 20_000);
const PER_RS = 10;
const PORT = 8080;
const WORKER = `bench-health-${process.pid}`;
/** The wall clock in ms with sub-ms precision, comparable across processes. */
const now = () => performance.timeOrigin + performance.now();

/** The child: an HTTP server on every pod address; `fail IP` / `pass IP` on stdin, `changed IP T` on stdout at the first answer after. */
function targets(): void {
  const failing = new Set<string>();
  const pending = new Set<string>();
  for (let i = 2; i <= 253; i++) {
    const ip = `127.1.0.${i}`;
    createServer((_req, res) => {
      const code = failing.has(ip) ? 503 : 200;
      res.writeHead(code).end();
      if (pending.delete(ip)) process.stdout.write(`changed ${ip} ${now()}\n`);
    }).listen(PORT, ip);
  }
  createInterface({ input: process.stdin }).on('line', (line) => {
    const [cmd, ip] = line.split(' ');
    if (!ip) return;
    if (cmd === 'fail') failing.add(ip);
    else failing.delete(ip);
    pending.add(ip);
  });
  process.stdin.on('end', () => process.exit(0));
}

const pct = (sorted: number[], p: number) => sorted[Math.min(sorted.length - 1, Math.floor((sorted.length * p) / 100))] ?? NaN;
const summary = (label: string, xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return `${label}: n=${s.length} p50 ${pct(s, 50).toFixed(1)} ms, p99 ${pct(s, 99).toFixed(1)} ms, max ${s[s.length - 1]!.toFixed(1)} ms`;
};

async function main(): Promise<void> {
  const etcd = await TestEtcd.start();
  const state = new StateLayer(etcd.client(), '/kith', testLog);
  let dns: BenchAgent | undefined;
  let worker: RunningPlugin | undefined;
  let child: ChildProcess | undefined;
  try {
    child = fork(fileURLToPath(import.meta.url), [], { env: { ...process.env, BENCH_ROLE: 'targets' }, stdio: ['pipe', 'pipe', 'inherit', 'ipc'], execArgv: ['--import', 'tsx'] });
    const changed = new Map<string, (t: number) => void>();
    createInterface({ input: child.stdout! }).on('line', (line) => {
      const [, ip, t] = line.split(' ');
      changed.get(ip!)?.(Number(t));
    });
    const tell = (cmd: 'fail' | 'pass', ip: string) => new Promise<number>((resolve) => {
      changed.set(ip, resolve);
      child!.stdin!.write(`${cmd} ${ip}\n`);
    });

    const dnsPort = await freePort();
    dns = startBenchAgent(['--name', `bench-health-dns-${process.pid}`, '--plugins', 'dns,scheduler', '--etcd-endpoints', etcd.endpoint, '--dns-listen', `127.0.0.1:${dnsPort}`, '--upstream-dns', 'none']);
    await dns.waitFor('agent ready', 60_000);

    // Pod addresses on loopback: the worker's subnet is 127.1.0.0/24, and the simulated runtime hands out its addresses.
    const config = parseAgentConfig(['--name', WORKER, '--etcd-endpoints', etcd.endpoint, '--plugins', 'worker', '--cluster-cidr', '127.1.0.0/16', '--pod-cpu-limit', '1000', '--pod-memory-limit', String(1 << 22), '--termination-grace', '0'], {});
    await state.grantLease('healthy', config.healthyTtl);
    await state.grantLease('alive', config.aliveTtl);
    await registerNode(state, WORKER, ['worker'], () => ({}));
    worker = await startWorker({ config, node: { name: WORKER, roles: new Set(['worker']) }, state, log: testLog, metrics: new Registry(), events: new EventRecorder(state, WORKER, 3600, testLog, new Registry()) }, new SimulatedRuntime());

    const probe = { http: { port: PORT, path: '/ok' }, periodSeconds: 1, failureThreshold: 1, successThreshold: 1 };
    const t0 = performance.now();
    for (let i = 0; i < PODS; i++) {
      await createPod(state, { name: `h${i}`, metadata: { replicaSet: `rs${Math.floor(i / PER_RS)}` }, spec: { containers: [{ name: 'main', image: 'sim', readiness: probe }] } });
    }
    const ipOf = new Map<string, string>();
    for (let round = 0; round < 600 && ipOf.size < PODS; round++) {
      const { kvs } = await state.list('resource/pod/');
      for (const kv of kvs) {
        const p = JSON.parse(kv.value) as { name: string; metadata: Record<string, string> };
        if (p.metadata.ready !== 'true' || ipOf.has(p.name)) continue;
        const rec = await state.get(`dns/${p.name}.pod.cluster.local.`);
        if (rec) ipOf.set(p.name, rec.value);
      }
      if (ipOf.size < PODS) await sleep(100);
    }
    console.log(`${ipOf.size} of ${PODS} pods running and ready after ${((performance.now() - t0) / 1000).toFixed(1)} s`);

    // The worker's CPU with every probe running once a second, nothing else going on.
    const cpu0 = process.cpuUsage();
    const w0 = performance.now();
    await sleep(CPU_WINDOW_MS);
    const used = process.cpuUsage(cpu0);
    const wall = performance.now() - w0;
    console.log(`worker process CPU with ${PODS} http probes/s: ${(((used.user + used.system) / 1000 / wall) * 100).toFixed(1)}% of one core (${(wall / 1000).toFixed(0)} s window)`);

    const addresses = async (name: string) => {
      const b = await udpAsk(dnsPort, buildQuery(name, 1), 200);
      return b ? parse(b).answers.map((a) => a.address!) : undefined;
    };
    /** Queries every 2 ms until `ok`; the time it first held. */
    const seen = async (name: string, ok: (a: string[]) => boolean) => {
      for (let i = 0; i < 5000; i++) {
        const a = await addresses(name);
        if (a && ok(a)) return now();
        await sleep(2);
      }
      throw new Error(`${name}: change not seen`);
    };
    const out: number[] = [];
    const back: number[] = [];
    const names = [...ipOf.keys()];
    for (let s = 0; s < SAMPLES; s++) {
      const pod = names[(s * 37) % names.length]!;
      const ip = ipOf.get(pod)!;
      const rs = `rs${Math.floor(Number(pod.slice(1)) / PER_RS)}.replicaset.cluster.local`;
      const failedAt = await tell('fail', ip);
      out.push((await seen(rs, (a) => !a.includes(ip))) - failedAt);
      const passedAt = await tell('pass', ip);
      back.push((await seen(rs, (a) => a.includes(ip))) - passedAt);
    }
    console.log('lag from the probe answer that changes the verdict to a DNS query of the ReplicaSet seeing it:');
    console.log(`  ${summary('out of the name (probe fails)', out)}`);
    console.log(`  ${summary('back in the name (probe passes)', back)}`);
  } finally {
    await worker?.stop().catch(() => undefined);
    child?.stdin?.end();
    child?.kill();
    await dns?.stop().catch(() => undefined);
    await state.close();
    state.client.close();
    await etcd.stop();
  }
}

if (process.env.BENCH_ROLE === 'targets') targets();
else {
  main().then(
    () => process.exit(0),
    (err: unknown) => {
      console.error(err);
      process.exit(1);
    },
  );
}
