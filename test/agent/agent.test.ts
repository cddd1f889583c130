import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { createServer, type Server, type Socket } from 'node:net';
import { join } from 'node:path';
import { expect } from 'chai';
import { Etcd3 } from 'etcd3';
import { readNodeStates } from '../../agent/node.js';
import { StateLayer } from '../../agent/state.js';
import type { Role } from '../../api/schemas.js';
import { TestAgent } from '../support/agent.js';
import { TestEtcd } from '../support/etcd.js';
import { testLog } from '../support/log.js';
import { freePort } from '../support/ports.js';
import { waitUntil } from '../support/wait.js';

/** A node's state from its heartbeats, read through the state layer. */
const readNodeState = async (state: StateLayer, role: Role, name: string) => (await readNodeStates(state, role))(name);

/** The reaper has a role and needs neither podman nor ports: the lightest agent that registers a node. */
const PLUGIN = 'reaper';

describe('kith agent process', function () {
  this.timeout(90_000);
  let etcd: TestEtcd;
  let client: Etcd3;
  let state: StateLayer;
  let prefix: string;
  const agents: TestAgent[] = [];

  const start = (...args: string[]) => {
    const a = TestAgent.start({ args: ['--etcd-endpoints', etcd.endpoint, '--etcd-prefix', prefix, ...args] });
    agents.push(a);
    return a;
  };
  // Events outlive the run that recorded them (on a lease of their own, --event-ttl): not the node's keys.
  const keys = async () =>
    Object.keys(await client.getAll().prefix(`${prefix}/`).strings()).map((k) => k.slice(prefix.length + 1)).filter((k) => !k.startsWith('resource/event/')).sort();

  before(async () => {
    etcd = await TestEtcd.start();
    client = etcd.client();
  });
  beforeEach(function () {
    prefix = `/t${Math.random().toString(36).slice(2, 8)}`;
    state = new StateLayer(client, prefix, testLog);
  });
  afterEach(async () => {
    for (const a of agents.splice(0)) await a.stop('SIGKILL').catch(() => undefined);
  });
  after(async () => {
    client?.close();
    await etcd?.stop();
  });

  it('refuses bad flags with one line naming the flag, exit 2, and writes nothing', async () => {
    for (const bad of [['--name', 'Not_A_Label'], ['--healthy-ttl', '0'], ['--plugins', 'dns,nonsense'], ['--dns-listen', 'localhost']]) {
      const a = start('--plugins', PLUGIN, ...bad);
      expect(await a.exited).to.equal(2);
      const lines = a.stderr.trim().split('\n');
      expect(lines, a.stderr).to.have.length(1);
      expect(lines[0]).to.contain(bad[0]);
    }
    expect(await keys()).to.deep.equal([]);
  });

  it('refuses a busy port before anything is written, even on a worker host', async () => {
    const holder = createServer();
    const busy = await freePort();
    await new Promise<void>((r) => holder.listen(busy, '127.0.0.1', r));
    const network = `kt-pre-${Math.random().toString(36).slice(2, 8)}`;
    try {
      const a = start('--plugins', 'worker,dns,api', '--name', 'preflight', '--pod-network', network, '--dns-listen', `127.0.0.1:${await freePort()}`, '--api-listen', `127.0.0.1:${busy}`);
      expect(await a.exited).to.equal(2);
      expect(a.stderr.trim().split('\n')).to.have.length(1);
      expect(a.stderr).to.match(new RegExp(`^kith agent: --api-listen 127\\.0\\.0\\.1:${busy}: TCP port ${busy} is in use on 127\\.0\\.0\\.1`));
      // No node, no subnet claim, no pod network: the worker never started.
      expect(await keys()).to.deep.equal([]);
      expect(execFileSync('podman', ['network', 'ls', '--format', '{{.Name}}'], { encoding: 'utf8' }).split('\n')).to.not.include(network);
    } finally {
      holder.close();
    }
  });

  it('registers the node atomically and refuses a second live node of the same name', async () => {
    const a = start('--plugins', PLUGIN, '--name', 'twin', '--cluster-address', '10.9.9.1');
    await a.ready();
    expect(await keys()).to.deep.equal(['node.reaper/heartbeat/alive/twin', 'node.reaper/heartbeat/healthy/twin', 'resource/node.reaper/twin']);
    const node = JSON.parse((await client.get(`${prefix}/resource/node.reaper/twin`).string())!);
    // As in the reference, a reaper's (and a scheduler's) spec is empty: only api and worker nodes carry an address.
    expect(node).to.deep.equal({ name: 'twin', type: 'node.reaper', state: 'healthy', metadata: {}, spec: {} });
    const b = start('--plugins', PLUGIN, '--name', 'twin');
    expect(await b.exited).to.equal(2);
    expect(b.stderr).to.match(/^kith agent: --name 'twin': another node with this name is still alive/);
    expect(a.running).to.equal(true);
    expect(await readNodeState(state, 'reaper', 'twin')).to.equal('healthy');
  });

  it('after kill -9, starts again at once with the same data dir, taking over its own leases; a copied data dir is refused', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'kith-phoenix-'));
    try {
      const a = start('--plugins', PLUGIN, '--name', 'phoenix', '--data-dir', dataDir, '--alive-ttl', '300');
      await a.ready();
      const oldLease = (await state.get('node.reaper/heartbeat/alive/phoenix'))!.lease;
      a.proc.kill('SIGKILL');
      await a.exited;
      // The old alive lease has 300 s to run: without the takeover this start is refused for that long.
      const b = start('--plugins', PLUGIN, '--name', 'phoenix', '--data-dir', dataDir);
      await b.ready();
      expect(b.lines.map((l) => JSON.parse(l).msg)).to.include('took over from the previous run of this node, which ended without a stop');
      const hb = (await state.get('node.reaper/heartbeat/alive/phoenix'))!;
      expect(hb.lease).to.not.equal(oldLease);
      expect(JSON.parse(hb.value)).to.include({ pid: b.proc.pid });
      expect(await readNodeState(state, 'reaper', 'phoenix')).to.equal('healthy');

      // A copy of the data dir (the same node id) beside the live agent: refused, saying so; the live one is untouched.
      const copy = mkdtempSync(join(tmpdir(), 'kith-copy-'));
      try {
        execFileSync('cp', [join(dataDir, 'node-id'), join(copy, 'node-id')]);
        const c = start('--plugins', PLUGIN, '--name', 'phoenix', '--data-dir', copy);
        expect(await c.exited).to.equal(2);
        expect(c.stderr.trim()).to.match(new RegExp(`^kith agent: --name 'phoenix': a live agent at \\S+ \\(pid ${b.proc.pid} on this host\\) has this node's id: its data dir was copied`));
        expect(c.stderr.trim().split('\n')).to.have.length(1);
      } finally {
        rmSync(copy, { recursive: true, force: true });
      }
      expect(b.running).to.equal(true);
      expect((await state.get('node.reaper/heartbeat/alive/phoenix'))!.modRevision).to.equal(hb.modRevision);
      expect(await b.stop('SIGTERM')).to.equal(0);
    } finally {
      rmSync(dataDir, { recursive: true, force: true });
    }
  });

  for (const signal of ['SIGTERM', 'SIGINT'] as const) {
    it(`drains on ${signal} and exits 0, its leased keys gone`, async () => {
      const name = `drainer-${signal.toLowerCase()}`;
      const a = start('--plugins', PLUGIN, '--name', name);
      await a.ready();
      expect(await a.stop(signal)).to.equal(0);
      expect((await keys()).filter((k) => k.endsWith(`/${name}`))).to.deep.equal([`resource/node.reaper/${name}`]);
      expect(await readNodeState(state, 'reaper', name)).to.equal('dead');
      const msgs = a.lines.map((l) => JSON.parse(l).msg);
      expect(msgs).to.include.members(['shutting down', 'plugin stopped', 'stopped']);
    });
  }

  it('stops at once on SIGTERM during start-up, exit 0', async () => {
    // Nothing listens on this endpoint: the agent waits for etcd until the signal.
    const a = TestAgent.start({ args: ['--plugins', PLUGIN, '--etcd-endpoints', `http://127.0.0.1:${await freePort()}`] });
    agents.push(a);
    await a.waitFor('waiting for etcd');
    const sent = Date.now();
    expect(await a.stop('SIGTERM', 10_000)).to.equal(0);
    expect(Date.now() - sent).to.be.below(5000);
    expect(a.lines.map((l) => JSON.parse(l).msg)).to.include('signal during start-up');
  });

  it('exits 2 in one line when etcd does not answer at start-up', async () => {
    etcd.pause();
    try {
      const a = start('--plugins', PLUGIN, '--name', 'impatient');
      const code = await Promise.race([a.exited, new Promise((r) => setTimeout(() => r('stalled'), 40_000))]);
      expect(code).to.equal(2);
      expect(a.stderr.trim()).to.match(/^kith agent: --etcd-endpoints '[^']+': etcd is not reachable/);
    } finally {
      etcd.resume();
    }
  });

  it('drains and exits 0 on SIGTERM even when etcd stops answering', async () => {
    const a = start('--plugins', PLUGIN, '--name', 'stranded');
    await a.ready();
    etcd.pause();
    try {
      expect(await a.stop('SIGTERM', 40_000)).to.equal(0);
    } finally {
      etcd.resume();
    }
  });

  it('goes healthy, degraded, dead after kill -9, its leases expiring', async () => {
    const a = start('--plugins', PLUGIN, '--name', 'doomed', '--healthy-ttl', '2', '--alive-ttl', '5');
    await a.ready();
    expect(await readNodeState(state, 'reaper', 'doomed')).to.equal('healthy');
    a.proc.kill('SIGKILL');
    await a.exited;
    const killedAt = Date.now();
    await waitUntil(async () => (await readNodeState(state, 'reaper', 'doomed')) === 'degraded', { timeoutMs: 8000, what: 'degraded' });
    expect(Date.now() - killedAt).to.be.below(5000);
    await waitUntil(async () => (await readNodeState(state, 'reaper', 'doomed')) === 'dead', { timeoutMs: 12_000, what: 'dead' });
    expect(await keys()).to.deep.equal(['resource/node.reaper/doomed']);
    // The name is free again once the old node is dead.
    const again = start('--plugins', PLUGIN, '--name', 'doomed');
    await again.ready();
  });

  it('starts, uses and stops an embedded etcd when no endpoints are given', async function () {
    // The embedded etcd owns 127.0.0.1:2379; skip rather than fight another etcd for it.
    if (await portBusy(2379)) this.skip();
    const a = TestAgent.start({ args: ['--plugins', PLUGIN, '--name', 'solo'] });
    agents.push(a);
    await a.ready();
    expect(existsSync(join(a.dataDir, 'etcd', 'member'))).to.equal(true);
    const local = new Etcd3({ hosts: 'http://127.0.0.1:2379' });
    try {
      // The heartbeat names the node's id (kept in the data dir) and this run.
      const hb = JSON.parse((await local.get('/kith/node.reaper/heartbeat/alive/solo').string())!);
      expect(hb).to.include({ id: readFileSync(join(a.dataDir, 'node-id'), 'utf8').trim(), pid: a.proc.pid });
      // A second agent cannot take the same port: one line, exit 2.
      const b = TestAgent.start({ args: ['--plugins', PLUGIN, '--name', 'other'] });
      agents.push(b);
      expect(await b.exited).to.equal(2);
      expect(b.stderr.trim()).to.match(/^kith agent: embedded etcd: port 127\.0\.0\.1:2379 is in use/);
    } finally {
      local.close();
    }
    expect(await a.stop('SIGTERM')).to.equal(0);
    expect(await portBusy(2379)).to.equal(false);
  });

  it('drains cleanly on Ctrl-C in its terminal (SIGINT to its whole process group), its embedded etcd last', async function () {
    if (await portBusy(2379)) this.skip();
    const a = TestAgent.start({ args: ['--plugins', PLUGIN, '--name', 'ctrl-c'], group: true });
    agents.push(a);
    await a.ready();
    a.signalGroup('SIGINT');
    expect(await a.exited).to.equal(0);
    const msgs = a.lines.map((l) => JSON.parse(l) as { msg: string; level: number });
    // etcd was not hit by the same Ctrl-C: no restart attempt, and the drain's writes (lease revokes) all went through.
    expect(msgs.map((m) => m.msg)).to.not.include('embedded etcd exited; starting it again');
    expect(msgs.filter((m) => m.level >= 40).map((m) => m.msg)).to.deep.equal([]);
    expect(msgs.map((m) => m.msg)).to.include('stopped');
    expect(await portBusy(2379)).to.equal(false);
  });

  it('stops the embedded etcd a killed agent left running, and starts again', async function () {
    if (await portBusy(2379)) this.skip();
    const dataDir = mkdtempSync(join(tmpdir(), 'kith-embedded-'));
    try {
      const first = TestAgent.start({ args: ['--plugins', PLUGIN, '--name', 'phoenix', '--data-dir', dataDir] });
      agents.push(first);
      await first.ready();
      first.proc.kill('SIGKILL');
      await first.exited;
      expect(await portBusy(2379)).to.equal(true); // its etcd lives on
      const second = TestAgent.start({ args: ['--plugins', PLUGIN, '--name', 'phoenix-two', '--data-dir', dataDir] });
      agents.push(second);
      await second.ready();
      expect(second.lines.some((l) => JSON.parse(l).msg === 'stopping the embedded etcd a killed agent left running')).to.equal(true);
      expect(await second.stop('SIGTERM')).to.equal(0);
      expect(await portBusy(2379)).to.equal(false);
    } finally {
      // Whatever happened above, no etcd of this test outlives it.
      try {
        process.kill(Number(readFileSync(join(dataDir, 'etcd.pid'), 'utf8')), 'SIGKILL');
      } catch {
        /* none left */
      }
      rmSync(dataDir, { recursive: true, force: true });
    }
  });

  it('starts the embedded etcd again when it dies, also after a restart that failed', async function () {
    this.timeout(60_000);
    if (await portBusy(2379)) this.skip();
    const dataDir = mkdtempSync(join(tmpdir(), 'kith-embedded-'));
    const pidOf = () => Number(readFileSync(join(dataDir, 'etcd.pid'), 'utf8'));
    let squatter: Server | undefined;
    try {
      const a = TestAgent.start({ args: ['--plugins', PLUGIN, '--name', 'lazarus', '--data-dir', dataDir] });
      agents.push(a);
      await a.ready();
      const first = pidOf();
      process.kill(first, 'SIGKILL');
      // Hold etcd's client port so the first restart (1 s later) fails; let go once it has.
      await waitUntil(async () => !(await portBusy(2379)), { timeoutMs: 5000, what: 'etcd gone' });
      // It accepts (the agent's clients connect to it) and never answers.
      const held = new Set<Socket>();
      squatter = createServer((c) => held.add(c));
      await new Promise<void>((r) => squatter!.listen(2379, '127.0.0.1', () => r()));
      await waitUntil(async () => a.lines.some((l) => JSON.parse(l).msg === 'embedded etcd restart failed'), { timeoutMs: 40_000, what: 'a failed restart' });
      squatter.close();
      for (const c of held) c.destroy();
      squatter = undefined;
      await waitUntil(async () => a.lines.some((l) => JSON.parse(l).msg === 'embedded etcd ready again'), { timeoutMs: 40_000, what: 'etcd back' });
      expect(pidOf()).to.not.equal(first);
      const local = new Etcd3({ hosts: 'http://127.0.0.1:2379' });
      try {
        // The agent's keys come back on it (its leases re-granted once etcd answers).
        await waitUntil(async () => (await local.get('/kith/node.reaper/heartbeat/alive/lazarus').string().catch(() => null))?.includes(`"pid":${a.proc.pid}`) === true, { timeoutMs: 30_000, what: 'heartbeat back' });
      } finally {
        local.close();
      }
      expect(a.running).to.equal(true);
      expect(await a.stop('SIGTERM')).to.equal(0);
      expect(await portBusy(2379)).to.equal(false);
    } finally {
      squatter?.close();
      try {
        process.kill(pidOf(), 'SIGKILL');
      } catch {
        /* none left */
      }
      rmSync(dataDir, { recursive: true, force: true });
    }
  });

  it('says so in one line and exits 2 when --data-dir cannot be created (also where mkdir -p would spin: /proc)', async () => {
    const a = TestAgent.start({ args: ['--plugins', PLUGIN, '--data-dir', '/proc/kith-cannot-be-here', '--etcd-endpoints', etcd.endpoint] });
    agents.push(a);
    expect(await a.exited).to.equal(2);
    expect(a.stderr.trim()).to.equal("kith agent: --data-dir '/proc/kith-cannot-be-here': cannot create it (ENOENT)");
  });

  it('says so in one line and exits 2 when the etcd binary is missing', async () => {
    const a = TestAgent.start({ args: ['--plugins', PLUGIN], env: { PATH: '/nonexistent' } });
    agents.push(a);
    expect(await a.exited).to.equal(2);
    expect(a.stderr.trim()).to.match(/^kith agent: embedded etcd: the etcd binary is not on PATH/);
  });

  it('prints a random name with gen-name', () => {
    const out = execFileSync(process.execPath, ['--import', 'tsx', 'agent/main.ts', 'gen-name'], { encoding: 'utf8' });
    expect(out).to.match(/^[a-z]+-[a-z]+-\d{4}\n$/);
  });
});

function portBusy(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const srv: Server = createServer();
    srv.once('error', () => resolve(true));
    srv.listen(port, '127.0.0.1', () => srv.close(() => resolve(false)));
  });
}
