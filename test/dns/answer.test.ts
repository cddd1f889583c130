import { expect } from 'chai';
import { answer } from '../../dns/answer.js';
import { CLASS, RCODE, TYPE } from '../../dns/message.js';
import { makeZone, query, reply } from './sample-zone.js';

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
