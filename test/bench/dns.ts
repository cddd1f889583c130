/**
 * `npm run bench -- dns`: the same 10,000-name zone served by kith and by nsd
 * (both on loopback, free ports), driven by dnsperf. kith runs twice: with
 * its default UDP engine (native) and with `--dns-udp-engine node`
 * (node:dgram), so both engines are measured against nsd in one run. At the
 * fixed rate a bare node:dgram responder (it copies each query back as an
 * empty answer, no DNS at all) shows the floor of Node's datagram path.
 *
 * Prints: each server's queries/s at full load (median of interleaved rounds),
 * kith/nsd per engine, the latency percentiles of all four at a fixed 20,000
 * queries/s (interleaved rounds; with BENCH_PIN=1 then again with dnsperf and
 * the servers on different CPUs), and lost queries. Asserts nothing.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { execa } from 'execa';
import { TestEtcd } from '../support/etcd.js';
import { freePort } from '../support/ports.js';
import { buildQuery, parse, udpAsk } from '../dns/client.js';
import { startBenchAgent, type BenchAgent } from './built-agent.js';
import { rssMb } from '../support/proc.js';

const PODS = 9_000;
const ALIASES = 1_000;
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 5);
const SECONDS = Number(process.env.BENCH_SECONDS ?? 6);
const FIXED_ROUNDS = Number(process.env.BENCH_FIXED_ROUNDS ?? 3);
const FIXED_SECONDS = 10;
const PIN = process.env.BENCH_PIN === '1';

const podAddress = (i: number) => `10.244.${(i >> 8) & 255}.${i & 255}`;

interface PerfResult {
  qps: number;
  sent: number;
  completed: number;
  lost: number;
  avgLatencyMs: number;
  latencies?: number[];
}

async function dnsperf(port: number, file: string, args: string[], verbose = false, cpu?: number): Promise<PerfResult> {
  const argv = ['-s', '127.0.0.1', '-p', String(port), '-d', file, ...args, ...(verbose ? ['-v'] : [])];
  const r = await execa(cpu === undefined ? 'dnsperf' : 'taskset', cpu === undefined ? argv : ['-c', String(cpu), 'dnsperf', ...argv], {
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

/** Fixed-rate runs of one server: counts summed, latencies pooled, and each round's p99. */
class Fixed {
  sent = 0;
  completed = 0;
  lost = 0;
  readonly lat: number[] = [];
  readonly p99s: number[] = [];

  add(r: PerfResult): void {
    this.sent += r.sent;
    this.completed += r.completed;
    this.lost += r.lost;
    const l = r.latencies!.sort((a, b) => a - b);
    this.p99s.push(pct(l, 99));
    for (const v of l) this.lat.push(v);
  }

  toString(): string {
    const l = this.lat.sort((a, b) => a - b);
    const rounds = this.p99s.map((v) => v.toFixed(2)).join(', ');
    return `${this.completed}/${this.sent} answered, lost ${this.lost}; latency ms p50 ${pct(l, 50).toFixed(3)} p99 ${pct(l, 99).toFixed(3)} p99.9 ${pct(l, 99.9).toFixed(3)} max ${l[l.length - 1]?.toFixed(3)}; p99 per round ${rounds}`;
  }
}

/** Every thread of these processes onto one CPU (taskset, util-linux). */
async function pin(pids: number[], cpu: number): Promise<void> {
  for (const pid of pids) await execa('taskset', ['-a', '-p', '-c', String(cpu), String(pid)]);
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
  let dgramAgent: BenchAgent | undefined;
  let nsd: ChildProcess | undefined;
  let echo: ChildProcess | undefined;
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
    const dport = await freePort();
    dgramAgent = startBenchAgent(['--name', `bench-dgram-${process.pid}`, '--plugins', 'dns', '--etcd-endpoints', etcd.endpoint, '--dns-listen', `127.0.0.1:${dport}`, '--upstream-dns', 'none', '--dns-udp-engine', 'node']);
    await dgramAgent.waitFor('agent ready', 60_000);
    await waitAnswer(dport, 's1000.bench.cluster.local');

    // ---- the floor of node:dgram: a responder that only copies each query back ----
    const eport = await freePort();
    const echoScript = `const s = require('node:dgram').createSocket({ type: 'udp4', lookup: (a, f, cb) => cb(null, a, 4) });
s.on('message', (m, r) => { const o = Buffer.from(m); o[2] |= 0x84; o[3] &= 0xf0; s.send(o, r.port, r.address); });
s.bind(${eport}, '127.0.0.1', () => { s.setRecvBufferSize(4 << 20); s.setSendBufferSize(4 << 20); });`;
    echo = spawn(process.execPath, ['-e', echoScript], { stdio: 'ignore' });
    for (let i = 0; i < 50 && !(await udpAsk(eport, buildQuery('x.cluster.local', 1), 200)); i++) await sleep(100);

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
      const s = parse((await udpAsk(nport, buildQuery(n, 1)))!).answers.map((a) => a.address).sort();
      for (const [label, port] of [['kith', kport], ['kith (node:dgram)', dport]] as const) {
        const k = parse((await udpAsk(port, buildQuery(n, 1)))!).answers.map((a) => a.address).sort();
        if (JSON.stringify(k) !== JSON.stringify(s)) throw new Error(`${n}: ${label} ${k} vs nsd ${s}`);
      }
    }

    // ---- full load, interleaved rounds ----
    const full = [
      { label: 'kith', port: kport, runs: [] as PerfResult[] },
      { label: 'kith node:dgram', port: dport, runs: [] as PerfResult[] },
      { label: 'nsd', port: nport, runs: [] as PerfResult[] },
    ];
    for (const f of full) await dnsperf(f.port, queries, ['-l', '2']); // warm-up (fills kith's precomputed answers, JIT)
    for (let r = 0; r < ROUNDS; r++) {
      for (const f of full) f.runs.push(await dnsperf(f.port, queries, ['-l', String(SECONDS)]));
      console.log(`round ${r + 1}: ${full.map((f) => `${f.label} ${f.runs[r]!.qps.toFixed(0)} q/s (lost ${f.runs[r]!.lost})`).join(', ')}`);
    }
    const ref = full[2]!.runs;
    // Each round's runs are back to back, so their ratio is the least disturbed by other load.
    const ratios = (runs: PerfResult[]) => runs.map((k, i) => k.qps / ref[i]!.qps);

    // ---- fixed rate: 20,000 q/s, interleaved rounds ----
    // With BENCH_PIN=1, then the same with the load generator kept off the servers' CPU (taskset): on a
    // 2-core machine dnsperf's threads otherwise share the CPUs with the server under test. Pinned, a
    // server cannot move away from other load either, so this is for an otherwise idle machine.
    const fixedServers = [
      { label: 'kith', port: kport },
      { label: 'kith node:dgram', port: dport },
      { label: 'nsd', port: nport },
      { label: 'bare node:dgram echo', port: eport },
    ];
    const fixedRun = async (cpu?: number): Promise<Fixed[]> => {
      const out = fixedServers.map(() => new Fixed());
      for (let r = 0; r < FIXED_ROUNDS; r++) {
        for (let i = 0; i < fixedServers.length; i++) {
          out[i]!.add(await dnsperf(fixedServers[i]!.port, queries, ['-l', String(FIXED_SECONDS), '-Q', '20000'], true, cpu));
        }
      }
      return out;
    };
    const shared = await fixedRun();
    const cpus = availableParallelism();
    let pinned: Fixed[] | undefined;
    if (PIN && cpus >= 2) {
      const nsdPids = (await execa('pgrep', ['-f', join(dir, 'nsd.conf')])).stdout.trim().split('\n').map(Number);
      await pin([agent.pid, dgramAgent.pid, echo.pid!, ...nsdPids], cpus - 1);
      pinned = await fixedRun(0);
    }

    console.log('');
    console.log(`zone: ${PODS} pod A records + ${ALIASES} aliases of 2 pods = ${names.length} names; queries: each name once, shuffled, type A`);
    console.log(`full load (dnsperf -l ${SECONDS}, median of ${ROUNDS} interleaved rounds):`);
    for (const f of full) {
      const r = ratios(f.runs);
      const vs = f === full[2] ? '' : `; ${f.label}/nsd per round: median ${median(r).toFixed(2)}, min ${Math.min(...r).toFixed(2)}, max ${Math.max(...r).toFixed(2)}`;
      console.log(`  ${f.label}: ${median(f.runs.map((x) => x.qps)).toFixed(0)} q/s, lost ${f.runs.reduce((s, x) => s + x.lost, 0)}${vs}`);
    }
    console.log(`fixed 20,000 q/s (dnsperf -Q 20000 -l ${FIXED_SECONDS} -v, ${FIXED_ROUNDS} interleaved rounds; percentiles over all rounds' queries):`);
    fixedServers.forEach((f, i) => console.log(`  ${f.label}: ${shared[i]}`));
    if (pinned) {
      console.log(`the same with dnsperf on CPU 0 and each server on CPU ${cpus - 1} (taskset):`);
      fixedServers.forEach((f, i) => console.log(`  ${f.label}: ${pinned![i]}`));
    }
    console.log(`kith agent RSS after the runs: ${rssMb(agent.pid).toFixed(0)} MB (native engine), ${rssMb(dgramAgent.pid).toFixed(0)} MB (node:dgram)`);
  } finally {
    if (nsd && nsd.exitCode === null) {
      const exited = new Promise((r) => nsd!.once('exit', r));
      nsd.kill('SIGTERM');
      await Promise.race([exited, sleep(5000)]);
    }
    echo?.kill('SIGKILL');
    await agent?.stop().catch(() => undefined);
    await dgramAgent?.stop().catch(() => undefined);
    client.close();
    await etcd.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

// A failure rejects the top-level await: Node prints it and exits 1. Success exits at once, whatever handles linger.
await main();
process.exit(0);
