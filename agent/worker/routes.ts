import { execa } from 'execa';
import type { Logger } from 'pino';
import type { SubnetOwner } from './subnet-claim.js';

/**
 * host-gw routing (SPEC §1.1 `--host-address`): every other live worker's pod
 * subnet is routed via that worker's host address.
 */

/** subnet -> via, for the workers other than `me` that are alive and have a host address. */
export function desiredRoutes(
  me: { worker: string; hostAddress: string },
  subnets: ReadonlyMap<string, SubnetOwner>,
  alive: ReadonlySet<string>,
): Map<string, string> {
  const out = new Map<string, string>();
  for (const [cidr, o] of subnets) {
    if (o.worker === me.worker || !o.hostAddress || o.hostAddress === me.hostAddress || !alive.has(o.worker)) continue;
    out.set(cidr, o.hostAddress);
  }
  return out;
}

export function routeChanges(
  current: ReadonlyMap<string, string>,
  desired: ReadonlyMap<string, string>,
): { replace: [string, string][]; remove: string[] } {
  const replace = [...desired].filter(([c, via]) => current.get(c) !== via);
  const remove = [...current.keys()].filter((c) => !desired.has(c));
  return { replace, remove };
}

/** Applies route changes one at a time with `ip route`, checking each exit code. */
export class RouteTable {
  readonly current = new Map<string, string>();
  private chain: Promise<void> = Promise.resolve();

  constructor(private readonly log: Logger) {}

  private async ip(args: string[]): Promise<boolean> {
    const r = await execa('ip', args, { stdin: 'ignore', reject: false, timeout: 10_000 });
    if (r.exitCode !== 0) {
      this.log.error({ cmd: ['ip', ...args].join(' '), exitCode: r.exitCode, stderr: String(r.stderr).trim() }, 'route change failed');
      return false;
    }
    return true;
  }

  /** Brings the table to `desired`; calls are serialised. */
  sync(desired: ReadonlyMap<string, string>): Promise<void> {
    this.chain = this.chain.then(async () => {
      const { replace, remove } = routeChanges(this.current, desired);
      for (const [cidr, via] of replace) {
        if (await this.ip(['route', 'replace', cidr, 'via', via])) {
          this.current.set(cidr, via);
          this.log.info({ subnet: cidr, via }, 'route to a worker\'s pods');
        }
      }
      for (const cidr of remove) {
        await this.ip(['route', 'del', cidr, 'via', this.current.get(cidr)!]);
        this.current.delete(cidr);
        this.log.info({ subnet: cidr }, 'route removed');
      }
    });
    return this.chain;
  }
}
