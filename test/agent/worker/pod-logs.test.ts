import type { ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { expect } from 'chai';
import type { TestAgent } from '../../support/agent.js';
import { runKith } from '../../support/cli.js';
import type { StateLayer } from '../../../agent/state.js';
import type { TestHost } from '../../support/hosts.js';
import { waitUntil } from '../../support/wait.js';
import { createPod } from '../scheduler/context.js';
import { apiWorkerAgent, oneHost, podmanIn, storedPod, type OneHost } from './cluster.js';

const IMAGE = 'localhost/kith/busybox';
const NUMBERED = "i=0; while [ $i -lt 1000 ]; do echo line $i; i=$((i+1)); sleep 0.2; done";

/**
 * SPEC §12: `kith logs` through the API, which asks the worker running the
 * pod. Real podman pods in a test host whose agent runs the worker, DNS, the
 * scheduler and the API with tokens; the API also listens on the host's LAN
 * address so the CLI of this test reaches it.
 */
describe('pod logs (real podman, through the API)', function () {
  this.timeout(240_000);
  let bed: OneHost | undefined;
  let host: TestHost;
  let state: StateLayer;
  let agent: TestAgent | undefined;
  let api: string;
  let admin: string;
  const children = new Set<ChildProcess>();

  /** The real `kith` entry point; `onOut` sees stdout as it comes. */
  const kith = (args: string[], opts: { token?: string; onOut?: (all: string) => void; timeoutMs?: number } = {}) =>
    runKith(args, { api, token: opts.token ?? admin, onOut: opts.onOut, timeoutMs: opts.timeoutMs, children });

  before(async () => {
    bed = await oneHost();
    ({ host, state } = bed);
    ({ agent, api, admin } = await apiWorkerAgent(bed, 'worker,dns,api,scheduler', ['--restart-backoff-ms', '300']));
  });

  after(async () => {
    for (const c of children) c.kill('SIGKILL');
    await agent?.stop('SIGKILL').catch(() => undefined);
    await bed?.destroy();
  });

  const stateOf = (name: string) => storedPod(state, name);
  const waitState = (name: string, want: (s: string) => boolean, what: string) =>
    waitUntil(async () => want((await stateOf(name))?.state ?? ''), { timeoutMs: 60_000, what: `pod ${name} ${what}` });
  const logs = async (args: string[], token?: string) => kith(['logs', ...args], { token }).done;

  it('shows a running pod\'s log, its last lines with --tail, and follows it with -f', async () => {
    await createPod(state, { name: 'counter', spec: { containers: [{ name: 'main', image: IMAGE, cmd: ['sh', '-c', NUMBERED] }] } });
    await waitState('counter', (s) => s === 'running', 'running');
    await waitUntil(async () => (await logs(['counter'])).stdout.includes('line 5\n'), { timeoutMs: 20_000, what: 'line 5 in the log' });

    const all = await logs(['counter']);
    expect(all.code).to.equal(0);
    expect(all.stdout.startsWith('line 0\nline 1\nline 2\n')).to.equal(true);

    const tail = await logs(['counter', '--tail', '3']);
    expect(tail.code).to.equal(0);
    const lines = tail.stdout.trimEnd().split('\n');
    expect(lines).to.have.length(3);
    const first = Number(/^line (\d+)$/.exec(lines[0]!)?.[1]);
    expect(lines).to.deep.equal([`line ${first}`, `line ${first + 1}`, `line ${first + 2}`]);

    // -f: a line printed after the start arrives while the command runs on.
    const f = kith(['logs', 'counter', '-f', '--tail', '1'], { timeoutMs: 60_000 });
    await waitUntil(() => f.run.stdout.split('\n').filter(Boolean).length >= 3, { timeoutMs: 20_000, what: 'new lines through -f' });
    expect(f.run.code).to.equal(null);
    const seen = f.run.stdout.split('\n').filter(Boolean).map((l) => Number(/^line (\d+)$/.exec(l)?.[1]));
    expect(seen[1]).to.equal(seen[0]! + 1);
    f.p.kill('SIGINT');
    expect((await f.done).code).to.equal(0);
  });

  it('a view token reads logs; a pod token without rights and no token cannot; unknown pods and containers are named', async () => {
    const view = (await kith(['token', 'create', '--role', 'view']).done).stdout.trim();
    const r = await logs(['counter', '--tail', '1'], view);
    expect(r.code, r.stderr).to.equal(0);
    expect(r.stdout).to.match(/^line \d+\n$/);

    const nobody = await logs(['counter'], 'kith_not-a-token');
    expect(nobody.code).to.equal(1);
    expect(nobody.stderr).to.match(/^kith: the API refused the token/);

    const missing = await logs(['nosuchpod']);
    expect(missing.code).to.equal(1);
    expect(missing.stderr).to.match(/nosuchpod/);
    const res = await fetch(`${api}/resources/pod/nosuchpod/logs`, { headers: { authorization: `Bearer ${admin}` } });
    expect(res.status).to.equal(404);

    const container = await logs(['counter', '-c', 'other']);
    expect(container.code).to.equal(1);
    expect(container.stderr).to.match(/no container 'other'.*main/);
  });

  it('refuses anything but an API node\'s signed request at the worker\'s endpoint, from the host and from a pod', async () => {
    const endpoint = (await state.get(`node.worker/logs/${host.name}`))?.value;
    expect(endpoint).to.equal(`${host.address}:10250`);
    const url = `http://${endpoint}/pods/counter/logs?container=main`;
    expect((await fetch(url)).status).to.equal(401);
    expect((await fetch(url, { headers: { authorization: `Bearer ${admin}` } })).status).to.equal(401);
    // From a pod, with the pod's own view token too.
    await createPod(state, { name: 'prober', spec: { apiAccess: 'view', containers: [{ name: 'a', image: IMAGE, cmd: ['sleep', '600'] }] } });
    await waitState('prober', (s) => s === 'running', 'running');
    const status = await podmanIn(host, ['exec', `${host.name}-prober-a`, 'sh', '-c',
      `t=$(cat /run/secrets/kith/token); (printf "GET /pods/counter/logs?container=main HTTP/1.0\\r\\nAuthorization: Bearer $t\\r\\n\\r\\n"; sleep 3) | nc -w 3 ${host.address} 10250 | head -n 1`]).catch((e: Error) => e.message);
    expect(status).to.match(/^HTTP\/1\.1 401/);
    await state.txn({ if: [], then: [{ delete: 'resource/pod/prober' }] });
  });

  it('keeps an ended pod\'s log readable until the pod is deleted', async () => {
    await createPod(state, { name: 'brief', spec: { containers: [{ name: 'main', image: IMAGE, cmd: ['sh', '-c', 'echo first; echo second'] }] } });
    await waitState('brief', (s) => s === 'exitSuccess', 'ended');
    const r = await logs(['brief']);
    expect(r.code, r.stderr).to.equal(0);
    expect(r.stdout).to.equal('first\nsecond\n');
    expect((await logs(['brief', '--tail', '1'])).stdout).to.equal('second\n');
    const dir = join(agent!.dataDir, 'pod-logs', `${host.name}-brief`);
    expect(existsSync(dir)).to.equal(true);
    await state.txn({ if: [], then: [{ delete: 'resource/pod/brief' }] });
    await waitUntil(() => !existsSync(dir), { timeoutMs: 10_000, what: 'the kept log removed with the pod' });
  });

  it('--previous shows the run before a restart', async () => {
    await createPod(state, { name: 'again', spec: { restartPolicy: 'OnFailure', containers: [{ name: 'main', image: IMAGE, cmd: ['sh', '-c', 'echo run at $(cat /proc/uptime); sleep 1; exit 1'] }] } });
    await waitUntil(async () => Number((await stateOf('again'))?.metadata.restarts ?? 0) >= 1, { timeoutMs: 60_000, what: 'a restart' });
    const prev = await logs(['again', '--previous']);
    expect(prev.code, prev.stderr).to.equal(0);
    expect(prev.stdout).to.match(/^run at /);
    const none = await logs(['counter', '--previous']);
    expect(none.code).to.equal(1);
    expect(none.stderr).to.match(/not been restarted/);
    await state.txn({ if: [], then: [{ delete: 'resource/pod/again' }, { delete: 'resource/pod/counter' }] });
  });

  it('-f ends when the pod ends', async () => {
    await createPod(state, { name: 'short', spec: { containers: [{ name: 'main', image: IMAGE, cmd: ['sh', '-c', 'echo a; sleep 4; echo b'] }] } });
    await waitState('short', (s) => s === 'running', 'running');
    const f = await kith(['logs', 'short', '-f'], { timeoutMs: 60_000 }).done;
    expect(f.code, f.stderr).to.equal(0);
    // It ended with the pod, and with every line: what podman's follow had not passed on when it ended is sent after it.
    expect(f.stdout).to.equal('a\nb\n');
    await waitUntil(async () => (await logs(['short'])).stdout === 'a\nb\n', { timeoutMs: 20_000, what: 'the kept log of the ended pod' });
    await state.txn({ if: [], then: [{ delete: 'resource/pod/short' }] });
  });

  it('a pod never placed has no logs yet, and says so', async () => {
    // More memory than the worker offers: it stays unplaced.
    await createPod(state, { name: 'huge', spec: { containers: [{ name: 'main', image: IMAGE, cmd: ['true'], resources: { requests: { memory: 1_000_000 } } }] } });
    const r = await logs(['huge']);
    expect(r.code).to.equal(1);
    expect(r.stderr).to.match(/has not been placed/);
    await state.txn({ if: [], then: [{ delete: 'resource/pod/huge' }] });
  });

  it('a pod whose worker is not alive (its log endpoint gone with its lease) says so', async () => {
    await createPod(state, { name: 'orphan', spec: { containers: [{ name: 'main', image: IMAGE, cmd: ['sleep', '600'] }] } });
    await waitState('orphan', (s) => s === 'running', 'running');
    // As when the worker's alive lease expires: the last test, the agent stops after it.
    await state.txn({ if: [], then: [{ delete: `node.worker/logs/${host.name}` }] });
    const r = await logs(['orphan']);
    expect(r.code).to.equal(1);
    expect(r.stderr).to.match(/worker '.*' of pod 'orphan' is not alive/);
    await state.txn({ if: [], then: [{ delete: 'resource/pod/orphan' }] });
  });
});
