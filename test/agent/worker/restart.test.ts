import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect } from 'chai';
import { execa } from 'execa';
import type { StateLayer } from '../../../agent/state.js';
import { TestAgent } from '../../support/agent.js';
import type { TestHost } from '../../support/hosts.js';
import { freePort } from '../../support/ports.js';
import { waitUntil } from '../../support/wait.js';
import { FAST_ENV, oneHost, randomClusterCidr, startWorkerAgent, type OneHost } from './cluster.js';

const IMAGE = 'localhost/kith/busybox';
const DOMAIN = 'cluster.local';
const RS = 'steady';

/** A JSON log line's time and message; nothing for a line that is not JSON. */
function logLine(line: string): { time?: number; msg?: string } {
  try {
    const l = JSON.parse(line) as { time?: string; msg?: string };
    return { time: l.time === undefined ? undefined : Date.parse(l.time), msg: l.msg };
  } catch {
    return {};
  }
}

interface Pod {
  name: string;
  state: string;
  metadata: Record<string, string>;
}

/**
 * SPEC §8: a worker agent restarted in place (kill -9 and an immediate
 * start, or SIGTERM with --keep-pods) keeps its pods: they run on with the
 * same addresses, their names never stop resolving through another agent's
 * DNS, the ReplicaSet controller replaces none of them, and the firewall
 * rules are made again, not doubled. The worker runs in a test host; DNS,
 * the scheduler, the reaper and the controller run in another agent.
 */
describe('a worker restarted in place keeps its pods (real podman, DNS through another agent)', function () {
  this.timeout(240_000);
  let bed: OneHost | undefined;
  let host: TestHost;
  let state: StateLayer;
  let control: TestAgent | undefined;
  let worker: TestAgent | undefined;
  let dnsPort: number;
  const clusterCidr = randomClusterCidr();
  const dataDir = mkdtempSync(join(tmpdir(), 'kith-restart-'));
  // An alive lease far longer than the test: only the takeover makes the name usable again at once.
  const workerArgs = (extra: string[] = []) => ['--pod-cpu-limit', '8', '--pod-memory-limit', '8192', '--data-dir', dataDir, '--alive-ttl', '300', ...extra];

  before(async () => {
    bed = await oneHost();
    ({ host, state } = bed);
    const { lan, etcd, etcdUrl } = bed;
    dnsPort = await freePort();
    control = TestAgent.start({
      env: FAST_ENV,
      args: ['--name', `ctl-${lan.id}`, '--plugins', 'dns,scheduler,reaper,replicaset', '--etcd-endpoints', etcd.endpoint, '--dns-listen', `127.0.0.1:${dnsPort}`, '--upstream-dns', 'none', '--dns-ttl', '1', '--healthy-ttl', '2', '--alive-ttl', '4'],
    });
    worker = startWorkerAgent({ lan, host, etcd, etcdUrl, clusterCidr, extra: workerArgs() });
    await Promise.all([control.ready(60_000), worker.ready(60_000)]);
    const template = { spec: { containers: [{ name: 'main', image: IMAGE, cmd: ['sleep', '600'] }], ports: [80] } };
    await state.put(`resource/replicaset/${RS}`, JSON.stringify({ name: RS, type: 'replicaset', metadata: {}, spec: { replicas: 2, template } }));
  });

  after(async () => {
    await worker?.stop('SIGKILL').catch(() => undefined);
    await control?.stop('SIGKILL').catch(() => undefined);
    await bed?.destroy();
    rmSync(dataDir, { recursive: true, force: true });
  });

  const replicas = async (): Promise<Pod[]> =>
    (await state.list('resource/pod/')).kvs.map((kv) => JSON.parse(kv.value) as Pod).filter((p) => p.metadata.replicaSet === RS).sort((a, b) => a.name.localeCompare(b.name));
  const steady = () =>
    waitUntil(async () => {
      const ps = await replicas();
      return ps.length === 2 && ps.every((p) => p.state === 'running') ? ps : undefined;
    }, { timeoutMs: 60_000, what: 'two running replicas' });
  const dig = async (name: string) => {
    const r = await execa('dig', ['@127.0.0.1', '-p', String(dnsPort), '+time=1', '+tries=1', '+noall', '+comments', '+answer', name, 'A'], { reject: false, timeout: 5000 });
    const out = String(r.stdout);
    return { rcode: /status: (\w+)/.exec(out)?.[1] ?? 'no answer', answers: out.split('\n').filter((l) => l && !l.startsWith(';')).map((l) => l.split(/\s+/)[4]!).sort() };
  };
  /** The host's iptables rules that name one of `ips`, every table. */
  const rulesOf = async (ips: string[]) => (await host.run('iptables-save', [])).stdout.split('\n').filter((l) => ips.some((ip) => l.includes(`${ip}/`) || l.includes(`${ip} `))).sort();

  /**
   * Asks for every replica's name and the ReplicaSet's, again and again
   * (bounded in count and time), while `during` runs and for a while after;
   * returns every answer that was not the replicas' addresses.
   */
  async function resolvingThrough(pods: Pod[], ips: Map<string, string>, during: () => Promise<void>): Promise<{ wrong: string[]; asked: number }> {
    const names = [...pods.map((p) => `${p.name}.pod.${DOMAIN}`), `${RS}.replicaset.${DOMAIN}`];
    const want = (n: string) => (n.endsWith('.replicaset.' + DOMAIN) ? [...ips.values()].sort() : [ips.get(n.split('.')[0]!)!]);
    const wrong: string[] = [];
    let asked = 0;
    let stop = false;
    const loop = (async () => {
      const deadline = Date.now() + 120_000;
      for (let i = 0; i < 5000 && !stop && Date.now() < deadline; i++) {
        const results = await Promise.all(names.map(async (n) => ({ n, got: await dig(n) })));
        for (const { n, got } of results) {
          asked++;
          if (got.rcode !== 'NOERROR' || JSON.stringify(got.answers) !== JSON.stringify(want(n))) wrong.push(`${n}: ${got.rcode} ${got.answers.join(',')}`);
        }
      }
    })();
    try {
      await during();
      // And a while after: the new run has taken everything over, nothing goes missing later.
      await new Promise((r) => setTimeout(r, 3000));
    } finally {
      stop = true;
      await loop;
    }
    return { wrong, asked };
  }

  async function restartKeeps(how: 'kill -9' | 'SIGTERM --keep-pods'): Promise<void> {
    const before = await steady();
    const ips = new Map(await Promise.all(before.map(async (p) => [p.name, (await state.get(`dns/${p.name}.pod.${DOMAIN}.`))!.value] as [string, string])));
    const rules = await rulesOf([...ips.values()]);
    expect(rules.length).to.be.greaterThan(0);
    let tookMs = 0;
    const { wrong, asked } = await resolvingThrough(before, ips, async () => {
      if (how === 'kill -9') await worker!.stop('SIGKILL');
      else expect(await worker!.stop('SIGTERM', 60_000)).to.equal(0);
      const t0 = Date.now();
      worker = startWorkerAgent({ lan: bed!.lan, host, etcd: bed!.etcd, etcdUrl: bed!.etcdUrl, clusterCidr, extra: workerArgs(how === 'kill -9' ? [] : ['--keep-pods']) });
      await worker.ready(60_000);
      tookMs = Date.now() - t0;
    });
    // Of that, the agent's own part: from its first log line to ready (the rest is node and tsx starting).
    const times = worker!.lines.map(logLine);
    const own = (times.find((t) => t.msg === 'agent ready')?.time ?? 0) - (times.find((t) => t.time !== undefined)?.time ?? 0);
    console.log(`      ${how}: the new run served after ${tookMs} ms (${own} ms from its first log line); ${asked} DNS answers checked while it restarted`);
    expect(worker!.lines.some((l) => l.includes('adopted the pods an earlier run left running'))).to.equal(true);
    expect(wrong, `${wrong.length} of ${asked} answers were not the replicas' addresses`).to.deep.equal([]);
    // No replica was replaced: the same pods, running, at the same addresses.
    const after = await replicas();
    expect(after.map((p) => [p.name, p.state])).to.deep.equal(before.map((p) => [p.name, 'running']));
    for (const p of after) expect(p.metadata.ip).to.equal(ips.get(p.name));
    // The rules were made again from scratch: the same ones, none doubled.
    const now = await rulesOf([...ips.values()]);
    expect(now).to.deep.equal(rules);
    expect(new Set(now).size).to.equal(now.length);
  }

  it('kill -9 and an immediate start: every pod runs on at its address, its name never fails to resolve, no replica is replaced, no rule doubled', async () => {
    await restartKeeps('kill -9');
  });

  it('the same with SIGTERM and --keep-pods (an upgrade of kith itself)', async () => {
    // The run the test above started has no --keep-pods; this one needs it at its stop (another kill -9 restart on the way).
    await worker!.stop('SIGKILL');
    worker = startWorkerAgent({ lan: bed!.lan, host, etcd: bed!.etcd, etcdUrl: bed!.etcdUrl, clusterCidr, extra: workerArgs(['--keep-pods']) });
    await worker.ready(60_000);
    await restartKeeps('SIGTERM --keep-pods');
  });
});
