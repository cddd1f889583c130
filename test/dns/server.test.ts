import { execa } from 'execa';
import { expect } from 'chai';
import { randomBytes } from 'node:crypto';
import type { Etcd3 } from 'etcd3';
import { TestAgent } from '../support/agent.js';
import { TestEtcd } from '../support/etcd.js';
import { freePort, loopbackAddress } from '../support/ports.js';
import { buildQuery, dig, parse, tcpAsk, udpAsk, until } from './client.js';
import { TYPE } from '../../dns/message.js';
import { StubUpstream } from './stub.js';

const { A, NS, SOA, TXT, SRV, AAAA, AXFR, ANY }: Record<keyof typeof TYPE, number> = TYPE;

for (const udpEngine of ['native', 'node'] as const) {
  describe(`dns plugin against a real agent and etcd (UDP engine ${udpEngine})`, function () {
    this.timeout(60_000);
    let etcd: TestEtcd;
    let client: Etcd3;
    let stub: StubUpstream;
    let agent: TestAgent;
    let port: number;
    const name = `dnstest-${randomBytes(3).toString('hex')}`;
    const put = (key: string, value: string) => client.put(`/kith/${key}`).value(value).exec();
    const del = (key: string) => client.delete().key(`/kith/${key}`).exec();
    const ask = async (qname: string, type = A, opts: Parameters<typeof buildQuery>[2] = {}) => {
      const b = await udpAsk(port, buildQuery(qname, type, opts));
      if (!b) throw new Error(`no answer for ${qname}`);
      return parse(b);
    };
    const addresses = async (qname: string) => (await ask(qname)).answers.map((a) => a.address).sort();

    before(async () => {
      etcd = await TestEtcd.start();
      client = etcd.client();
      stub = await new StubUpstream('127.0.0.2').start();
      port = await freePort();
      // Data present before the agent starts arrives through the initial scan.
      await put('dns/node1.worker.node.cluster.local.', '10.88.0.1');
      await put('dns/dns.special.cluster.local./node1.worker.node.cluster.local.', 'alias');
      agent = TestAgent.start({
        args: ['--name', name, '--plugins', 'dns', '--etcd-endpoints', etcd.endpoint, '--dns-listen', `127.0.0.1:${port}`, '--upstream-dns', `${stub.host}:${stub.port}`, '--dns-ttl', '7', '--dns-udp-engine', udpEngine],
      });
      await agent.ready();
    });

    after(async () => {
      await agent?.stop().catch(() => undefined);
      await stub?.stop().catch(() => undefined);
      client?.close();
      await etcd?.stop();
    });

    describe('records of SPEC §4', () => {
      it('serves node A records with AA and the --dns-ttl TTL', async () => {
        const r = await dig(port, ['node1.worker.node.cluster.local', 'A']);
        expect(r.status).to.equal('NOERROR');
        expect(r.flags).to.include('aa');
        expect(r.answer).to.deep.equal(['node1.worker.node.cluster.local. 7 IN A 10.88.0.1']);
      });

      it('follows pod records through etcd puts and deletes within milliseconds', async () => {
        await put('dns/web-1.pod.cluster.local.', '10.244.1.5');
        const seen = await until(async () => (await addresses('web-1.pod.cluster.local')).length === 1, 2000);
        expect(await addresses('web-1.pod.cluster.local')).to.deep.equal(['10.244.1.5']);
        await put('dns/web-1.pod.cluster.local.', '10.244.1.6');
        await until(async () => (await addresses('web-1.pod.cluster.local'))[0] === '10.244.1.6', 2000);
        await del('dns/web-1.pod.cluster.local.');
        await until(async () => (await ask('web-1.pod.cluster.local')).header.rcode === 3, 2000);
        expect(seen).to.be.lessThan(1000);
      });

      it('answers api.special and dns.special with every node behind them', async () => {
        await put('dns/node2.worker.node.cluster.local.', '10.88.0.2');
        await put('dns/dns.special.cluster.local./node2.worker.node.cluster.local.', 'alias');
        await put('dns/api1.api.node.cluster.local.', '10.88.0.10');
        await put('dns/api.special.cluster.local./api1.api.node.cluster.local.', 'alias');
        await until(async () => (await addresses('dns.special.cluster.local')).length === 2);
        expect(await addresses('dns.special.cluster.local')).to.deep.equal(['10.88.0.1', '10.88.0.2']);
        await until(async () => (await addresses('api.special.cluster.local')).length === 1);
        await del('dns/dns.special.cluster.local./node2.worker.node.cluster.local.');
        await until(async () => (await addresses('dns.special.cluster.local')).length === 1);
      });

      it('answers custom aliases with the union of their targets, chains and cycles included', async () => {
        await put('dns/a1.pod.cluster.local.', '10.244.2.1');
        await put('dns/a2.pod.cluster.local.', '10.244.2.2');
        await put('dns/svc.shop.cluster.local./a1.pod.cluster.local.', 'alias');
        await put('dns/svc.shop.cluster.local./a2.pod.cluster.local.', 'alias');
        await put('dns/front.shop.cluster.local./svc.shop.cluster.local.', 'alias');
        await put('dns/loop1.shop.cluster.local./loop2.shop.cluster.local.', 'alias');
        await put('dns/loop2.shop.cluster.local./loop1.shop.cluster.local.', 'alias');
        await put('dns/loop2.shop.cluster.local./a1.pod.cluster.local.', 'alias');
        await until(async () => (await addresses('front.shop.cluster.local')).length === 2);
        const r = await dig(port, ['front.shop.cluster.local']);
        expect(r.answer.map((l) => l.split(' ').pop()).sort()).to.deep.equal(['10.244.2.1', '10.244.2.2']);
        await until(async () => (await addresses('loop1.shop.cluster.local')).length === 1);
        expect(await addresses('loop1.shop.cluster.local')).to.deep.equal(['10.244.2.1']);
        // An alias whose targets have no address does not exist.
        await put('dns/empty.shop.cluster.local./gone.pod.cluster.local.', 'alias');
        await until(async () => (await ask('empty.shop.cluster.local')).header.rcode === 3);
      });

      it('serves ReplicaSet names and SRV for named ports of running pods, with A in additional', async () => {
        const pod = (n: string) =>
          JSON.stringify({ name: n, type: 'pod', state: 'running', metadata: { replicaSet: 'shop' }, spec: { containers: [], ports: [{ container: 80, cluster: 8080, name: 'http' }, 9000] } });
        await put('resource/pod/shop-aaaaa', pod('shop-aaaaa'));
        await put('resource/pod/shop-bbbbb', pod('shop-bbbbb'));
        await put('dns/shop-aaaaa.pod.cluster.local.', '10.244.3.1');
        await until(async () => (await addresses('shop.replicaset.cluster.local')).length === 1);
        await put('dns/shop-bbbbb.pod.cluster.local.', '10.244.3.2');
        await until(async () => (await addresses('shop.replicaset.cluster.local')).length === 2);
        const srv = await dig(port, ['_http._tcp.shop-aaaaa.pod.cluster.local', 'SRV']);
        expect(srv.answer).to.deep.equal(['_http._tcp.shop-aaaaa.pod.cluster.local. 7 IN SRV 0 100 8080 shop-aaaaa.pod.cluster.local.']);
        expect(srv.additional).to.include('shop-aaaaa.pod.cluster.local. 7 IN A 10.244.3.1');
        const rsSrv = await dig(port, ['_http._tcp.shop.replicaset.cluster.local', 'SRV']);
        expect(rsSrv.answer).to.have.length(2);
        expect(rsSrv.additional.filter((l) => / IN A /.test(l))).to.have.length(2);
        await del('dns/shop-bbbbb.pod.cluster.local.');
        await until(async () => (await ask('_http._tcp.shop.replicaset.cluster.local', SRV)).answers.length === 1);
        expect(await addresses('shop.replicaset.cluster.local')).to.deep.equal(['10.244.3.1']);
      });

      it('serves PTR for pod and node addresses', async () => {
        await put('dns/rev.pod.cluster.local.', '10.244.9.9');
        await until(async () => (await addresses('rev.pod.cluster.local')).length === 1);
        const r = await dig(port, ['-x', '10.244.9.9']);
        expect(r.flags).to.include('aa');
        expect(r.answer).to.deep.equal(['9.9.244.10.in-addr.arpa. 7 IN PTR rev.pod.cluster.local.']);
        const n = await dig(port, ['-x', '10.88.0.1']);
        expect(n.answer[0]).to.match(/PTR node1\.worker\.node\.cluster\.local\.$/);
        expect((await dig(port, ['-x', '10.244.200.1'])).status).to.equal('NXDOMAIN');
      });

      it('serves SOA (MINIMUM = TTL) and NS at the apex', async () => {
        const soa = await dig(port, ['cluster.local', 'SOA']);
        expect(soa.answer[0]).to.match(/^cluster\.local\. 7 IN SOA \S+ admin\.cluster\.local\. \d+ 300 30 300 7$/);
        const ns = await dig(port, ['cluster.local', 'NS']);
        expect(ns.answer).to.deep.equal(['cluster.local. 7 IN NS dns.special.cluster.local.']);
        expect(ns.additional).to.include('dns.special.cluster.local. 7 IN A 10.88.0.1');
      });

      it('takes the SOA serial from the etcd revision of the last change, so it grows with every change', async () => {
        const serial = async () => Number((await dig(port, ['cluster.local', 'SOA'])).answer[0]!.split(/\s+/)[6]);
        const r1 = await client.put('/kith/dns/serial-a.pod.cluster.local.').value('10.244.77.1').exec();
        await until(async () => (await serial()) === Number(r1.header.revision), 3000);
        const r2 = await client.put('/kith/dns/serial-a.pod.cluster.local.').value('10.244.77.2').exec();
        await until(async () => (await serial()) === Number(r2.header.revision), 3000);
        expect(Number(r2.header.revision)).to.be.greaterThan(Number(r1.header.revision));
        // A write that changes no answer (the same value again) leaves it.
        await client.put('/kith/dns/serial-a.pod.cluster.local.').value('10.244.77.2').exec();
        await new Promise((r) => setTimeout(r, 200));
        expect(await serial()).to.equal(Number(r2.header.revision));
        // NXDOMAIN answers carry the new serial too.
        await del('dns/serial-a.pod.cluster.local.');
        await until(async () => (await ask('serial-a.pod.cluster.local')).header.rcode === 3, 3000);
        const nx = await dig(port, ['serial-a.pod.cluster.local', 'A']);
        expect(Number(nx.authority[0]!.split(/\s+/)[6])).to.be.greaterThan(Number(r2.header.revision));
      });

      it('answers id.server and version.bind in class CH', async () => {
        const id = await dig(port, ['id.server', 'CH', 'TXT']);
        expect(id.answer).to.deep.equal([`id.server. 0 CH TXT "${name}"`]);
        const { version } = JSON.parse((await import('node:fs')).readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };
        const v = await dig(port, ['version.bind', 'CH', 'TXT']);
        expect(v.answer).to.deep.equal([`version.bind. 0 CH TXT "${version}"`]);
      });
    });

    describe('bad input in etcd', () => {
      it('ignores a malformed record with a warning naming the key, and keeps serving', async () => {
        await put('dns/bad.pod.cluster.local.', 'not-an-address');
        await put('resource/pod/broken', '{not json');
        await agent.waitFor((l) => l.msg?.toString().startsWith('dns: ignoring a malformed') === true && l.key === 'dns/bad.pod.cluster.local.', 5000);
        await agent.waitFor((l) => l.msg?.toString().startsWith('dns: ignoring a malformed') === true && l.key === 'resource/pod/broken', 5000);
        expect((await ask('bad.pod.cluster.local')).header.rcode).to.equal(3);
        expect(await addresses('node1.worker.node.cluster.local')).to.deep.equal(['10.88.0.1']);
      });
    });

    describe('answer semantics', () => {
      it('tells NXDOMAIN from NODATA, both with the SOA in authority', async () => {
        const nx = await dig(port, ['missing.pod.cluster.local']);
        expect(nx.status).to.equal('NXDOMAIN');
        expect(nx.flags).to.include('aa');
        expect(nx.authority[0]).to.match(/^cluster\.local\. 7 IN SOA /);
        const nodata = await dig(port, ['node1.worker.node.cluster.local', 'AAAA']);
        expect(nodata.status).to.equal('NOERROR');
        expect(nodata.answer).to.deep.equal([]);
        expect(nodata.authority[0]).to.match(/ IN SOA /);
      });

      it('preserves the case of the query name', async () => {
        const r = await dig(port, ['NoDe1.Worker.NODE.cluster.local']);
        expect(r.answer[0]).to.match(/^NoDe1\.Worker\.NODE\.cluster\.local\. 7 IN A 10\.88\.0\.1$/);
        // Twice: the second answer comes from the precomputed path and must echo this spelling too.
        const raw = await ask('NODE1.worker.node.CLUSTER.local');
        expect(raw.questions[0]!.name).to.equal('NODE1.worker.node.CLUSTER.local');
        expect(raw.answers[0]!.name).to.equal('NODE1.worker.node.CLUSTER.local');
      });

      it('gives ANY over UDP the minimal answer and the full one over TCP', async () => {
        const udp = await dig(port, ['cluster.local', 'ANY', '+notcp']);
        expect(udp.answer).to.have.length(1);
        const tcp = await dig(port, ['cluster.local', 'ANY', '+tcp']);
        expect(tcp.answer.length).to.be.greaterThan(1);
      });

      it('transfers the zone over TCP to loopback and refuses AXFR over UDP', async () => {
        const r = await execa('dig', ['@127.0.0.1', '-p', String(port), 'cluster.local', 'AXFR', '+tries=1', '+time=5'], { timeout: 15_000 });
        expect(r.stdout).to.match(/node1\.worker\.node\.cluster\.local\.\s+7\s+IN\s+A\s+10\.88\.0\.1/);
        expect(r.stdout).to.match(/_http\._tcp\.shop-aaaaa\.pod\.cluster\.local\.\s+7\s+IN\s+SRV/);
        expect(r.stdout.match(/IN\s+SOA/g)).to.have.length(2);
        const udp = await ask('cluster.local', AXFR);
        expect(udp.header.rcode).to.equal(5);
      });
    });

    describe('forwarding', () => {
      it('forwards out-of-zone names with RD=1 from loopback, caching the answer', async () => {
        const r = await dig(port, ['www.example.test']);
        expect(r.status).to.equal('NOERROR');
        expect(r.flags).to.not.include('aa');
        expect(r.answer).to.deep.equal(['www.example.test. 60 IN A 192.0.2.1']);
        const before = stub.count('www.example.test');
        const again = await dig(port, ['WWW.example.test']);
        expect(again.answer[0]).to.match(/^WWW\.example\.test\. (59|60) IN A 192\.0\.2\.1$/);
        expect(stub.count('www.example.test')).to.equal(before);
        const nx = await dig(port, ['nx.example.test']);
        expect(nx.status).to.equal('NXDOMAIN');
      });

      it('sends one upstream query for clients asking the same question at once', async () => {
        const replies = await Promise.all(Array.from({ length: 20 }, (_, i) => udpAsk(port, buildQuery('same.slow.test', A, { id: i }), 2000)));
        expect(replies.map((r) => parse(r!).answers[0]!.address)).to.deep.equal(Array(20).fill('192.0.2.1'));
        expect(replies.map((r) => parse(r!).header.id)).to.deep.equal([...Array(20).keys()]);
        expect(stub.count('same.slow.test')).to.equal(1);
      });

      it('refuses out-of-zone names without RD', async () => {
        const r = await dig(port, ['other.example.test', '+norec']);
        expect(r.status).to.equal('REFUSED');
        expect(stub.count('other.example.test')).to.equal(0);
      });

      it('retries over TCP when the upstream truncates, and truncates for a small client', async () => {
        const tcp = await dig(port, ['big.example.test', '+tcp']);
        expect(tcp.answer).to.have.length(40);
        expect(stub.seen.some((s) => s.name === 'big.example.test' && s.transport === 'tcp')).to.equal(true);
        const small = await ask('big.example.test', A);
        expect(small.header.tc).to.equal(1);
      });

      it('answers SERVFAIL within 2 s when the upstream is silent', async () => {
        const t0 = performance.now();
        const r = await dig(port, ['x.silent.test', '+time=5']);
        const took = performance.now() - t0;
        expect(r.status).to.equal('SERVFAIL');
        expect(took).to.be.lessThan(2500);
      });
    });

    describe('wire rules', () => {
      it('answers pipelined queries on one TCP connection', async () => {
        const msgs = [1, 2, 3].map((id) => buildQuery('node1.worker.node.cluster.local', A, { id }));
        const replies = await tcpAsk(port, msgs);
        expect(replies.map((r) => parse(r).header.id).sort()).to.deep.equal([1, 2, 3]);
        for (const r of replies) expect(parse(r).answers[0]!.address).to.equal('10.88.0.1');
      });

      it('echoes OPT with payload 1232, answers BADVERS, and does not echo unknown options', async () => {
        const r = await ask('node1.worker.node.cluster.local', A, { edns: 4096 });
        const opt = r.additionals.find((a) => a.type === 41)!;
        expect(opt.class).to.equal(1232);
        const bad = await ask('node1.worker.node.cluster.local', A, { edns: 4096, ednsVersion: 1 });
        expect(bad.header.rcode).to.equal(16);
        expect(bad.answers).to.have.length(0);
        // An OPT carrying an unknown option (code 65001): the reply's OPT is empty.
        const q = buildQuery('node1.worker.node.cluster.local', A, { edns: 1232 });
        const withOption = Buffer.concat([q.subarray(0, q.length - 2), Buffer.from([0, 8, 0xfd, 0xe9, 0, 4, 1, 2, 3, 4])]);
        const reply = (await udpAsk(port, withOption))!;
        expect(reply.subarray(reply.length - 2).readUInt16BE(0)).to.equal(0); // RDLENGTH of the trailing OPT
        expect(parse(reply).answers[0]!.address).to.equal('10.88.0.1');
        const dg = await dig(port, ['node1.worker.node.cluster.local', '+ednsopt=65001:abcd']);
        const optSection = dg.raw.slice(dg.raw.indexOf('OPT PSEUDOSECTION'), dg.raw.indexOf('QUESTION SECTION'));
        expect(optSection).to.match(/udp: 1232/);
        expect(optSection).to.not.match(/65001|OPT=/);
      });

      it('sets TC when the answer exceeds the client size', async () => {
        for (let i = 0; i < 50; i++) {
          await put(`dns/m${i}.pod.cluster.local.`, `10.244.50.${i + 1}`);
          await put(`dns/many.shop.cluster.local./m${i}.pod.cluster.local.`, 'alias');
        }
        await until(async () => (await ask('many.shop.cluster.local', A, { edns: 4096 })).answers.length === 50);
        const small = await ask('many.shop.cluster.local');
        expect(small.header.tc).to.equal(1);
        const big = await ask('many.shop.cluster.local', A, { edns: 4096 });
        expect(big.header.tc).to.equal(0);
        const tcp = parse((await tcpAsk(port, [buildQuery('many.shop.cluster.local', A)]))[0]!);
        expect(tcp.answers).to.have.length(50);
      });

      it('drops QR=1, answers NOTIMP for other opcodes and FORMERR for QDCOUNT != 1', async () => {
        expect(await udpAsk(port, buildQuery('node1.worker.node.cluster.local', A, { qr: true }), 400)).to.equal(undefined);
        expect((await ask('node1.worker.node.cluster.local', A, { opcode: 2 })).header.rcode).to.equal(4);
        const two = buildQuery('node1.worker.node.cluster.local', A);
        two.writeUInt16BE(2, 4);
        expect(parse((await udpAsk(port, two))!).header.rcode).to.equal(1);
        const none = Buffer.from(two.subarray(0, 12));
        none.writeUInt16BE(0, 4);
        expect(parse((await udpAsk(port, none))!).header.rcode).to.equal(1);
        const tcpTwo = await tcpAsk(port, [two]);
        expect(parse(tcpTwo[0]!).header.rcode).to.equal(1);
      });

      it('survives a datagram from source port 0 and keeps answering', async () => {
        const q = buildQuery('node1.worker.node.cluster.local', A).toString('hex');
        const py = `
import socket, struct, sys
port = int(sys.argv[1]); payload = bytes.fromhex(sys.argv[2])
s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_UDP)
s.sendto(struct.pack('!HHHH', 0, port, 8 + len(payload), 0) + payload, ('127.0.0.1', 0))
`;
        for (let i = 0; i < 3; i++) await execa('python3', ['-c', py, String(port), q]);
        await new Promise((r) => setTimeout(r, 200));
        expect(agent.running).to.equal(true);
        expect(await addresses('node1.worker.node.cluster.local')).to.deep.equal(['10.88.0.1']);
      });

      it('turns a busy port into a clear startup error', async () => {
        const other = TestAgent.start({
          args: ['--name', `${name}-b`, '--plugins', 'dns', '--etcd-endpoints', etcd.endpoint, '--dns-listen', `127.0.0.1:${port}`, '--upstream-dns', 'none'],
        });
        const code = await Promise.race([other.exited, new Promise((r) => setTimeout(() => r('timeout'), 20_000))]);
        if (code === 'timeout') await other.stop('SIGKILL');
        else await other.stop();
        expect(code).to.equal(2);
        expect(other.stderr.trim().split('\n')).to.have.length(1);
        expect(other.stderr).to.match(/--dns-listen 127\.0\.0\.1:\d+: UDP port \d+ is in use/);
      });
    });

    describe('metrics and membership', () => {
      it('registers dns.special membership for a node with a role and a cluster address', async () => {
        const apiPort = await freePort();
        const dnsPort = await freePort();
        const member = `${name}-m`;
        // Pods ask <cluster-address>:53: a server there joins dns.special.
        const addr = await loopbackAddress(53);
        const other = TestAgent.start({
          args: ['--name', member, '--plugins', 'dns,api', '--etcd-endpoints', etcd.endpoint, '--cluster-address', addr, '--dns-listen', `127.0.0.1:${dnsPort},${addr}:53`, '--api-listen', `127.0.0.1:${apiPort}`, '--upstream-dns', 'none'],
        });
        try {
          await other.ready();
          const key = `/kith/dns/dns.special.cluster.local./${member}.api.node.cluster.local.`;
          expect(await client.get(key).string()).to.equal('alias');
          await until(async () => (await addresses('dns.special.cluster.local')).includes(addr), 3000);
          for (let i = 0; i < 3; i++) expect(await udpAsk(dnsPort, buildQuery('dns.special.cluster.local', A))).to.not.equal(undefined);
          // --upstream-dns none: a name outside the zone is REFUSED, even with RD=1 from loopback.
          const outside = await udpAsk(dnsPort, buildQuery('example.org', A, { rd: true }));
          expect(outside && parse(outside).header.rcode).to.equal(5);
          const text = await (await fetch(`http://127.0.0.1:${apiPort}/metrics`)).text();
          expect(text).to.match(/kith_dns_queries_total\{type="A",rcode="NOERROR"\} \d+/);
          expect(text).to.match(/kith_dns_request_duration_seconds_count \d+/);
          expect(text).to.match(/kith_dns_zone_size\{kind="records"\} \d+/);
          expect(await udpAsk(dnsPort, buildQuery('dns.special.cluster.local', A, { qr: true }), 300)).to.equal(undefined);
          const after = await (await fetch(`http://127.0.0.1:${apiPort}/metrics`)).text();
          expect(after).to.match(/kith_dns_dropped_total [1-9]/);
          await other.stop();
          expect(await client.get(key).string()).to.equal(null);
        } finally {
          await other.stop().catch(() => undefined);
        }
      });
    });
  });
}
