import { execa } from 'execa';
import type { Logger } from 'pino';
import { heartbeatPrefix, nameUnder, SUBNET_PREFIX, subnetOfKey } from '../keys.js';
import type { StateLayer } from '../state.js';
import { parseSubnetOwner, type SubnetOwner } from './subnet-claim.js';

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

/**
 * The routing protocol number kith's routes carry (`ip route ... proto 75`),
 * so a restarted agent can tell its own routes from everyone else's. 75 is
 * not assigned in iproute2's rt_protos.
 */
export const ROUTE_PROTO = 75;

export interface RouteTableOptions {
  /** Runs `ip` under this prefix (tests: inside a network namespace). */
  wrap?: string[];
  /** Backoff after a failed change: first and longest wait. */
  retryMs?: { first: number; max: number };
}

/**
 * Applies route changes one at a time with `ip route`, checking each exit
 * code. A change that fails is tried again, with backoff, until it succeeds
 * or the table is closed; routes a killed agent left behind (kith's protocol)
 * are adopted at `start()` and removed by the first sync unless still wanted.
 */
export class RouteTable {
  readonly current = new Map<string, string>();
  private chain: Promise<void> = Promise.resolve();
  private desired: ReadonlyMap<string, string> = new Map();
  private retry: NodeJS.Timeout | undefined;
  private wait: number;
  private closed = false;
  /** Changes that failed and have not succeeded since. */
  failing = 0;

  constructor(
    private readonly log: Logger,
    private readonly opts: RouteTableOptions = {},
  ) {
    this.wait = opts.retryMs?.first ?? 1000;
  }

  private async ip(args: string[]): Promise<{ ok: boolean; stdout: string }> {
    const wrap = this.opts.wrap ?? [];
    const [cmd, ...pre] = [...wrap, 'ip'];
    const r = await execa(cmd!, [...pre, ...args], { stdin: 'ignore', reject: false, timeout: 10_000 });
    if (r.exitCode !== 0) {
      this.log.error({ cmd: ['ip', ...args].join(' '), exitCode: r.exitCode, stderr: String(r.stderr).trim() }, 'route change failed');
      return { ok: false, stdout: '' };
    }
    return { ok: true, stdout: String(r.stdout) };
  }

  /** `ip -j -4 route show ...` as rows; undefined when it cannot be read. */
  private async show(args: string[]): Promise<{ dst?: string; gateway?: string }[] | undefined> {
    const r = await this.ip(['-j', '-4', 'route', 'show', ...args]);
    if (!r.ok) return undefined;
    try {
      const rows: unknown = JSON.parse(r.stdout || '[]');
      return Array.isArray(rows) ? (rows as { dst?: string; gateway?: string }[]) : undefined;
    } catch {
      return undefined;
    }
  }

  /** Adopts the routes of kith's protocol that an earlier run left; returns them. */
  async start(): Promise<Map<string, string>> {
    const found = new Map<string, string>();
    for (const row of (await this.show(['proto', String(ROUTE_PROTO)])) ?? []) {
      if (!row.dst || !row.gateway || !row.dst.includes('/')) continue;
      found.set(row.dst, row.gateway);
      this.current.set(row.dst, row.gateway);
    }
    if (found.size > 0) this.log.info({ routes: Object.fromEntries(found) }, 'found routes of an earlier run; keeping only those still wanted');
    return found;
  }

  /** Brings the table to `desired`; calls are serialised. */
  sync(desired: ReadonlyMap<string, string>): Promise<void> {
    this.desired = desired;
    // A change that throws (not just fails) must not stop every later one.
    this.chain = this.chain.then(() => this.apply()).catch((err: Error) => this.log.error({ err: err.message }, 'route sync failed'));
    return this.chain;
  }

  private async apply(): Promise<void> {
    const { replace, remove } = routeChanges(this.current, this.desired);
    let failed = 0;
    for (const [cidr, via] of replace) {
      if ((await this.ip(['route', 'replace', cidr, 'via', via, 'proto', String(ROUTE_PROTO)])).ok) {
        this.current.set(cidr, via);
        this.log.info({ subnet: cidr, via }, 'route to a worker\'s pods');
      } else failed++;
    }
    for (const cidr of remove) {
      const via = this.current.get(cidr)!;
      const r = await this.ip(['route', 'del', cidr, 'via', via]);
      // A route already gone (removed by hand, or with its interface) is not a failure.
      if (r.ok || !(await this.present(cidr, via))) {
        this.current.delete(cidr);
        this.log.info({ subnet: cidr }, 'route removed');
      } else failed++;
    }
    this.failing = failed;
    if (failed === 0) {
      this.wait = this.opts.retryMs?.first ?? 1000;
      return;
    }
    if (this.closed || this.retry) return;
    const wait = this.wait;
    this.wait = Math.min(this.wait * 2, this.opts.retryMs?.max ?? 30_000);
    this.log.warn({ failed, retryInMs: wait }, 'route changes failed; trying again');
    this.retry = setTimeout(() => {
      this.retry = undefined;
      if (!this.closed) void this.sync(this.desired);
    }, wait);
    this.retry.unref();
  }

  /** Whether the route is still there (so a failed delete is a failure); true when unknown. */
  private async present(cidr: string, via: string): Promise<boolean> {
    return (await this.show([cidr]))?.some((x) => x.dst === cidr && x.gateway === via) ?? true;
  }

  /** Stops retrying and removes every route it made (one attempt each), unless told to keep them. */
  async close(opts: { keep?: boolean } = {}): Promise<void> {
    this.closed = true;
    if (this.retry) clearTimeout(this.retry);
    this.retry = undefined;
    if (!opts.keep) await this.sync(new Map());
  }
}

/**
 * Keeps this host's routes at `desiredRoutes`, following the subnet claims
 * and the alive heartbeats. Routes a killed run of this agent left are
 * adopted first: kept if still wanted, else removed by the first sync.
 */
export async function followRoutes(state: StateLayer, log: Logger, me: { worker: string; hostAddress: string }): Promise<{ close(opts?: { keep?: boolean }): Promise<void> }> {
  const routes = new RouteTable(log);
  await routes.start();
  const subnets = new Map<string, SubnetOwner>();
  const alive = new Set<string>();
  let synced = false;
  const sync = () => {
    if (!synced) return;
    // `subnets` is by key: a claim moving from the legacy key spelling to the SPEC one is a put and a delete.
    const byCidr = new Map([...subnets].map(([key, o]) => [subnetOfKey(key)!, o]));
    void routes.sync(desiredRoutes(me, byCidr, alive));
  };
  const alivePrefix = heartbeatPrefix('worker', 'alive');
  const sub = state.watch(
    [SUBNET_PREFIX, alivePrefix],
    (ev) => {
      const w = nameUnder(ev.key, alivePrefix);
      if (w !== undefined) {
        if (ev.type === 'put') alive.add(w);
        else alive.delete(w);
      } else {
        if (!subnetOfKey(ev.key)) return;
        const owner = ev.type === 'put' ? parseSubnetOwner(ev.value) : undefined;
        if (owner) subnets.set(ev.key, owner);
        else subnets.delete(ev.key);
      }
      sync();
    },
    { name: 'worker routes', onSynced: () => ((synced = true), sync()) },
  );
  return {
    async close(opts) {
      await sub.close();
      await routes.close(opts);
    },
  };
}
