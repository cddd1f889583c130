import { createServer, type Server } from 'node:net';
import { expect } from 'chai';
import { TestAgent } from '../support/agent.js';
import { TestEtcd } from '../support/etcd.js';
import { freePort } from '../support/ports.js';
import { ApiHarness } from './harness.js';

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
      expect(list.status).to.be.at.least(500);
      expect(list.type).to.match(/^application\/problem\+json/);
      expect(Date.now() - t1).to.be.below(15_000);
      expect((await h.request('GET', '/healthz')).status).to.equal(200);
      await h.etcd.launch();
      await h.until(async () => (await h.request('GET', '/readyz')).status === 200, 20_000);
      expect((await h.request('POST', '/resources', { name: 'after', type: 'widget', spec: {} })).status).to.equal(201);
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
        expect(r.status, `${method} ${path}`).to.be.at.least(500);
        expect(r.type).to.match(/^application\/problem\+json/);
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
