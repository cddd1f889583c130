import { expect } from 'chai';
import { createSocket } from 'node:dgram';
import { readFileSync } from 'node:fs';
import { connect } from 'node:net';
import { randomBytes } from 'node:crypto';
import type { Etcd3 } from 'etcd3';
import { TestAgent } from '../support/agent.js';
import { TestEtcd } from '../support/etcd.js';
import { freePort } from '../support/ports.js';
import { buildQuery, parse, tcpAsk, udpAsk, until } from './client.js';
import { StubUpstream } from './stub.js';
import { prng } from '../support/prng.js';

const NAMES = ['web.pod.cluster.local', 'node1.worker.node.cluster.local', 'svc.shop.cluster.local', 'cluster.local', 'www.example.test', 'x.silent.test', '5.1.244.10.in-addr.arpa', 'id.server', '_http._tcp.web.pod.cluster.local'];
const TYPES = [1, 2, 6, 12, 16, 28, 33, 41, 251, 252, 255, 0, 65535];

function packets(seed: number): (i: number) => Buffer {
  const rnd = prng(seed);
  const int = (n: number) => Math.floor(rnd() * n);
  return () => {
    if (rnd() < 0.25) {
      // Pure noise.
      const b = Buffer.alloc(int(600));
      for (let i = 0; i < b.length; i++) b[i] = int(256);
      return b;
    }
    const name = rnd() < 0.8 ? NAMES[int(NAMES.length)]! : `${int(1e6).toString(36)}.pod.cluster.local`;
    const q = buildQuery(name, TYPES[int(TYPES.length)]!, {
      id: int(65536),
      rd: rnd() < 0.5,
      cls: rnd() < 0.9 ? 1 : int(256),
      edns: rnd() < 0.5 ? int(65536) : undefined,
      ednsVersion: rnd() < 0.1 ? int(256) : 0,
      opcode: rnd() < 0.1 ? int(16) : 0,
      qr: rnd() < 0.05,
    });
    let b: Buffer = Buffer.from(q);
    const mutations = 1 + int(4);
    for (let m = 0; m < mutations; m++) {
      const kind = int(8);
      if (kind === 0 && b.length > 0) b[int(b.length)] = int(256);
      else if (kind === 1 && b.length > 0) b[int(b.length)]! ^= 1 << int(8);
      else if (kind === 2) b = b.subarray(0, int(b.length + 1));
      else if (kind === 3) b = Buffer.concat([b, Buffer.from(Array.from({ length: int(64) }, () => int(256)))]);
      else if (kind === 4 && b.length >= 12) b.writeUInt16BE(int(65536), 4 + 2 * int(4)); // a count
      else if (kind === 5 && b.length >= 14) {
        // A compression pointer in the question, possibly to itself.
        b[12] = 0xc0;
        b[13] = rnd() < 0.5 ? 12 : int(256);
      } else if (kind === 6 && b.length > 13) b[12 + int(Math.min(20, b.length - 12))] = 64 + int(192); // a bad label length
      else if (kind === 7 && b.length > 3) b[2] = int(256);
    }
    return b;
  };
}

function rssKb(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) : 0;
}

describe('dns fuzz: random and mutated packets over UDP and TCP', function () {
  this.timeout(120_000);
  let etcd: TestEtcd;
  let client: Etcd3;
  let stub: StubUpstream;
  let agent: TestAgent;
  let port: number;
  const seed = Number(process.env.FUZZ_SEED ?? Date.now() % 1e9);

  before(async () => {
    etcd = await TestEtcd.start();
    client = etcd.client();
    stub = await new StubUpstream('127.0.0.3').start();
    port = await freePort();
    await client.put('/kith/dns/web.pod.cluster.local.').value('10.244.1.5').exec();
    await client.put('/kith/dns/node1.worker.node.cluster.local.').value('10.88.0.1').exec();
    await client.put('/kith/dns/svc.shop.cluster.local./web.pod.cluster.local.').value('alias').exec();
    await client.put('/kith/resource/pod/web').value(JSON.stringify({ name: 'web', metadata: {}, spec: { ports: [{ container: 80, name: 'http' }] } })).exec();
    agent = TestAgent.start({
      args: ['--name', `fuzz-${randomBytes(3).toString('hex')}`, '--plugins', 'dns', '--etcd-endpoints', etcd.endpoint, '--dns-listen', `127.0.0.1:${port}`, '--upstream-dns', `${stub.host}:${stub.port}`, '--dns-udp-engine', 'native'],
    });
    await agent.ready();
    await until(async () => (await udpAsk(port, buildQuery('web.pod.cluster.local', 1), 300)) !== undefined, 20_000, 50);
  });

  after(async () => {
    await agent?.stop().catch(() => undefined);
    await stub?.stop().catch(() => undefined);
    client?.close();
    await etcd?.stop();
  });

  const replies = { udp: 0, tcp: 0 };

  async function udpFlood(next: (i: number) => Buffer, count: number): Promise<void> {
    const s = createSocket('udp4');
    s.on('message', () => replies.udp++);
    s.on('error', () => undefined);
    await new Promise<void>((r) => s.bind(0, '127.0.0.1', () => r()));
    s.setRecvBufferSize(4 * 1024 * 1024);
    try {
      for (let i = 0; i < count; i++) {
        const b = next(i);
        s.send(b.length > 0 ? b : Buffer.alloc(1), port, '127.0.0.1');
        // Paced (about 20,000 a second) so the agent reads every datagram rather than the kernel dropping them.
        if (i % 100 === 99) await new Promise((r) => setTimeout(r, 5));
      }
      await new Promise((r) => setTimeout(r, 200));
    } finally {
      s.close();
    }
  }

  async function tcpFlood(next: (i: number) => Buffer, count: number, perConnection = 100, parallel = 16): Promise<void> {
    let sent = 0;
    const one = () =>
      new Promise<void>((resolve) => {
        const frames: Buffer[] = [];
        for (let i = 0; i < perConnection && sent < count; i++, sent++) {
          const b = next(sent);
          // Mostly honest framing; sometimes a lying length prefix.
          const len = Math.random() < 0.05 ? Math.floor(Math.random() * 65536) : b.length;
          frames.push(Buffer.from([len >> 8, len & 0xff]), b);
        }
        const sock = connect({ host: '127.0.0.1', port });
        const done = () => {
          clearTimeout(t);
          sock.destroy();
          resolve();
        };
        const t = setTimeout(done, 1500);
        sock.on('error', done);
        sock.on('close', done);
        sock.on('data', () => replies.tcp++);
        sock.on('connect', () => sock.end(Buffer.concat(frames)));
      });
    for (let round = 0; sent < count && round < 10_000; round++) {
      await Promise.all(Array.from({ length: parallel }, one));
    }
  }

  async function stillCorrect(): Promise<void> {
    expect(agent.running).to.equal(true);
    const r = parse((await udpAsk(port, buildQuery('Web.Pod.cluster.local', 1, { id: 99 }), 2000))!);
    expect(r.header.id).to.equal(99);
    expect(r.header.aa).to.equal(1);
    expect(r.questions[0]!.name).to.equal('Web.Pod.cluster.local');
    expect(r.answers.map((a) => a.address)).to.deep.equal(['10.244.1.5']);
    const t = parse((await tcpAsk(port, [buildQuery('svc.shop.cluster.local', 1)]))[0]!);
    expect(t.answers.map((a) => a.address)).to.deep.equal(['10.244.1.5']);
    const f = parse((await udpAsk(port, buildQuery('after.example.test', 1), 2500))!);
    expect(f.answers.map((a) => a.address)).to.deep.equal(['192.0.2.1']);
    // Zone updates still flow.
    await client.put('/kith/dns/late.pod.cluster.local.').value('10.244.7.7').exec();
    await until(async () => {
      const b = await udpAsk(port, buildQuery('late.pod.cluster.local', 1), 300);
      return !!b && parse(b).answers[0]?.address === '10.244.7.7';
    }, 3000);
    await client.delete().key('/kith/dns/late.pod.cluster.local.').exec();
  }

  it(`survives 120,000 packets and its memory stays bounded (seed ${seed})`, async () => {
    const next = packets(seed);
    const pid = agent.proc.pid!;
    // Warm-up, then two equal rounds: the second must not grow the agent like the first did.
    await udpFlood(next, 10_000);
    await tcpFlood(next, 2_000);
    const rss0 = rssKb(pid);
    await udpFlood(next, 45_000);
    await tcpFlood(next, 10_000);
    await stillCorrect();
    const rss1 = rssKb(pid);
    await udpFlood(next, 45_000);
    await tcpFlood(next, 10_000);
    await stillCorrect();
    const rss2 = rssKb(pid);
    const crashes = agent.lines.filter((l) => /uncaught exception|unhandled rejection/.test(l));
    expect(crashes, crashes.slice(0, 3).join('\n')).to.deep.equal([]);
    console.log(`      replies: ${replies.udp} over UDP, ${replies.tcp} TCP reads`);
    console.log(`      rss: warm ${(rss0 / 1024).toFixed(0)} MB, after round 1 ${(rss1 / 1024).toFixed(0)} MB, after round 2 ${(rss2 / 1024).toFixed(0)} MB`);
    expect(rss2 - rss1, 'growth over the second round (kB)').to.be.lessThan(64 * 1024);
    expect(rss2, 'agent RSS (kB)').to.be.lessThan(400 * 1024);
  });
});
