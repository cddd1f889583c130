import { expect } from 'chai';
import { parseDomainName, parseNamespace } from '../../api/namespace.js';
import { Problem } from '../../api/problem.js';
import { patched, podStateOnRead, resourceToCreate } from '../../api/resources.js';
import { depth } from '../../api/body.js';

const problem = (f: () => unknown): Problem => {
  try {
    f();
  } catch (err) {
    if (err instanceof Problem) return err;
    throw err;
  }
  throw new Error('no problem thrown');
};

describe('api: pure decisions', () => {
  describe('resourceToCreate', () => {
    it('types a pod, turning cpu into a string and dropping unknown spec fields', () => {
      const r = resourceToCreate({ name: 'p', type: 'pod', state: 'created', spec: { containers: [{ name: 'a', image: 'i', resources: { limits: { cpu: 2 } }, junk: 1 }], junk: 2 } });
      expect(r).to.deep.equal({ name: 'p', type: 'pod', state: 'created', metadata: {}, spec: { containers: [{ name: 'a', image: 'i', resources: { limits: { cpu: '2' } } }], ports: [] } });
    });

    it('refuses node types before anything else, and names the field of any other failure', () => {
      expect(problem(() => resourceToCreate({ name: 'BAD', type: 'node.reaper' })).detail).to.equal('Node resources cannot be created via the API.');
      expect(problem(() => resourceToCreate({ name: 'ok', type: 'pod', state: 'created', spec: { ports: [1, 1] } })).detail).to.match(/^spec\.ports\[1\]: port 1 is declared twice/);
      expect(problem(() => resourceToCreate({ name: 'ok', type: 42, spec: {} })).detail).to.match(/^type: /);
      const lowLimit = { name: 'ok', type: 'pod', state: 'created', spec: { containers: [{ name: 'a', image: 'i', resources: { requests: { memory: 256, cpu: '0.5' }, limits: { memory: 128, cpu: 1 } } }] } };
      expect(problem(() => resourceToCreate(lowLimit)).detail).to.match(/^spec\.containers\[0\]\.resources\.limits\.memory: must be at least the request \(256\)/);
      const lowCpu = { name: 'ok', type: 'pod', state: 'created', spec: { containers: [{ name: 'a', image: 'i', resources: { requests: { cpu: 2 }, limits: { cpu: '0.5' } } }] } };
      expect(problem(() => resourceToCreate(lowCpu)).detail).to.match(/^spec\.containers\[0\]\.resources\.limits\.cpu: must be at least the request \(2\)/);
      const equal = { name: 'ok', type: 'pod', state: 'created', spec: { containers: [{ name: 'a', image: 'i', resources: { requests: { memory: 64 }, limits: { memory: 64 } } }] } };
      expect(resourceToCreate(equal).name).to.equal('ok');
      expect(problem(() => resourceToCreate('x')).status).to.equal(422);
    });
  });

  describe('health probes (SPEC §10)', () => {
    const withProbe = (readiness: unknown, extra: Record<string, unknown> = {}) => ({
      name: 'ok', type: 'pod', state: 'created', spec: { containers: [{ name: 'a', image: 'i', readiness }], ...extra },
    });
    const detail = (body: unknown) => problem(() => resourceToCreate(body)).detail;

    it('fills in the timing defaults of each probe kind and keeps restartPolicy', () => {
      const r = resourceToCreate(withProbe({ http: { port: 8080 } }, { restartPolicy: 'Always' }));
      const c = (r.spec as { containers: { readiness: unknown }[] }).containers[0]!;
      expect(c.readiness).to.deep.equal({ http: { port: 8080, path: '/' }, periodSeconds: 10, timeoutSeconds: 1, failureThreshold: 3, successThreshold: 1, initialDelaySeconds: 0 });
      expect((r.spec as { restartPolicy: string }).restartPolicy).to.equal('Always');
      expect(resourceToCreate(withProbe({ exec: ['cat', '/tmp/ready'], periodSeconds: 1 })).name).to.equal('ok');
      expect(resourceToCreate(withProbe({ tcp: 80, failureThreshold: 1, initialDelaySeconds: 5 })).name).to.equal('ok');
    });

    it('refuses a bad probe with a 422 naming the field', () => {
      expect(detail(withProbe({ exec: ['true'], tcp: 80 }))).to.match(/^spec\.containers\[0\]\.readiness: has exec and tcp; give exactly one/);
      expect(detail(withProbe({ periodSeconds: 2 }))).to.match(/^spec\.containers\[0\]\.readiness: needs one of exec, tcp or http/);
      expect(detail(withProbe({ tcp: 0 }))).to.match(/^spec\.containers\[0\]\.readiness\.tcp: /);
      expect(detail(withProbe({ http: { port: 70000 } }))).to.match(/^spec\.containers\[0\]\.readiness\.http\.port: /);
      expect(detail(withProbe({ http: { port: 80, path: 'health' } }))).to.match(/^spec\.containers\[0\]\.readiness\.http\.path: must be a path/);
      expect(detail(withProbe({ tcp: 80, periodSeconds: -1 }))).to.match(/^spec\.containers\[0\]\.readiness\.periodSeconds: /);
      expect(detail(withProbe({ tcp: 80, timeoutSeconds: 0.5 }))).to.match(/^spec\.containers\[0\]\.readiness\.timeoutSeconds: /);
      expect(detail(withProbe({ exec: [] }))).to.match(/^spec\.containers\[0\]\.readiness\.exec: must name a command/);
      expect(detail(withProbe({ exec: [''] }))).to.match(/^spec\.containers\[0\]\.readiness\.exec: must name a command/);
      expect(detail(withProbe(undefined, { restartPolicy: 'Sometimes' }))).to.match(/^spec\.restartPolicy: /);
      const live = { name: 'ok', type: 'pod', state: 'created', spec: { containers: [{ name: 'a', image: 'i', liveness: { http: { port: 80 }, failureThreshold: 0 } }] } };
      expect(detail(live)).to.match(/^spec\.containers\[0\]\.liveness\.failureThreshold: /);
    });
  });

  describe('patched', () => {
    const old = { name: 'w', type: 'widget', state: 'on', metadata: { a: '1' }, spec: { n: 1 } };

    it('keeps state, metadata and spec when null or missing; replaces them whole when given', () => {
      expect(patched(old, {})).to.deep.equal(old);
      expect(patched(old, { state: null, metadata: { b: '2' } })).to.deep.equal({ ...old, metadata: { b: '2' } });
      expect(patched(old, { spec: { m: 2 } })).to.deep.equal({ ...old, spec: { m: 2 } });
    });

    it('refuses pods, renames and non-objects', () => {
      expect(problem(() => patched({ ...old, type: 'pod' }, {})).type).to.equal('modification-not-allowed');
      expect(problem(() => patched(old, { name: 'v' })).type).to.equal('modification-not-allowed');
      for (const body of [[], 1, 'x', null, true]) expect(problem(() => patched(old, body)).type).to.equal('resource-invalid');
    });
  });

  it('derives a pod state from its worker only while the pod is live', () => {
    expect(podStateOnRead('running', 'healthy')).to.equal('running');
    expect(podStateOnRead('running', 'degraded')).to.equal('unhealthy');
    expect(podStateOnRead('accepted', 'dead')).to.equal('dead');
    expect(podStateOnRead('exitSuccess', 'dead')).to.equal('exitSuccess');
    expect(podStateOnRead('created', undefined)).to.equal('created');
  });

  it('parses namespaces and domain names as the reference', () => {
    expect(parseNamespace('api.node')).to.deep.equal({ name: 'api.node', builtin: true });
    expect(parseNamespace('shop')).to.deep.equal({ name: 'shop', builtin: false });
    for (const bad of ['node', 'Shop', 'a.b', '', 'x-']) expect(parseNamespace(bad)).to.equal(undefined);
    expect(parseDomainName('infra.api.node.cluster.local.', 'cluster.local')).to.deep.equal({ host: 'infra', namespace: 'api.node' });
    expect(parseDomainName('www.shop.cluster.local', 'cluster.local')).to.deep.equal({ host: 'www', namespace: 'shop' });
    expect(parseDomainName('shop.cluster.local', 'cluster.local')).to.have.property('error');
    expect(parseDomainName('www.shop.cluster.local.evil', 'cluster.local')).to.have.property('error');
  });

  it('measures JSON depth without recursion', () => {
    expect(depth(1)).to.equal(0);
    expect(depth({ a: [1, { b: 2 }] })).to.equal(3);
    let deep: unknown = 0;
    for (let i = 0; i < 100_000; i++) deep = [deep];
    expect(depth(deep)).to.be.above(64);
  });
});
