import { expect } from 'chai';
import type { Etcd3 } from 'etcd3';
import { StateLayer, type StateEvent } from '../../agent/state.js';
import { TestEtcd } from '../support/etcd.js';
import { testLog } from '../support/log.js';
import { waitUntil } from '../support/wait.js';

/** Several keys of one watched prefix changed at one revision: every one of them is an event. */
describe('state layer: several events at one revision (real etcd)', function () {
  this.timeout(30_000);
  let etcd: TestEtcd;
  let client: Etcd3;
  let state: StateLayer;

  before(async () => {
    etcd = await TestEtcd.start();
    client = etcd.client();
    state = new StateLayer(client, '/sev', testLog);
  });

  after(async () => {
    await state?.close();
    client?.close();
    await etcd?.stop();
  });

  it('delivers every put and delete of one transaction, and every delete of one lease expiry', async () => {
    const seen: string[] = [];
    const sub = state.watch(['p/'], (ev: StateEvent) => seen.push(`${ev.type} ${ev.key}`));
    await sub.synced;
    await state.txn({ if: [], then: [{ put: 'p/a', value: '1' }, { put: 'p/b', value: '1' }, { put: 'p/c', value: '1' }] });
    await state.txn({ if: [], then: [{ deletePrefix: 'p/' }] });
    await state.grantLease('alive', 60);
    await state.txn({ if: [], then: ['x', 'y', 'z'].map((k) => ({ put: `p/${k}`, value: '1', lease: 'alive' as const })) });
    await state.revokeLease('alive');
    const want = [
      'put p/a', 'put p/b', 'put p/c', 'delete p/a', 'delete p/b', 'delete p/c',
      'put p/x', 'put p/y', 'put p/z', 'delete p/x', 'delete p/y', 'delete p/z',
    ];
    await waitUntil(() => seen.length >= want.length, { what: `${want.length} events, got ${JSON.stringify(seen)}` });
    expect(seen).to.deep.equal(want);
    await sub.close();
  });
});
