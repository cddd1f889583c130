import { expect } from 'chai';
import { pod as podSchema } from '../../../api/schemas.js';
import type { RunningPlugin } from '../../../agent/plugin.js';
import { SimulatedRuntime } from '../../../agent/runtime/simulated.js';
import { afterLostClaim, decideClaim } from '../../../agent/worker/claim.js';
import { startWorker } from '../../../agent/worker/plugin.js';
import { Etcd3 } from 'etcd3';
import { TestEtcd } from '../../support/etcd.js';
import { CuttableProxy } from '../../support/proxy.js';
import { waitUntil } from '../../support/wait.js';
import { pluginContext } from '../scheduler/context.js';

/** The claim decision on plain data: no etcd, no runtime. */
describe('worker claim decision', () => {
  const podOf = (memory: number, metadata: Record<string, string> = {}) =>
    podSchema.parse({
      name: 'p', type: 'pod', state: 'scheduled', metadata: { scheduledBy: 's', workedBy: 'w', ...metadata },
      spec: { containers: [{ name: 'c', image: 'i', resources: { requests: { cpu: '0.5', memory } } }] },
    });

  it('claims a pod that fits: accepted, its request committed, the rest of the pod as it was', () => {
    const pod = podOf(200, { owner: 'x' });
    const d = decideClaim(pod, { cpu: 1000, memory: 300 }, 'w');
    expect(d).to.deep.equal({
      kind: 'claim', worker: 'w', pod: { ...pod, state: 'accepted' }, request: { cpu: 500, memory: 200 }, freeAfter: { cpu: 500, memory: 100 },
    });
    expect(pod.state).to.equal('scheduled');
  });

  it('claims a pod that takes exactly what is free', () => {
    const d = decideClaim(podOf(300), { cpu: 500, memory: 300 }, 'w');
    expect(d.kind).to.equal('claim');
    expect(d.kind === 'claim' && d.freeAfter).to.deep.equal({ cpu: 0, memory: 0 });
  });

  it('hands back a pod that does not fit: created, without scheduledBy and workedBy, handedBack counted up', () => {
    const pod = podOf(200, { owner: 'x' });
    const d = decideClaim(pod, { cpu: 1000, memory: 100 }, 'w');
    expect(d).to.deep.equal({
      kind: 'hand-back', pod: { ...pod, state: 'created', metadata: { owner: 'x', handedBack: '1' } }, request: { cpu: 500, memory: 200 },
    });
    expect(pod.metadata.workedBy).to.equal('w');
    expect(decideClaim(podOf(200, { handedBack: '2' }), { cpu: 1000, memory: 100 }, 'w').pod.metadata.handedBack).to.equal('3');
    expect(decideClaim(podOf(200, { handedBack: 'lots' }), { cpu: 1000, memory: 100 }, 'w').pod.metadata.handedBack).to.equal('1');
    // CPU alone short is not enough room either.
    expect(decideClaim(podOf(10), { cpu: 499, memory: 1000 }, 'w').kind).to.equal('hand-back');
  });

  it('after a claim that did not commit, runs the pod only when the claim is its own and no task of that name runs', () => {
    expect(afterLostClaim({ value: 'w', createRevision: 42 }, 'w', false)).to.deep.equal({ kind: 'run', claimRevision: 42 });
    expect(afterLostClaim({ value: 'other', createRevision: 42 }, 'w', false)).to.deep.equal({ kind: 'drop' });
    expect(afterLostClaim(undefined, 'w', false)).to.deep.equal({ kind: 'drop' });
    expect(afterLostClaim({ value: 'w', createRevision: 42 }, 'w', true)).to.deep.equal({ kind: 'drop' });
  });
});

/**
 * The claim path of the worker against a real etcd, with the simulated
 * runtime (no containers): inbox entries are written as a scheduler would.
 */
describe('worker claims (real etcd, simulated runtime)', function () {
  this.timeout(30_000);
  let etcd: TestEtcd;
  let ctx: Awaited<ReturnType<typeof pluginContext>>;
  let t: Awaited<ReturnType<typeof pluginContext>>;
  let worker: RunningPlugin | undefined;

  before(async () => {
    etcd = await TestEtcd.start();
    t = await pluginContext(etcd, 'test', []);
    ctx = await pluginContext(etcd, 'w', ['worker'], ['--pod-cpu-limit', '1', '--pod-memory-limit', '300', '--cluster-cidr', '10.9.0.0/16']);
    worker = await startWorker(ctx, new SimulatedRuntime());
  });
  after(async () => {
    await worker?.stop();
    await ctx.close();
    await t.close();
    await etcd.stop();
  });

  const schedule = async (name: string, memory: number, withResource = true) => {
    const value = JSON.stringify({
      name, type: 'pod', state: 'scheduled', metadata: { scheduledBy: 's', workedBy: 'w' },
      spec: { containers: [{ name: 'c', image: 'i', resources: { requests: { memory } } }] },
    });
    await t.state.txn({
      if: [],
      then: [...(withResource ? [{ put: `resource/pod/${name}`, value }] : []), { put: `node.worker/inbox/w/${name}`, value }],
    });
  };
  const pod = async (name: string) => {
    const kv = await t.state.get(`resource/pod/${name}`);
    return kv ? (JSON.parse(kv.value) as { state: string; metadata: Record<string, string> }) : undefined;
  };
  const free = async () => (await t.state.get('node.worker/limits/memory/w'))?.value;

  it('claims a pod that fits: accepted then running, claim on the lease, capacity committed, name published', async () => {
    expect(await free()).to.equal('300');
    await schedule('a', 200);
    await waitUntil(async () => (await pod('a'))?.state === 'running', { what: 'a running' });
    expect((await t.state.get('pod/claimed/a'))?.value).to.equal('w');
    expect((await t.state.get('pod/claimed/a'))?.lease).to.not.equal('0');
    expect(await free()).to.equal('100');
    expect((await t.state.get('dns/a.pod.cluster.local.'))?.value).to.match(/^10\.9\.0\.\d+$/);
    expect((await t.state.list('node.worker/inbox/w/')).kvs).to.have.length(0);
  });

  it('hands a pod that does not fit back to the scheduler instead of running it overcommitted', async () => {
    await schedule('b', 200);
    await waitUntil(async () => (await pod('b'))?.state === 'created', { what: 'b back to created' });
    expect((await pod('b'))!.metadata).to.deep.equal({ handedBack: '1' });
    expect(await t.state.get('pod/unscheduled/b')).to.not.equal(undefined);
    expect(await t.state.get('pod/claimed/b')).to.equal(undefined);
    expect((await t.state.list('node.worker/inbox/w/')).kvs).to.have.length(0);
    expect(await free()).to.equal('100');
  });

  it('drops inbox entries of deleted pods and entries that are not pods', async () => {
    await schedule('ghost', 10, false);
    await t.state.put('node.worker/inbox/w/junk', '{not json');
    await waitUntil(async () => (await t.state.list('node.worker/inbox/w/')).kvs.length === 0, { what: 'inbox emptied' });
    expect(await t.state.get('pod/claimed/ghost')).to.equal(undefined);
    expect(await t.state.get('resource/pod/ghost')).to.equal(undefined);
  });

  it('kills a deleted pod: name, claim and capacity go back', async () => {
    await t.state.txn({ if: [], then: [{ delete: 'resource/pod/a' }] });
    await waitUntil(async () => (await t.state.get('pod/claimed/a')) === undefined, { what: 'claim released' });
    expect(await free()).to.equal('300');
    expect(await t.state.get('dns/a.pod.cluster.local.')).to.equal(undefined);
  });

  it('a pod re-created under the same name is a new pod; the old one\'s writes do not touch it', async () => {
    await schedule('c', 50);
    await waitUntil(async () => (await pod('c'))?.state === 'running', { what: 'c running' });
    // Delete and re-create at once, as a user might.
    await t.state.txn({ if: [], then: [{ delete: 'resource/pod/c' }] });
    await schedule('c', 60);
    await waitUntil(async () => (await pod('c'))?.state === 'running' && (await free()) === '240', { what: 'the new c running with its own commitment' });
    await new Promise((r) => setTimeout(r, 300));
    expect((await pod('c'))!.state).to.equal('running');
    expect((await t.state.get('pod/claimed/c'))?.value).to.equal('w');
  });

  it('stops a pod another writer ended (the reaper\'s dead) and leaves that state alone', async () => {
    await schedule('d', 50);
    await waitUntil(async () => (await pod('d'))?.state === 'running', { what: 'd running' });
    const kv = (await t.state.get('resource/pod/d'))!;
    const dead = { ...JSON.parse(kv.value), state: 'dead', metadata: { ...JSON.parse(kv.value).metadata, reapedBy: 'r' } };
    await t.state.txn({ if: [{ key: 'resource/pod/d', modRevision: kv.modRevision }], then: [{ put: 'resource/pod/d', value: JSON.stringify(dead) }] });
    await waitUntil(async () => (await t.state.get('pod/claimed/d')) === undefined, { what: 'claim of d released' });
    expect(await t.state.get('dns/d.pod.cluster.local.')).to.equal(undefined);
    await new Promise((r) => setTimeout(r, 300));
    expect((await pod('d'))!.state).to.equal('dead');
    expect((await pod('d'))!.metadata.reapedBy).to.equal('r');
  });
});

describe('worker claims: a stale inbox entry (real etcd, simulated runtime)', function () {
  this.timeout(30_000);
  let etcd: TestEtcd;

  before(async () => {
    etcd = await TestEtcd.start();
  });
  after(async () => {
    await etcd.stop();
  });

  it('does not claim a pod deleted and created again after the entry was written', async () => {
    const t = await pluginContext(etcd, 'test', []);
    const old = { name: 'e', type: 'pod', state: 'scheduled', metadata: { scheduledBy: 's', workedBy: 'w3' }, spec: { containers: [{ name: 'c', image: 'old' }] } };
    // The scheduler placed `e` on w3 while w3 was down; then the user deleted and re-created it.
    await t.state.put('resource/pod/e', JSON.stringify({ ...old, state: 'created', metadata: {} }));
    await t.state.txn({ if: [], then: [{ put: 'resource/pod/e', value: JSON.stringify(old) }, { put: 'node.worker/inbox/w3/e', value: JSON.stringify(old) }] });
    await t.state.delete('resource/pod/e');
    const fresh = JSON.stringify({ ...old, state: 'created', metadata: {}, spec: { containers: [{ name: 'c', image: 'new' }] } });
    await t.state.txn({ if: [], then: [{ put: 'resource/pod/e', value: fresh }, { put: 'pod/unscheduled/e', value: fresh }] });
    const ctx = await pluginContext(etcd, 'w3', ['worker'], ['--cluster-cidr', '10.8.0.0/16']);
    const worker = await startWorker(ctx, new SimulatedRuntime());
    try {
      await waitUntil(async () => (await t.state.list('node.worker/inbox/w3/')).kvs.length === 0, { what: 'stale entry dropped' });
      await new Promise((r) => setTimeout(r, 300));
      expect((await t.state.get('resource/pod/e'))!.value).to.equal(fresh);
      expect(await t.state.get('pod/claimed/e')).to.equal(undefined);
      expect(await t.state.get('pod/unscheduled/e')).to.not.equal(undefined);
    } finally {
      await worker.stop();
      await ctx.close();
      await t.close();
    }
  });
});

describe('worker: a pod that ends while etcd is away (real etcd behind a cuttable proxy, simulated runtime)', function () {
  this.timeout(30_000);
  let etcd: TestEtcd;
  let proxy: CuttableProxy;

  before(async () => {
    etcd = await TestEtcd.start();
    proxy = await CuttableProxy.start(etcd.clientPort);
  });
  after(async () => {
    await proxy?.close();
    await etcd?.stop();
  });

  it('writes the final state once etcd is back, however many tries that takes, and then gives its room back', async () => {
    const t = await pluginContext(etcd, 'test', []);
    // The worker reaches etcd only through the proxy, with a deadline on each call as the agent sets one; its retries are
    // quick, so 2 s away is many times its bounded tries.
    const client = () =>
      new Etcd3({ hosts: proxy.endpoint, defaultCallOptions: (call) => (call.isStream ? {} : { deadline: Date.now() + 100 }) });
    const viaProxy = { endpoint: proxy.endpoint, client } as unknown as TestEtcd;
    const ctx = await pluginContext(viaProxy, 'w4', ['worker'], ['--cluster-cidr', '10.7.0.0/16', '--pod-memory-limit', '300']);
    const runtime = new SimulatedRuntime();
    const worker = await startWorker(ctx, runtime, { retry: { baseMs: 10, maxMs: 40, attempts: 5 } });
    try {
      const value = JSON.stringify({
        name: 'f', type: 'pod', state: 'scheduled', metadata: { scheduledBy: 's', workedBy: 'w4' },
        spec: { containers: [{ name: 'c', image: 'i', resources: { requests: { memory: 100 } } }] },
      });
      await t.state.txn({ if: [], then: [{ put: 'resource/pod/f', value }, { put: 'node.worker/inbox/w4/f', value }] });
      const state = async () => JSON.parse((await t.state.get('resource/pod/f'))!.value).state as string;
      await waitUntil(async () => (await state()) === 'running' && runtime.waiting('w4-f'), { what: 'f running' });
      proxy.sever();
      expect(runtime.exit('w4-f', 'exitSuccess')).to.equal(true);
      await new Promise((r) => setTimeout(r, 2500));
      expect(await state()).to.equal('running');
      proxy.restore();
      await waitUntil(async () => (await state()) === 'exitSuccess', { what: 'f exitSuccess after etcd came back', timeoutMs: 15_000 });
      await waitUntil(async () => (await t.state.get('pod/claimed/f')) === undefined && (await t.state.get('node.worker/limits/memory/w4'))?.value === '300', {
        what: 'claim released, room given back',
        timeoutMs: 15_000,
      });
    } finally {
      proxy.restore();
      await worker.stop();
      await ctx.close();
      await t.close();
    }
  });

  it('stops, killing its pods, while etcd has been away longer than its alive lease', async function () {
    this.timeout(90_000);
    const t = await pluginContext(etcd, 'test', []);
    const client = () =>
      new Etcd3({ hosts: proxy.endpoint, defaultCallOptions: (call) => (call.isStream ? {} : { deadline: Date.now() + 500 }) });
    const viaProxy = { endpoint: proxy.endpoint, client } as unknown as TestEtcd;
    const ctx = await pluginContext(viaProxy, 'w5', ['worker'], ['--cluster-cidr', '10.6.0.0/16', '--alive-ttl', '2', '--healthy-ttl', '2']);
    const runtime = new SimulatedRuntime();
    const worker = await startWorker(ctx, runtime, { retry: { baseMs: 10, maxMs: 40, attempts: 5 } });
    let stopped = false;
    try {
      const value = JSON.stringify({ name: 'g', type: 'pod', state: 'scheduled', metadata: { scheduledBy: 's', workedBy: 'w5' }, spec: { containers: [{ name: 'c', image: 'i' }] } });
      await t.state.txn({ if: [], then: [{ put: 'resource/pod/g', value }, { put: 'node.worker/inbox/w5/g', value }] });
      await waitUntil(async () => JSON.parse((await t.state.get('resource/pod/g'))!.value).state === 'running' && runtime.waiting('w5-g'), { what: 'g running' });
      proxy.sever();
      // Past the 2 s alive lease: the lease is lost and being granted again, which etcd cannot answer.
      await new Promise((r) => setTimeout(r, 4000));
      // Bounded by the test's timeout: before, a write on the lost lease waited for its re-grant for ever.
      await worker.stop();
      stopped = true;
      expect(runtime.waiting('w5-g')).to.equal(false);
    } finally {
      proxy.restore();
      if (!stopped) await worker.stop().catch(() => undefined);
      await ctx.close();
      await t.close();
    }
  });
});
