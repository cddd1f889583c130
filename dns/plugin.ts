import { performance } from 'node:perf_hooks';
import { formatHostPort, listensAt, madeByWorker, type HostPort } from '../agent/address.js';
import { settleWithin } from '../agent/deadline.js';
import { parseCidr, type Cidr } from '../agent/ipv4.js';
import { ALIAS_VALUE, nodeFqdn, specialMemberKey } from '../agent/keys.js';
import type { Plugin, PluginContext, RunningPlugin } from '../agent/plugin.js';
import type { StateEvent } from '../agent/state.js';
import { kithVersion } from '../agent/version.js';
import type { DnsConfig } from './flags.js';
import { Forwarder } from './forward.js';
import { DnsMetrics } from './metrics.js';
import { resolvConfUpstreams } from './recursion.js';
import { DnsServer, probeListen } from './server.js';
import { Zone } from './zone.js';
import { applyEvent, ZONE_PREFIXES } from './zone-source.js';

/** How long startup waits for the first scan of etcd before serving without it. */
const SYNC_WAIT_MS = 20_000;

/**
 * The `dns.special` alias key of this node, when it has a role with a name in
 * the zone (`<node>.worker.node` or `<node>.api.node`), a cluster address, and
 * this server answers where pods ask: that address, port 53.
 */
export function membershipKey(ctx: Pick<PluginContext, 'config' | 'node'>, listen: HostPort[]): string | undefined {
  const { node, config } = ctx;
  if (!node.clusterAddress || !listensAt(listen, node.clusterAddress, 53)) return undefined;
  const ns = node.roles.has('worker') ? 'worker' : node.roles.has('api') ? 'api' : undefined;
  if (!ns) return undefined;
  return specialMemberKey('dns', node.name, ns, config.clusterDomain);
}

export const dnsPlugin: Plugin<DnsConfig> = {
  name: 'dns',
  needs: ['clusterAddress'],
  async preflight(config) {
    // Only what the flags name, less the pod network's addresses, which the worker has not made yet.
    const named = config.dnsListen ?? [{ host: '127.0.0.1', port: 53 }, ...(config.clusterAddress ? [{ host: config.clusterAddress, port: 53 }] : [])];
    await probeListen(named.filter((hp) => !madeByWorker(config, hp.host)));
  },
  async start(ctx: PluginContext<DnsConfig>): Promise<RunningPlugin> {
    const { config, node, state, log } = ctx;
    const listen: HostPort[] = config.dnsListen ?? [
      { host: '127.0.0.1', port: 53 },
      ...(node.clusterAddress ? [{ host: node.clusterAddress, port: 53 }] : []),
    ];
    let upstreams: HostPort[] = config.upstreamDns === 'none' ? [] : (config.upstreamDns ?? resolvConfUpstreams());
    // Never forward to ourselves.
    upstreams = upstreams.filter((u) => !listensAt(listen, u.host, u.port));
    const recurseNets = [config.clusterCidr, config.podSubnet].flatMap((c) => (c ? [parseCidr(c)] : [])).filter((c): c is Cidr => !!c);
    const ns = node.roles.has('worker') ? 'worker' : node.roles.has('api') ? 'api' : undefined;

    const zone = new Zone({
      domain: config.clusterDomain,
      ttl: config.dnsTtl,
      nodeName: node.name,
      version: kithVersion(),
      mname: ns ? nodeFqdn(node.name, ns, config.clusterDomain) : undefined,
      reverseCidrs: [config.clusterCidr, ...(config.podSubnet ? [config.podSubnet] : [])],
    });
    zone.synced = false;

    const forwarder = new Forwarder({ upstreams });
    const metrics = new DnsMetrics(ctx.metrics, zone, forwarder);
    const observe = metrics.observe.bind(metrics);

    const server = new DnsServer({ listen, zone, forwarder, recurseNets, log, observe, udpEngine: config.dnsUdpEngine });
    metrics.dropped = () => server.dropped;
    metrics.native = () => server.nativeStats();
    try {
      await server.start();
    } catch (err) {
      forwarder.close();
      throw err;
    }

    const syncStart = performance.now();
    let warned = 0;
    const apply = (ev: StateEvent) => {
      if (applyEvent(zone, ev) || warned >= 20) return;
      warned++;
      log.warn({ key: ev.key, value: ev.type === 'put' ? ev.value.slice(0, 100) : undefined }, 'dns: ignoring a malformed key or value (A records need an IPv4 value, names must be DNS names, pods JSON)');
    };
    const sub = state.watch(ZONE_PREFIXES, apply, {
      name: 'dns',
      onSynced: () => {
        zone.synced = true;
        log.info({ ...zone.size(), ms: Math.round(performance.now() - syncStart) }, 'dns zone synced');
      },
    });
    // Join dns.special only once the zone is whole, so that pods are never sent to a server that
    // still answers SERVFAIL. Startup waits for that, but not for ever: an etcd that cannot be
    // scanned must not keep the agent from starting (or from stopping).
    const member = membershipKey(ctx, listen);
    if (!member && node.clusterAddress) {
      log.warn({ clusterAddress: node.clusterAddress, listen: listen.map(formatHostPort) },
        `not joining dns.special: pods ask ${node.clusterAddress}:53, and this server ${ns ? 'does not listen there' : 'has no worker or api name to be known by'}`);
    }
    let stopped = false;
    const joined = sub.synced.then(async () => {
      if (!member || stopped) return;
      try {
        await state.put(member, ALIAS_VALUE, 'alive');
      } catch (err) {
        log.error({ err: (err as Error).message, key: member }, 'joining dns.special failed');
      }
    });
    if ((await settleWithin(joined, SYNC_WAIT_MS)) === 'timeout') log.warn({ waitedMs: SYNC_WAIT_MS }, 'dns zone not synced yet: in-zone queries get SERVFAIL until it is');
    log.info({ listen: listen.map(formatHostPort), upstreams: upstreams.map(formatHostPort), member }, 'dns serving');

    return {
      async stop() {
        stopped = true;
        await settleWithin(joined, 2000);
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
