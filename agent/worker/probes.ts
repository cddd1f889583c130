import { request } from 'node:http';
import { connect } from 'node:net';
import { probeKind, type Container, type Probe, type ProbeKind } from '../../api/schemas.js';

/**
 * Health probes of a pod's containers (SPEC §10): the pure part
 * (`ProbeCounter`, how results become passing or failing) and the checks
 * (`tcpCheck`, `httpCheck`; exec goes through the runtime). `Prober` in
 * prober.ts runs them on their periods.
 */

/** Whether a probe currently passes: `undefined` before it has decided. */
export type ProbeVerdict = boolean | undefined;

/**
 * Consecutive results against a probe's thresholds, as Kubernetes counts
 * them: `successThreshold` passes in a row make it pass, `failureThreshold`
 * failures in a row make it fail; a verdict holds until the other side's
 * threshold is met.
 */
export class ProbeCounter {
  private passes = 0;
  private failures = 0;

  constructor(
    private readonly probe: Pick<Probe, 'successThreshold' | 'failureThreshold'>,
    /** Where it starts: a readiness probe starts failing, a liveness probe passing. */
    public verdict: ProbeVerdict,
  ) {}

  /** Records one result; returns true when the verdict changed. */
  record(passed: boolean): boolean {
    if (passed) {
      this.failures = 0;
      this.passes++;
      if (this.verdict !== true && this.passes >= this.probe.successThreshold) {
        this.verdict = true;
        return true;
      }
    } else {
      this.passes = 0;
      this.failures++;
      if (this.verdict !== false && this.failures >= this.probe.failureThreshold) {
        this.verdict = false;
        return true;
      }
    }
    return false;
  }
}

/** A pod is ready while every readiness probe passes; with none, while it runs. */
export function podIsReady(verdicts: readonly ProbeVerdict[]): boolean {
  return verdicts.every((v) => v === true);
}

/** The probes of a pod's containers, in spec order. */
export interface ContainerProbe {
  container: string;
  role: 'readiness' | 'liveness';
  kind: ProbeKind;
  probe: Probe;
}

export function podProbes(containers: readonly Container[]): ContainerProbe[] {
  return containers.flatMap((c) =>
    (['readiness', 'liveness'] as const).flatMap((role) => {
      const probe = c[role];
      return probe ? [{ container: c.name, role, kind: probeKind(probe), probe }] : [];
    }),
  );
}

/** Whether a TCP connection to `host:port` is accepted within `timeoutMs`. */
export function tcpCheck(host: string, port: number, timeoutMs: number, signal?: AbortSignal): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = connect({ host, port, timeout: timeoutMs, signal });
    const done = (ok: boolean) => {
      sock.destroy();
      resolve(ok);
    };
    sock.once('connect', () => done(true));
    sock.once('timeout', () => done(false));
    sock.once('error', () => done(false));
  });
}

/** Whether `GET http://host:port/path` answers 2xx or 3xx within `timeoutMs` (the body is not read). */
export function httpCheck(host: string, port: number, path: string, timeoutMs: number, signal?: AbortSignal): Promise<boolean> {
  return new Promise((resolve) => {
    let settled = false;
    const done = (ok: boolean) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      req.destroy();
      resolve(ok);
    };
    const req = request({ host, port, path, method: 'GET', agent: false, signal, headers: { 'user-agent': 'kith-probe', connection: 'close' } }, (res) => {
      const status = res.statusCode ?? 0;
      res.resume();
      done(status >= 200 && status < 400);
    });
    // The whole exchange, not only the connect, is bounded.
    const timer = setTimeout(() => done(false), timeoutMs);
    req.once('error', () => done(false));
    req.end();
  });
}

/** At most `limit` checks at once across the worker; the rest queue in order. */
export class Limiter {
  private active = 0;
  private readonly queue: (() => void)[] = [];

  constructor(private readonly limit: number) {}

  async run<T>(fn: () => Promise<T>): Promise<T> {
    if (this.active >= this.limit) await new Promise<void>((r) => this.queue.push(r));
    this.active++;
    try {
      return await fn();
    } finally {
      this.active--;
      this.queue.shift()?.();
    }
  }
}

/** Metadata kith's worker owns on a running pod (SPEC §10): dropped from a final state. */
export const LIVE_METADATA = ['ready', 'readySince', 'ip'] as const;

/** `metadata` with `ready` set and `readySince` kept, set (to `now`) or dropped to match. */
export function withReadiness(metadata: Readonly<Record<string, string>>, ready: boolean, now: Date): Record<string, string> {
  const { readySince, ...rest } = metadata;
  if (!ready) return { ...rest, ready: 'false' };
  return { ...rest, ready: 'true', readySince: metadata.ready === 'true' && readySince ? readySince : now.toISOString() };
}

/** `metadata` without what only a running pod carries. */
export function withoutLiveMetadata(metadata: Readonly<Record<string, string>>): Record<string, string> {
  const out = { ...metadata };
  for (const k of LIVE_METADATA) delete out[k];
  return out;
}

/**
 * The wait before restarting a container again (SPEC §10): none the first
 * time, then 10 s doubling to 5 min; a container that ran 10 minutes since
 * its last restart starts over.
 */
export const BACKOFF_FIRST_MS = 10_000;
export const BACKOFF_MAX_MS = 300_000;
export const BACKOFF_RESET_MS = 600_000;
export function restartDelay(history: { restarts: number; lastRestartAt?: number }, now: number, timing = { first: BACKOFF_FIRST_MS, max: BACKOFF_MAX_MS, reset: BACKOFF_RESET_MS }): { delayMs: number; streak: number } {
  const fresh = history.lastRestartAt === undefined || now - history.lastRestartAt >= timing.reset;
  const streak = fresh ? 0 : history.restarts;
  const delayMs = streak === 0 ? 0 : Math.min(timing.max, timing.first * 2 ** (streak - 1));
  return { delayMs, streak: streak + 1 };
}
