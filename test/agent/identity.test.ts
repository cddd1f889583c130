import { spawnSync } from 'node:child_process';
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect } from 'chai';
import type { Etcd3 } from 'etcd3';
import { judgeHolder, nodeId, parseInstance, processRunning, processStart, thisInstance, type Instance } from '../../agent/identity.js';
import { NameTakenError } from '../../agent/errors.js';
import { registerNode } from '../../agent/node.js';
import { StateLayer, type StateEvent } from '../../agent/state.js';
import { TestEtcd } from '../support/etcd.js';
import { testLog } from '../support/log.js';

const ID = 'a'.repeat(32);
const me: Instance = { id: ID, host: 'h1', machine: 'm1', boot: 'b1', pid: 100, started: '5' };

describe('node identity', () => {
  let dir: string;
  beforeEach(() => (dir = mkdtempSync(join(tmpdir(), 'kith-id-'))));
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('is made once per data dir and kept', () => {
    const id = nodeId(dir);
    expect(id).to.match(/^[0-9a-f]{32}$/);
    expect(nodeId(dir)).to.equal(id);
    expect(readFileSync(join(dir, 'node-id'), 'utf8')).to.equal(`${id}\n`);
    expect(nodeId(mkdtempSync(join(dir, 'other-')))).to.not.equal(id);
  });

  it('refuses a node-id file that holds no id, or cannot be read, naming the flag and the file', () => {
    writeFileSync(join(dir, 'node-id'), 'not an id\n');
    expect(() => nodeId(dir)).to.throw(`--data-dir '${dir}': ${join(dir, 'node-id')} does not hold a node id`);
    if (process.getuid?.() !== 0) {
      rmSync(join(dir, 'node-id'));
      writeFileSync(join(dir, 'node-id'), ID);
      chmodSync(join(dir, 'node-id'), 0);
      expect(() => nodeId(dir)).to.throw(/cannot read/);
    }
  });

  it('names this process: its start time is stable, and a process that ended is not running', () => {
    const self = thisInstance(ID, '192.0.2.7');
    expect(self).to.include({ id: ID, host: '192.0.2.7', pid: process.pid });
    expect(self.started).to.match(/^\d+$/);
    expect(processStart(process.pid)).to.equal(self.started);
    expect(processRunning(process.pid, self.started)).to.equal(true);
    // Same pid, another start time: another process.
    expect(processRunning(process.pid, '1')).to.equal(false);
    const child = spawnSync('true');
    expect(processRunning(child.pid!, '0')).to.equal(false);
    expect(parseInstance(JSON.stringify(self))).to.deep.equal(self);
    expect(parseInstance('lease-established')).to.equal(undefined);
    expect(parseInstance('{"id":1}')).to.equal(undefined);
  });

  it('takes over only its own previous run whose process is gone', () => {
    const gone = () => false;
    const live = () => true;
    // The reference's value, or another id: refused, naming where the holder runs.
    const other = judgeHolder('w1', { ...me, id: 'b'.repeat(32), host: '192.0.2.9' }, me, gone);
    expect(other).to.deep.include({ kind: 'refuse', reason: 'other-node' });
    expect((other as { message: string }).message).to.equal("--name 'w1': another node with this name is still alive at 192.0.2.9 (its heartbeat expires within --alive-ttl); pick another name");
    expect(judgeHolder('w1', undefined, me, gone)).to.deep.include({ kind: 'refuse', reason: 'other-node' });
    // Its own previous run: killed (process gone), or on this machine before a reboot.
    expect(judgeHolder('w1', { ...me, pid: 99 }, me, gone)).to.deep.equal({ kind: 'take-over' });
    expect(judgeHolder('w1', { ...me, pid: 99, boot: 'b0' }, me, live)).to.deep.equal({ kind: 'take-over' });
    // Same id, still alive: the data dir was copied (to another machine, or next to it on this one).
    const copied = judgeHolder('w1', { ...me, pid: 99 }, me, live);
    expect(copied).to.deep.include({ kind: 'refuse', reason: 'copied-data-dir' });
    expect((copied as { message: string }).message).to.contain('pid 99 on this host').and.to.contain('data dir was copied');
    expect(judgeHolder('w1', { ...me, machine: 'm2', host: '192.0.2.8' }, me, gone)).to.deep.include({ kind: 'refuse', reason: 'copied-data-dir' });
  });
});

describe('registerNode taking over its own previous run (real etcd)', function () {
  this.timeout(30_000);
  let etcd: TestEtcd;
  let client: Etcd3;
  let prefix: string;
  const layers: StateLayer[] = [];
  const layer = () => {
    const s = new StateLayer(client, prefix, testLog);
    layers.push(s);
    return s;
  };

  before(async () => {
    etcd = await TestEtcd.start();
    client = etcd.client();
  });
  beforeEach(() => (prefix = `/t${Math.random().toString(36).slice(2, 8)}`));
  afterEach(async () => {
    for (const s of layers.splice(0)) {
      await s.revokeLease('healthy').catch(() => undefined);
      await s.revokeLease('alive').catch(() => undefined);
      await s.close();
    }
  });
  after(async () => {
    client?.close();
    await etcd?.stop();
  });

  /** A run of node `name` as a killed agent leaves it: leases granted, keys on them, nobody keeping them alive any more. */
  async function previousRun(instance: Instance, extraKeys: number, killed: boolean) {
    const old = layer();
    await old.grantLease('healthy', 30);
    await old.grantLease('alive', 60);
    await registerNode(old, 'w1', ['worker'], () => ({}), instance);
    // Claims and A records of its pods, on its alive lease: more than one transaction's worth.
    for (let i = 0; i < extraKeys; i += 50) {
      await old.txn({ if: [], then: Array.from({ length: Math.min(50, extraKeys - i) }, (_, j) => ({ put: `pod/claimed/p${i + j}`, value: 'w1', lease: 'alive' as const })) });
    }
    const ids = { alive: await old.leaseId('alive'), healthy: await old.leaseId('healthy') };
    // Killed: its keepalives stop, its leases run on until they expire.
    if (killed) await old.close();
    return ids;
  }

  it('moves every leased key onto the new leases without a moment of absence, and revokes the old leases', async () => {
    const dead: Instance = { ...thisInstance(ID), pid: 9_999_999, started: '1' };
    const { alive: oldAlive, healthy: oldHealthy } = await previousRun(dead, 150, true);
    const watcher = layer();
    const deletes: string[] = [];
    const sub = watcher.watch(['pod/claimed/', 'node.worker/'], (ev: StateEvent) => {
      if (ev.type === 'delete') deletes.push(ev.key);
    });
    await sub.synced;

    const next = layer();
    await next.grantLease('healthy', 30);
    await next.grantLease('alive', 60);
    const self = thisInstance(ID);
    const reg = await registerNode(next, 'w1', ['worker'], () => ({}), self);
    expect(reg.tookOver).to.deep.equal({ pid: dead.pid, host: dead.host, moved: 150 });
    expect(reg.created).to.deep.equal([]);
    const newAlive = await next.leaseId('alive');
    const { kvs } = await next.list('pod/claimed/');
    expect(kvs).to.have.length(150);
    expect(new Set(kvs.map((kv) => kv.lease))).to.deep.equal(new Set([newAlive]));
    const hb = await next.get('node.worker/heartbeat/alive/w1');
    expect(hb!.lease).to.equal(newAlive);
    expect(parseInstance(hb!.value)).to.deep.equal(self);
    expect((await next.get('node.worker/heartbeat/healthy/w1'))!.lease).to.equal(await next.leaseId('healthy'));
    // The old leases are gone, and took nothing with them.
    for (const id of [oldAlive, oldHealthy]) {
      const ttl = await (client as unknown as { leaseClient: { leaseTimeToLive(r: { ID: string }): Promise<{ TTL: string }> } }).leaseClient.leaseTimeToLive({ ID: id });
      expect(Number(ttl.TTL)).to.equal(-1);
    }
    expect((await next.list('pod/claimed/')).kvs).to.have.length(150);
    await sub.close();
    expect(deletes).to.deep.equal([]);
  });

  it('refuses another node, and a live run of the same id (a copied data dir), touching nothing', async () => {
    const live: Instance = thisInstance(ID, '192.0.2.5');
    await previousRun(live, 3, false);
    const before = (await layer().list('')).kvs.map((kv) => [kv.key, kv.modRevision, kv.lease]);
    for (const [instance, reason] of [
      [{ ...thisInstance('c'.repeat(32)), pid: 1 }, /still alive at 192\.0\.2\.5/],
      [{ ...thisInstance(ID), pid: 1 }, /a live agent at 192\.0\.2\.5 \(pid \d+ on this host\) has this node's id/],
    ] as const) {
      const next = layer();
      await next.grantLease('healthy', 30);
      await next.grantLease('alive', 60);
      let err: unknown;
      await registerNode(next, 'w1', ['worker'], () => ({}), instance).catch((e: unknown) => (err = e));
      expect(err).to.be.instanceOf(NameTakenError);
      expect((err as Error).message).to.match(reason);
    }
    expect((await layer().list('')).kvs.map((kv) => [kv.key, kv.modRevision, kv.lease])).to.deep.equal(before);
  });
});
