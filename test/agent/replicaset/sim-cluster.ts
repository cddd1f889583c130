import { Registry } from 'prom-client';
import type { Etcd3 } from 'etcd3';
import { execa } from 'execa';
import { parseAgentConfig } from '../../../agent/config.js';
import { POD_PREFIX } from '../../../agent/keys.js';
import { registerNode } from '../../../agent/node.js';
import type { RunningPlugin } from '../../../agent/plugin.js';
import { SimulatedRuntime } from '../../../agent/runtime/simulated.js';
import { StateLayer, type Subscription } from '../../../agent/state.js';
import { EventRecorder } from '../../../agent/events.js';
import { startWorker } from '../../../agent/worker/plugin.js';
import { TestAgent, MAIN, ROOT } from '../../support/agent.js';
import { TestEtcd } from '../../support/etcd.js';
import { testLog } from '../../support/log.js';
import { freePort } from '../../support/ports.js';

const TERMINAL = new Set(['exitSuccess', 'exitFailure', 'errored', 'killed', 'abandoned', 'dead']);

/**
 * A cluster for rollouts without containers: a real etcd, a real agent
 * process running api, scheduler, reaper and replicaset, and workers in this
 * process with the SIMULATED runtime (pods "run" at once, until removed). The
 * `kith` CLI drives it, as a person would.
 */
export class SimCluster {
  private constructor(
    readonly etcd: TestEtcd,
    readonly state: StateLayer,
    readonly api: string,
    private readonly control: TestAgent,
    private readonly workers: { plugin: RunningPlugin; state: StateLayer }[],
    private readonly clients: Etcd3[],
  ) {}

  static async start(workers: number, prefix: string): Promise<SimCluster> {
    const etcd = await TestEtcd.start();
    const clients = [etcd.client(), etcd.client()];
    const state = new StateLayer(clients[0]!, '/kith', testLog);
    const started: { plugin: RunningPlugin; state: StateLayer }[] = [];
    const apiPort = await freePort();
    const control = TestAgent.start({
      args: ['--name', `${prefix}-ctl`, '--plugins', 'api,scheduler,reaper,replicaset', '--etcd-endpoints', etcd.endpoint, '--api-listen', `127.0.0.1:${apiPort}`, '--log-level', process.env.KITH_TEST_LOG ? 'debug' : 'info'],
    });
    const cluster = new SimCluster(etcd, state, `http://127.0.0.1:${apiPort}`, control, started, clients);
    try {
      for (let i = 0; i < workers; i++) {
        const name = `${prefix}-w${i}`;
        const config = parseAgentConfig(['--name', name, '--etcd-endpoints', etcd.endpoint, '--plugins', 'worker', '--cluster-cidr', '10.0.0.0/16', '--pod-cpu-limit', '1000', '--pod-memory-limit', String(1 << 22), '--termination-grace', '0'], {});
        const ws = new StateLayer(clients[i % clients.length]!, '/kith', testLog);
        await ws.grantLease('healthy', config.healthyTtl);
        await ws.grantLease('alive', config.aliveTtl);
        await registerNode(ws, name, ['worker'], () => ({}));
        const plugin = await startWorker({ config, node: { name, roles: new Set(['worker']) }, state: ws, log: testLog, metrics: new Registry(), events: new EventRecorder(ws, name, 3600, testLog, new Registry()) }, new SimulatedRuntime());
        started.push({ plugin, state: ws });
      }
      await control.ready(60_000);
    } catch (err) {
      await cluster.stop();
      throw err;
    }
    return cluster;
  }

  /** Runs the `kith` CLI against the cluster's API; never rejects on a non-zero exit. */
  async kith(args: string[], input?: string, timeoutMs = 120_000): Promise<{ exitCode: number; stdout: string; stderr: string }> {
    const r = await execa(process.execPath, ['--import', 'tsx', MAIN, ...args], {
      cwd: ROOT,
      env: { KITH_API: this.api },
      reject: false,
      timeout: timeoutMs,
      ...(input === undefined ? { stdin: 'ignore' as const } : { input }),
    });
    return { exitCode: r.exitCode ?? -1, stdout: String(r.stdout), stderr: String(r.stderr) };
  }

  /** Follows the pods of a ReplicaSet at every revision: the most ever live and the fewest ever running, from `arm()` on. */
  async monitor(rs: string): Promise<PodMonitor> {
    const m = new PodMonitor(rs);
    m.sub = this.state.watch([POD_PREFIX], (ev) => m.apply(ev.key.slice(POD_PREFIX.length), ev.type === 'delete' ? undefined : ev.value), { name: `monitor-${rs}` });
    await m.sub.synced;
    return m;
  }

  async stop(): Promise<void> {
    await this.control.stop('SIGKILL').catch(() => undefined);
    for (const w of this.workers) await w.plugin.stop().catch(() => undefined);
    for (const w of this.workers) await w.state.close().catch(() => undefined);
    await this.state.close().catch(() => undefined);
    for (const c of this.clients) c.close();
    await this.etcd.stop();
  }
}

export class PodMonitor {
  sub: Subscription | undefined;
  /** Live pods of the ReplicaSet: name → state and template hash. */
  readonly pods = new Map<string, { state: string; templateHash?: string }>();
  maxLive = 0;
  minRunning = Infinity;
  private armed = false;

  constructor(private readonly rs: string) {}

  apply(name: string, value: string | undefined): void {
    const p = value === undefined ? undefined : (JSON.parse(value) as { state: string; metadata: Record<string, string> });
    if (!p || p.metadata.replicaSet !== this.rs || TERMINAL.has(p.state)) this.pods.delete(name);
    else this.pods.set(name, { state: p.state, templateHash: p.metadata.templateHash });
    if (!this.armed) return;
    this.maxLive = Math.max(this.maxLive, this.pods.size);
    this.minRunning = Math.min(this.minRunning, [...this.pods.values()].filter((x) => x.state === 'running').length);
  }

  /** Starts counting (once the ReplicaSet is steady). */
  arm(): void {
    this.armed = true;
    this.maxLive = this.pods.size;
    this.minRunning = [...this.pods.values()].filter((x) => x.state === 'running').length;
  }

  hashes(): string[] {
    return [...new Set([...this.pods.values()].map((p) => p.templateHash ?? ''))].sort();
  }

  async close(): Promise<void> {
    await this.sub?.close();
  }
}
