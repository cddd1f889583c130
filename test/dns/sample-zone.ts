import { expect } from 'chai';
import dns2 from 'dns2';
import type { Outcome } from '../../dns/answer.js';
import { CLASS, type Query, type Response } from '../../dns/message.js';
import { Zone } from '../../dns/zone.js';
import { applyEvent } from '../../dns/zone-source.js';

/** The small zone, queries and wire messages the unit tests of answer, wire and the fast path share. */

const { Packet } = dns2;
let rev = 0;

export function makeZone(): Zone {
  const z = new Zone({ domain: 'cluster.local', ttl: 7, nodeName: 'node-a', version: '9.9.9', reverseCidrs: ['10.244.0.0/16'] });
  const put = (key: string, value: string) => applyEvent(z, { type: 'put', key, value, createRevision: ++rev, modRevision: rev });
  put('dns/web.pod.cluster.local.', '10.244.1.5');
  put('dns/node-a.worker.node.cluster.local.', '10.88.0.1');
  put('dns/dns.special.cluster.local./node-a.worker.node.cluster.local.', 'alias');
  put('resource/pod/web', JSON.stringify({ name: 'web', metadata: {}, spec: { ports: [{ container: 80, cluster: 8080, name: 'http' }] } }));
  return z;
}

export function query(name: string, type: number, extra: Partial<Query> = {}): Query {
  return { id: 4242, qr: false, opcode: 0, rd: true, cd: false, qdcount: 1, question: { name, type, class: CLASS.IN }, malformed: false, transport: 'udp', loopback: true, ...extra };
}

export function reply(o: Outcome): Response {
  expect(o.kind).to.equal('reply');
  return (o as { response: Response }).response;
}

/** A query as a client sends it. */
export const wire = (name: string, type: number, opts: { edns?: number; version?: number } = {}) => {
  const p = new Packet();
  p.header = { id: 777, qr: 0, opcode: 0, aa: 0, tc: 0, rd: 1, ra: 0, z: 0, rcode: 0 } as never;
  p.questions = [{ name, type, class: 1 } as never];
  if (opts.edns) p.additionals = [Packet.Resource.EDNS([], { udpPayloadSize: opts.edns, version: opts.version }) as never];
  return p.toBuffer();
};
