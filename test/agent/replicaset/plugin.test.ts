import { randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { expect } from 'chai';
import type { Etcd3 } from 'etcd3';
import { TestAgent } from '../../support/agent.js';
import { TestEtcd } from '../../support/etcd.js';

/**
 * The replicaset plugin in a real agent against a real etcd. The test plays
 * the API (it writes ReplicaSets), the scheduler and the worker (it writes
 * pod states), and reads what the controller did from etcd.
 */

const PREFIX = '/kith';
const TEMPLATE = { metadata: { app: 'web' }, spec: { containers: [{ name: 'c', image: 'localhost/kith/busybox', cmd: ['httpd', '-f'] }], ports: [{ container: 80, name: 'http' }] } };

interface StoredPod {
  name: string;
  state: string;
  metadata: Record<string, string>;
  spec: { schedulingConstraints?: { cannotBeScheduledOn?: string[] | null } | null };
}

const isLive = (p: StoredPod) => !['exitSuccess', 'exitFailure', 'errored', 'killed', 'abandoned', 'dead'].includes(p.state);

async function until<T>(what: string, fn: () => Promise<T | undefined | false>, timeoutMs = 10_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  while (Date.now() < deadline) {
    try {
      const v = await fn();
      if (v !== undefined && v !== false) return v;
    } catch (err) {
      last = err;
    }
    await sleep(50);
  }
  throw new Error(`timed out waiting for ${what}${last ? `: ${String(last)}` : ''}`);
}

describe('replicaset plugin (real etcd, agent process)', function () {
  this.timeout(60_000);
  let etcd: TestEtcd;
  let client: Etcd3;
  const agents: TestAgent[] = [];

  const startAgent = async () => {
    const agent = TestAgent.start({
      args: ['--name', `rs-${randomBytes(3).toString('hex')}`, '--plugins', 'replicaset', '--etcd-endpoints', etcd.endpoint, '--etcd-prefix', PREFIX, '--log-level', process.env.KITH_TEST_LOG ? 'debug' : 'info'],
    });
    agents.push(agent);
    await agent.ready();
    return agent;
  };

  const putReplicaSet = (name: string, replicas: number, template: unknown = TEMPLATE) =>
    client.put(`${PREFIX}/resource/replicaset/${name}`).value(JSON.stringify({ name, type: 'replicaset', metadata: {}, spec: { replicas, template } }));

  /** Changes spec.replicas as a PATCH would: read, change, write back guarded by the mod revision. */
  const scale = async (name: string, replicas: number) => {
    for (let i = 0; i < 20; i++) {
      const key = `${PREFIX}/resource/replicaset/${name}`;
      const res = await client.get(key).exec();
      const kv = res.kvs[0]!;
      const rs = JSON.parse(kv.value.toString()) as { spec: { replicas: number } };
      rs.spec.replicas = replicas;
      const t = await client.if(key, 'Mod', '==', kv.mod_revision).then(client.put(key).value(JSON.stringify(rs))).commit();
      if (t.succeeded) return;
    }
    throw new Error('scale lost every race');
  };

  const podsOf = async (rs: string): Promise<StoredPod[]> => {
    const all = await client.getAll().prefix(`${PREFIX}/resource/pod/`).strings();
    return Object.values(all)
      .map((v) => JSON.parse(v) as StoredPod)
      .filter((p) => p.metadata.replicaSet === rs)
      .sort((a, b) => a.name.localeCompare(b.name));
  };
  const livePods = async (rs: string) => (await podsOf(rs)).filter(isLive);
  const unscheduled = async () => Object.keys(await client.getAll().prefix(`${PREFIX}/pod/unscheduled/`).strings()).map((k) => k.slice(`${PREFIX}/pod/unscheduled/`.length));

  /** Plays scheduler and worker: sets a pod's state (and worker), consuming its unscheduled marker. */
  const setState = async (name: string, state: string, workedBy?: string) => {
    const key = `${PREFIX}/resource/pod/${name}`;
    const res = await client.get(key).exec();
    const kv = res.kvs[0];
    if (!kv) throw new Error(`pod ${name} is gone`);
    const p = JSON.parse(kv.value.toString()) as StoredPod;
    p.state = state;
    if (workedBy) p.metadata.workedBy = workedBy;
    await client
      .if(key, 'Mod', '==', kv.mod_revision)
      .then(client.put(key).value(JSON.stringify(p)), client.delete().key(`${PREFIX}/pod/unscheduled/${name}`))
      .commit();
  };

  const replicaSet = async (name: string) => {
    const v = await client.get(`${PREFIX}/resource/replicaset/${name}`).string();
    return v ? (JSON.parse(v) as { state?: string; status?: { desired: number; live: number; running: number; rollout?: string } }) : undefined;
  };

  const waitLive = (rs: string, n: number, timeoutMs?: number) =>
    until(`${n} live replicas of ${rs}`, async () => {
      const live = await livePods(rs);
      return live.length === n ? live : undefined;
    }, timeoutMs);

  before(async () => {
    etcd = await TestEtcd.start();
    client = etcd.client();
    await startAgent();
  });

  after(async () => {
    await Promise.all(agents.map((a) => a.stop().catch(() => undefined)));
    client?.close();
    await etcd?.stop();
  });

  it('creates N replicas named <rs>-<5 [a-z0-9]> with their unscheduled markers, and reports status', async () => {
    await putReplicaSet('web', 3);
    const live = await waitLive('web', 3);
    for (const p of live) {
      expect(p.name).to.match(/^web-[a-z0-9]{5}$/);
      expect(p.state).to.equal('created');
      expect(p.metadata).to.deep.equal({ app: 'web', replicaSet: 'web', templateHash: p.metadata.templateHash });
      expect(p.metadata.templateHash).to.match(/^[0-9a-f]{10}$/);
    }
    expect(await unscheduled()).to.include.members(live.map((p) => p.name));
    await until('status 3/3/0', async () => (await replicaSet('web'))?.status?.live === 3);
    const first = (await replicaSet('web'))!;
    expect(first.state).to.equal('progressing');
    expect(first.status).to.deep.include({ desired: 3, live: 3, running: 0, updated: 3, ready: 0, rollout: 'progressing' });
    // Scheduled and running: the status follows.
    for (const [i, p] of live.entries()) await setState(p.name, 'running', `w${i + 1}`);
    await until("state 'ready'", async () => (await replicaSet('web'))?.state === 'ready');
    await until('rollout complete', async () => (await replicaSet('web'))?.status?.rollout === 'complete');
    expect((await replicaSet('web'))!.status).to.deep.include({ desired: 3, live: 3, running: 3, updated: 3, ready: 3, available: 3, rollout: 'complete' });
    // Nothing more happens once the ReplicaSet is satisfied.
    await sleep(300);
    expect(await livePods('web')).to.have.length(3);
  });

  it('replaces a replica that dies, and one that is deleted, keeping the spread', async () => {
    // Three healthy workers, each running one replica; the test plays the scheduler.
    for (const w of ['w1', 'w2', 'w3']) await client.put(`${PREFIX}/node.worker/heartbeat/healthy/${w}`).value('lease-established');
    const before = await livePods('web');
    const victim = before.find((p) => p.metadata.workedBy === 'w2')!;
    await setState(victim.name, 'dead');
    const after = await until('a replacement', async () => {
      const live = await livePods('web');
      return live.length === 3 && !live.some((p) => p.name === victim.name) ? live : undefined;
    });
    const fresh = after.find((p) => !before.some((b) => b.name === p.name))!;
    expect(fresh.state).to.equal('created');
    // It avoids the workers that run a live replica: only w2 is left for it.
    expect(fresh.spec.schedulingConstraints?.cannotBeScheduledOn).to.deep.equal(['w1', 'w3']);
    // The dead replica stays for inspection (a few are kept).
    expect((await podsOf('web')).map((p) => p.name)).to.include(victim.name);
    await setState(fresh.name, 'running', 'w2');

    // A replica deleted through the API (resource and marker in one transaction) is replaced too.
    const gone = after.find((p) => p.metadata.workedBy === 'w1')!;
    await client.delete().key(`${PREFIX}/resource/pod/${gone.name}`);
    const again = await until('a replacement of the deleted one', async () => {
      const live = await livePods('web');
      return live.length === 3 && !live.some((p) => p.name === gone.name) ? live : undefined;
    });
    const fresh2 = again.find((p) => p.state === 'created')!;
    expect(fresh2.spec.schedulingConstraints?.cannotBeScheduledOn).to.deep.equal(['w2', 'w3']);
    await setState(fresh2.name, 'running', 'w1');
  });

  it('keeps only a few ended replicas: older ones are deleted as more end', async () => {
    for (let i = 0; i < 6; i++) {
      const live = await waitLive('web', 3);
      const p = live.find((x) => x.state === 'running') ?? live[0]!;
      await setState(p.name, 'exitSuccess');
      await until('replacement', async () => (await livePods('web')).length === 3 && !(await livePods('web')).some((x) => x.name === p.name));
      for (const q of await livePods('web')) if (q.state === 'created') await setState(q.name, 'running', 'w1');
    }
    await until('ended replicas bounded', async () => (await podsOf('web')).filter((p) => !isLive(p)).length <= 3);
    expect((await podsOf('web')).filter((p) => !isLive(p)).length).to.be.at.most(3);
    expect(await livePods('web')).to.have.length(3);
  });

  it('holds back new replicas of a template that keeps failing, with a growing delay', async () => {
    await putReplicaSet('crash', 1);
    const delays: number[] = [];
    let current = (await waitLive('crash', 1))[0]!;
    for (let i = 0; i < 4; i++) {
      await setState(current.name, 'errored', 'w1');
      const t0 = Date.now();
      const next = await until(`replacement ${i + 1}`, async () => (await livePods('crash')).find((p) => p.name !== current.name));
      delays.push(Date.now() - t0);
      current = next;
    }
    // 250, 500, 1000, 2000 ms (plus the time to notice).
    expect(delays[0]).to.be.below(1000);
    expect(delays[3]).to.be.at.least(1800);
    expect(delays[3]).to.be.greaterThan(delays[0]! * 2);
    await agents[0]!.waitFor((l) => l.msg === 'replicas keep failing; holding back new ones' && l.replicaSet === 'crash', 1000);
    await client.delete().key(`${PREFIX}/resource/replicaset/crash`);
    await until('crash cleaned', async () => (await podsOf('crash')).length === 0);
  });

  it('scales up, then down removing replicas not yet running first, then the newest', async () => {
    await putReplicaSet('api', 2);
    const first = await waitLive('api', 2);
    for (const p of first) await setState(p.name, 'running', 'w1');
    await scale('api', 5);
    const five = await waitLive('api', 5);
    const added = five.filter((p) => !first.some((f) => f.name === p.name));
    // One of the new ones runs (the newest running replica), two stay waiting.
    await setState(added[0]!.name, 'running', 'w2');
    await scale('api', 2);
    const two = await waitLive('api', 2);
    expect(two.map((p) => p.name).sort()).to.deep.equal(first.map((p) => p.name).sort());
    // Removed replicas are deleted with their unscheduled markers.
    const markers = await unscheduled();
    for (const p of added) expect(markers).to.not.include(p.name);
    await until('status after scale-down', async () => (await replicaSet('api'))?.status?.desired === 2 && (await replicaSet('api'))?.status?.live === 2);
    await scale('api', 0);
    await waitLive('api', 0);
  });

  it('deletes every replica, ended ones included, and its list when the ReplicaSet is deleted', async () => {
    expect((await podsOf('web')).length).to.be.greaterThan(3);
    await client.delete().key(`${PREFIX}/resource/replicaset/web`);
    await until('no pods of web', async () => (await podsOf('web')).length === 0);
    await until('no list of web', async () => (await client.get(`${PREFIX}/replicaset/replicas/web`).string()) === null);
    const markers = await unscheduled();
    expect(markers.filter((m) => m.startsWith('web-'))).to.deep.equal([]);
  });

  it('leaves a stored ReplicaSet that is invalid alone, and the agent keeps working', async () => {
    await client.put(`${PREFIX}/resource/replicaset/broken`).value('{"name":"broken","type":"replicaset","spec":{"replicas":-1}}');
    await client.put(`${PREFIX}/resource/replicaset/junk`).value('not json at all');
    // A status of the wrong shape is rewritten, not a reason to leave the ReplicaSet alone.
    await client.put(`${PREFIX}/resource/replicaset/odd`).value(JSON.stringify({ name: 'odd', type: 'replicaset', spec: { replicas: 1, template: TEMPLATE }, status: 'weird' }));
    await waitLive('odd', 1);
    await until('odd status rewritten', async () => typeof (await replicaSet('odd'))?.status === 'object');
    await putReplicaSet('after', 1);
    await waitLive('after', 1);
    expect(await podsOf('broken')).to.deep.equal([]);
    expect(await podsOf('junk')).to.deep.equal([]);
    await agents[0]!.waitFor((l) => l.msg === 'stored ReplicaSet is invalid; leaving it alone' && l.replicaSet === 'broken', 2000);
    expect(agents[0]!.running).to.equal(true);
    for (const rs of ['after', 'odd', 'broken', 'junk']) await client.delete().key(`${PREFIX}/resource/replicaset/${rs}`);
    await until('after cleaned', async () => (await podsOf('after')).length === 0 && (await podsOf('odd')).length === 0);
  });

  it('two agents running the controller at once never exceed N live replicas, through churn', async () => {
    await startAgent();
    const N = 4;
    // Count live replicas at every revision, from a watch that sees every event in order.
    const live = new Set<string>();
    let peak = 0;
    let events = 0;
    const watcher = await client.watch().prefix(`${PREFIX}/resource/pod/`).create();
    watcher.on('put', (kv) => {
      const p = JSON.parse(kv.value.toString()) as StoredPod;
      if (p.metadata.replicaSet !== 'race') return;
      events++;
      if (isLive(p)) live.add(p.name);
      else live.delete(p.name);
      peak = Math.max(peak, live.size);
    });
    watcher.on('delete', (kv) => live.delete(kv.key.toString().slice(`${PREFIX}/resource/pod/`.length)));
    try {
      await putReplicaSet('race', N);
      await waitLive('race', N);
      // Churn for a bounded time: replicas die, get deleted, get scheduled and run.
      const deadline = Date.now() + 6000;
      for (let i = 0; i < 200 && Date.now() < deadline; i++) {
        const pods = await livePods('race');
        const p = pods[i % Math.max(1, pods.length)];
        if (p) {
          if (i % 3 === 0) await client.delete().key(`${PREFIX}/resource/pod/${p.name}`);
          else if (i % 3 === 1) await setState(p.name, 'dead').catch(() => undefined);
          else await setState(p.name, 'running', `w${1 + (i % 3)}`).catch(() => undefined);
        }
        await sleep(20);
      }
      const settled = await waitLive('race', N);
      expect(settled).to.have.length(N);
      expect(events).to.be.greaterThan(30);
      expect(peak, 'live replicas at any revision').to.be.at.most(N);
    } finally {
      await watcher.cancel();
    }
    await client.delete().key(`${PREFIX}/resource/replicaset/race`);
    await until('race cleaned', async () => (await podsOf('race')).length === 0);
  });
});
