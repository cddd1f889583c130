import { expect } from 'chai';
import { replicaSetSpec } from '../../../api/schemas.js';
import type { StateEvent } from '../../../agent/state.js';
import { ReplicaSetView } from '../../../agent/replicaset/view.js';

let rev = 1;
const put = (key: string, value: string): StateEvent => ({ type: 'put', key, value, createRevision: rev, modRevision: rev++ });
const spec = { replicas: 2, template: { spec: { containers: [{ name: 'c', image: 'img' }] } } };

describe('replicaset view', () => {
  it('reads a replica list, extra fields ignored', () => {
    const v = new ReplicaSetView();
    const ev = put('replicaset/replicas/web', JSON.stringify({ owner: 4, replicas: ['web-a', 'web-b'], note: 'x' }));
    v.apply(ev);
    expect(v.lists.get('web')).to.deep.equal({ owner: 4, replicas: ['web-a', 'web-b'], modRevision: ev.modRevision });
  });

  it('takes a list that does not parse for one of no ReplicaSet, with no replicas', () => {
    const v = new ReplicaSetView();
    for (const bad of ['not json', 'null', '[]', '{"owner":"4","replicas":[]}', '{"owner":4,"replicas":[1]}', '{"owner":4}']) {
      const ev = put('replicaset/replicas/web', bad);
      v.apply(ev);
      expect(v.lists.get('web'), bad).to.deep.equal({ owner: -1, replicas: [], modRevision: ev.modRevision });
    }
  });

  it('keeps a stored ReplicaSet whole, and its spec when it parses, a bad status notwithstanding', () => {
    const v = new ReplicaSetView();
    const stored = { name: 'web', type: 'replicaset', metadata: {}, spec, status: 'bad', extra: 1 };
    expect(v.apply(put('resource/replicaset/web', JSON.stringify(stored)))).to.equal(undefined);
    expect(v.replicaSets.get('web')).to.deep.include({ stored, spec: replicaSetSpec.parse(spec) });
  });

  it('names what is wrong with a ReplicaSet that does not parse, and leaves it without a spec', () => {
    const v = new ReplicaSetView();
    const bad = { name: 'web', type: 'replicaset', metadata: {}, spec: { ...spec, replicas: -1 } };
    expect(v.apply(put('resource/replicaset/web', JSON.stringify(bad)))).to.deep.include({ replicaSet: 'web', field: 'spec.replicas' });
    expect(v.replicaSets.get('web')).to.deep.include({ stored: bad, spec: undefined });
    expect(v.apply(put('resource/replicaset/web', 'not json'))).to.deep.include({ replicaSet: 'web', field: '(value)' });
    expect(v.replicaSets.get('web')).to.deep.include({ stored: {}, spec: undefined });
    expect(v.apply(put('resource/replicaset/web', '[1]'))).to.deep.include({ replicaSet: 'web', field: '(value)' });
    expect(v.replicaSets.get('web')).to.deep.include({ stored: {}, spec: undefined });
  });
});
