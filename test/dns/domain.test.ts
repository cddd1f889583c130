import { expect } from 'chai';
import type { Etcd3 } from 'etcd3';
import { TestAgent } from '../support/agent.js';
import { TestEtcd } from '../support/etcd.js';
import { freePort } from '../support/ports.js';
import { dig, until } from './client.js';

/** `--cluster-domain`: the zone, its records and its aliases under a domain other than cluster.local. */
describe('dns plugin with --cluster-domain (real agent and etcd)', function () {
  this.timeout(60_000);
  let etcd: TestEtcd;
  let client: Etcd3;
  let agent: TestAgent;
  let port: number;
  const put = (key: string, value: string) => client.put(`/kith/${key}`).value(value).exec();

  before(async () => {
    etcd = await TestEtcd.start();
    client = etcd.client();
    port = await freePort();
    await put('dns/n1.worker.node.corp.internal.', '10.77.0.1');
    await put('dns/dns.special.corp.internal./n1.worker.node.corp.internal.', 'alias');
    agent = TestAgent.start({
      args: ['--name', 'domain-test', '--plugins', 'dns', '--etcd-endpoints', etcd.endpoint, '--dns-listen', `127.0.0.1:${port}`,
        '--upstream-dns', 'none', '--cluster-domain', 'corp.internal', '--cluster-cidr', '10.77.0.0/16'],
    });
    await agent.ready();
  });
  after(async () => {
    await agent?.stop().catch(() => undefined);
    client?.close();
    await etcd?.stop();
  });

  it('serves pods, aliases, the apex and the reverse zone under the domain, and refuses cluster.local', async () => {
    await put('dns/web.pod.corp.internal.', '10.77.0.9');
    await put('dns/www.shop.corp.internal./web.pod.corp.internal.', 'alias');
    await until(async () => (await dig(port, ['www.shop.corp.internal', 'A'])).answer.length === 1);
    expect((await dig(port, ['web.pod.corp.internal', 'A'])).answer).to.deep.equal(['web.pod.corp.internal. 5 IN A 10.77.0.9']);
    expect((await dig(port, ['www.shop.corp.internal', 'A'])).answer).to.deep.equal(['www.shop.corp.internal. 5 IN A 10.77.0.9']);
    const soa = await dig(port, ['corp.internal', 'SOA']);
    expect(soa.flags).to.include('aa');
    // A node with no worker or api name: the MNAME is the dns.special name.
    expect(soa.answer[0]).to.match(/^corp\.internal\. 5 IN SOA dns\.special\.corp\.internal\. admin\.corp\.internal\. \d+ /);
    expect((await dig(port, ['corp.internal', 'NS'])).answer).to.deep.equal(['corp.internal. 5 IN NS dns.special.corp.internal.']);
    expect((await dig(port, ['-x', '10.77.0.9'])).answer).to.deep.equal(['9.0.77.10.in-addr.arpa. 5 IN PTR web.pod.corp.internal.']);
    const missing = await dig(port, ['nothing.pod.corp.internal', 'A']);
    expect(missing.status).to.equal('NXDOMAIN');
    // cluster.local is just another name outside the zone now, and forwarding is off.
    expect((await dig(port, ['web.pod.cluster.local', 'A'])).status).to.equal('REFUSED');
  });
});
