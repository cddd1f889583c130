import type { ChildProcess } from 'node:child_process';
import { expect } from 'chai';
import type { StateLayer } from '../../../agent/state.js';
import type { TestAgent } from '../../support/agent.js';
import { runKith } from '../../support/cli.js';
import type { TestHost } from '../../support/hosts.js';
import { waitUntil } from '../../support/wait.js';
import { createPod } from '../scheduler/context.js';
import { apiWorkerAgent, oneHost, podmanIn, waitPod, type OneHost } from './cluster.js';

const IMAGE = 'localhost/kith/busybox';
/** Short, so a test sees events go; long enough for each test to read the events it made. */
const EVENT_TTL_S = 25;

interface Ev {
  name: string;
  spec: { time: string; type: string; object: string; reason: string; message: string; node: string; count: number };
}

/**
 * SPEC §12 events with real podman pods in a test host whose agent runs the
 * worker, the scheduler and the API with tokens: what the plugins saw is in
 * `GET /resources/event`, `kith events` and `kith describe`, and goes with
 * its lease after `--event-ttl`.
 */
describe('events (real podman, through the API and the CLI)', function () {
  this.timeout(240_000);
  let bed: OneHost | undefined;
  let host: TestHost;
  let state: StateLayer;
  let agent: TestAgent | undefined;
  let api: string;
  let admin: string;
  const children = new Set<ChildProcess>();

  const kith = (args: string[], opts: { token?: string; onOut?: (all: string) => void; timeoutMs?: number } = {}) =>
    runKith(args, { api, token: opts.token ?? admin, onOut: opts.onOut, timeoutMs: opts.timeoutMs, children });
  const request = async (method: string, path: string, body?: unknown, token = admin) => {
    const res = await fetch(`${api}${path}`, { method, headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, body: body === undefined ? undefined : JSON.stringify(body) });
    const text = await res.text();
    return { status: res.status, text, body: text ? (JSON.parse(text) as unknown) : undefined };
  };
  const eventsOf = async (object: string): Promise<Ev[]> => ((await request('GET', '/resources/event')).body as Ev[]).filter((e) => e.spec.object === object);
  const waitEvent = (object: string, reason: string, timeoutMs = 30_000) =>
    waitUntil(async () => (await eventsOf(object)).find((e) => e.spec.reason === reason), { timeoutMs, intervalMs: 100, what: `a ${reason} event of ${object}` });

  before(async () => {
    bed = await oneHost();
    ({ host, state } = bed);
    ({ agent, api, admin } = await apiWorkerAgent(bed, 'worker,api,scheduler', ['--restart-backoff-ms', '300', '--event-ttl', String(EVENT_TTL_S)]));
  });

  after(async () => {
    for (const c of children) c.kill('SIGKILL');
    await agent?.stop('SIGKILL').catch(() => undefined);
    await bed?.destroy();
  });

  /** When the events of pod/brief (made first, checked last) were written. */
  let briefAt = 0;

  it('records the node\'s start, and a pod\'s placement and start, with the node that saw each', async () => {
    await createPod(state, { name: 'brief', spec: { containers: [{ name: 'main', image: IMAGE, cmd: ['true'] }] } });
    const started = await waitEvent(`node.worker/${host.name}`, 'Started');
    expect(started.spec.node).to.equal(host.name);
    await createPod(state, { name: 'plain', spec: { containers: [{ name: 'main', image: IMAGE, cmd: ['sleep', '600'] }] } });
    const scheduled = await waitEvent('pod/plain', 'Scheduled');
    expect(scheduled.spec).to.include({ type: 'Normal', node: host.name });
    expect(scheduled.spec.message).to.include(host.name);
    const running = await waitEvent('pod/plain', 'Started');
    const ip = (await waitPod(state, 'plain', 'running with its address', (p) => p.state === 'running' && !!p.metadata.ip)).metadata.ip!;
    expect(running.spec.message).to.include(ip);
    const completed = await waitEvent('pod/brief', 'Completed', 60_000);
    briefAt = Date.parse(completed.spec.time);
  });

  it('a pod that cannot be placed: FailedScheduling, then Abandoned, both warnings; kith events and describe show why', async () => {
    await createPod(state, { name: 'huge', spec: { containers: [{ name: 'main', image: IMAGE, cmd: ['sleep', '600'], resources: { requests: { cpu: '64' } } }] } });
    const failed = await waitEvent('pod/huge', 'FailedScheduling');
    expect(failed.spec.type).to.equal('Warning');
    await waitEvent('pod/huge', 'Abandoned');

    const ev = await kith(['events', 'pod/huge']).done;
    expect(ev.code, ev.stderr).to.equal(0);
    const lines = ev.stdout.trimEnd().split('\n');
    expect(lines[0]).to.match(/^LAST SEEN\s+TYPE\s+REASON\s+OBJECT\s+COUNT\s+FROM\s+MESSAGE$/);
    const reasons = lines.slice(1).map((l) => l.split(/\s+/)[2]);
    // Oldest first: the failures, then the verdict.
    expect(reasons.at(-1)).to.equal('Abandoned');
    expect(reasons).to.include('FailedScheduling');
    for (const l of lines.slice(1)) expect(l).to.include('pod/huge').and.include('Warning');

    const d = await kith(['describe', 'pod', 'huge']).done;
    expect(d.code, d.stderr).to.equal(0);
    expect(d.stdout).to.match(/^Name:\s+huge$/m);
    expect(d.stdout).to.match(/^State:\s+abandoned$/m);
    expect(d.stdout).to.match(/^Error:\s+\S/m);
    expect(d.stdout).to.match(/^Events:$/m);
    expect(d.stdout).to.match(/^ {2}\S+\s+Warning\s+Abandoned\s+1\s+/m);

    // -o json: the resource and its events, for scripts.
    const j = await kith(['describe', 'pod', 'huge', '-o', 'json']).done;
    const doc = JSON.parse(j.stdout) as { resource: { name: string }; events: Ev[] };
    expect(doc.resource.name).to.equal('huge');
    expect(doc.events.map((e) => e.spec.reason)).to.include('Abandoned');
  });

  it('a pod whose image is missing: a Failed warning naming the image', async () => {
    await createPod(state, { name: 'noimage', spec: { containers: [{ name: 'a', image: 'localhost/kith/no-such-image' }] } });
    const failed = await waitEvent('pod/noimage', 'Failed', 60_000);
    expect(failed.spec.type).to.equal('Warning');
    expect(failed.spec.message).to.match(/^ended errored: .*no-such-image/);
  });

  it('a pod restarted by its liveness probe: Unhealthy and Restarted; describe shows the restart and the events', async () => {
    const fast = { periodSeconds: 1, failureThreshold: 1, successThreshold: 1 };
    await createPod(state, {
      name: 'sick',
      spec: { restartPolicy: 'Always', containers: [{ name: 'main', image: IMAGE, cmd: ['sh', '-c', 'touch /tmp/alive; exec sleep 600'], liveness: { exec: ['cat', '/tmp/alive'], ...fast } }] },
    });
    await waitPod(state, 'sick', 'running', (p) => p.state === 'running', 60_000);
    await podmanIn(host, ['exec', `${host.name}-sick-main`, 'rm', '/tmp/alive']);
    const unhealthy = await waitEvent('pod/sick', 'Unhealthy');
    expect(unhealthy.spec.type).to.equal('Warning');
    expect(unhealthy.spec.message).to.include('liveness probe of container main failed');
    const restarted = await waitEvent('pod/sick', 'Restarted');
    expect(restarted.spec.message).to.include('container main restarted');

    const d = await kith(['describe', 'pod', 'sick']).done;
    expect(d.code, d.stderr).to.equal(0);
    expect(d.stdout).to.match(/^Restarts:\s+[1-9]/m);
    expect(d.stdout).to.match(/^IP:\s+\d+\.\d+\.\d+\.\d+$/m);
    expect(d.stdout).to.match(/Unhealthy/);
    expect(d.stdout).to.match(/Restarted/);
  });

  it('kith events -w prints each new event as it is recorded, only of the object asked', async () => {
    const w = kith(['events', 'pod/later', '-w'], { timeoutMs: 60_000 });
    // Its list comes first (nothing yet), then the stream.
    await waitUntil(() => w.run.stderr.includes('No resources found.'), { timeoutMs: 20_000, what: 'the empty list' });
    await createPod(state, { name: 'later', spec: { containers: [{ name: 'main', image: IMAGE, cmd: ['sleep', '600'] }] } });
    await createPod(state, { name: 'other', spec: { containers: [{ name: 'main', image: IMAGE, cmd: ['sleep', '600'] }] } });
    await waitUntil(() => /\sStarted\s+pod\/later\s/.test(w.run.stdout), { timeoutMs: 60_000, what: 'the Started line of pod/later' });
    expect(w.run.stdout).to.match(/\sScheduled\s+pod\/later\s/);
    await waitEvent('pod/other', 'Started');
    w.p.kill('SIGINT');
    const done = await w.done;
    expect(done.code).to.equal(0);
    expect(done.stdout).to.not.include('pod/other');
  });

  it('events are the agents\' record: a client cannot create or change one; a view token reads them', async () => {
    const created = await request('POST', '/resources', { type: 'event', name: 'forged', spec: { reason: 'x' } });
    expect(created.status, created.text).to.equal(422);
    expect(created.text).to.include('Event resources cannot be created');
    const [one] = await eventsOf('pod/later');
    const patched = await request('PATCH', `/resources/event/${one!.name}`, { spec: { message: 'changed' } });
    expect(patched.status, patched.text).to.equal(422);
    const view = (await kith(['token', 'create', '--role', 'view']).done).stdout.trim();
    const ev = await kith(['events'], { token: view }).done;
    expect(ev.code, ev.stderr).to.equal(0);
    expect(ev.stdout).to.include('pod/later');
  });

  it('an event goes with its lease after --event-ttl, while the pod it tells of stays', async () => {
    expect(briefAt).to.be.above(0);
    await waitUntil(async () => (await eventsOf('pod/brief')).length === 0, { timeoutMs: (EVENT_TTL_S + 15) * 1000, intervalMs: 250, what: 'the events of pod/brief to expire' });
    // Never before its TTL (the lease may be a window longer).
    expect(Date.now() - briefAt).to.be.at.least((EVENT_TTL_S - 1) * 1000);
    expect((await request('GET', '/resources/pod/brief')).status).to.equal(200);
    expect((await eventsOf('pod/later')).length).to.be.above(0);
  });
});
