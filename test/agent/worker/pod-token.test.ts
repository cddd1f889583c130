import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { expect } from 'chai';
import { hashSecret, tokenRequest } from '../../../api/tokens.js';
import { podTokenValue } from '../../../agent/worker/pod-token.js';
import type { StateLayer } from '../../../agent/state.js';
import type { TestAgent } from '../../support/agent.js';
import type { TestHost } from '../../support/hosts.js';
import { waitUntil } from '../../support/wait.js';
import { createPod } from '../scheduler/context.js';
import { oneHost, podmanIn, randomClusterCidr, startWorkerAgent, waitPod, type OneHost } from './cluster.js';

const IMAGE = 'localhost/kith/busybox';

describe('pods\' own API tokens (pure)', () => {
  it('stores only the hash, with the role, the worker as creator and the pod\'s name', () => {
    const v = podTokenValue('web', 'view', 'w1', 'kith_secret', new Date('2026-01-01T00:00:00Z'));
    expect(v).to.deep.equal({ name: 'pod.web', role: 'view', hash: hashSecret('kith_secret'), createdBy: 'worker:w1', createdAt: '2026-01-01T00:00:00.000Z' });
    expect(JSON.stringify(v)).to.not.include('kith_secret');
  });

  it('refuses `pod.` names for tokens made over the API', () => {
    expect(tokenRequest.safeParse({ role: 'view', name: 'pod.web' }).success).to.equal(false);
    expect(tokenRequest.safeParse({ role: 'view', name: 'ci.web' }).success).to.equal(true);
  });
});

/**
 * SPEC §9: a pod gets an API token only when its spec asks (`apiAccess`), in
 * every container at /run/secrets/kith/token with KITH_API set; the token
 * has the role asked for through api.special, and is gone with the pod.
 * Real podman pods in a test host whose agent runs the worker, DNS and the
 * API with tokens.
 */
describe('pods\' own API tokens (real podman, the API through api.special)', function () {
  this.timeout(180_000);
  let bed: OneHost | undefined;
  let host: TestHost;
  let state: StateLayer;
  let agent: TestAgent | undefined;

  before(async () => {
    bed = await oneHost();
    ({ host, state } = bed);
    const { lan, etcd, etcdUrl } = bed;
    agent = startWorkerAgent({
      lan, host, etcd, etcdUrl, clusterCidr: randomClusterCidr(), plugins: 'worker,dns,api,scheduler',
      extra: ['--api-auth', 'token', '--pod-cpu-limit', '8', '--pod-memory-limit', '8192'],
    });
    await agent.ready(60_000);
  });

  after(async () => {
    await agent?.stop('SIGKILL').catch(() => undefined);
    await bed?.destroy();
  });

  const waitRunning = (name: string) => waitPod(state, name, 'running', (p) => p.state === 'running');
  const sh = (pod: string, container: string, script: string) => podmanIn(host, ['exec', `${host.name}-${pod}-${container}`, 'sh', '-c', script]).catch((e: Error) => e.message);
  /** The status line of a request to the API through api.special, with the pod's token when it has one. */
  const ask = (pod: string, container: string, method: string, path: string) =>
    // stdin stays open a while: busybox nc stops reading the reply once its input ends.
    sh(pod, container, `t=$(cat /run/secrets/kith/token 2>/dev/null); (printf "${method} ${path} HTTP/1.0\\r\\n\${t:+Authorization: Bearer $t\\r\\n}\\r\\n"; sleep 3) | nc -w 3 api.special.cluster.local 80 | head -n 1`);

  it('gives a view token to a pod that asks, in each container, and none to one that does not; the token is gone with the pod', async () => {
    const sleeper = (name: string) => ({ name, image: IMAGE, cmd: ['sleep', '600'] });
    await createPod(state, { name: 'reader', spec: { apiAccess: 'view', containers: [sleeper('a'), sleeper('b')] } });
    await createPod(state, { name: 'nobody', spec: { containers: [sleeper('a')] } });
    await waitRunning('reader');
    await waitRunning('nobody');

    // Mounted in every container, read-only, with the API's address.
    for (const c of ['a', 'b']) {
      expect((await sh('reader', c, 'cat /run/secrets/kith/token')).trim()).to.match(/^kith_[A-Za-z0-9_-]{43}$/);
      expect((await sh('reader', c, 'echo $KITH_API')).trim()).to.equal('http://api.special.cluster.local');
      expect(await sh('reader', c, 'echo x > /run/secrets/kith/token && echo W$((40+2))')).to.not.include('W42');
    }
    expect((await sh('nobody', 'a', 'ls /run/secrets/kith/token 2>&1; echo "[$KITH_API]"'))).to.match(/No such file[\s\S]*\[\]/);
    // etcd has its hash only.
    const stored = JSON.parse((await state.get('token/pod.reader'))!.value) as Record<string, string>;
    const secret = (await sh('reader', 'a', 'cat /run/secrets/kith/token')).trim();
    expect(stored).to.deep.include({ name: 'pod.reader', role: 'view', hash: hashSecret(secret), createdBy: `worker:${host.name}` });
    expect(JSON.stringify(stored)).to.not.include(secret);

    // view reads, and may not delete; no token is 401.
    expect(await ask('reader', 'a', 'GET', '/resources/pod')).to.match(/^HTTP\/1\.1 200/);
    expect(await ask('reader', 'b', 'DELETE', '/resources/pod/nobody')).to.match(/^HTTP\/1\.1 403/);
    expect(await ask('nobody', 'a', 'GET', '/resources/pod')).to.match(/^HTTP\/1\.1 401/);
    expect(await state.get('resource/pod/nobody')).to.not.equal(undefined);

    // Deleted with the pod: from etcd, and from the host's disk.
    await state.txn({ if: [], then: [{ delete: 'resource/pod/reader' }] });
    await waitUntil(async () => (await state.get('token/pod.reader')) === undefined, { timeoutMs: 20_000, what: 'the pod token deleted' });
    const dir = join(agent!.dataDir, 'pod-tokens');
    await waitUntil(() => !existsSync(dir) || readdirSync(dir).length === 0, { timeoutMs: 10_000, what: 'the token file removed' });
  });

  it('an edit token may change pods', async () => {
    await createPod(state, { name: 'editor', spec: { apiAccess: 'edit', containers: [{ name: 'a', image: IMAGE, cmd: ['sleep', '600'] }] } });
    await waitRunning('editor');
    expect(await ask('editor', 'a', 'DELETE', '/resources/pod/nobody')).to.match(/^HTTP\/1\.1 204/);
    expect(await state.get('resource/pod/nobody')).to.equal(undefined);
  });
});
