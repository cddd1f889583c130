import { expect } from 'chai';
import { desiredRoutes, ROUTE_PROTO, routeChanges, RouteTable } from '../../../agent/worker/routes.js';
import { TestLan, type TestHost } from '../../support/hosts.js';
import { testLog } from '../../support/log.js';
import { waitUntil } from '../../support/wait.js';

describe('host-gw routes', () => {
  const subnets = new Map([
    ['10.1.1.0/24', { worker: 'me', hostAddress: '192.0.2.1' }],
    ['10.1.2.0/24', { worker: 'b', hostAddress: '192.0.2.2' }],
    ['10.1.3.0/24', { worker: 'c', hostAddress: '192.0.2.3' }],
    ['10.1.4.0/24', { worker: 'd' }],
  ]);
  it('routes every other live worker\'s subnet via its host address', () => {
    const d = desiredRoutes({ worker: 'me', hostAddress: '192.0.2.1' }, subnets, new Set(['me', 'b', 'd']));
    expect([...d]).to.deep.equal([['10.1.2.0/24', '192.0.2.2']]);
  });
  it('diffs the routes in place against the wanted ones', () => {
    const cur = new Map([['10.1.2.0/24', '192.0.2.9'], ['10.1.5.0/24', '192.0.2.5']]);
    const want = new Map([['10.1.2.0/24', '192.0.2.2'], ['10.1.3.0/24', '192.0.2.3']]);
    expect(routeChanges(cur, want)).to.deep.equal({
      replace: [['10.1.2.0/24', '192.0.2.2'], ['10.1.3.0/24', '192.0.2.3']],
      remove: ['10.1.5.0/24'],
    });
  });
});

/** The host-gw route table with real `ip route`, inside a test host. */
describe('host-gw routes (real ip route in a test host)', function () {
  this.timeout(60_000);
  let lan: TestLan;
  let host: TestHost;
  let peer: string;
  const routes = async () => {
    const rows = JSON.parse((await host.run('ip', ['-j', '-4', 'route', 'show'])).stdout) as { dst: string; gateway?: string; protocol?: string }[];
    return rows.filter((r) => r.dst.startsWith('10.201.')).map((r) => `${r.dst} via ${r.gateway} ${r.protocol ?? 'boot'}`).sort();
  };

  before(async () => {
    lan = await TestLan.create({ hosts: 1 });
    host = lan.hosts[0]!;
    peer = lan.gateway; // on the host's link
  });
  after(async () => {
    await lan?.destroy();
  });

  it('adopts the routes a killed run left, keeps those still wanted, removes the rest, and leaves other routes alone', async () => {
    await host.run('ip', ['route', 'add', '10.201.1.0/24', 'via', peer, 'proto', String(ROUTE_PROTO)]);
    await host.run('ip', ['route', 'add', '10.201.2.0/24', 'via', peer, 'proto', String(ROUTE_PROTO)]);
    await host.run('ip', ['route', 'add', '10.201.3.0/24', 'via', peer]);
    const table = new RouteTable(testLog, { wrap: host.wrap });
    expect(Object.fromEntries(await table.start())).to.deep.equal({ '10.201.1.0/24': peer, '10.201.2.0/24': peer });
    await table.sync(new Map([['10.201.1.0/24', peer], ['10.201.5.0/24', peer]]));
    expect(await routes()).to.deep.equal([
      `10.201.1.0/24 via ${peer} ${ROUTE_PROTO}`,
      `10.201.3.0/24 via ${peer} boot`,
      `10.201.5.0/24 via ${peer} ${ROUTE_PROTO}`,
    ]);
    await table.close();
    expect(await routes()).to.deep.equal([`10.201.3.0/24 via ${peer} boot`]);
    await host.run('ip', ['route', 'del', '10.201.3.0/24']);
  });

  it('tries a failed change again until it succeeds', async () => {
    const table = new RouteTable(testLog, { wrap: host.wrap, retryMs: { first: 100, max: 400 } });
    try {
      await table.start();
      // 192.0.2.77 is on no link of the host yet: the kernel refuses the route.
      await table.sync(new Map([['10.201.4.0/24', '192.0.2.77']]));
      expect(table.failing).to.equal(1);
      expect(await routes()).to.deep.equal([]);
      await host.run('ip', ['addr', 'add', '192.0.2.1/24', 'dev', 'eth0']);
      await waitUntil(async () => (await routes()).length === 1, { timeoutMs: 10_000, what: 'the route, once its gateway is reachable' });
      expect(await routes()).to.deep.equal([`10.201.4.0/24 via 192.0.2.77 ${ROUTE_PROTO}`]);
      expect(table.failing).to.equal(0);
    } finally {
      await table.close();
      await host.run('ip', ['addr', 'del', '192.0.2.1/24', 'dev', 'eth0']).catch(() => undefined);
    }
    expect(await routes()).to.deep.equal([]);
  });

  it('keeps working after a change that throws', async () => {
    const table = new RouteTable(testLog, { wrap: host.wrap, retryMs: { first: 100, max: 100 } });
    try {
      // execa refuses an argument with a NUL byte before running anything.
      await table.sync(new Map([['10.201.6.0/24', `${peer}\u0000`]]));
      await table.sync(new Map([['10.201.7.0/24', peer]]));
      expect(await routes()).to.deep.equal([`10.201.7.0/24 via ${peer} ${ROUTE_PROTO}`]);
    } finally {
      await table.close();
    }
    expect(await routes()).to.deep.equal([]);
  });
});
