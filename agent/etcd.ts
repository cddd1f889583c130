import { readFileSync } from 'node:fs';
import { Etcd3, GRPCDeadlineExceededError, GRPCUnavailableError, isRecoverableError, type IOptions } from 'etcd3';
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

/** The files of `--etcd-ca`, `--etcd-cert` and `--etcd-key`. */
export interface EtcdTls {
  ca?: string;
  cert?: string;
  key?: string;
}

/** The TLS credentials of the flags, read now: a file that cannot be read is a StartupError naming its flag. */
export function etcdCredentials(tls: EtcdTls): IOptions['credentials'] {
  if (tls.ca === undefined) return undefined;
  const read = (flag: string, path: string): Buffer => {
    try {
      return readFileSync(path);
    } catch (err) {
      throw new StartupError(`--${flag} '${path}': cannot read it (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
    }
  };
  return {
    rootCertificate: read('etcd-ca', tls.ca),
    ...(tls.cert !== undefined ? { certChain: read('etcd-cert', tls.cert) } : {}),
    ...(tls.key !== undefined ? { privateKey: read('etcd-key', tls.key) } : {}),
  };
}

/** What gRPC says when the TLS handshake fails (a certificate etcd refuses, or one that does not match its CA). */
const TLS_FAILURE = /ssl|tls|handshake|certificate|alert|wrong version/i;

/**
 * A client of the cluster's etcd, once it answers; a StartupError naming
 * --etcd-endpoints if it does not, or the TLS flags if the handshake fails
 * (at once: waiting does not mend a certificate).
 */
export async function connectEtcd(endpoints: string[], log: Logger, tls: EtcdTls = {}): Promise<Etcd3> {
  const client = new Etcd3({
    hosts: endpoints,
    dialTimeout: 2000,
    credentials: etcdCredentials(tls),
    defaultCallOptions: (call) => (call.isStream ? {} : { deadline: Date.now() + ETCD_CALL_DEADLINE_MS }),
  });
  const deadline = Date.now() + CONNECT_WAIT_MS;
  for (;;) {
    try {
      await client.get('kith-health').exec();
      return client;
    } catch (err) {
      const why = (err as Error).message.split('\n')[0];
      if (tls.ca !== undefined && TLS_FAILURE.test(why ?? '')) {
        client.close();
        const flags = tls.cert !== undefined ? `--etcd-ca '${tls.ca}', --etcd-cert '${tls.cert}'` : `--etcd-ca '${tls.ca}' (no --etcd-cert)`;
        throw new StartupError(`${flags}: etcd at ${endpoints.join(',')} refused the TLS handshake (${why})`);
      }
      if (Date.now() > deadline) {
        client.close();
        throw new StartupError(`--etcd-endpoints '${endpoints.join(',')}': etcd is not reachable (${why})`);
      }
      log.warn({ endpoints }, 'waiting for etcd');
      await new Promise((r) => setTimeout(r, 500));
    }
  }
}
