import { expect } from 'chai';
import { Etcd3 } from 'etcd3';
import { StateLayer, type StateEvent } from '../../agent/state.js';
import { TestEtcd } from '../support/etcd.js';
import { testLog } from '../support/log.js';
import { CuttableProxy } from '../support/proxy.js';
import { waitUntil } from '../support/wait.js';

const PREFIX = '/st';

/** A plugin-like view: applies events to a map and checks they are never repeated. */
class RecordingView {
  readonly map = new Map<string, string>();
  readonly events: StateEvent[] = [];
  readonly problems: string[] = [];
  private readonly lastRev = new Map<string, number>();

  handle = (ev: StateEvent): void => {
    this.events.push(ev);
    const prev = this.lastRev.get(ev.key) ?? 0;
    if (ev.modRevision <= prev) this.problems.push(`${ev.type} ${ev.key}@${ev.modRevision} after @${prev}`);
    this.lastRev.set(ev.key, ev.modRevision);
    if (ev.type === 'put') this.map.set(ev.key, ev.value);
    else if (!this.map.delete(ev.key)) this.problems.push(`delete of unknown ${ev.key}`);
  };
}

async function etcdView(client: Etcd3, prefixes: string[]): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  for (const p of prefixes) {
    const all = await client.getAll().prefix(`${PREFIX}/${p}`).strings();
    for (const [k, v] of Object.entries(all)) out.set(k.slice(PREFIX.length + 1), v);
  }
  return out;
}

const sameMaps = (a: Map<string, string>, b: Map<string, string>) =>
  a.size === b.size && [...a].every(([k, v]) => b.get(k) === v);

describe('state layer (real etcd)', function () {
  this.timeout(60_000);
  let etcd: TestEtcd;
  let client: Etcd3;
  const layers: StateLayer[] = [];
  const proxies: CuttableProxy[] = [];

  const layer = (endpoint = etcd.endpoint) => {
    const s = new StateLayer(new Etcd3({ hosts: endpoint, dialTimeout: 1000 }), PREFIX, testLog);
    layers.push(s);
    return s;
  };

  before(async () => {
    etcd = await TestEtcd.start();
    client = etcd.client();
  });
  afterEach(async () => {
    for (const s of layers.splice(0)) {
      await s.close();
      s.client.close();
    }
    for (const p of proxies.splice(0)) await p.close();
    await client.delete().prefix(`${PREFIX}/`).exec();
  });
  after(async () => {
    client?.close();
    await etcd?.stop();
  });

  it('ends equal to etcd when writers race a scan across several prefixes', async () => {
    const prefixes = ['a/', 'b/', 'c/', 'd/'];
    for (const p of prefixes) for (let i = 0; i < 200; i++) await client.put(`${PREFIX}/${p}${i}`).value('seed');
    let stop = false;
    const writers = prefixes.map(async (p, w) => {
      for (let n = 0; n < 400 && !stop; n++) {
        const key = `${PREFIX}/${p}${(n * 7 + w) % 250}`;
        if (n % 5 === 0) await client.delete().key(key);
        else await client.put(key).value(`w${w}-${n}`);
      }
    });
    await new Promise((r) => setTimeout(r, 5));
    const view = new RecordingView();
    const sub = layer().watch(prefixes, view.handle);
    await sub.synced;
    await Promise.all(writers);
    stop = true;
    const want = await etcdView(client, prefixes);
    await waitUntil(() => sameMaps(view.map, want), { what: 'view to equal etcd' });
    expect(view.problems).to.deep.equal([]);
  });

  it('scans every prefix at the revision of the first response', async () => {
    await client.put(`${PREFIX}/x/1`).value('one');
    const s = layer();
    const first = await s.list('x/');
    await client.put(`${PREFIX}/y/1`).value('later');
    const second = await s.list('y/', first.revision);
    expect(second.revision).to.equal(first.revision);
    expect(second.kvs).to.deep.equal([]);
  });

  it('reads several prefixes once at one revision (snapshot), and a given revision again', async () => {
    const s = layer();
    await s.txn({ if: [], then: [{ put: 'm/1', value: 'one' }, { put: 'n/1', value: 'two' }, { put: 'o/1', value: 'elsewhere' }] });
    const snap = await s.snapshot(['m/', 'n/']);
    await s.txn({ if: [], then: [{ put: 'n/2', value: 'later' }, { delete: 'm/1' }] });
    expect(snap.kvs.map((kv) => [kv.key, kv.value])).to.deep.equal([['m/1', 'one'], ['n/1', 'two']]);
    const again = await s.snapshot(['n/', 'm/'], snap.revision);
    expect(again.revision).to.equal(snap.revision);
    expect(again.kvs.map((kv) => kv.key)).to.deep.equal(['n/1', 'm/1']);
    const now = await s.snapshot(['m/', 'n/']);
    expect(now.revision).to.be.greaterThan(snap.revision);
    expect(now.kvs.map((kv) => kv.key)).to.deep.equal(['n/1', 'n/2']);
  });

  it('reads a prefix of many pages at one revision', async () => {
    const s = layer();
    const ops = Array.from({ length: 2500 }, (_, i) => ({ put: `p/${String(i).padStart(4, '0')}`, value: `v${i}` }));
    for (let i = 0; i < ops.length; i += 100) await s.txn({ if: [], then: ops.slice(i, i + 100) });
    const { revision } = await s.list('p/');
    // Changes after R are not in a read at R, however many pages it takes.
    await s.txn({ if: [], then: [{ put: 'p/9999', value: 'later' }, { delete: 'p/0000' }, { put: 'p/0001', value: 'changed' }] });
    const snap = await s.list('p/', revision, 1000);
    expect(snap.revision).to.equal(revision);
    expect(snap.kvs).to.have.length(2500);
    expect(snap.kvs[0]).to.include({ key: 'p/0000', value: 'v0' });
    expect(snap.kvs[1]).to.include({ key: 'p/0001', value: 'v1' });
    expect(new Set(snap.kvs.map((kv) => kv.key)).size).to.equal(2500);
    const now = await s.list('p/', undefined, 333);
    expect(now.kvs).to.have.length(2500);
    expect(now.kvs.at(-1)).to.include({ key: 'p/9999', value: 'later' });
  });

  it('rescans after a compacted revision and delivers the right deletes', async () => {
    for (let i = 0; i < 10; i++) await client.put(`${PREFIX}/k/${i}`).value(`v${i}`);
    const proxy = await CuttableProxy.start(etcd.clientPort);
    proxies.push(proxy);
    const view = new RecordingView();
    const s = layer(proxy.endpoint);
    const sub = s.watch(['k/'], view.handle);
    await sub.synced;
    expect(view.map.size).to.equal(10);

    proxy.sever();
    // While the subscriber is cut off: deletes, puts, then compaction past all of them.
    for (let i = 0; i < 5; i++) await client.delete().key(`${PREFIX}/k/${i}`);
    await client.put(`${PREFIX}/k/7`).value('changed');
    await client.put(`${PREFIX}/k/new`).value('added');
    const { header } = await client.get(`${PREFIX}/k/7`).exec();
    await (client as unknown as { kv: { compact(r: unknown): Promise<unknown> } }).kv.compact({ revision: header.revision, physical: true });
    proxy.restore();

    const want = await etcdView(client, ['k/']);
    await waitUntil(() => sameMaps(view.map, want), { timeoutMs: 20_000, what: 'view to converge after compaction' });
    const deletes = view.events.filter((e) => e.type === 'delete').map((e) => e.key).sort();
    expect(deletes).to.deep.equal(['k/0', 'k/1', 'k/2', 'k/3', 'k/4']);
    expect(view.problems).to.deep.equal([]);
  });

  it('loses and repeats nothing when etcd restarts mid-stream', async () => {
    const view = new RecordingView();
    const sub = layer().watch(['r/'], view.handle);
    await sub.synced;
    const written: string[] = [];
    const write = async (from: number, to: number) => {
      for (let i = from; i < to; i++) {
        await client.put(`${PREFIX}/r/${i % 40}`).value(`v${i}`);
        written.push(`r/${i % 40}`);
      }
    };
    await write(0, 100);
    await etcd.restart();
    // The test's own client reconnects on its own; retry until it does.
    await waitUntil(() => client.get('probe').exec().then(() => true), { timeoutMs: 15_000, what: 'etcd back' });
    await write(100, 200);
    const want = await etcdView(client, ['r/']);
    await waitUntil(() => sameMaps(view.map, want), { timeoutMs: 20_000, what: 'view to equal etcd after restart' });
    // Every write was delivered exactly once: 200 puts.
    expect(view.events.filter((e) => e.type === 'put')).to.have.length(200);
    expect(view.problems).to.deep.equal([]);
  });

  it('keeps delivering after a handler throws', async () => {
    const seen: string[] = [];
    const sub = layer().watch(['t/'], (ev) => {
      seen.push(ev.key);
      if (ev.key === 't/bad') throw new Error('handler bug');
    });
    await sub.synced;
    await client.put(`${PREFIX}/t/bad`).value('x');
    await client.put(`${PREFIX}/t/good`).value('y');
    await waitUntil(() => seen.includes('t/good'), { what: 'event after the throwing one' });
  });

  it('puts the keys of a lost lease again on the re-granted lease', async () => {
    const s = layer();
    const oldId = await s.grantLease('alive', 5);
    await s.put('lease/a', 'on-alive', 'alive');
    await s.txn({ if: [], then: [{ put: 'lease/b', value: 'also', lease: 'alive' }, { put: 'lease/c', value: 'plain' }] });
    // Revoking the lease behind the agent's back deletes its keys; the keepalive then fails.
    await (client as unknown as { leaseClient: { leaseRevoke(r: unknown): Promise<unknown> } }).leaseClient.leaseRevoke({ ID: oldId });
    expect(await client.get(`${PREFIX}/lease/a`).string()).to.equal(null);
    const back = await waitUntil(
      async () => {
        const res = await client.getAll().prefix(`${PREFIX}/lease/`).exec();
        return res.kvs.length === 3 ? res.kvs : undefined;
      },
      { timeoutMs: 15_000, what: 'leased keys to come back' },
    );
    const newId = await s.leaseId('alive');
    expect(newId).to.not.equal(oldId);
    const byKey = Object.fromEntries(back.map((kv) => [kv.key.toString().slice(PREFIX.length + 1), String(kv.lease)]));
    expect(byKey['lease/a']).to.equal(newId);
    expect(byKey['lease/b']).to.equal(newId);
    expect(byKey['lease/c']).to.equal('0');
  });

  it('leaves a leased key alone on re-grant when another writer took it meanwhile', async () => {
    const proxy = await CuttableProxy.start(etcd.clientPort);
    proxies.push(proxy);
    const s = layer(proxy.endpoint);
    const oldId = await s.grantLease('alive', 3);
    await s.put('taken/mine', 'mine', 'alive');
    await s.put('taken/contested', 'mine', 'alive');
    // Cut off, the lease is revoked and another writer takes one of its keys before the re-grant.
    proxy.sever();
    await (client as unknown as { leaseClient: { leaseRevoke(r: unknown): Promise<unknown> } }).leaseClient.leaseRevoke({ ID: oldId });
    await client.put(`${PREFIX}/taken/contested`).value('theirs');
    proxy.restore();
    await waitUntil(async () => (await client.get(`${PREFIX}/taken/mine`).string()) === 'mine', { timeoutMs: 20_000, what: 'own key back' });
    const contested = (await client.get(`${PREFIX}/taken/contested`).exec()).kvs[0]!;
    expect(contested.value.toString()).to.equal('theirs');
    expect(String(contested.lease)).to.equal('0');
  });

  it('guards transactions by create and mod revisions', async () => {
    const s = layer();
    const created = await s.txn({ if: [{ key: 'g/x', createRevision: 0 }], then: [{ put: 'g/x', value: '1' }] });
    expect(created.succeeded).to.equal(true);
    const again = await s.txn({ if: [{ key: 'g/x', createRevision: 0 }], then: [{ put: 'g/x', value: '2' }] });
    expect(again.succeeded).to.equal(false);
    const kv = (await s.get('g/x'))!;
    const stale = await s.txn({ if: [{ key: 'g/x', modRevision: kv.modRevision - 1 }], then: [{ put: 'g/x', value: '3' }] });
    expect(stale.succeeded).to.equal(false);
    const fresh = await s.txn({ if: [{ key: 'g/x', modRevision: kv.modRevision }], then: [{ put: 'g/x', value: '4' }], else: [] });
    expect(fresh.succeeded).to.equal(true);
    expect((await s.get('g/x'))!.value).to.equal('4');
    await s.txn({ if: [], then: [{ deletePrefix: 'g/' }] });
    expect(await s.get('g/x')).to.equal(undefined);
  });
});
