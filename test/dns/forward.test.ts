import { expect } from 'chai';
import dns2 from 'dns2';
import { cacheTtl, ForwardCache, ownCopy } from '../../dns/forward.js';

const { Packet } = dns2;

describe('dns forward cache', () => {
  it('decides how long forwarded answers live', () => {
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
