import type { Container } from '../../api/schemas.js';
import { gatewayOf, intToIp, ipToInt } from '../ipv4.js';
import { type CreatePod, type LeftPod, type LocalSubnet, type PodExit, type PodRuntime } from './runtime.js';

/**
 * A SIMULATED runtime: it starts no containers and touches no network. Pods
 * get made-up addresses from the subnet and "run" until they are removed,
 * after an optional delay per step. It exists so benchmarks can measure the
 * scheduling path (API → scheduler → worker claim → running) with many
 * workers on one machine; it is never chosen by `kith agent`.
 */
export class SimulatedRuntime implements PodRuntime {
  readonly kind = 'simulated';
  private subnet = '10.0.0.0/24';
  private next = 2;
  private readonly running = new Map<string, (outcome?: PodExit) => void>();

  constructor(private readonly opts: { stepMs?: number } = {}) {}

  private async step(): Promise<void> {
    if (this.opts.stepMs) await new Promise((r) => setTimeout(r, this.opts.stepMs));
  }

  async prepareNetwork(_network: string, subnet: string): Promise<{ gateway: string }> {
    this.subnet = subnet;
    return { gateway: gatewayOf(subnet) };
  }

  async subnetsInUse(_network: string): Promise<LocalSubnet[]> {
    return [];
  }

  async podsLeft(_network: string): Promise<LeftPod[]> {
    return [];
  }

  async createPod(_p: CreatePod): Promise<{ ip: string }> {
    await this.step();
    const base = ipToInt(this.subnet.split('/')[0]!);
    const ip = intToIp(base + (this.next++ % 250) + 2);
    return { ip };
  }

  async runContainer(_p: CreatePod, _c: Container): Promise<void> {
    await this.step();
  }

  async restartContainer(): Promise<void> {}

  async stopPod(): Promise<void> {}

  /** Every simulated command succeeds. */
  async exec(): Promise<boolean> {
    return true;
  }

  wait(p: CreatePod, _containers: number, signal: AbortSignal): Promise<PodExit | 'aborted'> {
    return new Promise((resolve) => {
      if (signal.aborted) return resolve('aborted');
      const done = (outcome?: PodExit) => {
        this.running.delete(p.runtimeName);
        resolve(outcome ?? 'aborted');
      };
      this.running.set(p.runtimeName, done);
      signal.addEventListener('abort', () => done(), { once: true });
    });
  }

  /** Whether a pod is being waited on (for tests). */
  waiting(runtimeName: string): boolean {
    return this.running.has(runtimeName);
  }

  /** Ends a running pod as if all its containers had exited (for tests); false when no such pod runs. */
  exit(runtimeName: string, outcome: PodExit): boolean {
    const done = this.running.get(runtimeName);
    done?.(outcome);
    return done !== undefined;
  }

  async removePod(name: string): Promise<void> {
    this.running.get(name)?.();
  }

  async close(): Promise<void> {
    for (const done of [...this.running.values()]) done();
  }
}
