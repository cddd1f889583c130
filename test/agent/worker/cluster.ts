import { randomInt } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { execa } from 'execa';
import { TestAgent } from '../../support/agent.js';
import { StateLayer } from '../../../agent/state.js';
import { TestEtcd } from '../../support/etcd.js';
import { TestLan, type TestHost } from '../../support/hosts.js';
import { testLog } from '../../support/log.js';
import { waitUntil } from '../../support/wait.js';

/** Fast timings for tests: scheduler retries and worker polling. */
export const FAST_ENV = { KITH_SCHEDULER_RETRY_MS: '200', KITH_SCHEDULER_MAX_TRIES: '3', KITH_WORKER_POLL_MS: '250' };

/**
 * A /16 that no other run is likely to use at the same time (podman refuses
 * overlapping networks), and never the default 10.244.0.0/16 that an agent
 * from `npm start` on this machine may hold.
 */
export function randomClusterCidr(): string {
  const second = randomInt(100, 249);
  return `10.${second >= 244 ? second + 1 : second}.0.0/16`;
}

export interface WorkerAgentOptions {
  lan: TestLan;
  host: TestHost;
  etcd: TestEtcd;
  etcdUrl: string;
  clusterCidr: string;
  plugins?: string;
  extra?: string[];
}

/** A `kith agent` running a worker inside a test host, named after the host, with short leases. */
export function startWorkerAgent(o: WorkerAgentOptions): TestAgent {
  return TestAgent.start({
    wrap: o.host.wrap,
    env: FAST_ENV,
    args: [
      '--name', o.host.name,
      '--plugins', o.plugins ?? 'worker',
      '--etcd-endpoints', o.etcdUrl,
      '--pod-network', o.host.name,
      '--cluster-cidr', o.clusterCidr,
      '--host-address', o.host.address,
      '--upstream-dns', 'none',
      '--healthy-ttl', '2',
      '--alive-ttl', '4',
      '--iptables-chain', `K-${o.host.name}`.slice(0, 28),
      ...(o.extra ?? []),
    ],
  });
}

/** `podman` inside a host. */
export async function podmanIn(host: TestHost, args: string[]): Promise<string> {
  const r = await execa(host.wrap[0]!, [...host.wrap.slice(1), 'podman', ...args], { stdin: 'ignore', reject: false, timeout: 30_000 });
  if (r.exitCode !== 0) throw new Error(`podman ${args.join(' ')}: ${r.stderr}`);
  return String(r.stdout);
}

/** Names of the podman pods in a host labelled as `node`'s. */
export async function podmanPods(host: TestHost, node: string): Promise<string[]> {
  const out = await podmanIn(host, ['pod', 'ps', '--format', '{{.Name}}', '--filter', `label=kith.node=${node}`]);
  return out.split('\n').map((s) => s.trim()).filter(Boolean).sort();
}

/** One test host on its own LAN, a real etcd relayed to it, and a state layer for the test itself. */
export interface OneHost {
  etcd: TestEtcd;
  lan: TestLan;
  host: TestHost;
  /** etcd as the host reaches it. */
  etcdUrl: string;
  state: StateLayer;
  /** Removes all of it (after the test's own agents are stopped). */
  destroy(): Promise<void>;
}

export async function oneHost(): Promise<OneHost> {
  const etcd = await TestEtcd.start();
  let lan: TestLan | undefined;
  try {
    lan = await TestLan.create({ hosts: 1 });
    const etcdUrl = `http://${lan.gateway}:${await lan.relay(etcd.clientPort)}`;
    const state = new StateLayer(etcd.client(), '/kith', testLog);
    const made = lan;
    return {
      etcd, lan, host: lan.hosts[0]!, etcdUrl, state,
      async destroy() {
        await state.close();
        state.client.close();
        await made.destroy();
        await etcd.stop();
      },
    };
  } catch (err) {
    await lan?.destroy();
    await etcd.stop();
    throw err;
  }
}

/** A stored pod, or undefined. */
export async function storedPod(state: StateLayer, name: string): Promise<{ state: string; metadata: Record<string, string> } | undefined> {
  const kv = await state.get(`resource/pod/${name}`);
  return kv ? (JSON.parse(kv.value) as { state: string; metadata: Record<string, string> }) : undefined;
}

/** Waits (bounded) until the stored pod satisfies `ok`; returns it. */
export const waitPod = (state: StateLayer, name: string, what: string, ok: (p: { state: string; metadata: Record<string, string> }) => boolean, timeoutMs = 30_000) =>
  waitUntil(async () => {
    const p = await storedPod(state, name);
    return p && ok(p) ? p : undefined;
  }, { timeoutMs, what: `pod ${name} ${what}` });

/**
 * A worker agent in the bed's host that also runs the API with tokens, on
 * the host's LAN address too so the test's CLI reaches it; with its admin
 * token. Stopped again when it does not start.
 */
export async function apiWorkerAgent(bed: OneHost, plugins: string, extra: string[] = []): Promise<{ agent: TestAgent; api: string; admin: string }> {
  const { lan, host, etcd, etcdUrl } = bed;
  const agent = startWorkerAgent({
    lan, host, etcd, etcdUrl, clusterCidr: randomClusterCidr(), plugins,
    extra: ['--api-auth', 'token', '--api-listen', `127.0.0.1:8080,${host.address}:8080`, '--pod-cpu-limit', '8', '--pod-memory-limit', '8192', ...extra],
  });
  try {
    await agent.ready(60_000);
  } catch (err) {
    await agent.stop('SIGKILL').catch(() => undefined);
    throw err;
  }
  return { agent, api: `http://${host.address}:8080`, admin: readFileSync(join(agent.dataDir, 'admin.token'), 'utf8').trim() };
}
