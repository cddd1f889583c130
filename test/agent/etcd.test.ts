import { expect } from 'chai';
import { rmSync } from 'node:fs';
import type { Etcd3 } from 'etcd3';
import { TestAgent } from '../support/agent.js';
import { TestEtcd } from '../support/etcd.js';
import { makeTestPki, type TestPki } from '../support/tls.js';

/** The reaper registers a node and needs neither podman nor ports. */
const PLUGIN = 'reaper';

describe('etcd over TLS with client certificates (a real etcd that demands them)', function () {
  this.timeout(90_000);
  let pki: TestPki;
  let etcd: TestEtcd;
  let client: Etcd3;
  const agents: TestAgent[] = [];

  const start = (args: string[], env: NodeJS.ProcessEnv = {}) => {
    const a = TestAgent.start({ args: ['--plugins', PLUGIN, '--etcd-endpoints', etcd.endpoint, ...args], env });
    agents.push(a);
    return a;
  };
  /** The one line of a start refused before anything was written, and its exit code. */
  const refused = async (a: TestAgent) => {
    const code = await a.exited;
    await a.stop();
    return { code, line: a.stderr.trim() };
  };

  before(async () => {
    pki = makeTestPki();
    etcd = await TestEtcd.start({ pki });
    client = etcd.client();
  });
  afterEach(async () => {
    for (const a of agents.splice(0)) await a.stop().catch(() => undefined);
  });
  after(async () => {
    client?.close();
    await etcd?.stop();
    if (pki) rmSync(pki.dir, { recursive: true, force: true });
  });

  it('works with the CA and a client certificate, given as flags or as env', async () => {
    const a = start(['--name', 'tls-a', '--etcd-ca', pki.ca, '--etcd-cert', pki.clientCert, '--etcd-key', pki.clientKey]);
    await a.ready();
    expect(JSON.parse((await client.get('/kith/node.reaper/heartbeat/alive/tls-a').string())!)).to.include({ pid: a.proc.pid });
    const b = start(['--name', 'tls-b'], { KITH_ETCD_CA: pki.ca, KITH_ETCD_CERT: pki.clientCert, KITH_ETCD_KEY: pki.clientKey });
    await b.ready();
    expect(await b.stop()).to.equal(0);
    expect(await client.get('/kith/node.reaper/heartbeat/alive/tls-b').string()).to.equal(null);
  });

  it('refuses a missing or unreadable file in one line naming its flag, exit 2', async () => {
    const missing = await refused(start(['--name', 'tls-c', '--etcd-ca', `${pki.dir}/nope.pem`, '--etcd-cert', pki.clientCert, '--etcd-key', pki.clientKey]));
    expect(missing).to.deep.equal({ code: 2, line: `kith agent: --etcd-ca '${pki.dir}/nope.pem': cannot read it (ENOENT)` });
    const dir = await refused(start(['--name', 'tls-c', '--etcd-ca', pki.ca, '--etcd-cert', pki.dir, '--etcd-key', pki.clientKey]));
    expect(dir).to.deep.equal({ code: 2, line: `kith agent: --etcd-cert '${pki.dir}': cannot read it (EISDIR)` });
    const half = await refused(start(['--name', 'tls-c', '--etcd-ca', pki.ca, '--etcd-cert', pki.clientCert]));
    expect(half).to.deep.equal({ code: 2, line: `kith agent: --etcd-cert '${pki.clientCert}': needs --etcd-key` });
    const plain = await refused(start(['--name', 'tls-c']));
    expect(plain.code).to.equal(2);
    expect(plain.line).to.equal(`kith agent: --etcd-endpoints '${etcd.endpoint}': https:// endpoints need --etcd-ca`);
    expect(await client.getAll().prefix('/kith/').keys()).to.not.include('/kith/node.reaper/heartbeat/alive/tls-c');
  });

  it('refuses a certificate etcd does not trust, or none, in one line naming the TLS flags, exit 2, and at once', async () => {
    const t0 = Date.now();
    const stranger = await refused(start(['--name', 'tls-d', '--etcd-ca', pki.ca, '--etcd-cert', pki.strangerCert, '--etcd-key', pki.strangerKey]));
    expect(stranger.code).to.equal(2);
    expect(stranger.line).to.match(new RegExp(`^kith agent: --etcd-ca '${pki.ca}', --etcd-cert '${pki.strangerCert}': etcd at ${etcd.endpoint} refused the TLS handshake`));
    const none = await refused(start(['--name', 'tls-d', '--etcd-ca', pki.ca]));
    expect(none.code).to.equal(2);
    expect(none.line).to.match(/^kith agent: --etcd-ca '[^']+' \(no --etcd-cert\): etcd at \S+ refused the TLS handshake/);
    // Not the 15 s an unreachable etcd is waited for.
    expect(Date.now() - t0).to.be.below(20_000);
  });
});
