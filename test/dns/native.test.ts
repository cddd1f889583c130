import { expect } from 'chai';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { createSocket } from 'node:dgram';
import { Registry } from 'prom-client';
import { Forwarder } from '../../dns/forward.js';
import { DnsMetrics } from '../../dns/metrics.js';
import { loadNativeUdp } from '../../dns/native.js';
import { DnsServer } from '../../dns/server.js';
import { Zone } from '../../dns/zone.js';
import { applyEvent } from '../../dns/zone-source.js';
import { freePort } from '../support/ports.js';
import { testLog } from '../support/log.js';
import { buildQuery, parse, udpAsk } from './client.js';

const A = 1;
let revision = 1;
const put = (zone: Zone, key: string, value: string) =>
  applyEvent(zone, { type: 'put', key, value, createRevision: revision, modRevision: revision++ });

/**
 * The native UDP engine behind a real DnsServer on loopback: which queries its
 * thread answers itself (read from its counters), and that it never replays an
 * answer the zone no longer gives.
 */
describe('dns native UDP engine', () => {
  const zone = new Zone({ domain: 'cluster.local', ttl: 5, nodeName: 'n', version: '1' });
  put(zone, 'dns/web.pod.cluster.local.', '10.244.1.5');
  put(zone, 'dns/db.pod.cluster.local.', '10.244.1.6');
  const forwarder = new Forwarder({ upstreams: [] });
  let server: DnsServer;
  let port: number;
  const stats = () => server.nativeStats()!;
  const ask = async (name: string, opts: Parameters<typeof buildQuery>[2] = {}, type = A) => {
    const b = await udpAsk(port, buildQuery(name, type, opts));
    if (!b) throw new Error(`no answer for ${name}`);
    return { raw: b, msg: parse(b) };
  };

  before(async () => {
    port = await freePort();
    server = new DnsServer({ listen: [{ host: '127.0.0.1', port }], zone, forwarder, recurseNets: [], log: testLog, udpEngine: 'native' });
    await server.start();
  });

  after(async () => {
    await server?.stop();
    forwarder.close();
  });

  it('is built and loads (npm ci and scripts/setup.sh build it)', () => {
    const { udp, error } = loadNativeUdp();
    expect(error).to.equal(undefined);
    expect(udp).to.not.equal(undefined);
    expect(server.udpEngine).to.equal('native');
  });

  it('answers the first query through JavaScript and the next ones on its own thread, byte for byte the same', async () => {
    const before = stats();
    const first = await ask('web.pod.cluster.local', { id: 7 });
    const mid = stats();
    expect(mid.misses - before.misses).to.equal(1);
    expect(mid.hits).to.equal(before.hits);
    const again = await ask('web.pod.cluster.local', { id: 7 });
    expect(stats().hits - mid.hits).to.equal(1);
    expect(again.raw.equals(first.raw)).to.equal(true);
    expect(again.msg.answers.map((a) => a.address)).to.deep.equal(['10.244.1.5']);
  });

  it('copies the ID, RD and CD bits and the spelling of the question into each replayed answer', async () => {
    await ask('db.pod.cluster.local');
    const h0 = stats().hits;
    const r = await ask('DB.Pod.Cluster.LOCAL', { id: 0xbeef, rd: false });
    expect(stats().hits - h0).to.equal(1);
    expect(r.msg.header.id).to.equal(0xbeef);
    expect(r.msg.header.rd).to.equal(0);
    expect(r.msg.questions[0]!.name).to.equal('DB.Pod.Cluster.LOCAL');
    expect(r.msg.answers[0]!.name).to.equal('DB.Pod.Cluster.LOCAL');
    const rd = await ask('db.POD.cluster.local', { id: 3, rd: true });
    expect(rd.msg.header.rd).to.equal(1);
    expect(rd.msg.questions[0]!.name).to.equal('db.POD.cluster.local');
  });

  it('keeps plain and EDNS queries apart, and replays NXDOMAIN with its SOA', async () => {
    const plain = await ask('web.pod.cluster.local');
    const h0 = stats().hits;
    const edns = await ask('web.pod.cluster.local', { edns: 1232 });
    expect(plain.msg.additionals.some((a) => a.type === 41)).to.equal(false);
    expect(edns.msg.additionals.some((a) => a.type === 41)).to.equal(true);
    const edns2 = await ask('web.pod.cluster.local', { edns: 4096 });
    expect(edns2.raw.equals(edns.raw)).to.equal(true);
    expect(stats().hits - h0).to.equal(1);
    await ask('nothing.pod.cluster.local');
    const nx = await ask('nothing.pod.cluster.local');
    expect(nx.msg.header.rcode).to.equal(3);
    expect(nx.msg.authorities[0]!.type).to.equal(6);
  });

  it('never replays an answer after the zone changed; it learns the new one', async () => {
    for (let i = 0; i < 3; i++) await ask('web.pod.cluster.local', { id: i });
    put(zone, 'dns/web.pod.cluster.local.', '10.244.9.9');
    const m0 = stats().misses;
    expect((await ask('web.pod.cluster.local')).msg.answers.map((a) => a.address)).to.deep.equal(['10.244.9.9']);
    expect(stats().misses - m0).to.equal(1);
    const h0 = stats().hits;
    expect((await ask('web.pod.cluster.local')).msg.answers.map((a) => a.address)).to.deep.equal(['10.244.9.9']);
    expect(stats().hits - h0).to.equal(1);
    applyEvent(zone, { type: 'delete', key: 'dns/web.pod.cluster.local.', modRevision: revision++ });
    expect((await ask('web.pod.cluster.local')).msg.header.rcode).to.equal(3);
    // A change elsewhere in the zone leaves an answer that did not change replayable after one check.
    await ask('db.pod.cluster.local');
    put(zone, 'dns/other.pod.cluster.local.', '10.244.7.7');
    expect((await ask('db.pod.cluster.local')).msg.answers[0]!.address).to.equal('10.244.1.6');
    const h1 = stats().hits;
    await ask('db.pod.cluster.local');
    expect(stats().hits - h1).to.equal(1);
  });

  it('does not replay an answer larger than the client takes: that one is truncated by the full path', async () => {
    for (let i = 0; i < 40; i++) {
      put(zone, `dns/m${i}.pod.cluster.local.`, `10.244.50.${i + 1}`);
      put(zone, `dns/many.shop.cluster.local./m${i}.pod.cluster.local.`, 'alias');
    }
    const big = await ask('many.shop.cluster.local', { edns: 4096 });
    expect(big.msg.answers).to.have.length(40);
    await ask('many.shop.cluster.local', { edns: 4096 });
    // The same question with a 512-byte EDNS size shares the key but not the size.
    const small = await ask('many.shop.cluster.local', { edns: 512 });
    expect(small.msg.header.tc).to.equal(1);
    expect(small.raw.length).to.be.at.most(512);
    const noEdns = await ask('many.shop.cluster.local');
    expect(noEdns.msg.header.tc).to.equal(1);
  });

  it('drops responses (QR=1) and datagrams shorter than a header, and counts them', async () => {
    const d0 = stats().dropped;
    expect(await udpAsk(port, buildQuery('web.pod.cluster.local', A, { qr: true }), 300)).to.equal(undefined);
    expect(await udpAsk(port, Buffer.from([1, 2, 3]), 300)).to.equal(undefined);
    expect(stats().dropped - d0).to.equal(2);
    expect(server.dropped).to.be.at.least(2);
  });

  it('answers every one of 5,000 queries sent at once, from one socket, in order of arrival', async () => {
    const s = createSocket('udp4');
    const seen = new Set<number>();
    let wrong = 0;
    s.on('message', (m) => {
      const id = m.readUInt16BE(0);
      if (m.readUInt8(3) & 0x0f || m.length < 40) wrong++;
      seen.add(id);
    });
    await new Promise<void>((r) => s.bind(0, '127.0.0.1', () => r()));
    s.setRecvBufferSize(4 * 1024 * 1024);
    try {
      await ask('db.pod.cluster.local');
      for (let id = 0; id < 5000; id++) {
        s.send(buildQuery('db.pod.cluster.local', A, { id }), port, '127.0.0.1');
        if (id % 500 === 499) await new Promise((r) => setTimeout(r, 5));
      }
      for (let i = 0; i < 100 && seen.size < 5000; i++) await new Promise((r) => setTimeout(r, 20));
    } finally {
      s.close();
    }
    expect(seen.size).to.equal(5000);
    expect(wrong).to.equal(0);
  });

  it('adds what its thread answered to the plugin\'s metrics', async () => {
    const registry = new Registry();
    const metrics = new DnsMetrics(registry, zone, forwarder);
    metrics.native = () => server.nativeStats();
    metrics.dropped = () => server.dropped;
    const value = async (re: RegExp) => Number(re.exec(await registry.metrics())?.[1] ?? NaN);
    const answered0 = await value(/kith_dns_udp_native_total\{result="answered"\} (\d+)/);
    const a0 = await value(/kith_dns_queries_total\{type="A",rcode="NOERROR"\} (\d+)/);
    await ask('db.pod.cluster.local');
    for (let i = 0; i < 5; i++) await ask('db.pod.cluster.local', { id: i });
    expect((await value(/kith_dns_udp_native_total\{result="answered"\} (\d+)/)) - answered0).to.be.at.least(5);
    expect((await value(/kith_dns_queries_total\{type="A",rcode="NOERROR"\} (\d+)/)) - a0).to.be.at.least(5);
    expect(await value(/kith_dns_udp_native_entries (\d+)/)).to.be.at.least(1);
    expect(await value(/kith_dns_request_duration_seconds_count (\d+)/)).to.be.at.least(5);
    expect(await value(/kith_dns_dropped_total (\d+)/)).to.be.at.least(2);
  });

  it('bounds what waits for JavaScript in bytes, not only in count', async function () {
    this.timeout(20_000);
    const before = stats();
    // 400 datagrams of 60,000 bytes (a query header, then filler): every one misses and goes to JavaScript.
    // Paced (1 ms apart) so that the socket's buffer never drops them; the sender writes `done` at the end.
    const done = join(mkdtempSync(join(tmpdir(), 'kith-native-')), 'done');
    const script = [
      'import socket, sys, time',
      's = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)',
      "d = bytes([0x12, 0x34, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0]) + b'a' * 59988",
      'for i in range(400):',
      '    s.sendto(d, ("127.0.0.1", int(sys.argv[1])))',
      '    time.sleep(0.001)',
      "open(sys.argv[2], 'w').close()",
    ].join('\n');
    const child = spawn('python3', ['-c', script, String(port), done], { stdio: 'ignore' });
    const exited = new Promise((r) => child.once('exit', r));
    // JavaScript is kept busy until the sender is done (bounded: 10 s), so the engine's thread has to queue
    // what it reads (about 24 MB).
    const end = Date.now() + 10_000;
    while (Date.now() < end && !existsSync(done)) {
      /* busy */
    }
    await exited;
    rmSync(dirname(done), { recursive: true, force: true });
    await new Promise((r) => setTimeout(r, 200));
    const after = stats();
    // At most 8 MiB waited: the rest was refused, far below the 16,384 datagrams the count alone allows.
    expect(after.overflow - before.overflow).to.be.greaterThan(0);
    expect(after.misses - before.misses).to.be.at.least(140);
    // And it answers as before.
    expect((await ask('db.pod.cluster.local')).msg.answers[0]!.address).to.equal('10.244.1.6');
  });

  it('releases its port on stop, and a node:dgram server has no native counters', async () => {
    const p = await freePort();
    const a = new DnsServer({ listen: [{ host: '127.0.0.1', port: p }], zone, forwarder, recurseNets: [], log: testLog, udpEngine: 'native' });
    await a.start();
    await a.stop();
    const b = new DnsServer({ listen: [{ host: '127.0.0.1', port: p }], zone, forwarder, recurseNets: [], log: testLog, udpEngine: 'node' });
    await b.start();
    try {
      expect(b.udpEngine).to.equal('node');
      expect(b.nativeStats()).to.equal(undefined);
      expect(parse((await udpAsk(p, buildQuery('db.pod.cluster.local', A)))!).answers[0]!.address).to.equal('10.244.1.6');
    } finally {
      await b.stop();
    }
  });

});
