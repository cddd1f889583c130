import { expect } from 'chai';
import { Etcd3 } from 'etcd3';
import { startReaper } from '../../../agent/reaper/plugin.js';
import type { RunningPlugin } from '../../../agent/plugin.js';
import { StateLayer } from '../../../agent/state.js';
import { TestEtcd } from '../../support/etcd.js';
import { testLog } from '../../support/log.js';
import { eventually, pluginContext } from '../scheduler/context.js';

/** A worker as far as etcd can tell: its alive heartbeat and claims on its own alive lease. */
class FakeWorker {
  private constructor(readonly name: string, private readonly client: Etcd3, readonly state: StateLayer) {}
  static async start(etcd: TestEtcd, name: string, prefix: string): Promise<FakeWorker> {
    const client = etcd.client();
    const state = new StateLayer(client, prefix, testLog);
    await state.grantLease('alive', 60);
    await state.put(`node.worker/heartbeat/alive/${name}`, 'lease-established', 'alive');
    return new FakeWorker(name, client, state);
  }
  async pod(name: string, podState: string, claimed = podState !== 'scheduled' && podState !== 'created') {
    const value = JSON.stringify({ name, type: 'pod', state: podState, metadata: { scheduledBy: 's', workedBy: this.name }, spec: { containers: [] } });
    await this.state.put(`resource/pod/${name}`, value);
    if (podState === 'scheduled') await this.state.put(`node.worker/inbox/${this.name}/${name}`, value);
    if (claimed) await this.state.put(`pod/claimed/${name}`, this.name, 'alive');
  }
  /** As if the process died and its alive lease expired. */
  async die() {
    await this.state.revokeLease('alive');
    await this.state.close();
    this.client.close();
  }
}

describe('reaper plugin (real etcd)', function () {
  this.timeout(30_000);
  let etcd: TestEtcd;
  let prefix = '';
  let n = 0;
  const cleanup: (() => Promise<void>)[] = [];

  before(async () => {
    etcd = await TestEtcd.start();
  });
  after(async () => {
    await etcd.stop();
  });
  beforeEach(() => {
    prefix = `/kith-${++n}`;
  });
  afterEach(async () => {
    for (const c of cleanup.splice(0).reverse()) await c().catch(() => undefined);
  });

  const reaper = async (name = 'r1') => {
    const ctx = await pluginContext(etcd, name, ['reaper'], [], prefix);
    const plugin: RunningPlugin = await startReaper(ctx);
    cleanup.push(async () => {
      await plugin.stop();
      await ctx.close();
    });
    return ctx;
  };
  const worker = async (name: string) => {
    const w = await FakeWorker.start(etcd, name, prefix);
    cleanup.push(() => w.die());
    return w;
  };

  it('marks the pods of a worker that dies dead and empties its inbox; others are left alone', async () => {
    const ctx = await reaper();
    const w1 = await worker('w1');
    const w2 = await worker('w2');
    await w1.pod('a-running', 'running');
    await w1.pod('a-accepted', 'accepted');
    await w1.pod('a-scheduled', 'scheduled');
    await w1.pod('a-done', 'exitSuccess', false);
    await w2.pod('b-running', 'running');
    // Values no pod should have, written by another tool: ignored, and the reaper goes on.
    for (const [k, v] of [['odd-null', 'null'], ['odd-array', '[1]'], ['odd-meta', '{"state":"running","metadata":null}'], ['odd-text', 'x']]) {
      await w1.state.put(`resource/pod/${k}`, v!);
    }
    const get = async (p: string) => JSON.parse((await ctx.state.get(`resource/pod/${p}`))!.value) as { state: string; metadata: Record<string, string> };
    await new Promise((r) => setTimeout(r, 200));
    expect((await get('a-running')).state).to.equal('running');

    await w1.die();
    await eventually('w1 pods dead', async () => {
      const s = await Promise.all(['a-running', 'a-accepted', 'a-scheduled'].map(async (p) => (await get(p)).state));
      return s.every((x) => x === 'dead') ? true : undefined;
    });
    expect((await get('a-running')).metadata).to.include({ reapedBy: 'r1', workedBy: 'w1' });
    expect((await get('a-done')).state).to.equal('exitSuccess');
    expect((await get('b-running')).state).to.equal('running');
    expect((await ctx.state.list('node.worker/inbox/w1/')).kvs).to.have.length(0);
  });

  it('finds deaths that happened while no reaper ran', async () => {
    const w1 = await worker('w1');
    await w1.pod('x-running', 'running');
    await w1.pod('x-scheduled', 'scheduled');
    await w1.pod('x-killed', 'killed', false);
    await w1.die();
    const w2 = await worker('w2');
    await w2.pod('y-running', 'running');
    const ctx = await reaper();
    const get = async (p: string) => JSON.parse((await ctx.state.get(`resource/pod/${p}`))!.value).state as string;
    await eventually('x pods dead', async () => ((await get('x-running')) === 'dead' && (await get('x-scheduled')) === 'dead' ? true : undefined));
    expect(await get('x-killed')).to.equal('killed');
    expect(await get('y-running')).to.equal('running');
    expect((await ctx.state.list('node.worker/inbox/')).kvs).to.have.length(0);
  });

  it('reaps once with two reapers, and leaves a worker that comes back under the same name alone', async () => {
    const ctx = await reaper('r1');
    await reaper('r2');
    const w1 = await worker('w1');
    await w1.pod('z', 'running');
    await w1.die();
    await eventually('z dead', async () => (JSON.parse((await ctx.state.get('resource/pod/z'))!.value).state === 'dead' ? true : undefined));
    const kv = (await ctx.state.get('resource/pod/z'))!;
    await new Promise((r) => setTimeout(r, 300));
    expect((await ctx.state.get('resource/pod/z'))!.modRevision).to.equal(kv.modRevision);

    const again = await worker('w1');
    await again.pod('fresh', 'running');
    await new Promise((r) => setTimeout(r, 300));
    expect(JSON.parse((await ctx.state.get('resource/pod/fresh'))!.value).state).to.equal('running');
  });
});
