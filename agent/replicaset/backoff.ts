/** Pod states that say the template failed, rather than its worker or a person ending it. */
export const FAILED_STATES: ReadonlySet<string> = new Set(['exitFailure', 'errored', 'abandoned']);

/**
 * Holds back new replicas of a ReplicaSet whose replicas keep failing, so a
 * template that cannot run (a bad image, a command that exits at once, a pod
 * too big for any worker) is retried with a growing delay instead of at the
 * speed of the scheduler and the worker. The delay doubles with each failure
 * in a row, from `firstMs` to `maxMs`. A replica that ran for `resetAfterMs`
 * or more before it failed starts a new streak, as Kubernetes does for
 * restarts. The clock is passed in.
 */
export class Backoff {
  private readonly streaks = new Map<string, { failures: number; until: number }>();

  constructor(
    private readonly firstMs = 250,
    private readonly maxMs = 30_000,
    private readonly resetAfterMs = 10_000,
  ) {}

  /** A replica of `replicaSet` failed at `now`, after running for `ranMs` (undefined: it never ran). */
  failed(replicaSet: string, now: number, ranMs?: number): void {
    const ranLong = ranMs !== undefined && ranMs >= this.resetAfterMs;
    const failures = (ranLong ? 0 : (this.streaks.get(replicaSet)?.failures ?? 0)) + 1;
    const delay = Math.min(this.maxMs, this.firstMs * 2 ** Math.min(failures - 1, 30));
    this.streaks.set(replicaSet, { failures, until: now + delay });
  }

  /** The ReplicaSet is gone. */
  forget(replicaSet: string): void {
    this.streaks.delete(replicaSet);
  }

  /** ReplicaSets with a failure streak, held or not. */
  tracked(): string[] {
    return [...this.streaks.keys()];
  }

  /** ReplicaSets whose new replicas wait at `now`. */
  held(now: number): Set<string> {
    return new Set([...this.streaks].filter(([, s]) => s.until > now).map(([rs]) => rs));
  }

  /** When the earliest hold ends, if any does after `now`. */
  nextRelease(now: number): number | undefined {
    const ends = [...this.streaks.values()].map((s) => s.until).filter((t) => t > now);
    return ends.length ? Math.min(...ends) : undefined;
  }

  failures(replicaSet: string): number {
    return this.streaks.get(replicaSet)?.failures ?? 0;
  }
}
