import { expect } from 'chai';
import { connect, type Socket } from 'node:net';
import { StartupError } from '../../agent/errors.js';
import { Forwarder } from '../../dns/forward.js';
import { DnsServer } from '../../dns/server.js';
import { Zone } from '../../dns/zone.js';
import { applyEvent } from '../../dns/zone-source.js';
import { freePort } from '../support/ports.js';
import { testLog } from '../support/log.js';
import { buildQuery, parse, tcpAsk, udpAsk } from './client.js';

/** The socket shell on its own, on each UDP engine: TCP idle timeout, connection cap, bind failures. */
for (const udpEngine of ['native', 'node'] as const) {
  describe(`dns sockets (UDP engine ${udpEngine})`, () => {
    const zone = new Zone({ domain: 'cluster.local', ttl: 5, nodeName: 'n', version: '1' });
    applyEvent(zone, { type: 'put', key: 'dns/web.pod.cluster.local.', value: '10.244.1.5', createRevision: 1, modRevision: 1 });
    let server: DnsServer;
    let port: number;
    const forwarder = new Forwarder({ upstreams: [] });

    before(async () => {
      port = await freePort();
      server = new DnsServer({ listen: [{ host: '127.0.0.1', port }], zone, forwarder, recurseNets: [], log: testLog, tcpIdleMs: 300, maxTcpConnections: 2, udpEngine });
      await server.start();
      expect(server.udpEngine).to.equal(udpEngine);
    });

    after(async () => {
      await server?.stop();
      forwarder.close();
    });

    const open = () =>
      new Promise<Socket>((resolve, reject) => {
        const s = connect({ host: '127.0.0.1', port }, () => resolve(s));
        s.on('error', reject);
      });
    const closed = (s: Socket, ms: number) =>
      new Promise<boolean>((resolve) => {
        if (s.destroyed || s.readableEnded) return resolve(true);
        const t = setTimeout(() => resolve(false), ms);
        s.once('close', () => (clearTimeout(t), resolve(true)));
        s.once('end', () => (clearTimeout(t), resolve(true)));
        s.resume();
      });

    it('answers over UDP and TCP', async () => {
      expect(parse((await udpAsk(port, buildQuery('web.pod.cluster.local', 1)))!).answers[0]!.address).to.equal('10.244.1.5');
      expect(parse((await tcpAsk(port, [buildQuery('web.pod.cluster.local', 1)]))[0]!).answers[0]!.address).to.equal('10.244.1.5');
    });

    it('closes an idle TCP connection after the idle timeout', async () => {
      const s = await open();
      try {
        expect(await closed(s, 100)).to.equal(false);
        expect(await closed(s, 2000)).to.equal(true);
      } finally {
        s.destroy();
      }
    });

    it('caps TCP connections and serves again once one closes', async () => {
      const a = await open();
      const b = await open();
      try {
        const c = await open();
        expect(await closed(c, 150)).to.equal(true); // well before the 300 ms idle timeout
        c.destroy();
      } finally {
        a.destroy();
        b.destroy();
      }
      await new Promise((r) => setTimeout(r, 50));
      expect(await tcpAsk(port, [buildQuery('web.pod.cluster.local', 1)])).to.have.length(1);
    });

    it('closes a TCP connection whose client pipelines queries and never reads the answers', async () => {
      const s = await open();
      let gone = false;
      s.on('error', () => undefined);
      s.once('close', () => (gone = true));
      const before = server.dropped;
      // 1,000 framed queries per write; never a read. Bounded: 400 writes (about 16 MB) or 30 s.
      const q = buildQuery('web.pod.cluster.local', 1);
      const frame = Buffer.concat([Buffer.from([q.length >> 8, q.length & 0xff]), q]);
      const batch = Buffer.concat(Array.from({ length: 1000 }, () => frame));
      const deadline = Date.now() + 30_000;
      let writes = 0;
      try {
        while (!gone && writes < 400 && Date.now() < deadline) {
          writes++;
          if (!s.write(batch)) {
            await new Promise<void>((r) => {
              const t = setTimeout(r, 1000);
              s.once('drain', () => (clearTimeout(t), r()));
              s.once('close', () => (clearTimeout(t), r()));
            });
          }
        }
        expect(gone, `still open after ${writes} writes`).to.equal(true);
        expect(server.dropped).to.be.greaterThan(before);
      } finally {
        s.destroy();
      }
      expect(await tcpAsk(port, [buildQuery('web.pod.cluster.local', 1)])).to.have.length(1);
    });

    it('turns a busy port or a foreign address into a StartupError naming --dns-listen', async () => {
      const busy = new DnsServer({ listen: [{ host: '127.0.0.1', port }], zone, forwarder, recurseNets: [], log: testLog, udpEngine });
      let err: unknown;
      await busy.start().catch((e) => (err = e));
      expect(err).to.be.instanceOf(StartupError);
      expect((err as Error).message).to.equal(`--dns-listen 127.0.0.1:${port}: UDP port ${port} is in use on 127.0.0.1; stop what holds it or pick another address`);
      const foreign = new DnsServer({ listen: [{ host: '192.0.2.77', port }], zone, forwarder, recurseNets: [], log: testLog, udpEngine });
      err = undefined;
      await foreign.start().catch((e) => (err = e));
      expect((err as Error).message).to.equal(`--dns-listen 192.0.2.77:${port}: 192.0.2.77 is not an address of this host`);
    });
  });
}
