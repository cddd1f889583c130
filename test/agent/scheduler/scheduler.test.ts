import { expect } from 'chai';
import { startScheduler } from '../../../agent/scheduler/plugin.js';
import type { RunningPlugin } from '../../../agent/plugin.js';
import { TestEtcd } from '../../support/etcd.js';
import { createPod, eventually, pluginContext } from './context.js';

type Ctx = Awaited<ReturnType<typeof pluginContext>>;

const podSpec = (memory: number, extra: Record<string, unknown> = {}) => ({
  containers: [{ name: 'c', image: 'localhost/kith/busybox', resources: { requests: { cpu: '0.1', memory } } }],
  ...extra,
});

describe('scheduler plugin (real etcd, workers written as keys)', function () {
  this.timeout(30_000);
  let etcd: TestEtcd;
  let t: Ctx;
  const running: { plugin: RunningPlugin; ctx: Ctx }[] = [];

  let prefix = '';
  let n = 0;

  before(async () => {
    etcd = await TestEtcd.start();
  });
  after(async () => {
    await etcd.stop();
  });
  beforeEach(async () => {
    prefix = `/kith-${++n}`;
    t = await pluginContext(etcd, 'test', [], [], prefix);
  });
  afterEach(async () => {
    for (const r of running.splice(0)) {
      await r.plugin.stop();
      await r.ctx.close();
    }
    await t.close();
  });

  const scheduler = async (name: string, intervalMs = 100) => {
    const ctx = await pluginContext(etcd, name, ['scheduler'], [], prefix);
    const plugin = await startScheduler(ctx, { intervalMs, maxTries: 3 });
    running.push({ plugin, ctx });
  };
  const worker = async (name: string, cpu = '4', memory = 1024) => {
    await t.state.put(`node.worker/heartbeat/healthy/${name}`, 'lease-established');
    await t.state.put(`node.worker/heartbeat/alive/${name}`, 'lease-established');
    await t.state.put(`node.worker/limits/cpu/${name}`, cpu);
    await t.state.put(`node.worker/limits/memory/${name}`, String(memory));
  };
  const inbox = async () => {
    const { kvs } = await t.state.list('node.worker/inbox/');
    return kvs.map((kv) => kv.key.split('/').slice(2) as [string, string]);
  };
  const pod = async (name: string) => JSON.parse((await t.state.get(`resource/pod/${name}`))!.value) as { state: string; metadata: Record<string, string> };

  it('places a pod on an allowed worker in one transaction: resource, inbox, marker gone', async () => {
    await worker('w1');
    await worker('w2');
    await scheduler('s1');
    await createPod(t.state, { name: 'only-w2', spec: podSpec(64, { schedulingConstraints: { mayBeScheduledOn: ['w2'] } }) });
    await createPod(t.state, { name: 'not-w2', spec: podSpec(64, { schedulingConstraints: { cannotBeScheduledOn: ['w2'] } }) });
    const placed = await eventually('both pods in inboxes', async () => ((await inbox()).length === 2 ? inbox() : undefined));
    expect(placed).to.have.deep.members([['w2', 'only-w2'], ['w1', 'not-w2']]);
    const p = await pod('only-w2');
    expect(p.state).to.equal('scheduled');
    expect(p.metadata).to.include({ scheduledBy: 's1', workedBy: 'w2' });
    expect((await t.state.list('pod/unscheduled/')).kvs).to.have.length(0);
  });

  it('places a pod whose unscheduled entry is not a valid pod from its resource; drops such an entry with no resource', async () => {
    await worker('w1');
    await scheduler('s1');
    const value = JSON.stringify({ name: 'cut', type: 'pod', state: 'created', metadata: {}, spec: podSpec(64) });
    await t.state.txn({ if: [], then: [{ put: 'resource/pod/cut', value }, { put: 'pod/unscheduled/cut', value: value.slice(0, 20) }] });
    await t.state.put('pod/unscheduled/orphan', '{not json');
    await eventually('cut placed', async () => ((await inbox()).some(([, p]) => p === 'cut') ? true : undefined));
    expect((await pod('cut')).metadata).to.include({ scheduledBy: 's1', workedBy: 'w1' });
    await eventually('orphan entry removed', async () => ((await t.state.get('pod/unscheduled/orphan')) === undefined ? true : undefined));
    expect((await t.state.list('pod/unscheduled/')).kvs).to.have.length(0);
    expect(await t.state.get('resource/pod/orphan')).to.equal(undefined);
  });

  it('abandons a pod workers have handed back as many times as it has tries, even where it seems to fit', async () => {
    await worker('w1');
    await scheduler('s1');
    await createPod(t.state, { name: 'bounced', metadata: { handedBack: '3' }, spec: podSpec(64) });
    await createPod(t.state, { name: 'once', metadata: { handedBack: '2' }, spec: podSpec(64) });
    await eventually('bounced abandoned', async () => ((await pod('bounced')).state === 'abandoned' ? true : undefined));
    expect((await pod('bounced')).metadata.error).to.equal('handed back by workers 3 times');
    await eventually('once placed', async () => ((await pod('once')).state === 'scheduled' ? true : undefined));
    expect((await inbox()).map(([, p]) => p)).to.deep.equal(['once']);
  });

  it('counts what it has just placed: a burst never exceeds a worker\'s free memory, the rest is abandoned', async () => {
    await worker('w1', '4', 1000);
    await worker('w2', '4', 1000);
    await scheduler('s1');
    await Promise.all(Array.from({ length: 10 }, (_, i) => createPod(t.state, { name: `big-${i}`, spec: podSpec(300) })));
    await eventually('every pod placed or abandoned', async () => {
      const { kvs } = await t.state.list('resource/pod/');
      return kvs.every((kv) => ['scheduled', 'abandoned'].includes(JSON.parse(kv.value).state)) ? true : undefined;
    });
    const perWorker = (await inbox()).reduce<Record<string, number>>((m, [w]) => ((m[w] = (m[w] ?? 0) + 1), m), {});
    expect(perWorker).to.deep.equal({ w1: 3, w2: 3 });
    const { kvs } = await t.state.list('resource/pod/');
    const abandoned = kvs.map((kv) => JSON.parse(kv.value)).filter((p) => p.state === 'abandoned');
    expect(abandoned).to.have.length(4);
    expect(abandoned[0].metadata).to.have.keys('scheduledBy', 'error');
    expect(abandoned[0].metadata.scheduledBy).to.equal('s1');
    // Why, for the API and the CLI: the scheduler's reason, not only its log line.
    expect(abandoned[0].metadata.error).to.match(/^no allowed worker has 0.1 CPU and 300 MiB/);
  });

  it('abandons a pod too big for any worker after its tries, and waits while no worker is healthy', async () => {
    await scheduler('s1');
    await createPod(t.state, { name: 'huge', spec: podSpec(1 << 20) });
    await createPod(t.state, { name: 'fine', spec: podSpec(10) });
    await new Promise((r) => setTimeout(r, 600)); // six retry intervals with no worker: no try is counted
    expect((await pod('fine')).state).to.equal('created');
    expect((await pod('huge')).state).to.equal('created');
    await worker('w1');
    await eventually('huge abandoned', async () => ((await pod('huge')).state === 'abandoned' ? true : undefined));
    expect((await pod('fine')).state).to.equal('scheduled');
    expect((await t.state.list('pod/unscheduled/')).kvs).to.have.length(0);
  });

  it('tries a waiting pod again as soon as a worker comes or frees room, not only when its retry is due', async () => {
    await worker('small', '4', 100);
    await scheduler('s1', 60_000);
    await createPod(t.state, { name: 'needs-room', spec: podSpec(500) });
    await new Promise((r) => setTimeout(r, 300));
    expect((await pod('needs-room')).state).to.equal('created');
    await worker('roomy', '4', 1000);
    await eventually('placed on the new worker', async () => ((await pod('needs-room')).state === 'scheduled' ? true : undefined), 3000);
    expect((await pod('needs-room')).metadata.workedBy).to.equal('roomy');
  });

  it('spreads the pods of one ReplicaSet across workers', async () => {
    await worker('w1', '4', 4096);
    await worker('w2', '4', 1024);
    await worker('w3', '4', 2048);
    await scheduler('s1');
    for (let i = 0; i < 6; i++) await createPod(t.state, { name: `web-${i}`, metadata: { replicaSet: 'web' }, spec: podSpec(64) });
    const placed = await eventually('six placed', async () => ((await inbox()).length === 6 ? inbox() : undefined));
    const perWorker = placed.reduce<Record<string, number>>((m, [w]) => ((m[w] = (m[w] ?? 0) + 1), m), {});
    expect(perWorker).to.deep.equal({ w1: 2, w2: 2, w3: 2 });
  });

  it('places each pod once when several schedulers run', async () => {
    await worker('w1', '64', 1 << 16);
    await worker('w2', '64', 1 << 16);
    await scheduler('s1');
    await scheduler('s2');
    await scheduler('s3');
    await Promise.all(Array.from({ length: 60 }, (_, i) => createPod(t.state, { name: `p-${i}`, spec: podSpec(10) })));
    const placed = await eventually('sixty placed', async () => ((await inbox()).length >= 60 ? inbox() : undefined));
    await new Promise((r) => setTimeout(r, 300));
    expect(await inbox()).to.have.length(60);
    expect(new Set(placed.map(([, p]) => p)).size).to.equal(60);
    const { kvs } = await t.state.list('resource/pod/');
    const by = new Set(kvs.map((kv) => JSON.parse(kv.value).metadata.scheduledBy));
    expect(kvs.every((kv) => JSON.parse(kv.value).state === 'scheduled')).to.equal(true);
    expect(by.size).to.be.greaterThan(0);
  });
});
