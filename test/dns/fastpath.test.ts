import { expect } from 'chai';
import dns2 from 'dns2';
import { answer } from '../../dns/answer.js';
import { AnswerCache, fastKey, questionName, signature } from '../../dns/fastpath.js';
import { TYPE } from '../../dns/message.js';
import { encodeResponse, parseQuery } from '../../dns/wire.js';
import { Zone } from '../../dns/zone.js';
import { makeZone, reply, wire } from './sample-zone.js';

const { Packet } = dns2;

describe('dns fast path', () => {
  const z = makeZone();

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
});
