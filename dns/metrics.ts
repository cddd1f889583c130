import { Counter, Gauge, type Registry } from 'prom-client';
import type { Forwarder } from './forward.js';
import type { NativeStats } from './native.js';
import type { Zone } from './zone.js';

/**
 * The plugin's metrics. Per-query work stays in plain numbers (a Map of
 * counts and an array of histogram buckets); prom-client reads them only when
 * scraped, so counting costs the query path almost nothing.
 */

const TYPE_NAMES: Record<number, string> = { 1: 'A', 2: 'NS', 6: 'SOA', 12: 'PTR', 15: 'MX', 16: 'TXT', 28: 'AAAA', 33: 'SRV', 65: 'HTTPS', 252: 'AXFR', 255: 'ANY' };
const RCODE_NAMES = ['NOERROR', 'FORMERR', 'SERVFAIL', 'NXDOMAIN', 'NOTIMP', 'REFUSED'];
const BUCKETS = [0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.05, 0.25, 1, 2.5];

export class DnsMetrics {
  private readonly counts = new Map<number, number>();
  private readonly flushed = new Map<number, number>();
  private readonly buckets = new Float64Array(BUCKETS.length + 1);
  private sum = 0;
  private count = 0;

  constructor(registry: Registry, zone: Zone, forwarder: Forwarder) {
    const registers = [registry];
    const counts = this.counts;
    const flushed = this.flushed;
    new Counter({
      name: 'kith_dns_queries_total',
      help: 'DNS queries answered, by query type and response code',
      labelNames: ['type', 'rcode'],
      registers,
      collect() {
        const all = new Map(counts);
        for (const [k, n] of self.native()?.counts ?? []) all.set(k, (all.get(k) ?? 0) + n);
        for (const [k, n] of all) {
          const d = n - (flushed.get(k) ?? 0);
          if (d <= 0) continue;
          flushed.set(k, n);
          const qtype = Math.floor(k / 32);
          this.inc({ type: TYPE_NAMES[qtype] ?? `TYPE${qtype}`, rcode: RCODE_NAMES[k % 32] ?? `RCODE${k % 32}` }, d);
        }
      },
    });
    const name = 'kith_dns_request_duration_seconds';
    const help = 'Time from a query arriving to its answer being sent';
    const self = this;
    registry.registerMetric({
      name,
      help,
      type: 'histogram',
      aggregator: 'sum',
      reset() {},
      async get() {
        const values: { metricName: string; labels: Record<string, string | number>; value: number }[] = [];
        const n = self.native();
        let acc = 0;
        for (let i = 0; i < BUCKETS.length; i++) {
          acc += self.buckets[i]! + (n?.buckets[i] ?? 0);
          values.push({ metricName: `${name}_bucket`, labels: { le: BUCKETS[i]! }, value: acc });
        }
        const count = self.count + (n?.count ?? 0);
        values.push({ metricName: `${name}_bucket`, labels: { le: '+Inf' }, value: count });
        values.push({ metricName: `${name}_sum`, labels: {}, value: self.sum + (n?.sum ?? 0) });
        values.push({ metricName: `${name}_count`, labels: {}, value: count });
        return { name, help, type: 'histogram', values, aggregator: 'sum' };
      },
    } as never);
    new Gauge({
      name: 'kith_dns_zone_size',
      help: 'Entries in the in-memory zone, by kind',
      labelNames: ['kind'],
      registers,
      collect() {
        for (const [kind, n] of Object.entries(zone.size())) this.set({ kind }, n);
      },
    });
    new Gauge({
      name: 'kith_dns_forward_cache_entries',
      help: 'Entries in the forwarding cache',
      registers,
      collect() {
        this.set(forwarder.cache.size);
      },
    });
    const nativeSeen = { hits: 0, misses: 0 };
    new Counter({
      name: 'kith_dns_udp_native_total',
      help: 'UDP queries read by the native engine, by what it did: answered itself, or passed to the JavaScript server',
      labelNames: ['result'],
      registers,
      collect() {
        const n = self.native();
        if (!n) return;
        for (const [key, result] of [['hits', 'answered'], ['misses', 'passed']] as const) {
          const d = n[key] - nativeSeen[key];
          nativeSeen[key] = n[key];
          if (d > 0) this.inc({ result }, d);
        }
      },
    });
    new Gauge({
      name: 'kith_dns_udp_native_entries',
      help: 'Answers the native UDP engine holds to replay',
      registers,
      collect() {
        this.set(self.native()?.entries ?? 0);
      },
    });
    let droppedSeen = 0;
    new Counter({
      name: 'kith_dns_dropped_total',
      help: 'Packets dropped unanswered: responses (QR=1), source port 0, too short or undecodable',
      registers,
      collect() {
        const n = self.dropped();
        if (n > droppedSeen) this.inc(n - droppedSeen);
        droppedSeen = n;
      },
    });
    const seen = { forwarded: 0, cacheHits: 0, failures: 0 };
    new Counter({
      name: 'kith_dns_forwarded_total',
      help: 'Out-of-zone queries answered, by how: from an upstream, from the cache, or SERVFAIL',
      labelNames: ['result'],
      registers,
      collect() {
        const st = forwarder.stats;
        for (const [key, result] of [['forwarded', 'upstream'], ['cacheHits', 'cache'], ['failures', 'failed']] as const) {
          const d = st[key] - seen[key];
          seen[key] = st[key];
          if (d > 0) this.inc({ result }, d);
        }
      },
    });
  }

  /** Packets dropped unanswered (QR=1, source port 0, undecodable), read at scrape time. */
  dropped: () => number = () => 0;

  /** What the native UDP engine answered on its own thread, read at scrape time. */
  native: () => NativeStats | undefined = () => undefined;

  /** One answered query. */
  observe(qtype: number, rcode: number, seconds: number): void {
    const k = qtype * 32 + (rcode & 31);
    this.counts.set(k, (this.counts.get(k) ?? 0) + 1);
    let i = 0;
    while (i < BUCKETS.length && seconds > BUCKETS[i]!) i++;
    this.buckets[i] += 1;
    this.sum += seconds;
    this.count++;
  }
}
