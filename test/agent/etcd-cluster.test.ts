import { expect } from 'chai';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { buildQuery, parse, udpAsk } from '../dns/client.js';
import { TestAgent } from '../support/agent.js';
import { TestEtcdCluster } from '../support/etcd.js';
import { freePort } from '../support/ports.js';
import { restCaller } from '../support/rest.js';
import { waitUntil } from '../support/wait.js';

/**
 * SPEC §8: an agent given every member of a 3-member etcd cluster keeps
 * serving and writing when the leader is killed, without a restart.
 */
describe('an agent on a 3-member etcd cluster whose leader is killed (SPEC §8)', function () {
  this.timeout(120_000);
  let cluster: TestEtcdCluster;
  let agent: TestAgent | undefined;
  let api: ReturnType<typeof restCaller>;
  let dnsPort: number;

  before(async () => {
    cluster = await TestEtcdCluster.start(3);
    const apiPort = await freePort();
    dnsPort = await freePort();
    agent = TestAgent.start({
      args: [
        '--name', `etcd3-${process.pid}`, '--plugins', 'api,replicaset,dns', '--etcd-endpoints', cluster.endpoints.join(','),
        '--api-listen', `127.0.0.1:${apiPort}`, '--dns-listen', `127.0.0.1:${dnsPort}`, '--upstream-dns', 'none',
      ],
    });
    await agent.ready(60_000);
    api = restCaller(`http://127.0.0.1:${apiPort}`);
  });

  after(async () => {
    await agent?.stop('SIGKILL').catch(() => undefined);
    await cluster?.stop();
  });

  it('keeps answering DNS throughout, answers the API again within seconds, and ends in the exact state asked', async () => {
    const rs = { name: 'web', type: 'replicaset', spec: { replicas: 5, template: { spec: { containers: [{ name: 'a', image: 'localhost/kith/busybox' }] } } } };
    expect((await api('POST', '/resources', rs)).status).to.equal(201);
    // A name in the zone: DNS answers it from the agent's own view, whatever etcd does.
    const node = 'fixed.test.cluster.local';
    const answers = async () => {
      const b = await udpAsk(dnsPort, buildQuery(node, 1), 500);
      return b ? parse(b).answers.length : -1;
    };
    const c = cluster.client();
    await c.put(`/kith/dns/${node}.`).value('10.9.9.9').exec();
    c.close();
    await waitUntil(async () => (await answers()) === 1, { what: 'the record served' });

    // DNS asked every 20 ms from now to the end: every query must be answered.
    let asked = 0;
    let unanswered = 0;
    let digging = true;
    const dig = (async () => {
      for (let i = 0; i < 10_000 && digging; i++) {
        asked++;
        if ((await answers()) !== 1) unanswered++;
        await sleep(20);
      }
    })();

    try {
      // Scale while the leader goes.
      const scaling = api('PATCH', '/resources/replicaset/web', { spec: { ...rs.spec, replicas: 20 } }).catch(() => ({ status: 0, json: undefined }));
      const leader = await cluster.leader();
      await cluster.kill(leader);
      const killedAt = performance.now();
      await scaling;

      // The API answers again (a read, then a write) without a restart of the agent.
      const back = await waitUntil(async () => {
        const r = await api('GET', '/resources/replicaset/web').catch(() => undefined);
        return r?.status === 200 ? performance.now() - killedAt : undefined;
      }, { timeoutMs: 30_000, intervalMs: 100, what: 'the API answering after the leader was killed' });
      console.log(`      API answered again ${(back / 1000).toFixed(2)} s after the leader was killed`);
      const written = await waitUntil(async () => {
        const r = await api('PATCH', '/resources/replicaset/web', { spec: { ...rs.spec, replicas: 30 } }).catch(() => undefined);
        return r?.status === 200 ? performance.now() - killedAt : undefined;
      }, { timeoutMs: 30_000, intervalMs: 200, what: 'a write after the leader was killed' });
      console.log(`      first write committed ${(written / 1000).toFixed(2)} s after the leader was killed`);

      // The controller, on the state layer's watch, made exactly what was asked: 30 replicas, no more.
      const replicas = async () => {
        const r = await api('GET', '/resources/pod');
        return ((r.json ?? []) as unknown as { metadata: { replicaSet?: string } }[]).filter((p) => p.metadata.replicaSet === 'web').length;
      };
      await waitUntil(async () => (await replicas()) === 30, { timeoutMs: 30_000, what: '30 replicas' });
      await sleep(1000);
      expect(await replicas()).to.equal(30);
      expect(agent!.running).to.equal(true);
    } finally {
      digging = false;
      await dig;
    }
    expect(asked).to.be.greaterThan(10);
    expect(unanswered, `${unanswered} of ${asked} DNS queries unanswered`).to.equal(0);
  });
});
