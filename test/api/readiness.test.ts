import { createServer, type Server } from 'node:net';
import { expect } from 'chai';
import { TestAgent } from '../support/agent.js';
import { TestEtcd } from '../support/etcd.js';
import { freePort } from '../support/ports.js';
import { ApiHarness } from './harness.js';

/** The agent's log lines with this message. */
const logged = (h: ApiHarness, msg: string) => h.agent.lines.filter((l) => JSON.parse(l).msg === msg);

/** A request that found etcd away: a 503 to retry, saying so in words, not in gRPC's. */
function expectEtcdUnavailable(r: Awaited<ReturnType<ApiHarness['request']>>, what: string): void {
  expect(r.status, what).to.equal(503);
  expect(r.type, what).to.match(/^application\/problem\+json/);
  expect(r.body, what).to.deep.include({ type: 'etcd-unavailable', detail: 'etcd is unavailable; try again shortly', status: 503 });
  expect(r.headers.get('retry-after'), what).to.equal('2');
}

describe('api: readiness and start-up', function () {
  this.timeout(90_000);

  it('answers /readyz 503 while etcd is unreachable and 200 again once it is back; no request hangs', async () => {
    const h = await ApiHarness.start();
    try {
      expect((await h.request('GET', '/readyz')).status).to.equal(200);
      await h.etcd.kill();
      const t0 = Date.now();
      const r = await h.request('GET', '/readyz');
      expect(r.status).to.equal(503);
      expect(r.type).to.match(/^application\/problem\+json/);
      expect(r.body.type).to.equal('not-ready');
      expect(r.body.detail).to.match(/etcd/);
      expect(Date.now() - t0).to.be.below(3000);
      // A resource request fails as a problem detail, within bounded time.
      const t1 = Date.now();
      const list = await h.request('GET', '/resources/pod');
      expectEtcdUnavailable(list, 'GET /resources/pod');
      expect(Date.now() - t1).to.be.below(15_000);
      expectEtcdUnavailable(await h.request('GET', '/resources/pod/web'), 'GET /resources/pod/web');
      expect((await h.request('GET', '/healthz')).status).to.equal(200);
      await h.etcd.launch();
      await h.until(async () => (await h.request('GET', '/readyz')).status === 200, 20_000);
      expect((await h.request('POST', '/resources', { name: 'after', type: 'widget', spec: {} })).status).to.equal(201);
      // One line when the outage began and one when it ended, not one (with a stack) per request.
      // The agent's stdout reaches this process after its answer does: wait (bounded) for the line.
      await h.until(async () => logged(h, 'etcd is available again').length > 0, 5000);
      expect(logged(h, 'etcd is unavailable: requests get 503 etcd-unavailable until it is back')).to.have.length(1);
      expect(logged(h, 'etcd is available again')).to.have.length(1);
      expect(logged(h, 'request failed')).to.deep.equal([]);
    } finally {
      await h.stop();
    }
  });

  it('answers every request within bounded time while etcd is frozen, and recovers', async () => {
    const h = await ApiHarness.start();
    try {
      h.etcd.pause();
      for (const [method, path, body] of [['GET', '/resources/pod'], ['POST', '/resources', { name: 'frozen', type: 'widget', spec: {} }], ['GET', '/readyz']] as const) {
        const t0 = Date.now();
        const r = await h.request(method, path, body);
        if (path === '/readyz') expect(r.body.type).to.equal('not-ready');
        else expectEtcdUnavailable(r, `${method} ${path}`);
        // etcd3 tries a call three times with a 3 s deadline each: bounded, never a hang.
        expect(Date.now() - t0, `${method} ${path}`).to.be.below(25_000);
      }
      h.etcd.resume();
      await h.until(async () => (await h.request('GET', '/readyz')).status === 200, 30_000);
      expect((await h.request('GET', '/resources/widget')).status).to.equal(200);
    } finally {
      h.etcd.resume();
      await h.stop();
    }
  });

  it('exits 2 with one line naming --api-listen when a port is in use, leaving no listener and nothing in etcd', async () => {
    const etcd = await TestEtcd.start();
    const holder: Server = createServer();
    const busy = await freePort();
    const free = await freePort();
    await new Promise<void>((r) => holder.listen(busy, '127.0.0.1', r));
    const agent = TestAgent.start({
      args: ['--plugins', 'api', '--name', 'busy-port', '--etcd-endpoints', etcd.endpoint, '--api-listen', `127.0.0.1:${free},127.0.0.1:${busy}`],
    });
    try {
      const code = await Promise.race([agent.exited, new Promise((r) => setTimeout(() => r('timeout'), 30_000))]);
      expect(code).to.equal(2);
      const lines = agent.stderr.trim().split('\n');
      expect(lines).to.have.length(1);
      expect(lines[0]).to.match(new RegExp(`--api-listen 127\\.0\\.0\\.1:${busy}: TCP port ${busy} is in use on 127\\.0\\.0\\.1`));
      const refused = await fetch(`http://127.0.0.1:${free}/healthz`).then(() => false, () => true);
      expect(refused).to.equal(true);
      // Nothing written to etcd: the node resource of the failed start was removed again.
      const c = etcd.client();
      try {
        expect(await c.getAll().prefix('/kith/').keys()).to.deep.equal([]);
      } finally {
        c.close();
      }
    } finally {
      await agent.stop();
      holder.close();
      await etcd.stop();
    }
  });
});
