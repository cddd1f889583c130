/**
 * `npm run bench -- rollout`: a rollout of 50 replicas over 5 workers with a
 * SIMULATED runtime (no containers; see agent/runtime/simulated.ts), on a
 * real etcd and a real agent (api, scheduler, reaper, replicaset). The
 * template changes by PATCH (what `kith apply` sends); measured: the time until the
 * ReplicaSet's status says `complete` for the new template (as `kith rollout
 * status` sees it), and the most pods of the ReplicaSet ever alive at one
 * revision, for the default strategy and for wider ones.
 *
 * Prints figures; asserts nothing.
 */
import { replicaSetKey } from '../../agent/keys.js';
import { SimCluster } from '../agent/replicaset/sim-cluster.js';

const REPLICAS = Number(process.env.BENCH_ROLLOUT_REPLICAS ?? 50);
const WORKERS = Number(process.env.BENCH_ROLLOUT_WORKERS ?? 5);

const manifest = (name: string, image: string, strategy?: Record<string, unknown>) =>
  JSON.stringify({ name, type: 'replicaset', spec: { replicas: REPLICAS, template: { spec: { containers: [{ name: 'c', image }] } }, ...(strategy ? { strategy } : {}) } });

async function rolloutState(cluster: SimCluster, rs: string): Promise<{ rollout?: string; templateHash?: string; updated?: number } | undefined> {
  const kv = await cluster.state.get(replicaSetKey(rs));
  return kv ? (JSON.parse(kv.value) as { status?: { rollout?: string; templateHash?: string } }).status : undefined;
}

async function untilComplete(cluster: SimCluster, rs: string, notHash: string | undefined, timeoutMs: number): Promise<string> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const s = await rolloutState(cluster, rs);
    if (s?.rollout === 'complete' && s.templateHash && s.templateHash !== notHash) return s.templateHash;
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error(`rollout of ${rs} not complete after ${timeoutMs} ms`);
}

/** The REST calls `kith apply` makes (POST, then PATCH when it exists), sent here directly so the CLI's start is not timed. */
async function apply(cluster: SimCluster, text: string, create: boolean): Promise<void> {
  const m = JSON.parse(text) as { name: string; spec: unknown };
  const res = create
    ? await fetch(`${cluster.api}/resources`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: text })
    : await fetch(`${cluster.api}/resources/replicaset/${m.name}`, { method: 'PATCH', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ spec: m.spec }) });
  if (!res.ok) throw new Error(`${res.status} ${await res.text()}`);
}

async function run(cluster: SimCluster, rs: string, label: string, strategy?: Record<string, unknown>): Promise<void> {
  const monitor = await cluster.monitor(rs);
  try {
    const t0 = performance.now();
    await apply(cluster, manifest(rs, 'localhost/kith/v1', strategy), true);
    const v1 = await untilComplete(cluster, rs, undefined, 300_000);
    const created = performance.now() - t0;
    monitor.arm();
    const t1 = performance.now();
    await apply(cluster, manifest(rs, 'localhost/kith/v2', strategy), false);
    await untilComplete(cluster, rs, v1, 600_000);
    const rolled = performance.now() - t1;
    console.log(
      `${label}: ${REPLICAS} replicas first up in ${created.toFixed(0)} ms; rollout to a new template complete in ${rolled.toFixed(0)} ms ` +
        `(${((REPLICAS / rolled) * 1000).toFixed(1)} replicas/s); most pods alive at once ${monitor.maxLive} (bound ${REPLICAS} + maxSurge), fewest running ${monitor.minRunning}`,
    );
    await cluster.kith(['delete', 'replicaset', rs]);
  } finally {
    await monitor.close();
  }
}

const cluster = await SimCluster.start(WORKERS, 'bench-ro');
try {
  console.log(`-- rollout: ${REPLICAS} replicas over ${WORKERS} simulated workers`);
  await run(cluster, 'roll-default', 'strategy default (maxSurge 1, maxUnavailable 0)');
  await run(cluster, 'roll-25pct', "strategy maxSurge 25%, maxUnavailable 25%", { maxSurge: '25%', maxUnavailable: '25%' });
  await run(cluster, 'roll-surge10', 'strategy maxSurge 10, maxUnavailable 0', { maxSurge: 10, maxUnavailable: 0 });
} finally {
  await cluster.stop();
}
process.exit(0);
