import type { Logger } from 'pino';

/** How an etcd write is retried. */
export interface RetryTiming {
  /** First delay between attempts, doubled after each failure up to `maxMs`. */
  baseMs: number;
  maxMs: number;
  /** Attempts before giving up, once `until` is aborted (or when there is none). */
  attempts: number;
}

export const RETRY: RetryTiming = { baseMs: 100, maxMs: 5000, attempts: 10 };

/**
 * Retries an etcd write. Without `until`, a bounded number of times (about
 * 30 s in all); with it, for as long as `until` is not aborted, then that
 * bounded number of attempts in all.
 */
export async function retrying<T>(what: string, log: Logger, fn: () => Promise<T>, opts: { until?: AbortSignal; timing?: RetryTiming } = {}): Promise<T> {
  const timing = opts.timing ?? RETRY;
  let delay = timing.baseMs;
  for (let attempt = 1; ; attempt++) {
    try {
      return await fn();
    } catch (err) {
      const persist = opts.until !== undefined && !opts.until.aborted;
      if (!persist && attempt >= timing.attempts) throw err;
      // Every failure is logged until the limit; past it (etcd away for long), one line in ten.
      if (attempt <= timing.attempts || attempt % 10 === 0) log.warn({ err: (err as Error).message, attempt }, `${what} failed; retrying`);
      await new Promise((r) => setTimeout(r, delay));
      delay = Math.min(delay * 2, timing.maxMs);
    }
  }
}
