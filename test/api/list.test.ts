import { request as httpRequest } from 'node:http';
import { expect } from 'chai';
import { Registry } from 'prom-client';
import { StateLayer } from '../../agent/state.js';
import { ResourceFeed } from '../../api/feed.js';
import { listResources } from '../../api/list.js';
import { ApiMetrics } from '../../api/metrics.js';
import { ResourceStore } from '../../api/store.js';
import { testLog } from '../support/log.js';
import { waitUntil } from '../support/wait.js';
import { ApiHarness, PREFIX } from './harness.js';

const pod = (name: string) => ({
  name,
  type: 'pod',
  state: 'created',
  spec: { containers: [{ name: 'main', image: 'localhost/kith/busybox', cmd: ['sleep', '60'], resources: { requests: { cpu: 0.25, memory: 16 } } }], ports: [80] },
});

/** A pod as a worker stores it: placed, with its state. */
const placed = (name: string, state: string, worker: string) => JSON.stringify({ ...pod(name), state, metadata: { scheduledBy: 's', workedBy: worker } });
const node = (name: string, type: string) => JSON.stringify({ name, type, state: 'healthy', metadata: {}, spec: { address: '10.0.0.9' } });

/** The lines of a watch stream's first events, until `synced` and then `count` changes more, or the time is up. */
function watchEvents(url: string, token: string, changes: number, timeoutMs = 10_000): Promise<{ event: string; id?: number; data: any }[]> {
  return new Promise((resolve, reject) => {
    const events: { event: string; id?: number; data: any }[] = [];
    let buf = '';
    let after = -1;
    const req = httpRequest(url, { headers: { accept: 'text/event-stream', authorization: `Bearer ${token}` } });
    const timer = setTimeout(() => {
      req.destroy();
      reject(new Error(`watch: ${changes} changes after synced not seen within ${timeoutMs} ms; got ${JSON.stringify(events.slice(-5))}`));
    }, timeoutMs);
    req.on('response', (res) => {
      res.setEncoding('utf8');
      res.on('data', (d: string) => {
        buf += d;
        for (let i = buf.indexOf('\n\n'); i >= 0; i = buf.indexOf('\n\n')) {
          const block = buf.slice(0, i);
          buf = buf.slice(i + 2);
          const ev: { event?: string; id?: number; data?: string } = {};
          for (const line of block.split('\n')) {
            if (line.startsWith('id: ')) ev.id = Number(line.slice(4));
            else if (line.startsWith('event: ')) ev.event = line.slice(7);
            else if (line.startsWith('data: ')) ev.data = line.slice(6);
          }
          if (!ev.event) continue;
          events.push({ event: ev.event, id: ev.id, data: JSON.parse(ev.data ?? 'null') });
          if (ev.event === 'synced') after = 0;
          else if (after >= 0) after++;
          if (after >= changes) {
            clearTimeout(timer);
            req.destroy();
            resolve(events);
            return;
          }
        }
      });
    });
    req.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    req.end();
  });
}

describe('api: lists from the view (GET /resources/:type) against a real etcd and agent', function () {
  this.timeout(120_000);
  let h: ApiHarness;
  /** The old way in this process: a range of etcd, a parse and a schema check of every resource, per list. */
  let state: StateLayer;
  let fromEtcd: ResourceStore;

  const list = async (type: string) => {
    const r = await h.request('GET', `/resources/${type}`);
    expect(r.status, r.text).to.equal(200);
    return r;
  };
  const lists = async (from: 'view' | 'etcd'): Promise<number> => {
    const m = new RegExp(`^kith_api_lists_total\\{from="${from}"\\} (\\S+)$`, 'm').exec((await h.request('GET', '/metrics')).text);
    return m ? Number(m[1]) : 0;
  };
  const create = async (body: Record<string, unknown>) => {
    const r = await h.request('POST', '/resources', body);
    expect(r.status, r.text).to.equal(201);
  };

  before(async () => {
    h = await ApiHarness.start();
    state = new StateLayer(h.etcd.client(), PREFIX, testLog);
    fromEtcd = new ResourceStore(state, testLog);
  });
  after(async () => {
    await state?.close();
    state?.client.close();
    await h?.stop();
  });

  it('equals the list read from etcd for every type, derived pod and node states, bad entries and order included', async () => {
    // Through the API, and straight into etcd as workers, schedulers and old data would have them.
    for (const n of ['zeta', 'alpha', 'mid-1', 'mid-10', 'mid-2']) await create(pod(n));
    await create({ name: 'front', type: 'replicaset', spec: { replicas: 2, template: { spec: pod('x').spec } } });
    for (const n of ['b', 'a', 'a-b', 'a0', 'ab']) await create({ name: n, type: 'gadget', spec: { n } });
    await h.put('resource/node.worker/w-ok', node('w-ok', 'node.worker'));
    await h.put('resource/node.worker/w-slow', node('w-slow', 'node.worker'));
    await h.put('resource/node.worker/w-gone', node('w-gone', 'node.worker'));
    await h.put('resource/node.scheduler/s1', node('s1', 'node.scheduler'));
    await h.put('node.worker/heartbeat/healthy/w-ok', 'lease-established');
    await h.put('node.worker/heartbeat/alive/w-ok', 'lease-established');
    await h.put('node.worker/heartbeat/alive/w-slow', 'lease-established');
    await h.put('resource/pod/on-ok', placed('on-ok', 'running', 'w-ok'));
    await h.put('resource/pod/on-slow', placed('on-slow', 'running', 'w-slow'));
    await h.put('resource/pod/on-gone', placed('on-gone', 'accepted', 'w-gone'));
    await h.put('resource/pod/done-gone', placed('done-gone', 'exitSuccess', 'w-gone'));
    await h.put('resource/pod/Bad_Name', placed('Bad_Name', 'running', 'w-ok'));
    await h.put('resource/pod/garbage', '{not json');
    await h.put('resource/gadget/a/nested', JSON.stringify({ name: 'nested', type: 'gadget', spec: {} }));
    await h.put('resource/gadget/ünïcode', JSON.stringify({ name: 'ünïcode', type: 'gadget', spec: {} }));
    const types = ['pod', 'replicaset', 'gadget', 'node.worker', 'node.scheduler', 'node.api', 'node.reaper', 'nothing'];
    // The straight-to-etcd writes are not this node's: its view has them within moments.
    await h.until(async () => (await list('pod')).body.some((p: { name: string }) => p.name === 'done-gone'));
    const viewBefore = await lists('view');
    for (const type of types) {
      const got = await list(type);
      const want = await fromEtcd.list(type);
      expect(got.text, type).to.equal(JSON.stringify(want.resources));
      expect(got.type, type).to.equal('application/json; charset=utf-8');
      expect(Number(got.headers.get('x-kith-revision')), type).to.be.at.least(1);
    }
    expect(await lists('view')).to.be.at.least(viewBefore + types.length);
    const pods = Object.fromEntries((await list('pod')).body.map((p: { name: string; state: string }) => [p.name, p.state]));
    expect(pods).to.include({ 'on-ok': 'running', 'on-slow': 'unhealthy', 'on-gone': 'dead', 'done-gone': 'exitSuccess', alpha: 'created' });
    expect(pods).to.not.have.any.keys('Bad_Name', 'garbage');
    expect((await list('pod')).body.map((p: { name: string }) => p.name)).to.deep.equal(['alpha', 'done-gone', 'mid-1', 'mid-10', 'mid-2', 'on-gone', 'on-ok', 'on-slow', 'zeta']);
    const workers = Object.fromEntries((await list('node.worker')).body.map((n: { name: string; state: string }) => [n.name, n.state]));
    expect(workers).to.deep.equal({ 'w-gone': 'dead', 'w-ok': 'healthy', 'w-slow': 'degraded' });
    expect((await list('node.api')).body.map((n: { name: string; state: string }) => [n.name, n.state])).to.deep.equal([[h.name, 'healthy']]);
    // A heartbeat that goes changes the derived states of the next list, though no resource changed.
    await h.del('node.worker/heartbeat/healthy/w-ok');
    await h.until(async () => (await list('node.worker')).body.find((n: { name: string }) => n.name === 'w-ok').state === 'degraded');
    expect((await list('pod')).body.find((p: { name: string }) => p.name === 'on-ok').state).to.equal('unhealthy');
    expect((await list('pod')).text).to.equal(JSON.stringify((await fromEtcd.list('pod')).resources));
  });

  it('shows a change in the next list and drops a deleted resource, whoever wrote it', async () => {
    await create({ name: 'c1', type: 'changing', spec: { v: 1 } });
    expect((await list('changing')).body.map((r: { spec: { v: number } }) => r.spec.v)).to.deep.equal([1]);
    expect((await h.request('PATCH', '/resources/changing/c1', { spec: { v: 2 } })).status).to.equal(200);
    expect((await list('changing')).body.map((r: { spec: { v: number } }) => r.spec.v)).to.deep.equal([2]);
    expect((await h.request('DELETE', '/resources/changing/c1')).status).to.equal(204);
    expect((await list('changing')).body).to.deep.equal([]);
    // Another writer's change (here straight into etcd) is there within moments.
    await h.put('resource/changing/c2', JSON.stringify({ name: 'c2', type: 'changing', spec: { v: 3 } }));
    await h.until(async () => (await list('changing')).body.length === 1);
    await h.put('resource/changing/c2', JSON.stringify({ name: 'c2', type: 'changing', spec: { v: 4 } }));
    await h.until(async () => (await list('changing')).body[0].spec.v === 4);
    await h.put('resource/changing/c2', '{broken');
    await h.until(async () => (await list('changing')).body.length === 0);
    await h.del('resource/changing/c2');
    expect((await list('changing')).text).to.equal('[]');
  });

  it('shows every write of this node in the very next list and the very next stream (read-your-writes)', async () => {
    // Clients at once, each listing right after its own write, with large changes of other resources going on
    // straight into etcd: the API node's watch lags etcd's answers, as on a busy cluster.
    const missed: string[] = [];
    let ballast = true;
    const fill = 'x'.repeat(64 * 1024);
    const ballasts = Array.from({ length: 4 }, async (_, w) => {
      for (let n = 0; ballast && n < 2000; n++) await h.put(`resource/ballast/b${w}-${n % 10}`, JSON.stringify({ name: `b${w}`, type: 'ballast', spec: { n, fill } }));
    });
    await Promise.all(Array.from({ length: 32 }, async (_, c) => {
      for (let i = 0; i < 20; i++) {
        const name = `busy-${c}-${i}`;
        await create({ name, type: 'busy', spec: { c, i } });
        const names = (await list('busy')).body.map((r: { name: string }) => r.name);
        if (!names.includes(name)) missed.push(name);
      }
    }));
    // And a stream opened right after a write (without a resume point) has it in its list, before `synced`.
    await Promise.all(Array.from({ length: 8 }, async (_, c) => {
      for (let i = 0; i < 10; i++) {
        const name = `rws-${c}-${i}`;
        await create({ name, type: 'rws', spec: { c, i } });
        const events = await watchEvents(`${h.url}/resources/rws?watch=1`, h.adminToken, 0);
        const initial = events.slice(0, events.findIndex((e) => e.event === 'synced'));
        if (!initial.some((e) => e.data.name === name)) missed.push(`stream after ${name}`);
      }
    }));
    ballast = false;
    await Promise.all(ballasts);
    expect(missed, 'writes missing from the list or stream right after them').to.deep.equal([]);
    for (let i = 0; i < 150; i++) {
      const name = `ryw-${i}`;
      await create({ name, type: 'ryw', spec: { i } });
      expect((await list('ryw')).body.map((r: { name: string }) => r.name), `after creating ${name}`).to.include(name);
      if (i % 3 === 0) {
        expect((await h.request('PATCH', `/resources/ryw/${name}`, { spec: { i: -i } })).status).to.equal(200);
        expect((await list('ryw')).body.find((r: { name: string }) => r.name === name).spec.i, `after patching ${name}`).to.equal(-i);
      }
      if (i % 3 === 1) {
        expect((await h.request('DELETE', `/resources/ryw/${name}`)).status).to.equal(204);
        expect((await list('ryw')).body.map((r: { name: string }) => r.name), `after deleting ${name}`).to.not.include(name);
      }
    }
  });

  it('a list and then a watch from its X-Kith-Revision miss no change and repeat none, while changes go on', async () => {
    for (let i = 0; i < 20; i++) await create({ name: `f${i}`, type: 'follow', spec: { v: 0 } });
    let stop = false;
    let writes = 0;
    const writer = (async () => {
      for (let n = 1; !stop && n <= 2000; n++) {
        const i = n % 20;
        const r = await h.request('PATCH', `/resources/follow/f${i}`, { spec: { v: n } });
        expect(r.status).to.equal(200);
        writes++;
      }
    })();
    await h.until(async () => writes >= 20);
    const listed = await list('follow');
    const revision = Number(listed.headers.get('x-kith-revision'));
    const watching = watchEvents(`${h.url}/resources/follow?watch=1&since=${revision}`, h.adminToken, 40);
    const events = await watching;
    stop = true;
    await writer;
    const state = new Map<string, number>(listed.body.map((r: { name: string; spec: { v: number } }) => [r.name, r.spec.v]));
    const changes = events.filter((e) => e.event === 'put' || e.event === 'delete');
    expect(events.some((e) => e.event === 'reset')).to.equal(false);
    for (const e of changes) {
      if (e.id !== undefined) expect(e.id, 'a change the list had').to.be.above(revision);
      state.set(e.data.name, e.data.spec.v);
    }
    // Every change after the list, each once: then the list plus the stream is etcd at the stream's last revision.
    const last = changes.at(-1)!.id!;
    const atLast = await h.kv.getAll().prefix(`${PREFIX}/resource/follow/`).revision(String(last)).strings();
    const want = new Map(Object.entries(atLast).map(([k, v]) => [k.slice(`${PREFIX}/resource/follow/`.length), (JSON.parse(v) as { spec: { v: number } }).spec.v]));
    expect(Object.fromEntries(state)).to.deep.equal(Object.fromEntries(want));
  });

  describe('the view in this process, on the same etcd', () => {
    const opened: ResourceFeed[] = [];
    const registries: ApiMetrics[] = [];
    afterEach(async () => {
      for (const f of opened.splice(0)) await f.close();
      for (const m of registries.splice(0)) m.unregister();
    });
    const feedOn = (s: StateLayer, store: ResourceStore) => {
      const feed = new ResourceFeed(s, (type, key, value) => store.parseStored(type, key, value));
      opened.push(feed);
      return feed;
    };
    const metricsOf = () => {
      const m = new ApiMetrics(new Registry());
      registries.push(m);
      return m;
    };
    const from = async (m: ApiMetrics, where: 'view' | 'etcd') => (await m.lists.get()).values.find((v) => v.labels.from === where)?.value ?? 0;

    it('answers from etcd before the feed has synced, and from the view after', async () => {
      const store = new ResourceStore(state, testLog);
      const feed = feedOn(state, store);
      const metrics = metricsOf();
      // The feed's first scan has not come back yet: the list is etcd's.
      expect(feed.synced).to.equal(false);
      const early = await listResources('pod', { feed, store, metrics });
      expect(await from(metrics, 'etcd')).to.equal(1);
      const want = await fromEtcd.list('pod');
      expect(JSON.stringify(early.resources)).to.equal(JSON.stringify(want.resources));
      expect(early.revision).to.be.at.least(1);
      await waitUntil(() => feed.synced, { what: 'the feed to sync' });
      const late = await listResources('pod', { feed, store, metrics });
      expect(await from(metrics, 'view')).to.equal(1);
      expect(JSON.stringify(late.resources)).to.equal(JSON.stringify(want.resources));
    });

    it('reads etcd when the feed does not reach this node\'s last write within the bound', async () => {
      // A feed that follows another prefix never sees this store's writes.
      const elsewhere = new StateLayer(state.client, '/elsewhere', testLog);
      const store = new ResourceStore(state, testLog);
      const feed = feedOn(elsewhere, store);
      const metrics = metricsOf();
      await waitUntil(() => feed.synced, { what: 'the feed to sync' });
      expect((await listResources('lagging', { feed, store, metrics, waitMs: 100 })).resources).to.deep.equal([]);
      expect(await from(metrics, 'view')).to.equal(1);
      await store.create({ name: 'mine', type: 'lagging', metadata: {}, spec: {} });
      const t0 = Date.now();
      const got = await listResources('lagging', { feed, store, metrics, waitMs: 100 });
      expect(Date.now() - t0).to.be.at.least(90);
      expect(got.resources.map((r) => r.name)).to.deep.equal(['mine']);
      expect(await from(metrics, 'etcd')).to.equal(1);
      expect(got.revision).to.be.at.least(store.written);
    });
  });
});
