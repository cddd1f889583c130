import { expect } from 'chai';
import dns2 from 'dns2';
import { answer } from '../../dns/answer.js';
import { TYPE } from '../../dns/message.js';
import { encodeResponse, encodeTransfer, parseQuery } from '../../dns/wire.js';
import { Zone } from '../../dns/zone.js';
import { applyEvent } from '../../dns/zone-source.js';
import { makeZone, query, reply, wire } from './sample-zone.js';

const { Packet } = dns2;

describe('dns wire', () => {
  const z = makeZone();

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
      applyEvent(big, { type: 'put', key: `dns/p${i}.pod.cluster.local.`, value: `10.1.0.${i + 1}`, createRevision: 1, modRevision: 1 });
      applyEvent(big, { type: 'put', key: `dns/many.x.cluster.local./p${i}.pod.cluster.local.`, value: 'alias', createRevision: 1, modRevision: 1 });
    }
    const q = parseQuery(wire('many.x.cluster.local', TYPE.A), 'udp', true)!;
    const cut = encodeResponse(reply(answer(big, q)), 512);
    expect(cut.length).to.be.at.most(512);
    expect(cut[2]! & 0x02).to.equal(0x02);
    const full = encodeResponse(reply(answer(big, { ...q, transport: 'tcp' })), 65535);
    expect(Packet.parse(full).answers).to.have.length(60);
  });

  it('splits a zone transfer into messages that each decode', () => {
    const x = reply(answer(z, query('cluster.local', TYPE.AXFR, { transport: 'tcp' })));
    const msgs = encodeTransfer(x, 2);
    expect(msgs.length).to.be.greaterThan(2);
    for (const m of msgs) expect(Packet.parse(m).errors).to.deep.equal([]);
  });
});
