import { expect } from 'chai';
import { startOrder } from '../../agent/host.js';
import type { Capability, PluginName } from '../../agent/plugin.js';

type P = { name: PluginName; provides?: Capability[]; needs?: Capability[] };
const names = (ps: P[]) => startOrder(ps).map((p) => p.name);

describe('plugin start order', () => {
  const worker: P = { name: 'worker', provides: ['clusterAddress'] };
  const dns: P = { name: 'dns', needs: ['clusterAddress'] };
  const api: P = { name: 'api', needs: ['clusterAddress'] };
  const scheduler: P = { name: 'scheduler' };

  it('starts a plugin after every enabled plugin that provides what it needs', () => {
    expect(names([api, dns, scheduler, worker])).to.deep.equal(['worker', 'dns', 'api', 'scheduler']);
  });

  it('keeps the listed order where nothing is needed, and starts a need nobody provides at once', () => {
    expect(names([scheduler, api, dns])).to.deep.equal(['dns', 'api', 'scheduler']);
    expect(names([{ name: 'reaper' }, { name: 'replicaset' }, scheduler])).to.deep.equal(['scheduler', 'reaper', 'replicaset']);
  });

  it('follows what is declared, not the list: a provider listed late still starts first', () => {
    const lateProvider: P = { name: 'replicaset', provides: ['clusterAddress'] };
    expect(names([dns, lateProvider, scheduler])).to.deep.equal(['scheduler', 'replicaset', 'dns']);
  });

  it('refuses plugins that need each other', () => {
    expect(() => startOrder<P>([
      { name: 'dns', needs: ['clusterAddress'], provides: ['clusterAddress'] },
      { name: 'api', needs: ['clusterAddress'], provides: ['clusterAddress'] },
    ])).to.throw(/need each other/);
  });
});
