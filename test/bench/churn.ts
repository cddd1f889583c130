/**
 * `npm run bench -- churn`: what the control agent keeps per pod it has seen
 * come and go, measured on its heap.
 *
 * One etcd; a control agent (api, scheduler, reaper, replicaset, dns) on
 * loopback, started with `--heapsnapshot-signal`; one worker in this process
 * whose runtime is SIMULATED (it starts no containers, so thousands of pods
 * go through in minutes). Each pod is created over REST, scheduled, claimed,
 * run, asked for by name over DNS, ended and deleted, BENCH_CHURN_LANES
 * (default 16) at a time. After a warm-up of BENCH_CHURN_WARMUP pods (default
 * 500) and again after BENCH_CHURN_PODS more (default 5000), the agent writes
 * a heap snapshot (which collects garbage first); the bench prints the heap
 * per pod and the object kinds that grew the most.
 *
 * Asserts nothing.
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Registry } from 'prom-client';
import { parseAgentConfig } from '../../agent/config.js';
import { registerNode } from '../../agent/node.js';
import type { RunningPlugin } from '../../agent/plugin.js';
import { runtimeName } from '../../agent/runtime/runtime.js';
import { SimulatedRuntime } from '../../agent/runtime/simulated.js';
import { StateLayer } from '../../agent/state.js';
import { EventRecorder } from '../../agent/events.js';
import { startWorker } from '../../agent/worker/plugin.js';
import { buildQuery, parse, udpAsk } from '../dns/client.js';
import { TestAgent } from '../support/agent.js';
import { TestEtcd } from '../support/etcd.js';
import { testLog } from '../support/log.js';
import { freePort } from '../support/ports.js';
import { restCaller } from '../support/rest.js';

const WARMUP = Number(process.env.BENCH_CHURN_WARMUP ?? 500);
const PODS = Number(process.env.BENCH_CHURN_PODS ?? 5000);
const LANES = Number(process.env.BENCH_CHURN_LANES ?? 16);
const WORKER = 'churn-worker';

interface HeapSummary {
  total: number;
  /** self size and count by "type:name" (constructor for objects). */
  kinds: Map<string, { size: number; count: number }>;
}

/** Sums a V8 heap snapshot's nodes by kind. */
function summarize(file: string): HeapSummary {
  const snap = JSON.parse(readFileSync(file, 'utf8')) as {
    snapshot: { meta: { node_fields: string[]; node_types: [string[]] } };
    nodes: number[];
    strings: string[];
  };
  const fields = snap.snapshot.meta.node_fields;
  const types = snap.snapshot.meta.node_types[0];
  const [iType, iName, iSize] = ['type', 'name', 'self_size'].map((f) => fields.indexOf(f)) as [number, number, number];
  const kinds = new Map<string, { size: number; count: number }>();
  let total = 0;
  for (let i = 0; i < snap.nodes.length; i += fields.length) {
    const type = types[snap.nodes[i + iType]!]!;
    const size = snap.nodes[i + iSize]!;
    // Strings and numbers by type only: their "name" is their value.
    const name = ['string', 'concatenated string', 'sliced string', 'number', 'heap number'].includes(type) ? '' : snap.strings[snap.nodes[i + iName]!]!;
    const key = `${type}:${name.slice(0, 60)}`;
    const k = kinds.get(key) ?? { size: 0, count: 0 };
    k.size += size;
    k.count++;
    kinds.set(key, k);
    total += size;
  }
  return { total, kinds };
}

/** Has the agent write a heap snapshot; returns it summed once the file is whole. */
async function snapshot(agent: TestAgent, dir: string): Promise<HeapSummary> {
  const before = new Set(readdirSync(dir));
  agent.proc.kill('SIGUSR2');
  // Bounded: a snapshot of a few hundred MB takes seconds.
  for (let i = 0; i < 600; i++) {
    await sleep(200);
    const fresh = readdirSync(dir).filter((f) => f.endsWith('.heapsnapshot') && !before.has(f));
    if (fresh.length === 0) continue;
    const file = join(dir, fresh[0]!);
    try {
      return summarize(file);
    } catch {
      // Still being written.
    }
  }
  throw new Error('no whole heap snapshot within 120 s');
}

async function main(): Promise<void> {
  const etcd = await TestEtcd.start();
  const dir = mkdtempSync(join(tmpdir(), 'kith-churn-'));
  const client = etcd.client();
  const state = new StateLayer(client, '/kith', testLog);
  let worker: RunningPlugin | undefined;
  let control: TestAgent | undefined;
  try {
    const apiPort = await freePort();
    const dnsPort = await freePort();
    const api = `http://127.0.0.1:${apiPort}`;
    control = TestAgent.start({
      env: { NODE_OPTIONS: `--heapsnapshot-signal=SIGUSR2 --diagnostic-dir=${dir}` },
      args: ['--name', 'churn-control', '--plugins', 'api,scheduler,reaper,replicaset,dns', '--etcd-endpoints', etcd.endpoint,
        '--api-listen', `127.0.0.1:${apiPort}`, '--dns-listen', `127.0.0.1:${dnsPort}`, '--upstream-dns', 'none'],
    });
    await control.ready(60_000);

    const config = parseAgentConfig(
      ['--name', WORKER, '--etcd-endpoints', etcd.endpoint, '--plugins', 'worker', '--cluster-cidr', '10.0.0.0/16', '--pod-cpu-limit', '1000', '--pod-memory-limit', String(1 << 22), '--termination-grace', '0'],
      {},
    );
    await state.grantLease('healthy', config.healthyTtl);
    await state.grantLease('alive', config.aliveTtl);
    await registerNode(state, WORKER, ['worker'], () => ({}));
    const runtime = new SimulatedRuntime();
    worker = await startWorker({ config, node: { name: WORKER, roles: new Set(['worker']) }, state, log: testLog, metrics: new Registry(), events: new EventRecorder(state, WORKER, 3600, testLog, new Registry()) }, runtime);

    const call = restCaller(api);
    const waitState = async (name: string, want: (s: string | undefined) => boolean) => {
      // Bounded: each step takes milliseconds; 30 s is a failure.
      for (let i = 0; i < 600; i++) {
        const r = await call('GET', `/resources/pod/${name}`);
        if (want(r.status === 404 ? undefined : r.json?.state)) return;
        await sleep(50);
      }
      throw new Error(`pod ${name}: no wanted state within 30 s`);
    };

    let next = 0;
    let dnsMisses = 0;
    const onePod = async () => {
      const name = `churn-${next++}`;
      const spec = { containers: [{ name: 'c', image: 'localhost/kith/busybox', cmd: ['sleep', '1'] }], ports: [{ container: 80, name: 'http' }] };
      if ((await call('POST', '/resources', { name, type: 'pod', state: 'created', spec })).status !== 201) throw new Error(`POST ${name} refused`);
      await waitState(name, (s) => s === 'running');
      const b = await udpAsk(dnsPort, buildQuery(`${name}.pod.cluster.local`, 1), 500);
      if (!b || parse(b).answers.length === 0) dnsMisses++;
      runtime.exit(runtimeName(WORKER, name), 'exitSuccess');
      await waitState(name, (s) => s === 'exitSuccess');
      if ((await call('DELETE', `/resources/pod/${name}`)).status !== 204) throw new Error(`DELETE ${name} refused`);
    };
    const churn = async (count: number) => {
      const stop = next + count;
      const t0 = performance.now();
      await Promise.all(Array.from({ length: LANES }, async () => {
        while (next < stop) await onePod();
      }));
      return (performance.now() - t0) / 1000;
    };

    const warm = await churn(WARMUP);
    await sleep(2000);
    const a = await snapshot(control, dir);
    console.log(`warm-up: ${WARMUP} pods in ${warm.toFixed(1)} s; heap after GC ${(a.total / 1e6).toFixed(1)} MB`);
    const secs = await churn(PODS);
    await sleep(2000);
    const b = await snapshot(control, dir);
    console.log(`churn: ${PODS} pods in ${secs.toFixed(1)} s (${(PODS / secs).toFixed(0)} pods/s, ${LANES} at a time), ${dnsMisses} not answered by DNS while running`);
    console.log(`heap after GC ${(a.total / 1e6).toFixed(1)} → ${(b.total / 1e6).toFixed(1)} MB: ${((b.total - a.total) / PODS).toFixed(0)} bytes per pod`);
    const grown = [...b.kinds]
      .map(([k, v]) => ({ k, dSize: v.size - (a.kinds.get(k)?.size ?? 0), dCount: v.count - (a.kinds.get(k)?.count ?? 0) }))
      .sort((x, y) => y.dSize - x.dSize)
      .slice(0, 15);
    console.log('grew the most (kind, bytes, objects):');
    for (const g of grown) console.log(`  ${g.k.padEnd(64)} ${String(g.dSize).padStart(10)} ${String(g.dCount).padStart(8)}`);
  } finally {
    await control?.stop('SIGTERM', 60_000).catch(() => control?.stop('SIGKILL').catch(() => undefined));
    await worker?.stop().catch(() => undefined);
    await state.close();
    client.close();
    await etcd.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

// A failure rejects the top-level await: Node prints it and exits 1. Success exits at once, whatever handles linger.
await main();
process.exit(0);
