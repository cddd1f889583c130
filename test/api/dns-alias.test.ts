import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { expect } from 'chai';
import { freePort, loopbackAddress } from '../support/ports.js';
import { ApiHarness } from './harness.js';

const run = promisify(execFile);

describe('api + dns: an alias made over REST is served by the dns plugin', function () {
  this.timeout(60_000);
  let h: ApiHarness;
  let port: number;

  const dig = async (name: string): Promise<{ status: string; answers: string[] }> => {
    const { stdout } = await run('dig', ['@127.0.0.1', '-p', String(port), '+tries=1', '+time=1', name, 'A']);
    const status = /status: ([A-Z]+)/.exec(stdout)?.[1] ?? 'none';
    const answers = stdout
      .split('\n')
      .filter((l) => l && !l.startsWith(';') && /\sIN\s+A\s/.test(l))
      .map((l) => l.trim().split(/\s+/).at(-1)!)
      .sort();
    return { status, answers };
  };

  let addr: string;

  before(async () => {
    port = await freePort();
    addr = await loopbackAddress(80);
    h = await ApiHarness.start(['--plugins', 'dns,api', '--dns-listen', `127.0.0.1:${port}`, '--upstream-dns', 'none'], { clusterAddress: addr });
  });
  after(async () => {
    await h?.stop();
  });

  it('resolves the api node and api.special from the records the api plugin publishes', async () => {
    await h.until(async () => (await dig(`${h.name}.api.node.cluster.local`)).answers.join() === addr);
    expect((await dig('api.special.cluster.local')).answers).to.deep.equal([addr]);
    expect((await h.request('GET', `/resources/node.api/${h.name}`)).body.spec).to.deep.equal({ address: addr });
    // An API that does not listen on <cluster-address>:80 keeps its node name but stays out of api.special.
    const other = await loopbackAddress(80);
    const peer = await h.peer(['--cluster-address', other]);
    try {
      await h.until(async () => (await dig(`${peer.name}.api.node.cluster.local`)).answers.join() === other);
      expect((await h.request('GET', '/dns_aliases/special/api')).body).to.deep.equal([`${h.name}.api.node.cluster.local.`]);
      expect((await dig('api.special.cluster.local')).answers).to.deep.equal([addr]);
    } finally {
      await peer.stop();
    }
  });

  it('resolves an alias created with PUT, follows a chain of aliases, and forgets it after DELETE', async () => {
    await h.put('dns/db.pod.cluster.local.', '10.244.7.9');
    expect((await dig('www.shop.cluster.local')).status).to.equal('NXDOMAIN');
    expect((await h.request('PUT', `/dns_aliases/shop/www/api.node/${h.name}`)).status).to.equal(204);
    await h.until(async () => (await dig('www.shop.cluster.local')).answers.join() === addr);
    // www.shop -> api node and -> store.shop -> db.pod: the union of both.
    expect((await h.request('PUT', '/dns_aliases/shop/store/pod/db')).status).to.equal(204);
    expect((await h.request('PUT', '/dns_aliases/shop/www/shop/store')).status).to.equal(204);
    await h.until(async () => (await dig('www.shop.cluster.local')).answers.join() === ['10.244.7.9', addr].sort().join());
    expect((await h.request('DELETE', '/dns_aliases/shop/www/shop/store')).status).to.equal(204);
    expect((await h.request('DELETE', `/dns_aliases/shop/www/api.node/${h.name}`)).status).to.equal(204);
    await h.until(async () => (await dig('www.shop.cluster.local')).status === 'NXDOMAIN');
    expect((await dig('store.shop.cluster.local')).answers).to.deep.equal(['10.244.7.9']);
    await h.del('dns/db.pod.cluster.local.');
  });
});
