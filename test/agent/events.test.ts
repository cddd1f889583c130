import { expect } from 'chai';
import { Etcd3 } from 'etcd3';
import { Registry } from 'prom-client';
import { EventRecorder, eventName } from '../../agent/events.js';
import { EVENT_PREFIX } from '../../agent/keys.js';
import { StateLayer } from '../../agent/state.js';
import { clusterEvent, DNS_LABEL, type ClusterEvent } from '../../api/schemas.js';
import { TestEtcd } from '../support/etcd.js';
import { testLog } from '../support/log.js';
import { CuttableProxy } from '../support/proxy.js';
import { waitUntil } from '../support/wait.js';

const PREFIX = '/ev';

describe('events: the recorder against a real etcd', function () {
  this.timeout(60_000);
  let etcd: TestEtcd;
  let client: Etcd3;
  const closers: (() => Promise<void>)[] = [];

  const recorder = (ttl: number, endpoint = etcd.endpoint) => {
    const c = new Etcd3({ hosts: endpoint, dialTimeout: 1000 });
    const state = new StateLayer(c, PREFIX, testLog);
    const metrics = new Registry();
    const r = new EventRecorder(state, 'n1', ttl, testLog, metrics);
    closers.push(async () => {
      await r.close().catch(() => undefined);
      await state.close();
      c.close();
    });
    return { r, metrics };
  };
  const stored = async (): Promise<ClusterEvent[]> => {
    const all = await client.getAll().prefix(`${PREFIX}/${EVENT_PREFIX}`).strings();
    return Object.values(all).map((v) => clusterEvent.parse(JSON.parse(v)));
  };

  before(async () => {
    etcd = await TestEtcd.start();
    client = etcd.client();
  });
  afterEach(async () => {
    for (const c of closers.splice(0)) await c();
    await client.delete().prefix(`${PREFIX}/`).exec();
  });
  after(async () => {
    client?.close();
    await etcd?.stop();
  });

  it('names events as DNS labels, whatever the object is called', () => {
    for (const o of ['pod/web-1', 'replicaset/a-very-long-name-that-goes-on-and-on-and-on-for-ever-and-more', 'node.worker/9lives', 'x']) {
      const n = eventName(o, Date.now());
      expect(n, o).to.match(DNS_LABEL);
    }
    expect(eventName('pod/web-1', 1)).to.not.equal(eventName('pod/web-1', 1));
  });

  it('writes an event as a resource of type event, with the node that saw it, valid against its schema', async () => {
    const { r } = recorder(3600);
    r.record({ object: 'pod/web-1', reason: 'Started', message: 'running at 10.0.0.2' });
    r.record({ type: 'Warning', object: 'pod/web-2', reason: 'Failed', message: 'image missing' });
    const evs = await waitUntil(async () => ((await stored()).length === 2 ? stored() : undefined), { what: 'two events' });
    const byReason = Object.fromEntries(evs.map((e) => [e.spec.reason, e]));
    expect(byReason.Started!.spec).to.include({ type: 'Normal', object: 'pod/web-1', message: 'running at 10.0.0.2', node: 'n1', count: 1 });
    expect(byReason.Failed!.spec).to.include({ type: 'Warning', object: 'pod/web-2', count: 1 });
    expect(Date.parse(byReason.Started!.spec.time)).to.be.closeTo(Date.now(), 10_000);
  });

  it('a repeat of the same reason and message updates one event and counts it; another message is another event', async () => {
    const { r } = recorder(3600);
    for (let i = 0; i < 5; i++) {
      r.record({ type: 'Warning', object: 'pod/p', reason: 'FailedScheduling', message: 'no worker has room' });
      await r.flush();
    }
    r.record({ type: 'Warning', object: 'pod/p', reason: 'FailedScheduling', message: 'no worker is healthy' });
    await r.flush();
    const evs = (await stored()).sort((a, b) => a.spec.firstTime.localeCompare(b.spec.firstTime));
    expect(evs.map((e) => [e.spec.message, e.spec.count])).to.deep.equal([
      ['no worker has room', 5],
      ['no worker is healthy', 1],
    ]);
    expect(evs[0]!.spec.time >= evs[0]!.spec.firstTime).to.equal(true);
  });

  it('events go with their lease after the TTL (and a window), with nothing else to delete them', async () => {
    const { r } = recorder(2);
    r.record({ object: 'pod/short', reason: 'Started', message: 'x' });
    await r.flush();
    const [kv] = Object.keys(await client.getAll().prefix(`${PREFIX}/${EVENT_PREFIX}`).strings());
    expect(kv).to.be.a('string');
    const lease = await client.get(kv!).exec();
    expect(lease.kvs[0]!.lease.toString()).to.not.equal('0');
    const t0 = Date.now();
    await waitUntil(async () => (await stored()).length === 0, { timeoutMs: 10_000, intervalMs: 100, what: 'the event to expire' });
    // At least the TTL (the lease may be a window longer): an event never goes early.
    expect(Date.now() - t0).to.be.at.least(1500);
  });

  it('keeps events while etcd is away and writes them when it is back; recording never throws', async () => {
    const proxy = await CuttableProxy.start(Number(new URL(etcd.endpoint).port));
    closers.push(() => proxy.close());
    const { r } = recorder(3600, proxy.endpoint);
    r.record({ object: 'pod/a', reason: 'Started', message: 'before' });
    await r.flush();
    proxy.sever();
    // record() is synchronous: it queues, and a failed write is tried again later.
    for (let i = 0; i < 50; i++) r.record({ object: `pod/b${i}`, reason: 'Started', message: 'while away' });
    await new Promise((res) => setTimeout(res, 1500));
    proxy.restore();
    await waitUntil(async () => (await stored()).length === 51, { timeoutMs: 20_000, intervalMs: 200, what: 'the queued events' });
  });
});
