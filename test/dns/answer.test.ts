import { expect } from 'chai';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import dns2 from 'dns2';
import { answer, CLASS, RCODE, TYPE, type Outcome, type Query, type Response } from '../../dns/answer.js';
import { fastKey, AnswerCache, questionName, signature } from '../../dns/fastpath.js';
import { cacheTtl, ForwardCache, mayRecurse, parseCidr, resolvConfUpstreams } from '../../dns/forward.js';
import { encodeResponse, encodeTransfer, ownCopy, parseQuery } from '../../dns/wire.js';
import { Zone } from '../../dns/zone.js';

const { Packet } = dns2;
let rev = 0;

function makeZone(): Zone {
  const z = new Zone({ domain: 'cluster.local', ttl: 7, nodeName: 'node-a', version: '9.9.9', reverseCidrs: ['10.244.0.0/16'] });
  const put = (key: string, value: string) => z.apply({ type: 'put', key, value, createRevision: ++rev, modRevision: rev });
  put('dns/web.pod.cluster.local.', '10.244.1.5');
  put('dns/node-a.worker.node.cluster.local.', '10.88.0.1');
  put('dns/dns.special.cluster.local./node-a.worker.node.cluster.local.', 'alias');
  put('resource/pod/web', JSON.stringify({ name: 'web', metadata: {}, spec: { ports: [{ container: 80, cluster: 8080, name: 'http' }] } }));
  return z;
}

function query(name: string, type: number, extra: Partial<Query> = {}): Query {
  return { id: 4242, qr: false, opcode: 0, rd: true, cd: false, qdcount: 1, question: { name, type, class: CLASS.IN }, malformed: false, transport: 'udp', loopback: true, ...extra };
}

function reply(o: Outcome): Response {
  expect(o.kind).to.equal('reply');
  return (o as { response: Response }).response;
}

describe('dns answer', () => {
  const z = makeZone();

  it('answers A authoritatively with the configured TTL and the query case', () => {
    const r = reply(answer(z, query('WeB.Pod.Cluster.Local', TYPE.A)));
    expect(r.rcode).to.equal(RCODE.NOERROR);
    expect(r.aa).to.equal(true);
    expect(r.id).to.equal(4242);
    expect(r.rd).to.equal(true);
    expect(r.answers).to.have.length(1);
    expect(r.answers[0]).to.include({ name: 'WeB.Pod.Cluster.Local', address: '10.244.1.5', ttl: 7 });
  });

  it('tells NXDOMAIN from NODATA, both with the SOA in authority', () => {
    const nx = reply(answer(z, query('nope.pod.cluster.local', TYPE.A)));
    expect(nx.rcode).to.equal(RCODE.NXDOMAIN);
    expect(nx.aa).to.equal(true);
    expect(nx.authorities[0]).to.include({ type: TYPE.SOA, name: 'cluster.local.', minimum: 7, ttl: 7 });
    const nodata = reply(answer(z, query('web.pod.cluster.local', TYPE.AAAA)));
    expect(nodata.rcode).to.equal(RCODE.NOERROR);
    expect(nodata.answers).to.have.length(0);
    expect(nodata.authorities[0]!.type).to.equal(TYPE.SOA);
    const ent = reply(answer(z, query('pod.cluster.local', TYPE.A)));
    expect(ent.rcode).to.equal(RCODE.NOERROR);
  });

  it('serves SOA and NS at the apex, SRV with additional A, PTR, and the special names', () => {
    const soa = reply(answer(z, query('cluster.local', TYPE.SOA)));
    expect(soa.answers[0]).to.include({ primary: 'dns.special.cluster.local.', admin: 'admin.cluster.local.', refresh: 300, retry: 30, expiration: 300, minimum: 7 });
    const ns = reply(answer(z, query('cluster.local', TYPE.NS)));
    expect(ns.answers[0]!.ns).to.equal('dns.special.cluster.local.');
    expect(ns.additionals[0]!.address).to.equal('10.88.0.1');
    const srv = reply(answer(z, query('_http._tcp.web.pod.cluster.local', TYPE.SRV)));
    expect(srv.answers[0]).to.include({ priority: 0, weight: 100, port: 8080, target: 'web.pod.cluster.local.' });
    expect(srv.additionals[0]).to.include({ name: 'web.pod.cluster.local.', address: '10.244.1.5' });
    const ptr = reply(answer(z, query('5.1.244.10.in-addr.arpa', TYPE.PTR)));
    expect(ptr.answers[0]!.domain).to.equal('web.pod.cluster.local.');
    expect(reply(answer(z, query('9.9.244.10.in-addr.arpa', TYPE.PTR))).rcode).to.equal(RCODE.NXDOMAIN);
    const special = reply(answer(z, query('dns.special.cluster.local', TYPE.A)));
    expect(special.answers.map((a) => a.address)).to.deep.equal(['10.88.0.1']);
  });

  it('answers id.server and version.bind in class CH', () => {
    const id = reply(answer(z, query('id.server', TYPE.TXT, { question: { name: 'id.server', type: TYPE.TXT, class: CLASS.CH } })));
    expect(id.answers[0]!.data).to.deep.equal(['node-a']);
    const v = reply(answer(z, query('VERSION.BIND', TYPE.TXT, { question: { name: 'VERSION.BIND', type: TYPE.TXT, class: CLASS.CH } })));
    expect(v.answers[0]!.data).to.deep.equal(['9.9.9']);
    expect(reply(answer(z, query('x', TYPE.TXT, { question: { name: 'other.bind', type: TYPE.TXT, class: CLASS.CH } }))).rcode).to.equal(RCODE.REFUSED);
  });

  it('gives ANY over UDP one RRset (RFC 8482) and everything over TCP', () => {
    const udp = reply(answer(z, query('cluster.local', TYPE.ANY)));
    expect(udp.answers.map((a) => a.type)).to.deep.equal([TYPE.SOA]);
    const tcp = reply(answer(z, query('cluster.local', TYPE.ANY, { transport: 'tcp' })));
    expect(tcp.answers.map((a) => a.type)).to.deep.equal([TYPE.SOA, TYPE.NS]);
  });

  it('transfers the zone over TCP to loopback only', () => {
    expect(reply(answer(z, query('cluster.local', TYPE.AXFR))).rcode).to.equal(RCODE.REFUSED);
    expect(reply(answer(z, query('cluster.local', TYPE.AXFR, { transport: 'tcp', loopback: false }))).rcode).to.equal(RCODE.REFUSED);
    const x = reply(answer(z, query('cluster.local', TYPE.AXFR, { transport: 'tcp' })));
    expect(x.rcode).to.equal(RCODE.NOERROR);
    expect(x.answers[0]!.type).to.equal(TYPE.SOA);
    expect(x.answers[x.answers.length - 1]!.type).to.equal(TYPE.SOA);
    expect(x.answers.some((a) => a.type === TYPE.SRV)).to.equal(true);
    const msgs = encodeTransfer(x, 2);
    expect(msgs.length).to.be.greaterThan(2);
    for (const m of msgs) expect(Packet.parse(m).errors).to.deep.equal([]);
  });

  it('applies the header rules: QR=1 dropped, NOTIMP, FORMERR, BADVERS, outside names', () => {
    expect(answer(z, query('web.pod.cluster.local', TYPE.A, { qr: true })).kind).to.equal('drop');
    expect(reply(answer(z, query('web.pod.cluster.local', TYPE.A, { opcode: 2 }))).rcode).to.equal(RCODE.NOTIMP);
    expect(reply(answer(z, query('web.pod.cluster.local', TYPE.A, { qdcount: 2 }))).rcode).to.equal(RCODE.FORMERR);
    expect(reply(answer(z, query('web.pod.cluster.local', TYPE.A, { qdcount: 0, question: undefined }))).rcode).to.equal(RCODE.FORMERR);
    const bad = reply(answer(z, query('web.pod.cluster.local', TYPE.A, { edns: { payload: 4096, version: 1, do: false } })));
    expect(bad.rcode).to.equal(RCODE.BADVERS);
    expect(bad.edns).to.deep.equal({ payload: 1232, version: 0, do: false });
    expect(answer(z, query('example.com', TYPE.A)).kind).to.equal('outside');
    expect(answer(z, query('8.8.8.8.in-addr.arpa', TYPE.PTR)).kind).to.equal('outside');
  });

  it('answers SERVFAIL, uncached, until the zone has synced', () => {
    const fresh = makeZone();
    fresh.synced = false;
    const o = answer(fresh, query('web.pod.cluster.local', TYPE.A));
    expect(reply(o).rcode).to.equal(RCODE.SERVFAIL);
    expect((o as { cacheable: boolean }).cacheable).to.equal(false);
  });
});

describe('dns wire', () => {
  const z = makeZone();
  const wire = (name: string, type: number, opts: { edns?: number; version?: number } = {}) => {
    const p = new Packet();
    p.header = { id: 777, qr: 0, opcode: 0, aa: 0, tc: 0, rd: 1, ra: 0, z: 0, rcode: 0 } as never;
    p.questions = [{ name, type, class: 1 } as never];
    if (opts.edns) p.additionals = [Packet.Resource.EDNS([], { udpPayloadSize: opts.edns, version: opts.version }) as never];
    return p.toBuffer();
  };

  it('round-trips a query and echoes OPT with payload 1232', () => {
    const q = parseQuery(wire('Web.pod.cluster.local', TYPE.A, { edns: 4096 }), 'udp', true)!;
    expect(q.edns).to.deep.equal({ payload: 4096, version: 0, do: false });
    const bytes = encodeResponse(reply(answer(z, q)), 4096);
    const p = Packet.parse(bytes);
    expect(p.header.aa).to.equal(1);
    expect(p.questions[0]!.name).to.equal('Web.pod.cluster.local');
    const opt = p.additionals.find((a) => a.type === TYPE.OPT)!;
    expect(opt.class).to.equal(1232);
  });

  it('truncates with TC when the answer exceeds the client size', () => {
    const big = new Zone({ domain: 'cluster.local', ttl: 5, nodeName: 'n', version: '1' });
    for (let i = 0; i < 60; i++) {
      big.apply({ type: 'put', key: `dns/p${i}.pod.cluster.local.`, value: `10.1.0.${i + 1}`, createRevision: 1, modRevision: 1 });
      big.apply({ type: 'put', key: `dns/many.x.cluster.local./p${i}.pod.cluster.local.`, value: 'alias', createRevision: 1, modRevision: 1 });
    }
    const q = parseQuery(wire('many.x.cluster.local', TYPE.A), 'udp', true)!;
    const cut = encodeResponse(reply(answer(big, q)), 512);
    expect(cut.length).to.be.at.most(512);
    expect(cut[2]! & 0x02).to.equal(0x02);
    const full = encodeResponse(reply(answer(big, { ...q, transport: 'tcp' })), 65535);
    expect(Packet.parse(full).answers).to.have.length(60);
  });

  it('replays cached wire answers with the new ID, flags and question case', () => {
    const cache = new AnswerCache(10);
    const first = wire('web.pod.cluster.local', TYPE.A);
    const k1 = fastKey(first)!;
    const q = parseQuery(first, 'udp', true)!;
    const r1 = reply(answer(z, q));
    cache.store(first, k1, encodeResponse(r1, 512), z.generation, signature(r1));
    const second = wire('WEB.POD.cluster.local', TYPE.A);
    second.writeUInt16BE(0xbeef, 0);
    second[2] = 0; // RD=0
    const k2 = fastKey(second)!;
    expect(k2.hash).to.equal(k1.hash);
    const hit = cache.lookup(second, k2, z.generation)!;
    const p = Packet.parse(hit.bytes);
    expect(p.header.id).to.equal(0xbeef);
    expect(p.header.rd).to.equal(0);
    expect(p.questions[0]!.name).to.equal('WEB.POD.cluster.local');
    expect(p.answers[0]!.address).to.equal('10.244.1.5');
    // Stale after a zone change: kept only when the zone still answers the same.
    expect(cache.lookup(second, k2, z.generation + 1, { revalidate: () => true })).to.not.equal(undefined);
    expect(cache.revalidated).to.equal(1);
    expect(cache.lookup(second, k2, z.generation + 2, { revalidate: () => false })).to.equal(undefined);
    expect(cache.lookup(second, k2, z.generation + 2, { revalidate: () => true })).to.equal(undefined);
    expect(questionName(second, k2.nameEnd)).to.equal('WEB.POD.cluster.local');
    expect(signature(reply(answer(z, parseQuery(second, 'udp', true)!)))).to.equal(signature(r1));
    // Queries the fast path does not take.
    expect(fastKey(wire('web.pod.cluster.local', TYPE.A, { edns: 1232, version: 1 }))).to.equal(undefined);
    const resp = Buffer.from(first);
    resp[2]! |= 0x80;
    expect(fastKey(resp)).to.equal(undefined);
    expect(fastKey(Buffer.alloc(5))).to.equal(undefined);
  });

  it('keeps the answers asked for, lets unasked ones age out, never holds more than its bound, and pins no pool slab', () => {
    const cache = new AnswerCache(10);
    const zone = new Zone({ domain: 'cluster.local', ttl: 5, nodeName: 'n', version: '1' });
    const keep = (name: string) => {
      const q = wire(name, TYPE.A);
      const k = fastKey(q)!;
      const r = reply(answer(zone, parseQuery(q, 'udp', true)!));
      expect(cache.store(q, k, encodeResponse(r, 512), zone.generation, signature(r))).to.equal(true);
      return { q, k };
    };
    const hot = keep('hot.pod.cluster.local');
    const cold = keep('cold.pod.cluster.local');
    for (let i = 0; i < 40; i++) {
      keep(`gone-${i}.pod.cluster.local`);
      expect(cache.size).to.be.at.most(10);
      expect(cache.lookup(hot.q, hot.k, zone.generation), `hot entry after ${i} others`).to.not.equal(undefined);
    }
    expect(cache.lookup(cold.q, cold.k, zone.generation)).to.equal(undefined);
    const hit = cache.lookup(hot.q, hot.k, zone.generation)!;
    // The cached bytes sit in an allocation of their own (the answer plus the lowercased name), not in Node's 8 KiB pool.
    expect(hit.template.buffer.byteLength).to.equal(hit.template.length + hot.k.nameEnd - 12);
  });

  it('reads upstreams from a resolv.conf, IPv4 only', () => {
    const dir = mkdtempSync(join(tmpdir(), 'kith-resolv-'));
    try {
      const file = join(dir, 'resolv.conf');
      writeFileSync(file, '# comment\nsearch example.test\nnameserver 192.0.2.53\nnameserver ::1\n  nameserver 198.51.100.1 \noptions ndots:2\n');
      expect(resolvConfUpstreams(file)).to.deep.equal([
        { host: '192.0.2.53', port: 53 },
        { host: '198.51.100.1', port: 53 },
      ]);
      expect(resolvConfUpstreams(join(dir, 'missing'))).to.deep.equal([]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('decides who may recurse and how long forwarded answers live', () => {
    const nets = [parseCidr('10.244.0.0/16')!];
    expect(mayRecurse('127.0.0.5', nets)).to.equal(true);
    expect(mayRecurse('::ffff:10.244.3.4', nets)).to.equal(true);
    expect(mayRecurse('10.245.0.1', nets)).to.equal(false);
    expect(mayRecurse('fe80::1', nets)).to.equal(false);
    const p = new Packet();
    p.header = { id: 1, qr: 1, opcode: 0, aa: 0, tc: 0, rd: 1, ra: 1, z: 0, rcode: 0 } as never;
    p.questions = [{ name: 'example.com', type: 1, class: 1 } as never];
    p.answers = [{ name: 'example.com', type: 1, class: 1, ttl: 30, address: '192.0.2.1' } as never, { name: 'example.com', type: 1, class: 1, ttl: 10, address: '192.0.2.2' } as never];
    const bytes = p.toBuffer();
    expect(cacheTtl(bytes).ttl).to.equal(10);
    const cache = new ForwardCache(2);
    cache.put('a', bytes, 0);
    const aged = cache.get('a', 4_000)!;
    expect(Packet.parse(aged).answers.map((a) => a.ttl)).to.deep.equal([26, 6]);
    expect(cache.get('a', 10_000)).to.equal(undefined);
    cache.put('a', bytes, 0);
    cache.put('b', bytes, 0);
    cache.put('c', bytes, 0);
    expect(cache.size).to.equal(2);
    expect(cache.get('a', 1)).to.equal(undefined);
    // What the caches keep sits in allocations of its own, never in a slab of Node's pool.
    const pooled = Buffer.from(bytes);
    expect(pooled.buffer.byteLength).to.be.greaterThan(bytes.length);
    const own = ownCopy(pooled);
    expect(own.buffer.byteLength).to.equal(bytes.length);
    expect(own.equals(bytes)).to.equal(true);
  });
});
