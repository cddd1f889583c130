import { z } from 'zod';
import { defineFlags, hostPort, list, type FlagValues } from '../agent/flags.js';

/** The dns plugin's flags (README.md). */
export const dnsFlags = defineFlags('dns', {
  dnsListen: { flag: 'dns-listen', schema: list(hostPort).optional(), help: 'comma list of addr:port, UDP and TCP (default 127.0.0.1:53 and <cluster-address>:53)' },
  upstreamDns: {
    flag: 'upstream-dns',
    schema: z.union([z.literal('none'), list(hostPort)]).optional(),
    help: 'comma list of addr:port for names outside the zone, or none (default: the nameservers of /etc/resolv.conf)',
  },
  dnsTtl: { flag: 'dns-ttl', schema: z.coerce.number().int().min(0).max(86400), default: '5', help: 'TTL of every cluster record and the SOA minimum, seconds' },
  dnsUdpEngine: {
    flag: 'dns-udp-engine',
    schema: z.enum(['auto', 'native', 'node']),
    env: 'KITH_DNS_UDP_ENGINE',
    default: 'auto',
    help: 'UDP sockets: native (the fast path in C++), node (node:dgram), or auto',
  },
});

export type DnsConfig = FlagValues<typeof dnsFlags.flags>;
