import { expect } from 'chai';
import { waitUntil } from '../../support/wait.js';
import { SimCluster, type PodMonitor } from './sim-cluster.js';

/**
 * Rollouts end to end on a real etcd and a real agent (api, scheduler,
 * reaper, replicaset), with three workers on the simulated runtime, driven by
 * the `kith` CLI: apply, rollout status, history and undo.
 */

const manifest = (name: string, image: string, extra: Record<string, unknown> = {}, spec: Record<string, unknown> = {}) =>
  JSON.stringify({
    name,
    type: 'replicaset',
    spec: { replicas: 3, template: { metadata: { app: name }, spec: { containers: [{ name: 'c', image, cmd: ['httpd', '-f'] }], ...spec } }, ...extra },
  });

describe('ReplicaSet rollouts (real etcd, agent, CLI; simulated workers)', function () {
  this.timeout(180_000);
  let cluster: SimCluster;
  let monitor: PodMonitor | undefined;

  before(async () => {
    cluster = await SimCluster.start(3, `ro${process.pid % 1000}`);
  });

  afterEach(async () => {
    await monitor?.close();
    monitor = undefined;
  });

  after(async () => {
    await cluster?.stop();
  });

  const apply = async (text: string) => {
    const r = await cluster.kith(['apply', '-f', '-'], text);
    expect(r.exitCode, r.stderr).to.equal(0);
  };
  const steady = (rs: string, hash?: string) =>
    waitUntil(() => {
      const pods = [...monitor!.pods.values()];
      return pods.length === 3 && pods.every((p) => p.state === 'running' && (hash === undefined || p.templateHash === hash)) ? pods : undefined;
    }, { timeoutMs: 60_000, what: `3 running replicas of ${rs}` });

  it('a template change rolls every pod, never more than replicas + maxSurge alive nor fewer than replicas - maxUnavailable running', async () => {
    monitor = await cluster.monitor('web');
    await apply(manifest('web', 'localhost/kith/v1'));
    const first = await cluster.kith(['rollout', 'status', 'replicaset', 'web', '--timeout', '60s']);
    expect(first.exitCode, first.stderr).to.equal(0);
    const [v1] = (await steady('web')).map((p) => p.templateHash);
    monitor.arm();

    await apply(manifest('web', 'localhost/kith/v2'));
    const status = await cluster.kith(['rollout', 'status', 'replicaset', 'web', '--timeout', '90s']);
    expect(status.exitCode, status.stderr).to.equal(0);
    expect(status.stdout).to.match(/of 3 updated/);
    expect(status.stdout).to.match(/replicaset\/web rolled out/);
    await waitUntil(() => monitor!.pods.size === 3 && !monitor!.hashes().includes(v1!), { timeoutMs: 10_000, what: 'only v2 pods' });
    expect(monitor.hashes()).to.have.length(1);
    expect(monitor.maxLive, 'most pods alive at any revision').to.be.at.most(4);
    expect(monitor.minRunning, 'fewest pods running at any revision').to.be.at.least(3);

    const got = await cluster.kith(['get', 'replicaset', 'web']);
    expect(got.stdout).to.match(/UPDATED/);
    expect(got.stdout).to.match(/\bcomplete\b/);
    const history = await cluster.kith(['rollout', 'history', 'replicaset', 'web']);
    expect(history.exitCode, history.stderr).to.equal(0);
    expect(history.stdout.trim().split('\n').slice(1).map((l) => l.split(/\s+/)[0])).to.deep.equal(['1', '2']);
    expect(history.stdout).to.include('localhost/kith/v2');
  });

  it('with maxSurge 0 and maxUnavailable 1, and percentages, the bounds hold', async () => {
    monitor = await cluster.monitor('pct');
    await apply(manifest('pct', 'localhost/kith/v1', { strategy: { maxSurge: 0, maxUnavailable: '34%' } }));
    await steady('pct');
    monitor.arm();
    await apply(manifest('pct', 'localhost/kith/v2', { strategy: { maxSurge: 0, maxUnavailable: '34%' } }));
    const status = await cluster.kith(['rollout', 'status', 'replicaset', 'pct', '--timeout', '90s']);
    expect(status.exitCode, status.stderr).to.equal(0);
    expect(monitor.maxLive).to.be.at.most(3);
    expect(monitor.minRunning).to.be.at.least(2);
  });

  it('refuses a strategy whose bounds are both 0, naming the field', async () => {
    const r = await cluster.kith(['apply', '-f', '-'], manifest('bad', 'localhost/kith/v1', { strategy: { maxSurge: 0, maxUnavailable: '0%' } }));
    expect(r.exitCode).to.equal(1);
    expect(r.stderr).to.match(/strategy\.maxUnavailable/);
  });

  it('a template whose pods never get ready stalls after progressDeadlineSeconds with the old pods kept, and undo completes it', async () => {
    monitor = await cluster.monitor('stuck');
    await apply(manifest('stuck', 'localhost/kith/v1', { progressDeadlineSeconds: 3 }));
    const [v1] = (await steady('stuck')).map((p) => p.templateHash);
    monitor.arm();
    // No worker is called 'nowhere': the new pods are never placed, so never ready.
    await apply(manifest('stuck', 'localhost/kith/v2', { progressDeadlineSeconds: 3 }, { schedulingConstraints: { mayBeScheduledOn: ['nowhere'] } }));
    const stalled = await cluster.kith(['rollout', 'status', 'replicaset', 'stuck', '--timeout', '60s']);
    expect(stalled.exitCode, stalled.stdout).to.equal(1);
    expect(stalled.stderr).to.match(/stalled/);
    const old = [...monitor.pods.values()].filter((p) => p.templateHash === v1);
    expect(old, 'the old pods keep serving').to.have.length(3);
    expect(old.every((p) => p.state === 'running')).to.equal(true);
    expect(monitor.minRunning).to.be.at.least(3);

    const undo = await cluster.kith(['rollout', 'undo', 'replicaset', 'stuck']);
    expect(undo.exitCode, undo.stderr).to.equal(0);
    expect(undo.stdout).to.match(/rolled back to revision 1/);
    const done = await cluster.kith(['rollout', 'status', 'replicaset', 'stuck', '--timeout', '60s']);
    expect(done.exitCode, done.stderr).to.equal(0);
    await waitUntil(() => monitor!.pods.size === 3 && monitor!.hashes().length === 1 && monitor!.hashes()[0] === v1, { timeoutMs: 10_000, what: 'only the v1 pods' });
    const history = await cluster.kith(['rollout', 'history', 'replicaset', 'stuck']);
    // The v1 template came back as the newest revision.
    expect(history.stdout.trim().split('\n').slice(1).map((l) => l.split(/\s+/)[0])).to.deep.equal(['2', '3']);
    expect(monitor.maxLive).to.be.at.most(4);
  });

  it('rollout commands: a missing ReplicaSet is 1 with the API\'s detail; bad arguments are 2', async () => {
    const missing = await cluster.kith(['rollout', 'status', 'replicaset', 'nosuch']);
    expect(missing.exitCode).to.equal(1);
    expect(missing.stderr.trim().split('\n')).to.have.length(1);
    expect((await cluster.kith(['rollout', 'undo', 'replicaset', 'web', '--to-revision', 'x'])).exitCode).to.equal(2);
    expect((await cluster.kith(['rollout', 'status', 'replicaset', 'web', '--timeout', 'soon'])).exitCode).to.equal(2);
    expect((await cluster.kith(['rollout', 'status', 'pod', 'web'])).exitCode).to.equal(2);
    const none = await cluster.kith(['rollout', 'undo', 'replicaset', 'web', '--to-revision', '99']);
    expect(none.exitCode).to.equal(1);
    expect(none.stderr).to.match(/no revision 99/);
  });
});
