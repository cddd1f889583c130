import { expect } from 'chai';
import { createServer as createHttp, type Server as HttpServer } from 'node:http';
import { createServer as createTcp, type AddressInfo, type Server } from 'node:net';
import { probe as probeSchema, probedPorts } from '../../../api/schemas.js';
import {
  httpCheck, Limiter, podIsReady, podProbes, ProbeCounter, restartDelay, tcpCheck, withoutLiveMetadata, withReadiness,
} from '../../../agent/worker/probes.js';

const listen = <S extends Server | HttpServer>(s: S): Promise<number> =>
  new Promise((resolve) => s.listen(0, '127.0.0.1', () => resolve((s.address() as AddressInfo).port)));
const close = (s: Server | HttpServer) => new Promise((r) => s.close(r));

describe('health probes (pure)', () => {
  it('counts consecutive results against the thresholds; a verdict holds until the other threshold is met', () => {
    const c = new ProbeCounter({ successThreshold: 2, failureThreshold: 3 }, undefined);
    expect(c.record(true)).to.equal(false);
    expect(c.verdict).to.equal(undefined);
    expect(c.record(true)).to.equal(true);
    expect(c.verdict).to.equal(true);
    // Two failures, a pass, two failures: never three in a row.
    for (const r of [false, false, true, false, false]) expect(c.record(r)).to.equal(false);
    expect(c.verdict).to.equal(true);
    expect(c.record(false)).to.equal(true);
    expect(c.verdict).to.equal(false);
    expect(c.record(false)).to.equal(false);
    // Back needs successThreshold passes in a row.
    expect(c.record(true)).to.equal(false);
    expect(c.record(true)).to.equal(true);
    // A liveness counter starts passing: one failure below the threshold changes nothing.
    const live = new ProbeCounter({ successThreshold: 1, failureThreshold: 1 }, true);
    expect(live.record(true)).to.equal(false);
    expect(live.record(false)).to.equal(true);
  });

  it('is ready when every readiness verdict passes, and with none', () => {
    expect(podIsReady([])).to.equal(true);
    expect(podIsReady([true, true])).to.equal(true);
    expect(podIsReady([true, undefined])).to.equal(false);
    expect(podIsReady([false])).to.equal(false);
  });

  it('lists a pod\'s probes by container and role, and the ports they reach', () => {
    const p = (x: unknown) => probeSchema.parse(x);
    const containers = [
      { name: 'a', image: 'i', readiness: p({ http: { port: 8080, path: '/ready' } }), liveness: p({ tcp: 9000 }) },
      { name: 'b', image: 'i', readiness: p({ exec: ['true'] }) },
      { name: 'c', image: 'i', liveness: p({ http: { port: 8080 } }) },
    ];
    expect(podProbes(containers).map((x) => `${x.container}/${x.role}/${x.kind}`)).to.deep.equal(['a/readiness/http', 'a/liveness/tcp', 'b/readiness/exec', 'c/liveness/http']);
    expect(probedPorts(containers)).to.deep.equal([8080, 9000]);
  });

  it('sets ready and readySince, keeping the time while it stays ready, and drops both from a final state', () => {
    const t1 = new Date('2026-01-01T00:00:00Z');
    const t2 = new Date('2026-01-01T00:01:00Z');
    const ready = withReadiness({ replicaSet: 'rs' }, true, t1);
    expect(ready).to.deep.equal({ replicaSet: 'rs', ready: 'true', readySince: t1.toISOString() });
    expect(withReadiness(ready, true, t2)).to.deep.equal(ready);
    const unready = withReadiness(ready, false, t2);
    expect(unready).to.deep.equal({ replicaSet: 'rs', ready: 'false' });
    expect(withReadiness(unready, true, t2).readySince).to.equal(t2.toISOString());
    expect(withoutLiveMetadata({ ...ready, restarts: '2' })).to.deep.equal({ replicaSet: 'rs', restarts: '2' });
  });

  it('backs restarts off: none the first time, then 10 s doubling to 5 min, and starts over after 10 minutes of running', () => {
    let h: { restarts: number; lastRestartAt?: number } = { restarts: 0 };
    const delays: number[] = [];
    let now = 0;
    for (let i = 0; i < 8; i++) {
      const { delayMs, streak } = restartDelay(h, now);
      delays.push(delayMs);
      now += delayMs + 1000;
      h = { restarts: streak, lastRestartAt: now };
    }
    expect(delays).to.deep.equal([0, 10_000, 20_000, 40_000, 80_000, 160_000, 300_000, 300_000]);
    expect(restartDelay(h, now + 600_000)).to.deep.equal({ delayMs: 0, streak: 1 });
    expect(restartDelay({ restarts: 2, lastRestartAt: 0 }, 10, { first: 100, max: 250, reset: 1000 }).delayMs).to.equal(200);
  });

  it('runs at most `limit` checks at once, the rest in order', async () => {
    const limiter = new Limiter(2);
    let active = 0;
    let most = 0;
    const order: number[] = [];
    await Promise.all(
      Array.from({ length: 6 }, (_, i) =>
        limiter.run(async () => {
          active++;
          most = Math.max(most, active);
          await new Promise((r) => setTimeout(r, 5));
          order.push(i);
          active--;
        }),
      ),
    );
    expect(most).to.equal(2);
    expect(order).to.deep.equal([0, 1, 2, 3, 4, 5]);
    // A throw frees its place.
    await limiter.run(async () => { throw new Error('x'); }).catch(() => undefined);
    expect(await limiter.run(async () => 'ok')).to.equal('ok');
  });
});

describe('health checks against real sockets on loopback', () => {
  const servers: (Server | HttpServer)[] = [];
  after(async () => {
    for (const s of servers) await close(s);
  });

  it('tcp passes on an accepted connection and fails on a refused one', async () => {
    const s = createTcp((sock) => sock.end());
    servers.push(s);
    const port = await listen(s);
    expect(await tcpCheck('127.0.0.1', port, 1000)).to.equal(true);
    await close(s);
    servers.pop();
    expect(await tcpCheck('127.0.0.1', port, 1000)).to.equal(false);
  });

  it('http passes on 2xx and 3xx, fails on 4xx, 5xx and on a server that never answers (after its timeout)', async () => {
    const hang = createHttp(() => undefined); // accepts and never answers
    const s = createHttp((req, res) => {
      const code = Number(req.url?.slice(1)) || 200;
      res.writeHead(code, code === 302 ? { location: '/' } : {}).end('x'.repeat(100_000));
    });
    servers.push(s, hang);
    const port = await listen(s);
    const hangPort = await listen(hang);
    expect(await httpCheck('127.0.0.1', port, '/200', 1000)).to.equal(true);
    expect(await httpCheck('127.0.0.1', port, '/302', 1000)).to.equal(true);
    expect(await httpCheck('127.0.0.1', port, '/404', 1000)).to.equal(false);
    expect(await httpCheck('127.0.0.1', port, '/503', 1000)).to.equal(false);
    const t0 = Date.now();
    expect(await httpCheck('127.0.0.1', hangPort, '/', 200)).to.equal(false);
    expect(Date.now() - t0).to.be.lessThan(5000); // it ends (bounded), whatever the machine's load
    hang.closeAllConnections();
  });
});
