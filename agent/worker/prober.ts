import type { Logger } from 'pino';
import type { Counter, Histogram } from 'prom-client';
import type { CreatePod, PodRuntime } from '../runtime/runtime.js';
import { httpCheck, podIsReady, ProbeCounter, tcpCheck, type ContainerProbe, type Limiter } from './probes.js';

/** podman's own start-up for an exec probe, on top of the probe's timeout. */
export const EXEC_ALLOWANCE_MS = 2_000;

export interface ProbeMetrics {
  /** By kind (exec, tcp, http), role (readiness, liveness) and result (pass, fail). */
  results: Counter<'kind' | 'role' | 'result'>;
  /** Seconds per check, by kind. */
  duration: Histogram<'kind'>;
}

export interface ProberDeps {
  pod: CreatePod;
  ip: string;
  runtime: PodRuntime;
  /** Bounds the checks in flight across the worker. */
  limiter: Limiter;
  log: Logger;
  metrics?: ProbeMetrics;
  /** Whether the pod counts as ready before its readiness probes have decided (an adopted pod that was). */
  initialReady?: boolean;
  /** The pod's readiness changed (every readiness probe passes, or one stopped passing). */
  onReady(ready: boolean): void;
  /** A container's liveness probe reached its failure threshold. */
  onLivenessFailed(container: string, probe: ContainerProbe): void;
}

interface Running {
  probe: ContainerProbe;
  counter: ProbeCounter;
  timer?: NodeJS.Timeout;
  inFlight: boolean;
}

/**
 * Runs one pod's probes, each on its own period after its initial delay. A
 * check never overlaps the previous one of the same probe and always ends
 * (its timeout); checks of the whole worker share a `Limiter`, so hundreds
 * of pods cost a bounded number of sockets and podman processes at once.
 */
export class Prober {
  private readonly running: Running[];
  private readonly ctrl = new AbortController();
  private lastReady: boolean;

  constructor(
    probes: readonly ContainerProbe[],
    private readonly deps: ProberDeps,
  ) {
    const start = (p: ContainerProbe) => (p.role === 'liveness' || deps.initialReady ? true : undefined);
    this.running = probes.map((probe) => ({ probe, counter: new ProbeCounter(probe.probe, start(probe)), inFlight: false }));
    this.lastReady = this.ready;
  }

  /** Every readiness probe passes (with none: true). */
  get ready(): boolean {
    return podIsReady(this.running.filter((r) => r.probe.role === 'readiness').map((r) => r.counter.verdict));
  }

  start(): this {
    for (const r of this.running) this.schedule(r, r.probe.probe.initialDelaySeconds * 1000);
    return this;
  }

  stop(): void {
    this.ctrl.abort();
    for (const r of this.running) clearTimeout(r.timer);
  }

  /** After a container restarts: its liveness probe starts passing again, after its initial delay. */
  restarted(container: string): void {
    for (const r of this.running) {
      if (r.probe.container !== container) continue;
      r.counter = new ProbeCounter(r.probe.probe, r.probe.role === 'liveness' ? true : undefined);
      clearTimeout(r.timer);
      this.schedule(r, r.probe.probe.initialDelaySeconds * 1000);
    }
    this.changed();
  }

  private schedule(r: Running, ms: number): void {
    if (this.ctrl.signal.aborted) return;
    r.timer = setTimeout(() => void this.tick(r), ms);
    r.timer.unref();
  }

  private async tick(r: Running): Promise<void> {
    const period = r.probe.probe.periodSeconds * 1000;
    if (r.inFlight) return this.schedule(r, period);
    r.inFlight = true;
    const started = performance.now();
    let passed = false;
    try {
      passed = await this.deps.limiter.run(() => this.check(r.probe));
    } catch {
      passed = false;
    } finally {
      r.inFlight = false;
    }
    if (this.ctrl.signal.aborted) return;
    const { metrics } = this.deps;
    metrics?.results.inc({ kind: r.probe.kind, role: r.probe.role, result: passed ? 'pass' : 'fail' });
    metrics?.duration.observe({ kind: r.probe.kind }, (performance.now() - started) / 1000);
    if (r.counter.record(passed)) {
      this.deps.log.info({ pod: this.deps.pod.pod, container: r.probe.container, probe: r.probe.role, kind: r.probe.kind, passing: r.counter.verdict }, passed ? 'probe passes' : 'probe fails');
      if (r.probe.role === 'liveness' && r.counter.verdict === false) this.deps.onLivenessFailed(r.probe.container, r.probe);
      this.changed();
    }
    // From the end of a check: a slow check does not make checks pile up.
    this.schedule(r, period);
  }

  private changed(): void {
    const ready = this.ready;
    if (ready === this.lastReady) return;
    this.lastReady = ready;
    this.deps.onReady(ready);
  }

  private check(c: ContainerProbe): Promise<boolean> {
    const { ip, runtime, pod } = this.deps;
    const timeoutMs = c.probe.timeoutSeconds * 1000;
    const signal = this.ctrl.signal;
    if (c.probe.exec) return runtime.exec(pod, c.container, c.probe.exec, timeoutMs + EXEC_ALLOWANCE_MS);
    if (c.probe.tcp !== undefined) return tcpCheck(ip, c.probe.tcp, timeoutMs, signal);
    const http = c.probe.http!;
    return httpCheck(ip, http.port, http.path, timeoutMs, signal);
  }
}
