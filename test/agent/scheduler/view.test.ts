import { expect } from 'chai';
import { SchedulerView } from '../../../agent/scheduler/view.js';
import type { StateEvent } from '../../../agent/state.js';

let rev = 1;
const put = (key: string, value: string): StateEvent => ({ type: 'put', key, value, createRevision: rev, modRevision: rev++ });
const del = (key: string): StateEvent => ({ type: 'delete', key, modRevision: rev++ });
const pod = (name: string, memory: number, metadata: Record<string, string> = {}, state = 'scheduled') =>
  JSON.stringify({ name, type: 'pod', state, metadata, spec: { containers: [{ name: 'c', image: 'i', resources: { requests: { cpu: '0.1', memory } } }] } });

describe('scheduler view', () => {
  it('counts a claimed pod once when its limits arrive before its inbox delete (one transaction, two watches)', () => {
    const v = new SchedulerView(() => 0);
    v.apply(put('node.worker/heartbeat/healthy/w1', 'x'));
    v.apply(put('node.worker/limits/cpu/w1', '1'));
    v.apply(put('node.worker/limits/memory/w1', '1024'));
    v.apply(put('node.worker/inbox/w1/p1', pod('p1', 200)));
    expect(v.workers()[0]!.free).to.deep.equal({ cpu: 900, memory: 824 });
    // The claim: inbox delete and new limits at one revision; the limits watcher delivers first.
    const claim = rev++;
    v.apply({ type: 'put', key: 'node.worker/limits/cpu/w1', value: '0.9', createRevision: 1, modRevision: claim });
    v.apply({ type: 'put', key: 'node.worker/limits/memory/w1', value: '824', createRevision: 1, modRevision: claim });
    v.apply({ type: 'delete', key: 'node.worker/inbox/w1/p1', modRevision: claim });
    expect(v.workers()[0]!.free).to.deep.equal({ cpu: 900, memory: 824 });
    // A later claim whose inbox delete comes first is counted until its limits arrive, and then once.
    v.apply(put('node.worker/inbox/w1/p2', pod('p2', 100)));
    const second = rev++;
    v.apply({ type: 'delete', key: 'node.worker/inbox/w1/p2', modRevision: second });
    expect(v.workers()[0]!.free).to.deep.equal({ cpu: 800, memory: 724 });
    v.apply({ type: 'put', key: 'node.worker/limits/cpu/w1', value: '0.8', createRevision: 1, modRevision: second });
    v.apply({ type: 'put', key: 'node.worker/limits/memory/w1', value: '724', createRevision: 1, modRevision: second });
    expect(v.workers()[0]!.free).to.deep.equal({ cpu: 800, memory: 724 });
  });

  it('free = published limits minus inbox, claimed-not-yet-published and reservations', () => {
    let now = 0;
    const v = new SchedulerView(() => now);
    v.apply(put('node.worker/heartbeat/healthy/w1', 'x'));
    v.apply(put('node.worker/limits/cpu/w1', '1'));
    v.apply(put('node.worker/limits/memory/w1', '1024'));
    expect(v.workers()).to.deep.equal([{ name: 'w1', healthy: true, free: { cpu: 1000, memory: 1024 }, replicas: 0 }]);

    v.reserve('p1', 'w1', { cpu: 100, memory: 200 });
    expect(v.workers()[0]!.free).to.deep.equal({ cpu: 900, memory: 824 });
    // The inbox entry replaces the reservation (counted once).
    v.apply(put('node.worker/inbox/w1/p1', pod('p1', 200)));
    expect(v.workers()[0]!.free).to.deep.equal({ cpu: 900, memory: 824 });
    // Claimed: out of the inbox, still counted until the worker publishes its limits again.
    v.apply(del('node.worker/inbox/w1/p1'));
    expect(v.workers()[0]!.free).to.deep.equal({ cpu: 900, memory: 824 });
    v.apply(put('node.worker/limits/cpu/w1', '0.9'));
    v.apply(put('node.worker/limits/memory/w1', '824'));
    expect(v.workers()[0]!.free).to.deep.equal({ cpu: 900, memory: 824 });

    // An unconfirmed reservation expires.
    v.reserve('p2', 'w1', { cpu: 100, memory: 100 });
    expect(v.workers()[0]!.free!.memory).to.equal(724);
    now += 60_000;
    expect(v.workers()[0]!.free!.memory).to.equal(824);

    v.apply(del('node.worker/heartbeat/healthy/w1'));
    expect(v.workers()[0]!.healthy).to.equal(false);
    v.apply(del('node.worker/limits/memory/w1'));
    expect(v.workers()[0]!.free).to.equal(undefined);
  });

  it('keeps nothing of workers that came and went', () => {
    let now = 0;
    const v = new SchedulerView(() => now);
    for (let i = 0; i < 100; i++) {
      const w = `gone-${i}`;
      v.apply(put(`node.worker/heartbeat/healthy/${w}`, 'x'));
      v.apply(put(`node.worker/limits/cpu/${w}`, '1'));
      v.apply(put(`node.worker/limits/memory/${w}`, '1024'));
      v.apply(put(`node.worker/inbox/${w}/p${i}`, pod(`p${i}`, 100)));
      v.apply(del(`node.worker/inbox/${w}/p${i}`));
      v.apply(del(`node.worker/heartbeat/healthy/${w}`));
      v.apply(del(`node.worker/limits/cpu/${w}`));
      v.apply(del(`node.worker/limits/memory/${w}`));
    }
    now += 60_000;
    expect(v.workers()).to.deep.equal([]);
    // What the view holds per worker name (white-box: these maps are what would grow).
    const inner = v as unknown as Record<'published' | 'inbox' | 'inboxSum' | 'leaving', Map<string, unknown>>;
    expect([inner.published.size, inner.inbox.size, inner.inboxSum.size, inner.leaving.size]).to.deep.equal([0, 0, 0, 0]);
  });

  it('counts live replicas of a ReplicaSet per worker, reservations included', () => {
    const v = new SchedulerView();
    for (const w of ['a', 'b']) {
      v.apply(put(`node.worker/heartbeat/healthy/${w}`, 'x'));
      v.apply(put(`node.worker/limits/cpu/${w}`, '4'));
      v.apply(put(`node.worker/limits/memory/${w}`, '4096'));
    }
    v.apply(put('resource/pod/web-1', pod('web-1', 10, { replicaSet: 'web', workedBy: 'a' }, 'running')));
    v.apply(put('resource/pod/web-2', pod('web-2', 10, { replicaSet: 'web', workedBy: 'a' }, 'exitFailure')));
    v.apply(put('resource/pod/other', pod('other', 10, { replicaSet: 'db', workedBy: 'b' }, 'running')));
    const count = (rs?: string) => Object.fromEntries(v.workers(rs).map((w) => [w.name, w.replicas]));
    expect(count('web')).to.deep.equal({ a: 1, b: 0 });
    v.reserve('web-3', 'b', { cpu: 1, memory: 1 }, 'web');
    expect(count('web')).to.deep.equal({ a: 1, b: 1 });
    v.apply(put('resource/pod/web-3', pod('web-3', 1, { replicaSet: 'web', workedBy: 'b' })));
    expect(count('web')).to.deep.equal({ a: 1, b: 1 });
    v.apply(del('resource/pod/web-1'));
    expect(count('web')).to.deep.equal({ a: 0, b: 1 });
    expect(count()).to.deep.equal({ a: 0, b: 0 });
  });
});
