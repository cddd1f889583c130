import { Etcd3, GRPCDeadlineExceededError, GRPCUnavailableError, isRecoverableError } from 'etcd3';
import type { Logger } from 'pino';
import { EtcdUnavailableError, StartupError } from './errors.js';

/**
 * Every unary etcd call has a deadline, so an etcd that stops answering never
 * stalls the agent (etcd3 tries a call up to three times: about 10 s in all).
 */
export const ETCD_CALL_DEADLINE_MS = 3000;
/** How long start-up waits for etcd to answer. */
const CONNECT_WAIT_MS = 15_000;

/** What etcd answers while it has no leader or is overloaded, and what a call that waited too long says. */
const UNAVAILABLE = /context deadline exceeded|request timed out|leader changed|no leader|too many requests|circuit breaker is open/i;

/**
 * Whether an error means that etcd is away for now (unreachable, no leader,
 * too slow), so the request may simply be tried again, rather than a defect.
 */
export function isEtcdUnavailable(err: unknown): boolean {
  if (!(err instanceof Error)) return false;
  return (
    err instanceof EtcdUnavailableError ||
    err instanceof GRPCUnavailableError ||
    err instanceof GRPCDeadlineExceededError ||
    isRecoverableError(err) ||
    UNAVAILABLE.test(err.message)
  );
}

/** A client of the cluster's etcd, once it answers; a StartupError naming --etcd-endpoints if it does not. */
export async function connectEtcd(endpoints: string[], log: Logger): Promise<Etcd3> {
  const client = new Etcd3({
    hosts: endpoints,
    dialTimeout: 2000,
    defaultCallOptions: (call) => (call.isStream ? {} : { deadline: Date.now() + ETCD_CALL_DEADLINE_MS }),
  });
  const deadline = Date.now() + CONNECT_WAIT_MS;
  for (;;) {
    try {
      await client.get('kith-health').exec();
      return client;
    } catch (err) {
      if (Date.now() > deadline) {
        client.close();
        throw new StartupError(`--etcd-endpoints '${endpoints.join(',')}': etcd is not reachable (${(err as Error).message.split('\n')[0]})`);
      }
      log.warn({ endpoints }, 'waiting for etcd');
      await new Promise((r) => setTimeout(r, 500));
    }
  }
}
