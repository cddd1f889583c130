/**
 * `npm run bench -- propagation`: a large zone in etcd (100,000 pod records,
 * 10,000 aliases), a kith agent serving it. Prints the initial sync time, the
 * agent's RSS, and the time from an etcd put (or delete) to a query seeing
 * it: new records, changed records, alias changes. Asserts nothing.
 */
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { execa } from 'execa';
import { TestEtcd } from '../support/etcd.js';
import { freePort } from '../support/ports.js';
import { buildQuery, parse, udpAsk } from '../dns/client.js';
import { startBenchAgent, type BenchAgent } from './built-agent.js';
import { rssMb } from '../support/proc.js';

const PODS = Number(process.env.BENCH_PODS ?? 100_000);
const ALIASES = Number(process.env.BENCH_ALIASES ?? 10_000);
const SAMPLES = Number(process.env.BENCH_SAMPLES ?? 300);

const podAddress = (i: number) => `10.${16 + (i >> 16)}.${(i >> 8) & 255}.${i & 255}`;
const pct = (sorted: number[], p: number) => sorted[Math.min(sorted.length - 1, Math.floor((sorted.length * p) / 100))] ?? NaN;

async function answers(port: number, name: string): Promise<string[] | undefined> {
  const b = await udpAsk(port, buildQuery(name, 1), 200);
  return b ? parse(b).answers.map((a) => a.address!).sort() : undefined;
}

/** Queries back to back until `ok` holds; the time from `t0`. */
async function seen(port: number, name: string, ok: (a: string[]) => boolean, t0: number, timeoutMs = 5000): Promise<number> {
  for (let i = 0; i < 1_000_000; i++) {
    const a = await answers(port, name);
    if (a && ok(a)) return performance.now() - t0;
    if (performance.now() - t0 > timeoutMs) break;
  }
  throw new Error(`${name}: change not seen within ${timeoutMs} ms`);
}

function summary(label: string, xs: number[]): string {
  const s = [...xs].sort((a, b) => a - b);
  return `${label}: n=${s.length} p50 ${pct(s, 50).toFixed(2)} ms, p99 ${pct(s, 99).toFixed(2)} ms, max ${s[s.length - 1]!.toFixed(2)} ms`;
}

async function main(): Promise<void> {
  const etcd = await TestEtcd.start();
  const client = etcd.client();
  let agent: BenchAgent | undefined;
  try {
    const tLoad = performance.now();
    const keys: [string, string][] = [];
    for (let i = 1; i <= PODS; i++) keys.push([`/kith/dns/p${i}.pod.cluster.local.`, podAddress(i)]);
    for (let j = 1; j <= ALIASES; j++) {
      // Each alias names two pods; every tenth is a chain through the previous alias.
      keys.push([`/kith/dns/s${j}.bench.cluster.local./p${2 * j}.pod.cluster.local.`, 'alias']);
      keys.push([`/kith/dns/s${j}.bench.cluster.local./p${2 * j + 1}.pod.cluster.local.`, 'alias']);
      if (j % 10 === 0) keys.push([`/kith/dns/s${j}.bench.cluster.local./s${j - 1}.bench.cluster.local.`, 'alias']);
    }
    // 128 puts per transaction (etcd's default limit), 8 transactions in flight.
    const batches: [string, string][][] = [];
    for (let i = 0; i < keys.length; i += 128) batches.push(keys.slice(i, i + 128));
    for (let i = 0; i < batches.length; i += 8) {
      await Promise.all(batches.slice(i, i + 8).map((b) => client.if('/kith/none', 'Create', '==', 0).then(...b.map(([k, v]) => client.put(k).value(v))).commit()));
    }
    console.log(`loaded ${keys.length} keys into etcd in ${((performance.now() - tLoad) / 1000).toFixed(1)} s`);

    const port = await freePort();
    const tStart = performance.now();
    agent = startBenchAgent(['--name', `bench-prop-${process.pid}`, '--plugins', 'dns', '--etcd-endpoints', etcd.endpoint, '--dns-listen', `127.0.0.1:${port}`, '--upstream-dns', 'none']);
    await agent.waitFor('dns zone synced', 120_000);
    const synced = JSON.parse(agent.lines.find((l) => l.includes('"msg":"dns zone synced"'))!) as Record<string, unknown>;
    await agent.waitFor('agent ready', 60_000);
    console.log(`kith agent from ${agent.fromBuild ? 'the build (dist/)' : 'source (tsx; run npm run build for the built one)'}`);
    const firstAnswer = await seen(port, `p${PODS}.pod.cluster.local`, (a) => a.length === 1, tStart, 60_000);
    const check = await answers(port, 's10.bench.cluster.local');
    console.log(`initial sync: ${synced.ms} ms from the watch starting to the zone holding every key (${synced.records} records, ${synced.aliases} aliases); ${(firstAnswer / 1000).toFixed(2)} s from spawning the agent to the first answer`);
    console.log(`s10.bench (a chain through s9): ${check?.join(' ')}`);
    await sleep(2000);
    console.log(`agent RSS with the zone loaded: ${rssMb(agent.pid).toFixed(0)} MB`);

    const adds: number[] = [];
    const changes: number[] = [];
    const aliasAdds: number[] = [];
    const deletes: number[] = [];
    for (let i = 0; i < SAMPLES; i++) {
      const name = `new${i}.pod.cluster.local`;
      const addr = `10.200.${i >> 8}.${i & 255}`;
      let t0 = performance.now();
      await client.put(`/kith/dns/${name}.`).value(addr).exec();
      adds.push(await seen(port, name, (a) => a[0] === addr, t0));

      const pod = `p${1 + ((i * 7919) % PODS)}.pod.cluster.local`;
      const moved = `10.201.${i >> 8}.${i & 255}`;
      t0 = performance.now();
      await client.put(`/kith/dns/${pod}.`).value(moved).exec();
      changes.push(await seen(port, pod, (a) => a[0] === moved, t0));

      // An alias gains the new pod: its union must include it.
      const alias = `s${1 + ((i * 104729) % ALIASES)}.bench.cluster.local`;
      t0 = performance.now();
      await client.put(`/kith/dns/${alias}./${name}.`).value('alias').exec();
      aliasAdds.push(await seen(port, alias, (a) => a.includes(addr), t0));

      t0 = performance.now();
      await client.delete().key(`/kith/dns/${name}.`).exec();
      deletes.push(await seen(port, alias, (a) => !a.includes(addr), t0));
    }
    console.log(`time from an etcd put/delete (client call included) to a UDP query seeing it, ${SAMPLES} samples each:`);
    console.log(`  ${summary('new pod record', adds)}`);
    console.log(`  ${summary('changed pod record', changes)}`);
    console.log(`  ${summary('alias gains a target', aliasAdds)}`);
    console.log(`  ${summary('target deleted, alias loses it', deletes)}`);
    const all = [...adds, ...changes, ...aliasAdds, ...deletes];
    console.log(`  ${summary('all', all)}`);
    // dig itself, for the record: one fresh name, timed around the dig process.
    const t0 = performance.now();
    await client.put('/kith/dns/digged.pod.cluster.local.').value('10.202.0.1').exec();
    for (let i = 0; i < 100; i++) {
      const r = await execa('dig', ['@127.0.0.1', '-p', String(port), '+short', 'digged.pod.cluster.local']);
      if (r.stdout.trim() === '10.202.0.1') break;
    }
    console.log(`  with dig (process start included): ${(performance.now() - t0).toFixed(1)} ms`);
    console.log(`agent RSS after the changes: ${rssMb(agent.pid).toFixed(0)} MB`);
  } finally {
    await agent?.stop().catch(() => undefined);
    client.close();
    await etcd.stop();
  }
}

// A failure rejects the top-level await: Node prints it and exits 1. Success exits at once, whatever handles linger.
await main();
process.exit(0);
