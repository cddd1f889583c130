/**
 * `npm run bench -- dns`: the same 10,000-name zone served by kith and by nsd
 * (both on loopback, free ports), driven by dnsperf.
 *
 * Prints: each server's queries/s at full load (median of interleaved rounds),
 * kith/nsd, kith's latency percentiles at a fixed 20,000 queries/s, and lost
 * queries. Asserts nothing.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { execa } from 'execa';
import { TestEtcd } from '../support/etcd.js';
import { freePort } from '../support/ports.js';
import { buildQuery, parse, udpAsk } from '../dns/client.js';
import { startBenchAgent, type BenchAgent } from './built-agent.js';

const PODS = 9_000;
const ALIASES = 1_000;
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 5);
const SECONDS = Number(process.env.BENCH_SECONDS ?? 6);

const podAddress = (i: number) => `10.244.${(i >> 8) & 255}.${i & 255}`;

interface PerfResult {
  qps: number;
  sent: number;
  completed: number;
  lost: number;
  avgLatencyMs: number;
  latencies?: number[];
}

async function dnsperf(port: number, file: string, args: string[], verbose = false): Promise<PerfResult> {
  const r = await execa('dnsperf', ['-s', '127.0.0.1', '-p', String(port), '-d', file, ...args, ...(verbose ? ['-v'] : [])], {
    reject: false,
    timeout: 120_000,
    maxBuffer: 512 * 1024 * 1024,
  });
  const out = r.stdout;
  const num = (re: RegExp) => Number(re.exec(out)?.[1] ?? NaN);
  const res: PerfResult = {
    qps: num(/Queries per second:\s+([\d.]+)/),
    sent: num(/Queries sent:\s+(\d+)/),
    completed: num(/Queries completed:\s+(\d+)/),
    lost: num(/Queries lost:\s+(\d+)/),
    avgLatencyMs: num(/Average Latency \(s\):\s+([\d.]+)/) * 1000,
  };
  if (verbose) {
    res.latencies = [];
    for (const line of out.split('\n')) {
      if (!line.startsWith('> ')) continue;
      const v = Number(line.slice(line.lastIndexOf(' ') + 1));
      if (Number.isFinite(v)) res.latencies.push(v * 1000);
    }
  }
  return res;
}

const pct = (sorted: number[], p: number) => sorted[Math.min(sorted.length - 1, Math.floor((sorted.length * p) / 100))] ?? NaN;
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

async function waitAnswer(port: number, name: string, timeoutMs = 30_000): Promise<void> {
  const t0 = Date.now();
  while (Date.now() - t0 < timeoutMs) {
    const b = await udpAsk(port, buildQuery(name, 1), 300);
    if (b && parse(b).answers.length > 0) return;
    await sleep(100);
  }
  throw new Error(`${name} not answered on port ${port} within ${timeoutMs} ms`);
}

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'kith-bench-dns-'));
  const etcd = await TestEtcd.start();
  const client = etcd.client();
  let agent: BenchAgent | undefined;
  let nsd: ChildProcess | undefined;
  try {
    // ---- the zone: 9,000 pods and 1,000 aliases of two pods each ----
    const zoneLines = [
      '$ORIGIN cluster.local.',
      '$TTL 5',
      '@ IN SOA dns.special.cluster.local. admin.cluster.local. 1 300 30 300 5',
      '@ IN NS dns.special.cluster.local.',
      'dns.special IN A 127.0.0.1',
    ];
    const names: string[] = [];
    const puts: [string, string][] = [];
    for (let i = 1; i <= PODS; i++) {
      puts.push([`/kith/dns/p${i}.pod.cluster.local.`, podAddress(i)]);
      zoneLines.push(`p${i}.pod IN A ${podAddress(i)}`);
      names.push(`p${i}.pod.cluster.local`);
    }
    for (let j = 1; j <= ALIASES; j++) {
      const a = 2 * j - 1;
      const b = 2 * j;
      puts.push([`/kith/dns/s${j}.bench.cluster.local./p${a}.pod.cluster.local.`, 'alias']);
      puts.push([`/kith/dns/s${j}.bench.cluster.local./p${b}.pod.cluster.local.`, 'alias']);
      zoneLines.push(`s${j}.bench IN A ${podAddress(a)}`, `s${j}.bench IN A ${podAddress(b)}`);
      names.push(`s${j}.bench.cluster.local`);
    }
    for (let i = 0; i < puts.length; i += 500) {
      await Promise.all(puts.slice(i, i + 500).map(([k, v]) => client.put(k).value(v).exec()));
    }
    // Shuffled, so neither server sees a friendly order.
    let seed = 42;
    const rnd = () => ((seed = (seed * 1103515245 + 12345) & 0x7fffffff) / 0x7fffffff);
    for (let i = names.length - 1; i > 0; i--) {
      const j = Math.floor(rnd() * (i + 1));
      [names[i], names[j]] = [names[j]!, names[i]!];
    }
    const queries = join(dir, 'queries.txt');
    writeFileSync(queries, names.map((n) => `${n} A`).join('\n') + '\n');

    // ---- kith ----
    const kport = await freePort();
    agent = startBenchAgent(['--name', `bench-dns-${process.pid}`, '--plugins', 'dns', '--etcd-endpoints', etcd.endpoint, '--dns-listen', `127.0.0.1:${kport}`, '--upstream-dns', 'none']);
    await agent.waitFor('agent ready', 60_000);
    console.log(`kith agent from ${agent.fromBuild ? 'the build (dist/)' : 'source (tsx; run npm run build for the built one)'}`);
    await waitAnswer(kport, 's1000.bench.cluster.local');

    // ---- nsd ----
    const nport = await freePort();
    writeFileSync(join(dir, 'cluster.local.zone'), zoneLines.join('\n') + '\n');
    writeFileSync(
      join(dir, 'nsd.conf'),
      `server:
  ip-address: 127.0.0.1@${nport}
  port: ${nport}
  username: ""
  chroot: ""
  zonesdir: "${dir}"
  database: ""
  pidfile: "${dir}/nsd.pid"
  xfrdfile: "${dir}/xfrd.state"
  zonelistfile: "${dir}/zone.list"
  logfile: "${dir}/nsd.log"
  server-count: 1
  verbosity: 0
  rrl-ratelimit: 0
  rrl-whitelist-ratelimit: 0
remote-control:
  control-enable: no
zone:
  name: cluster.local
  zonefile: cluster.local.zone
`,
    );
    nsd = spawn('nsd', ['-c', join(dir, 'nsd.conf'), '-d'], { stdio: 'ignore' });
    await waitAnswer(nport, 's1000.bench.cluster.local');

    // Same answers from both, for a sample.
    for (const n of names.slice(0, 50)) {
      const k = parse((await udpAsk(kport, buildQuery(n, 1)))!).answers.map((a) => a.address).sort();
      const s = parse((await udpAsk(nport, buildQuery(n, 1)))!).answers.map((a) => a.address).sort();
      if (JSON.stringify(k) !== JSON.stringify(s)) throw new Error(`${n}: kith ${k} vs nsd ${s}`);
    }

    // ---- full load, interleaved rounds ----
    await dnsperf(kport, queries, ['-l', '2']); // warm-up (fills kith's precomputed answers, JIT)
    await dnsperf(nport, queries, ['-l', '2']);
    const kith: PerfResult[] = [];
    const ref: PerfResult[] = [];
    for (let r = 0; r < ROUNDS; r++) {
      kith.push(await dnsperf(kport, queries, ['-l', String(SECONDS)]));
      ref.push(await dnsperf(nport, queries, ['-l', String(SECONDS)]));
      console.log(`round ${r + 1}: kith ${kith[r]!.qps.toFixed(0)} q/s (lost ${kith[r]!.lost}), nsd ${ref[r]!.qps.toFixed(0)} q/s (lost ${ref[r]!.lost}), ratio ${(kith[r]!.qps / ref[r]!.qps).toFixed(2)}`);
    }
    const kq = median(kith.map((x) => x.qps));
    const nq = median(ref.map((x) => x.qps));
    // Each round's two runs are back to back, so their ratio is the least disturbed by other load.
    const ratios = kith.map((k, i) => k.qps / ref[i]!.qps);

    // ---- fixed rate: 20,000 q/s ----
    const fixed = await dnsperf(kport, queries, ['-l', '10', '-Q', '20000'], true);
    const lat = fixed.latencies!.sort((a, b) => a - b);
    const nfixed = await dnsperf(nport, queries, ['-l', '10', '-Q', '20000'], true);
    const nlat = nfixed.latencies!.sort((a, b) => a - b);
    const rss = Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${agent.pid}/status`, 'utf8'))?.[1] ?? 0) / 1024;

    console.log('');
    console.log(`zone: ${PODS} pod A records + ${ALIASES} aliases of 2 pods = ${names.length} names; queries: each name once, shuffled, type A`);
    console.log(`full load (dnsperf -l ${SECONDS}, median of ${ROUNDS} interleaved rounds):`);
    console.log(`  kith ${kq.toFixed(0)} q/s, nsd ${nq.toFixed(0)} q/s; kith/nsd per round: median ${median(ratios).toFixed(2)}, min ${Math.min(...ratios).toFixed(2)}, max ${Math.max(...ratios).toFixed(2)}`);
    console.log(`  lost: kith ${kith.reduce((s, x) => s + x.lost, 0)}, nsd ${ref.reduce((s, x) => s + x.lost, 0)}`);
    console.log(`fixed 20,000 q/s for 10 s (dnsperf -Q 20000 -v):`);
    console.log(`  kith: ${fixed.completed}/${fixed.sent} answered, lost ${fixed.lost}; latency ms p50 ${pct(lat, 50).toFixed(3)} p99 ${pct(lat, 99).toFixed(3)} p99.9 ${pct(lat, 99.9).toFixed(3)} max ${lat[lat.length - 1]?.toFixed(3)}`);
    console.log(`  nsd:  ${nfixed.completed}/${nfixed.sent} answered, lost ${nfixed.lost}; latency ms p50 ${pct(nlat, 50).toFixed(3)} p99 ${pct(nlat, 99).toFixed(3)} p99.9 ${pct(nlat, 99.9).toFixed(3)} max ${nlat[nlat.length - 1]?.toFixed(3)}`);
    console.log(`kith agent RSS after the runs: ${rss.toFixed(0)} MB`);
  } finally {
    if (nsd && nsd.exitCode === null) {
      const exited = new Promise((r) => nsd!.once('exit', r));
      nsd.kill('SIGTERM');
      await Promise.race([exited, sleep(5000)]);
    }
    await agent?.stop().catch(() => undefined);
    client.close();
    await etcd.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

main().then(
  () => process.exit(0),
  (err) => {
    console.error(err);
    process.exit(1);
  },
);
