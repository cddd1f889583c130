import { expect } from 'chai';
import { StateLayer, type Transaction, type TxnResult } from '../../agent/state.js';
import { Problem } from '../../api/problem.js';
import { ResourceStore } from '../../api/store.js';
import { TestEtcd } from '../support/etcd.js';
import { testLog } from '../support/log.js';

/**
 * The etcd client retries a call whose answer it lost (at a leader change),
 * so a guarded create may commit on its first try and fail the guard on the
 * retry. This state layer does exactly that, against a real etcd: every
 * transaction is sent twice and the second answer returned.
 */
class AnswerLostOnce extends StateLayer {
  override async txn(t: Transaction): Promise<TxnResult> {
    await super.txn(t);
    return super.txn(t);
  }
}

describe('api: a create whose first try committed and whose retry failed the guard', function () {
  this.timeout(30_000);
  let etcd: TestEtcd;
  const layers: StateLayer[] = [];
  const layer = (lost: boolean) => {
    const s = lost ? new AnswerLostOnce(etcd.client(), '/cr', testLog) : new StateLayer(etcd.client(), '/cr', testLog);
    layers.push(s);
    return s;
  };
  const pod = (name: string) => ({ name, type: 'pod', state: 'created', metadata: {}, spec: { containers: [{ name: 'a', image: 'img' }] } });

  before(async () => {
    etcd = await TestEtcd.start();
  });
  after(async () => {
    for (const s of layers) {
      await s.close();
      s.client.close();
    }
    await etcd?.stop();
  });

  it('answers the create as made (not 409), at the revision it committed at', async () => {
    const state = layer(true);
    const store = new ResourceStore(state, testLog);
    const revision = await store.create(pod('retried'));
    const kv = await state.get('resource/pod/retried');
    expect(revision).to.equal(kv!.createRevision);
    expect(await state.get('pod/unscheduled/retried')).to.not.equal(undefined);
  });

  it('still answers 409 for a resource that was there before the request, even one exactly the same', async () => {
    const plain = new ResourceStore(layer(false), testLog);
    await plain.create(pod('twice'));
    // The same body again through the same node: its own earlier write is older than this request.
    const err = await plain.create(pod('twice')).then(() => undefined, (e: unknown) => e);
    expect(err).to.be.instanceOf(Problem);
    expect((err as Problem).status).to.equal(409);
    // Through another node that has seen it (its feed is past it): 409 too.
    const otherState = layer(true);
    const other = new ResourceStore(otherState, testLog);
    const seen = (await otherState.get('resource/pod/twice'))!.modRevision;
    other.follows(() => seen);
    const err2 = await other.create(pod('twice')).then(() => undefined, (e: unknown) => e);
    expect((err2 as Problem).status).to.equal(409);
  });

  it('of many concurrent creates of one body through one node, exactly one wins (its commit is not taken for the others\' own)', async () => {
    const store = new ResourceStore(layer(false), testLog);
    const results = await Promise.all(Array.from({ length: 8 }, () => store.create(pod('race')).then(() => 201, (e: unknown) => (e as Problem).status)));
    expect(results.filter((c) => c === 201)).to.have.length(1);
    expect(results.filter((c) => c === 409)).to.have.length(7);
  });

  it('answers 409 when the one there differs from what the request wrote', async () => {
    const state = layer(false);
    await new ResourceStore(state, testLog).create({ ...pod('taken'), metadata: { owner: 'first' } });
    const other = new ResourceStore(layer(true), testLog);
    const err = await other.create(pod('taken')).then(() => undefined, (e: unknown) => e);
    expect((err as Problem).status).to.equal(409);
  });
});
