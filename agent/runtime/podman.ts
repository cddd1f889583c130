import { spawn } from 'node:child_process';
import { createWriteStream } from 'node:fs';
import { rename } from 'node:fs/promises';
import { PassThrough } from 'node:stream';
import { finished } from 'node:stream/promises';
import { execa } from 'execa';
import type { Logger } from 'pino';
import type { Container } from '../../api/schemas.js';
import {
  bridgeMac, containerRunArgs, holderCreateArgs, judgeMissing, judgeWaits, leftPods, podCreateArgs, podExits, podListArgs, podRemoveArgs, psArgs,
  type InspectedContainer, type PodWait, type PsContainer, type PsPod,
} from './podman-args.js';
import { holderName, type CreatePod, type ImagePull, type LeftPod, type LocalSubnet, type PodExit, type PodRuntime } from './runtime.js';
import { gatewayOf, IPV4_CIDR } from '../ipv4.js';

export class PodmanError extends Error {}

export interface PodmanOptions {
  node: string;
  log: Logger;
  /** The podman binary (default `podman`). */
  command?: string;
  /** How often running pods are checked for exited containers (default 1000 ms). */
  pollMs?: number;
  /** Bound on one podman call (default 60 s). */
  timeoutMs?: number;
  /** `--image-pull`: when `container run` pulls the image (default never). */
  imagePull?: ImagePull;
}

/** Bound on a `container run` that may pull its image. */
const PULL_TIMEOUT_MS = 10 * 60_000;

interface Waiter extends PodWait {
  resolve: (r: PodExit | 'aborted') => void;
}

/** Pods as podman pods: one shell around the podman CLI, every exit code checked. */
export class PodmanRuntime implements PodRuntime {
  readonly kind = 'podman';
  private readonly node: string;
  private readonly log: Logger;
  private readonly command: string;
  private readonly pollMs: number;
  private readonly timeoutMs: number;
  private readonly imagePull: ImagePull;
  private network: string | undefined;
  private readonly waiters = new Set<Waiter>();
  private timer: NodeJS.Timeout | undefined;
  private polling = false;
  private closed = false;

  constructor(opts: PodmanOptions) {
    this.node = opts.node;
    this.log = opts.log;
    this.command = opts.command ?? 'podman';
    this.pollMs = opts.pollMs ?? 1000;
    this.timeoutMs = opts.timeoutMs ?? 60_000;
    this.imagePull = opts.imagePull ?? 'never';
  }

  /** Runs podman; throws a PodmanError with podman's own message on a non-zero exit. */
  async podman(args: string[], opts: { allowFail?: boolean; timeoutMs?: number } = {}): Promise<{ stdout: string; stderr: string; exitCode: number }> {
    const started = performance.now();
    const r = await execa(this.command, args, { stdin: 'ignore', reject: false, timeout: opts.timeoutMs ?? this.timeoutMs });
    this.log.debug({ podman: args.slice(0, 3).join(' '), ms: Math.round(performance.now() - started), exitCode: r.exitCode }, 'podman');
    const res = { stdout: String(r.stdout ?? ''), stderr: String(r.stderr ?? ''), exitCode: r.exitCode ?? -1 };
    if (res.exitCode !== 0 && !opts.allowFail) {
      const msg = res.stderr.trim().split('\n').filter((l) => !/level=warning/.test(l)).join('; ') || (r.timedOut ? 'timed out' : 'no message');
      throw new PodmanError(`podman ${args.slice(0, 2).join(' ')} failed (exit ${res.exitCode}): ${msg}`);
    }
    return res;
  }

  async prepareNetwork(network: string, subnet: string): Promise<{ gateway: string }> {
    const gateway = gatewayOf(subnet);
    const inspect = await this.podman(['network', 'inspect', network], { allowFail: true });
    let exists = false;
    if (inspect.exitCode === 0) {
      const info = (JSON.parse(inspect.stdout) as { subnets?: { subnet: string; gateway?: string }[]; dns_enabled?: boolean }[])[0];
      const same = info?.subnets?.length === 1 && info.subnets[0]!.subnet === subnet && info.subnets[0]!.gateway === gateway && !info.dns_enabled;
      if (same) exists = true;
      else {
        this.log.warn({ network, want: subnet, have: info?.subnets }, 'pod network has another subnet or DNS on; recreating it');
        const rm = await this.podman(['network', 'rm', network], { allowFail: true });
        if (rm.exitCode !== 0) {
          throw new PodmanError(`--pod-network '${network}' exists with another subnet and cannot be removed (${rm.stderr.trim()}); remove it or pick another name`);
        }
      }
    }
    if (!exists) {
      const r = await this.podman(['network', 'create', '--disable-dns', `--subnet=${subnet}`, `--gateway=${gateway}`, network], { allowFail: true });
      if (r.exitCode !== 0) {
        throw new PodmanError(`--pod-network '${network}' with subnet ${subnet}: podman network create failed: ${r.stderr.trim()}`);
      }
    }
    this.network = network;
    // netavark makes the bridge (and binds the gateway) only while a pod is on it: keep one there.
    const holder = holderName(this.node);
    await this.podman(podRemoveArgs([holder]), { allowFail: true });
    await this.podman(holderCreateArgs(this.node, network, holder));
    await this.podman(['pod', 'start', holder]);
    await this.fixBridgeMac(network, subnet);
    return { gateway };
  }

  /** Gives the bridge its fixed MAC (bridgeMac); a failure is logged, as the network works without it. */
  private async fixBridgeMac(network: string, subnet: string): Promise<void> {
    const inspect = await this.podman(['network', 'inspect', network]);
    const iface = (JSON.parse(inspect.stdout) as { network_interface?: string }[])[0]?.network_interface;
    const mac = bridgeMac(subnet);
    const r = iface ? await execa('ip', ['link', 'set', 'dev', iface, 'address', mac], { stdin: 'ignore', reject: false, timeout: 10_000 }) : undefined;
    if (r?.exitCode === 0) this.log.debug({ bridge: iface, mac }, 'pod bridge has its fixed MAC');
    else this.log.error({ network, bridge: iface, exitCode: r?.exitCode, stderr: String(r?.stderr ?? '').trim() }, 'could not give the pod bridge a fixed MAC; pods may lose their gateway for a while when others come and go');
  }

  async subnetsInUse(network: string): Promise<LocalSubnet[]> {
    const r = await this.podman(['network', 'ls', '--format', 'json']);
    const nets = (JSON.parse(r.stdout || '[]') as { name?: string; subnets?: { subnet?: string }[] }[]) ?? [];
    return nets
      .filter((n) => n.name !== network)
      .flatMap((n) => (n.subnets ?? []).map((s) => ({ network: n.name ?? '', subnet: s.subnet ?? '' })))
      .filter((s) => IPV4_CIDR.test(s.subnet));
  }

  async podsLeft(network: string): Promise<LeftPod[]> {
    const r = await this.podman(podListArgs(this.node));
    const pods = (JSON.parse(r.stdout || '[]') as PsPod[] | null) ?? [];
    const infra = pods.map((p) => `${p.Name ?? ''}-infra`).filter((n) => n !== `${holderName(this.node)}-infra`);
    if (infra.length === 0) return leftPods(this.node, network, pods, []);
    // One call for all: a pod whose infra container is gone makes podman exit non-zero, yet it prints the others.
    const i = await this.podman(['container', 'inspect', ...infra], { allowFail: true });
    let inspected: InspectedContainer[] = [];
    try {
      inspected = (JSON.parse(i.stdout || '[]') as InspectedContainer[] | null) ?? [];
    } catch {
      throw new PodmanError(`podman container inspect of this node's pods failed (exit ${i.exitCode}): ${i.stderr.trim()}`);
    }
    return leftPods(this.node, network, pods, inspected);
  }

  async createPod(p: CreatePod): Promise<{ ip: string }> {
    if (!this.network) throw new PodmanError('the pod network is not prepared');
    await this.podman(podCreateArgs(this.node, this.network, p));
    await this.podman(['pod', 'start', p.runtimeName]);
    const r = await this.podman(['container', 'inspect', `${p.runtimeName}-infra`]);
    const info = (JSON.parse(r.stdout) as { NetworkSettings?: { Networks?: Record<string, { IPAddress?: string }> } }[])[0];
    const ip = info?.NetworkSettings?.Networks?.[this.network]?.IPAddress;
    if (!ip) throw new PodmanError(`pod ${p.runtimeName} has no address on network ${this.network}`);
    return { ip };
  }

  async runContainer(p: CreatePod, c: Container): Promise<void> {
    await this.podman(containerRunArgs(this.node, p, c, this.imagePull), { timeoutMs: this.imagePull === 'never' ? undefined : PULL_TIMEOUT_MS });
  }

  async exec(p: CreatePod, container: string, cmd: readonly string[], timeoutMs: number): Promise<boolean> {
    const r = await this.podman(['exec', `${p.runtimeName}-${container}`, ...cmd], { allowFail: true, timeoutMs }).catch(() => undefined);
    return r?.exitCode === 0;
  }

  async restartContainer(p: CreatePod, container: string): Promise<void> {
    await this.podman(['container', 'restart', '--time', '10', `${p.runtimeName}-${container}`], { timeoutMs: 60_000 });
  }

  wait(p: CreatePod, containers: number, signal: AbortSignal): Promise<PodExit | 'aborted'> {
    if (signal.aborted) return Promise.resolve('aborted');
    if (containers === 0) return Promise.resolve('exitSuccess');
    return new Promise((resolve) => {
      const w: Waiter = {
        pod: p.pod,
        runtimeName: p.runtimeName,
        containers,
        seen: false,
        resolve: (r) => {
          this.waiters.delete(w);
          signal.removeEventListener('abort', onAbort);
          resolve(r);
        },
      };
      const onAbort = () => w.resolve('aborted');
      signal.addEventListener('abort', onAbort);
      this.waiters.add(w);
      this.schedulePoll();
    });
  }

  /** One `podman ps` for all pods of the node, at most every `pollMs`, only while someone waits. */
  private schedulePoll(): void {
    if (this.timer || this.polling || this.closed || this.waiters.size === 0) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      void this.poll();
    }, this.pollMs);
  }

  private async poll(): Promise<void> {
    this.polling = true;
    // Only waiters that were there before `podman ps` ran can be judged by its answer.
    const judged = [...this.waiters];
    try {
      const r = await this.podman(psArgs(this.node));
      const exits = podExits(JSON.parse(r.stdout || '[]') as PsContainer[]);
      const { ended, missing } = judgeWaits(judged.filter((w) => this.waiters.has(w)), exits);
      for (const [w, exit] of ended) (w as Waiter).resolve(exit);
      for (const w of missing) {
        if (!this.waiters.has(w as Waiter)) continue;
        const exit = judgeMissing(w, await this.podExists(w.runtimeName));
        if (exit && this.waiters.has(w as Waiter)) {
          this.log.warn({ pod: w.pod, listingsMissed: w.missed }, 'pod\'s containers are gone; it ended');
          (w as Waiter).resolve(exit);
        }
      }
    } catch (err) {
      this.log.warn({ err: (err as Error).message }, 'podman ps failed; trying again');
    } finally {
      this.polling = false;
      this.schedulePoll();
    }
  }

  /** Whether podman has this pod: `podman pod exists` exits 0 or 1; anything else (a timeout, an error) is no answer. */
  private async podExists(name: string): Promise<boolean | undefined> {
    const r = await this.podman(['pod', 'exists', name], { allowFail: true }).catch(() => undefined);
    if (r?.exitCode === 0) return true;
    if (r?.exitCode === 1) return false;
    return undefined;
  }

  logs(runtimeName: string, container: string, opts: { tail?: number; follow: boolean }, signal: AbortSignal): NodeJS.ReadableStream {
    const args = ['logs', ...(opts.tail !== undefined ? ['--tail', String(opts.tail)] : []), ...(opts.follow ? ['--follow'] : []), `${runtimeName}-${container}`];
    // stdout and stderr of the container, as podman gives them back, in one stream.
    const child = spawn(this.command, args, { stdio: ['ignore', 'pipe', 'pipe'], signal, killSignal: 'SIGKILL' });
    const out = new PassThrough();
    let open = 2;
    const end = () => void (--open === 0 && out.end());
    for (const s of [child.stdout, child.stderr]) {
      s.on('end', end);
      s.pipe(out, { end: false });
    }
    child.on('error', (err) => {
      if (!signal.aborted) this.log.warn({ container: `${runtimeName}-${container}`, err: err.message }, 'podman logs failed');
      out.end();
    });
    out.on('close', () => child.kill('SIGKILL'));
    return out;
  }

  async saveLog(runtimeName: string, container: string, file: string): Promise<boolean> {
    const exists = await this.podman(['container', 'exists', `${runtimeName}-${container}`], { allowFail: true });
    if (exists.exitCode !== 0) return false;
    const ctl = new AbortController();
    const timer = setTimeout(() => ctl.abort(), this.timeoutMs);
    try {
      // Written aside and renamed: a reader never sees a copy half made.
      const part = `${file}.part`;
      const sink = createWriteStream(part, { mode: 0o600 });
      const src = this.logs(runtimeName, container, { follow: false }, ctl.signal);
      src.pipe(sink);
      await finished(sink);
      await rename(part, file);
      return true;
    } finally {
      clearTimeout(timer);
    }
  }

  async stopPod(name: string, seconds: number): Promise<void> {
    await this.podman(['pod', 'stop', '--time', String(seconds), name], { allowFail: true, timeoutMs: (seconds + 30) * 1000 });
  }

  async removePod(name: string): Promise<void> {
    const r = await this.podman(podRemoveArgs([name]), { allowFail: true });
    if (r.exitCode !== 0 && !/no such pod|no pod with name/i.test(r.stderr)) {
      throw new PodmanError(`podman pod rm ${name} failed (exit ${r.exitCode}): ${r.stderr.trim()}`);
    }
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    for (const w of [...this.waiters]) w.resolve('aborted');
    await this.podman(podRemoveArgs([holderName(this.node)]), { allowFail: true });
  }
}
