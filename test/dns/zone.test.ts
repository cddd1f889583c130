import { expect } from 'chai';
import { normalizeName, reverseApexOf, reverseName, Zone } from '../../dns/zone.js';
import { applyEvent } from '../../dns/zone-source.js';

const D = 'cluster.local';
let rev = 0;
const put = (z: Zone, key: string, value: string) => applyEvent(z, { type: 'put', key, value, createRevision: ++rev, modRevision: rev });
const del = (z: Zone, key: string) => applyEvent(z, { type: 'delete', key, modRevision: ++rev });
const pod = (name: string, opts: { rs?: string; ports?: unknown[]; ready?: string } = {}) =>
  JSON.stringify({
    name, type: 'pod', state: 'running',
    metadata: { ...(opts.rs ? { replicaSet: opts.rs } : {}), ...(opts.ready ? { ready: opts.ready } : {}) },
    spec: { containers: [], ports: opts.ports ?? [] },
  });
const zone = () => new Zone({ domain: D, ttl: 5, nodeName: 'n1', version: '1.2.3', reverseCidrs: ['10.244.0.0/16'] });

describe('dns zone', () => {
  it('keeps A records per event, case-insensitively, and drops malformed ones', () => {
    const z = zone();
    put(z, 'dns/Web.pod.cluster.local.', '10.244.1.5');
    expect(z.addresses('web.pod.cluster.local')).to.deep.equal(['10.244.1.5']);
    put(z, 'dns/web.pod.cluster.local.', '10.244.1.6');
    expect(z.addresses('web.pod.cluster.local')).to.deep.equal(['10.244.1.6']);
    expect(put(z, 'dns/bad.pod.cluster.local.', 'not-an-ip')).to.equal(false);
    expect(z.addresses('bad.pod.cluster.local')).to.deep.equal([]);
    expect(put(z, 'dns/bad name.cluster.local.', '10.0.0.1')).to.equal(false);
    expect(z.rejected).to.equal(2);
    del(z, 'dns/web.pod.cluster.local.');
    expect(z.addresses('web.pod.cluster.local')).to.deep.equal([]);
    expect(z.size().records).to.equal(0);
  });

  it('answers an alias with the union of its targets, following chains', () => {
    const z = zone();
    put(z, 'dns/a.pod.cluster.local.', '10.244.0.1');
    put(z, 'dns/b.pod.cluster.local.', '10.244.0.2');
    put(z, 'dns/svc.x.cluster.local./a.pod.cluster.local.', 'alias');
    put(z, 'dns/svc.x.cluster.local./b.pod.cluster.local.', 'alias');
    put(z, 'dns/top.y.cluster.local./svc.x.cluster.local.', 'alias');
    put(z, 'dns/top.y.cluster.local./missing.pod.cluster.local.', 'alias');
    expect(z.addresses('svc.x.cluster.local').sort()).to.deep.equal(['10.244.0.1', '10.244.0.2']);
    expect(z.addresses('top.y.cluster.local').sort()).to.deep.equal(['10.244.0.1', '10.244.0.2']);
  });

  it('follows changes of a target into memoised aliases (and only what changed)', () => {
    const z = zone();
    put(z, 'dns/svc.x.cluster.local./a.pod.cluster.local.', 'alias');
    put(z, 'dns/top.y.cluster.local./svc.x.cluster.local.', 'alias');
    expect(z.addresses('top.y.cluster.local')).to.deep.equal([]);
    put(z, 'dns/a.pod.cluster.local.', '10.244.0.1');
    expect(z.addresses('top.y.cluster.local')).to.deep.equal(['10.244.0.1']);
    put(z, 'dns/a.pod.cluster.local.', '10.244.0.9');
    expect(z.addresses('svc.x.cluster.local')).to.deep.equal(['10.244.0.9']);
    expect(z.addresses('top.y.cluster.local')).to.deep.equal(['10.244.0.9']);
    del(z, 'dns/top.y.cluster.local./svc.x.cluster.local.');
    expect(z.addresses('top.y.cluster.local')).to.deep.equal([]);
  });

  it('survives alias cycles and answers them with every reachable address', () => {
    const z = zone();
    put(z, 'dns/c.pod.cluster.local.', '10.244.0.3');
    put(z, 'dns/a.x.cluster.local./b.x.cluster.local.', 'alias');
    put(z, 'dns/b.x.cluster.local./a.x.cluster.local.', 'alias');
    put(z, 'dns/b.x.cluster.local./c.pod.cluster.local.', 'alias');
    put(z, 'dns/self.x.cluster.local./self.x.cluster.local.', 'alias');
    expect(z.addresses('a.x.cluster.local')).to.deep.equal(['10.244.0.3']);
    expect(z.addresses('b.x.cluster.local')).to.deep.equal(['10.244.0.3']);
    expect(z.addresses('self.x.cluster.local')).to.deep.equal([]);
    // A chain far longer than any stack would take recursively.
    for (let i = 0; i < 20_000; i++) put(z, `dns/l${i}.x.cluster.local./l${i + 1}.x.cluster.local.`, 'alias');
    put(z, 'dns/l20000.x.cluster.local./c.pod.cluster.local.', 'alias');
    expect(z.addresses('l0.x.cluster.local')).to.deep.equal(['10.244.0.3']);
  });

  it('lets a name own A record win over its aliases', () => {
    const z = zone();
    put(z, 'dns/a.pod.cluster.local.', '10.244.0.1');
    put(z, 'dns/n.x.cluster.local./a.pod.cluster.local.', 'alias');
    put(z, 'dns/n.x.cluster.local.', '10.244.0.7');
    expect(z.addresses('n.x.cluster.local')).to.deep.equal(['10.244.0.7']);
    del(z, 'dns/n.x.cluster.local.');
    expect(z.addresses('n.x.cluster.local')).to.deep.equal(['10.244.0.1']);
  });

  it('serves SRV of named ports only while the pod runs, with the cluster port when mapped', () => {
    const z = zone();
    put(z, 'resource/pod/web', pod('web', { ports: [80, { container: 80, cluster: 8080, name: 'HTTP' }, { container: 9000, name: 'metrics' }, { container: 22 }] }));
    expect(z.srv('_http._tcp.web.pod.cluster.local')).to.deep.equal([]);
    put(z, 'dns/web.pod.cluster.local.', '10.244.1.5');
    expect(z.srv('_http._tcp.web.pod.cluster.local')).to.deep.equal([{ priority: 0, weight: 100, port: 8080, target: 'web.pod.cluster.local' }]);
    expect(z.srv('_metrics._tcp.web.pod.cluster.local')[0]!.port).to.equal(9000);
    expect(z.srv('_ssh._tcp.web.pod.cluster.local')).to.deep.equal([]);
    expect(z.srv('_http._udp.web.pod.cluster.local')).to.deep.equal([]);
    // The name between the pod and its services exists (NODATA, not NXDOMAIN).
    expect(z.isEmptyNonTerminal('_tcp.web.pod.cluster.local')).to.equal(true);
    del(z, 'resource/pod/web');
    expect(z.srv('_http._tcp.web.pod.cluster.local')).to.deep.equal([]);
    expect(z.isEmptyNonTerminal('_tcp.web.pod.cluster.local')).to.equal(false);
  });

  it('answers a ReplicaSet name with its running replicas, and their SRV', () => {
    const z = zone();
    const ports = [{ container: 80, name: 'http' }];
    put(z, 'resource/pod/rs1-aaaaa', pod('rs1-aaaaa', { rs: 'rs1', ports }));
    put(z, 'resource/pod/rs1-bbbbb', pod('rs1-bbbbb', { rs: 'rs1', ports }));
    put(z, 'dns/alias.x.cluster.local./rs1.replicaset.cluster.local.', 'alias');
    expect(z.addresses('rs1.replicaset.cluster.local')).to.deep.equal([]);
    put(z, 'dns/rs1-aaaaa.pod.cluster.local.', '10.244.0.1');
    expect(z.addresses('rs1.replicaset.cluster.local')).to.deep.equal(['10.244.0.1']);
    expect(z.addresses('alias.x.cluster.local')).to.deep.equal(['10.244.0.1']);
    put(z, 'dns/rs1-bbbbb.pod.cluster.local.', '10.244.0.2');
    expect(z.addresses('rs1.replicaset.cluster.local').sort()).to.deep.equal(['10.244.0.1', '10.244.0.2']);
    expect(z.addresses('alias.x.cluster.local').sort()).to.deep.equal(['10.244.0.1', '10.244.0.2']);
    expect(z.srv('_http._tcp.rs1.replicaset.cluster.local').map((s) => s.target).sort()).to.deep.equal(['rs1-aaaaa.pod.cluster.local', 'rs1-bbbbb.pod.cluster.local']);
    expect(z.isEmptyNonTerminal('_tcp.rs1.replicaset.cluster.local')).to.equal(true);
    expect(z.isEmptyNonTerminal('replicaset.cluster.local')).to.equal(true);
    del(z, 'dns/rs1-aaaaa.pod.cluster.local.');
    expect(z.addresses('rs1.replicaset.cluster.local')).to.deep.equal(['10.244.0.2']);
    del(z, 'resource/pod/rs1-bbbbb');
    expect(z.addresses('rs1.replicaset.cluster.local')).to.deep.equal([]);
    expect(z.addresses('alias.x.cluster.local')).to.deep.equal([]);
  });

  it('answers a ReplicaSet name, its SRV and aliases through it with ready replicas only; none ready is no name (SPEC §10)', () => {
    const z = zone();
    const ports = [{ container: 80, name: 'http' }];
    put(z, 'dns/alias.x.cluster.local./rs1.replicaset.cluster.local.', 'alias');
    put(z, 'resource/pod/rs1-aaaaa', pod('rs1-aaaaa', { rs: 'rs1', ports, ready: 'true' }));
    put(z, 'resource/pod/rs1-bbbbb', pod('rs1-bbbbb', { rs: 'rs1', ports, ready: 'true' }));
    put(z, 'dns/rs1-aaaaa.pod.cluster.local.', '10.244.0.1');
    put(z, 'dns/rs1-bbbbb.pod.cluster.local.', '10.244.0.2');
    // Asked (and so memoised) before each change: an answer from before a readiness change must not survive it.
    expect(z.addresses('rs1.replicaset.cluster.local').sort()).to.deep.equal(['10.244.0.1', '10.244.0.2']);
    expect(z.addresses('alias.x.cluster.local').sort()).to.deep.equal(['10.244.0.1', '10.244.0.2']);
    put(z, 'resource/pod/rs1-aaaaa', pod('rs1-aaaaa', { rs: 'rs1', ports, ready: 'false' }));
    expect(z.addresses('rs1.replicaset.cluster.local')).to.deep.equal(['10.244.0.2']);
    expect(z.addresses('alias.x.cluster.local')).to.deep.equal(['10.244.0.2']);
    expect(z.srv('_http._tcp.rs1.replicaset.cluster.local').map((s) => s.target)).to.deep.equal(['rs1-bbbbb.pod.cluster.local']);
    // Its own name stays, for debugging.
    expect(z.addresses('rs1-aaaaa.pod.cluster.local')).to.deep.equal(['10.244.0.1']);
    expect(z.srv('_http._tcp.rs1-aaaaa.pod.cluster.local')).to.have.length(1);
    put(z, 'resource/pod/rs1-bbbbb', pod('rs1-bbbbb', { rs: 'rs1', ports, ready: 'false' }));
    expect(z.addresses('rs1.replicaset.cluster.local')).to.deep.equal([]);
    expect(z.isEmptyNonTerminal('rs1.replicaset.cluster.local')).to.equal(false); // no records, no names below: NXDOMAIN
    expect(z.addresses('alias.x.cluster.local')).to.deep.equal([]);
    // Ready again: back in at once.
    put(z, 'resource/pod/rs1-aaaaa', pod('rs1-aaaaa', { rs: 'rs1', ports, ready: 'true' }));
    expect(z.addresses('rs1.replicaset.cluster.local')).to.deep.equal(['10.244.0.1']);
    expect(z.addresses('alias.x.cluster.local')).to.deep.equal(['10.244.0.1']);
  });

  it('keeps PTR records and reverse zones for every address', () => {
    const z = zone();
    put(z, 'dns/web.pod.cluster.local.', '10.244.1.5');
    put(z, 'dns/n1.worker.node.cluster.local.', '192.168.7.1');
    expect(z.ptr(reverseName('10.244.1.5'))).to.deep.equal(['web.pod.cluster.local']);
    expect(z.authority('5.1.244.10.in-addr.arpa')).to.deep.equal({ kind: 'reverse', apex: '244.10.in-addr.arpa' });
    expect(z.authority('1.7.168.192.in-addr.arpa')).to.deep.equal({ kind: 'reverse', apex: '7.168.192.in-addr.arpa' });
    expect(z.authority('8.8.8.8.in-addr.arpa')).to.equal(undefined);
    del(z, 'dns/n1.worker.node.cluster.local.');
    expect(z.authority('1.7.168.192.in-addr.arpa')).to.equal(undefined);
    expect(z.ptr(reverseName('192.168.7.1'))).to.deep.equal([]);
  });

  it('knows its authority and empty non-terminals', () => {
    const z = zone();
    put(z, 'dns/web.pod.cluster.local.', '10.244.1.5');
    expect(z.authority('cluster.local')).to.deep.equal({ kind: 'cluster', apex: D });
    expect(z.authority('x.cluster.local')?.kind).to.equal('cluster');
    expect(z.authority('example.com')).to.equal(undefined);
    expect(z.authority('notcluster.local')).to.equal(undefined);
    expect(z.isEmptyNonTerminal('pod.cluster.local')).to.equal(true);
    expect(z.isEmptyNonTerminal('worker.node.cluster.local')).to.equal(false);
    del(z, 'dns/web.pod.cluster.local.');
    expect(z.isEmptyNonTerminal('pod.cluster.local')).to.equal(false);
  });

  it('bumps its generation on every change and not on no-ops', () => {
    const z = zone();
    const g0 = z.generation;
    put(z, 'dns/web.pod.cluster.local.', '10.244.1.5');
    const g1 = z.generation;
    expect(g1).to.be.greaterThan(g0);
    put(z, 'dns/web.pod.cluster.local.', '10.244.1.5');
    del(z, 'dns/other.pod.cluster.local.');
    expect(z.generation).to.equal(g1);
  });

  it('lists the whole zone for a transfer', () => {
    const z = zone();
    put(z, 'dns/web.pod.cluster.local.', '10.244.1.5');
    put(z, 'dns/svc.x.cluster.local./web.pod.cluster.local.', 'alias');
    put(z, 'resource/pod/web', pod('web', { rs: 'rs1', ports: [{ container: 80, name: 'http' }] }));
    const recs = [...z.transfer()].map((r) => `${r.name} ${r.type}`);
    expect(recs).to.include.members([
      'cluster.local SOA',
      'cluster.local NS',
      'web.pod.cluster.local A',
      'svc.x.cluster.local A',
      'rs1.replicaset.cluster.local A',
      '_http._tcp.web.pod.cluster.local SRV',
      '_http._tcp.rs1.replicaset.cluster.local SRV',
    ]);
  });

  it('names reverse zones', () => {
    expect(reverseApexOf('10.244.0.0/16')).to.equal('244.10.in-addr.arpa');
    expect(reverseApexOf('10.244.3.0/24')).to.equal('3.244.10.in-addr.arpa');
    expect(reverseApexOf('bogus')).to.equal(undefined);
    expect(normalizeName('A.B.')).to.equal('a.b');
  });
});
