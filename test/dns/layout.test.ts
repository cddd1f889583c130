import { expect } from 'chai';
import dns2 from 'dns2';
import { layout, skipName, truncateMessage } from '../../dns/layout.js';

const { Packet } = dns2;

describe('dns message layout', () => {
  const p = new Packet();
  p.header = { id: 1, qr: 1, opcode: 0, aa: 0, tc: 0, rd: 1, ra: 1, z: 0, rcode: 0 } as never;
  p.questions = [{ name: 'example.com', type: 1, class: 1 } as never];
  p.answers = [{ name: 'example.com', type: 1, class: 1, ttl: 30, address: '192.0.2.1' } as never];
  p.authorities = [{ name: 'example.com', type: 2, class: 1, ttl: 40, ns: 'ns.example.com' } as never];
  const bytes = p.toBuffer();

  it('finds every record, its section and its TTL without decoding it', () => {
    const lay = layout(bytes)!;
    expect(lay.questionEnd).to.equal(12 + 13 + 4);
    expect(lay.records.map((r) => [r.section, r.type, bytes.readUInt32BE(r.ttlAt)])).to.deep.equal([['answer', 1, 30], ['authority', 2, 40]]);
    expect(lay.records[lay.records.length - 1]!.end).to.equal(bytes.length);
    expect(layout(bytes.subarray(0, bytes.length - 1))).to.equal(undefined);
    expect(skipName(Buffer.from([0x40, 0]), 0)).to.equal(-1);
  });

  it('cuts a message to header and question with TC set', () => {
    const cut = truncateMessage(bytes, layout(bytes)!.questionEnd);
    const parsed = Packet.parse(cut);
    expect(parsed.header.tc).to.equal(1);
    expect(parsed.questions[0]!.name).to.equal('example.com');
    expect([parsed.answers.length, parsed.authorities.length, parsed.additionals.length]).to.deep.equal([0, 0, 0]);
  });
});
