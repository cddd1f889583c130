import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { Counter, Gauge, Histogram } from 'prom-client';
import { StartupError } from '../agent/embedded-etcd.js';
import type { Plugin, PluginContext, RunningPlugin } from '../agent/plugin.js';
import { Forwarder, parseCidr, resolvConfUpstreams, type Cidr, type Upstream } from './forward.js';
import { DnsServer, ListenError, type HostPort } from './server.js';
import { ALIAS_VALUE, Zone } from './zone.js';

/** The kith version, from the package.json above this file (source tree or dist/). */
export function kithVersion(): string {
  let dir = import.meta.dirname;
  for (let i = 0; i < 4; i++) {
    const p = join(dir, 'package.json');
    if (existsSync(p)) {
      try {
        const pkg = JSON.parse(readFileSync(p, 'utf8')) as { name?: string; version?: string };
        if (pkg.name === 'kith' && pkg.version) return pkg.version;
      } catch {
        /* keep looking */
      }
    }
    dir = dirname(dir);
  }
  return 'unknown';
}

const TYPE_NAMES: Record<number, string> = { 1: 'A', 2: 'NS', 6: 'SOA', 12: 'PTR', 15: 'MX', 16: 'TXT', 28: 'AAAA', 33: 'SRV', 65: 'HTTPS', 252: 'AXFR', 255: 'ANY' };
const RCODE_NAMES = ['NOERROR', 'FORMERR', 'SERVFAIL', 'NXDOMAIN', 'NOTIMP', 'REFUSED'];

/** The `dns.special` alias key of this node, when it has a role with an address pods can reach. */
export function membershipKey(ctx: Pick<PluginContext, 'config' | 'node'>): string | undefined {
  const { node, config } = ctx;
  if (!node.clusterAddress) return undefined;
  const ns = node.roles.has('worker') ? 'worker' : node.roles.has('api') ? 'api' : undefined;
  if (!ns) return undefined;
  const d = config.clusterDomain;
  return `dns/dns.special.${d}./${node.name}.${ns}.node.${d}.`;
}

export const dnsPlugin: Plugin = {
  name: 'dns',
  async start(ctx: PluginContext): Promise<RunningPlugin> {
    const { config, node, state, log } = ctx;
    const listen: HostPort[] = config.dnsListen ?? [
      { host: '127.0.0.1', port: 53 },
      ...(node.clusterAddress ? [{ host: node.clusterAddress, port: 53 }] : []),
    ];
    let upstreams: Upstream[] = config.upstreamDns === 'none' ? [] : (config.upstreamDns ?? resolvConfUpstreams());
    // Never forward to ourselves.
    upstreams = upstreams.filter((u) => !listen.some((l) => l.port === u.port && (l.host === u.host || l.host === '0.0.0.0')));
    const recurseNets = [config.clusterCidr, config.podSubnet].flatMap((c) => (c ? [parseCidr(c)] : [])).filter((c): c is Cidr => !!c);
    const ns = node.roles.has('worker') ? 'worker' : node.roles.has('api') ? 'api' : undefined;

    const zone = new Zone({
      domain: config.clusterDomain,
      ttl: config.dnsTtl,
      nodeName: node.name,
      version: kithVersion(),
      mname: ns ? `${node.name}.${ns}.node.${config.clusterDomain}` : undefined,
      reverseCidrs: [config.clusterCidr, ...(config.podSubnet ? [config.podSubnet] : [])],
    });
    zone.synced = false;

    // ---- metrics ----
    const registers = [ctx.metrics];
    // Per-query counting stays in plain numbers; prom-client sees them when scraped.
    const counts = new Map<number, number>();
    const flushed = new Map<number, number>();
    new Counter({
      name: 'kith_dns_queries_total',
      help: 'DNS queries answered, by query type and response code',
      labelNames: ['type', 'rcode'],
      registers,
      collect() {
        for (const [k, n] of counts) {
          const d = n - (flushed.get(k) ?? 0);
          if (d <= 0) continue;
          flushed.set(k, n);
          const qtype = Math.floor(k / 32);
          this.inc({ type: TYPE_NAMES[qtype] ?? `TYPE${qtype}`, rcode: RCODE_NAMES[k % 32] ?? String(k % 32) }, d);
        }
      },
    });
    const latency = new Histogram({
      name: 'kith_dns_request_duration_seconds',
      help: 'Time from a query arriving to its answer being sent',
      buckets: [0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.05, 0.25, 1, 2.5],
      registers,
    });
    const observe = (qtype: number, rcode: number, seconds: number) => {
      const k = qtype * 32 + (rcode & 31);
      counts.set(k, (counts.get(k) ?? 0) + 1);
      latency.observe(seconds);
    };
    new Gauge({
      name: 'kith_dns_zone_size',
      help: 'Entries in the in-memory zone, by kind',
      labelNames: ['kind'],
      registers,
      collect() {
        for (const [kind, n] of Object.entries(zone.size())) this.set({ kind }, n);
      },
    });
    const forwarder = new Forwarder({ upstreams });
    new Gauge({
      name: 'kith_dns_forward_cache_entries',
      help: 'Entries in the forwarding cache',
      registers,
      collect() {
        this.set(forwarder.cache.size);
      },
    });
    new Counter({
      name: 'kith_dns_forwarded_total',
      help: 'Out-of-zone queries by result',
      labelNames: ['result'],
      registers,
      collect() {
        this.reset();
        this.inc({ result: 'upstream' }, forwarder.stats.forwarded);
        this.inc({ result: 'cache' }, forwarder.stats.cacheHits);
        this.inc({ result: 'failed' }, forwarder.stats.failures);
      },
    });

    const server = new DnsServer({ listen, zone, forwarder, recurseNets, log, observe });
    try {
      await server.start();
    } catch (err) {
      forwarder.close();
      if (err instanceof ListenError) throw new StartupError(err.message);
      throw err;
    }

    const sub = state.watch(['dns/', 'resource/pod/'], (ev) => zone.apply(ev), {
      name: 'dns',
      onSynced: () => {
        zone.synced = true;
        log.info({ ...zone.size() }, 'dns zone synced');
      },
    });
    await sub.synced;

    const member = membershipKey(ctx);
    if (member) await state.put(member, ALIAS_VALUE, 'alive');
    log.info({ listen: listen.map((l) => `${l.host}:${l.port}`), upstreams: upstreams.map((u) => `${u.host}:${u.port}`), member }, 'dns serving');

    return {
      async stop() {
        if (member) {
          try {
            await state.delete(member);
          } catch (err) {
            log.warn({ err: (err as Error).message }, 'removing dns.special membership failed');
          }
        }
        await sub.close();
        await server.stop();
        forwarder.close();
      },
    };
  },
};
