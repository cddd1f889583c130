import { StartupError } from './errors.js';
import { cidrContains, isIPv4, parseCidr } from './ipv4.js';

/** An `addr:port` to listen on or send to (IPv4; `0.0.0.0` is every address). */
export interface HostPort {
  host: string;
  port: number;
}

/** `a.b.c.d:port` as a HostPort, or undefined when it is not one. */
export function parseHostPort(s: string): HostPort | undefined {
  const m = /^(.+):(\d{1,5})$/.exec(s);
  const port = m ? Number(m[2]) : NaN;
  if (!m || !isIPv4(m[1]!) || port < 0 || port > 65535) return undefined;
  return { host: m[1]!, port };
}

export const formatHostPort = (hp: HostPort): string => `${hp.host}:${hp.port}`;

/** Whether one of `listen` serves `address:port` (the address itself, or every address). */
export function listensAt(listen: readonly HostPort[], address: string, port: number): boolean {
  return listen.some((l) => l.port === port && (l.host === address || l.host === '0.0.0.0'));
}

/**
 * Whether a listen address is one the worker will make on this host (the
 * gateway of its pod network, inside `--pod-subnet` or `--cluster-cidr`):
 * it cannot be bound before the worker has started, so the early port check
 * leaves it to the plugin's start, which binds it after the worker (SPEC §8).
 */
export function madeByWorker(config: { plugins: readonly string[]; clusterCidr: string; podSubnet?: string }, host: string): boolean {
  if (!config.plugins.includes('worker') || !isIPv4(host)) return false;
  return [config.podSubnet, config.clusterCidr].some((c) => {
    const cidr = c === undefined ? undefined : parseCidr(c);
    return cidr !== undefined && cidrContains(cidr, host);
  });
}

/**
 * The one-line start-up error of a failed bind, naming the flag, the address
 * and what to do: `--dns-listen 127.0.0.1:53: UDP port 53 is in use on 127.0.0.1; ...`.
 */
export function bindError(flag: string, hp: HostPort, proto: 'UDP' | 'TCP', err: NodeJS.ErrnoException): StartupError {
  const where = `${flag} ${formatHostPort(hp)}`;
  switch (err.code) {
    case 'EADDRINUSE':
      return new StartupError(`${where}: ${proto} port ${hp.port} is in use on ${hp.host}; stop what holds it or pick another address`);
    case 'EACCES':
      return new StartupError(`${where}: no permission to bind ${proto} port ${hp.port} (ports below 1024 need root or CAP_NET_BIND_SERVICE)`);
    case 'EADDRNOTAVAIL':
      return new StartupError(`${where}: ${hp.host} is not an address of this host`);
    default:
      return new StartupError(`${where}: cannot bind ${proto}: ${err.message}`);
  }
}
