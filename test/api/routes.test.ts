import { expect } from 'chai';
import { ApiHarness } from './harness.js';
import { loopbackAddress } from '../support/ports.js';

const pod = (name: string, extra: Record<string, unknown> = {}) => ({
  name,
  type: 'pod',
  state: 'created',
  spec: { containers: [{ name: 'main', image: 'localhost/kith/busybox', cmd: ['sleep', '60'], resources: { requests: { cpu: 0.25, memory: 16 } } }], ports: [80, { container: 81, cluster: 8081, name: 'alt' }] },
  ...extra,
});

function expectProblem(r: { status: number; type: string; body: any }, status: number, slug: string, detail?: string | RegExp): void {
  expect(r.status, JSON.stringify(r.body)).to.equal(status);
  expect(r.type).to.match(/^application\/problem\+json/);
  expect(r.body).to.have.all.keys('type', 'title', 'detail', 'status');
  expect(r.body.type).to.equal(slug);
  expect(r.body.status).to.equal(status);
  if (typeof detail === 'string') expect(r.body.detail).to.equal(detail);
  else if (detail) expect(r.body.detail).to.match(detail);
}

describe('api: REST routes over HTTP against a real etcd', function () {
  this.timeout(60_000);
  let h: ApiHarness;
  let clusterAddress: string;

  before(async () => {
    clusterAddress = await loopbackAddress(80);
    h = await ApiHarness.start([], { clusterAddress });
  });
  after(async () => {
    await h?.stop();
  });

  describe('POST /resources', () => {
    it('creates a pod and its unscheduled marker in one go; the stored pod is the typed one', async () => {
      const r = await h.request('POST', '/resources', pod('web'));
      expect(r.status).to.equal(201);
      expect(r.headers.get('location')).to.equal('/resources/pod/web');
      expect(r.body).to.include({ name: 'web', type: 'pod', state: 'created' });
      expect(r.body.spec.containers[0].resources.requests.cpu).to.equal('0.25');
      const stored = await h.value('resource/pod/web');
      expect(JSON.parse(stored!)).to.deep.equal(r.body);
      expect(await h.value('pod/unscheduled/web')).to.equal(stored);
    });

    it('answers 409 resource-already-exists with the reference detail', async () => {
      const r = await h.request('POST', '/resources', pod('web'));
      expectProblem(r, 409, 'resource-already-exists', "The resource 'web' of type 'pod' already exists.  If you want to replace it, delete it first.");
      expect(r.body.title).to.equal('The given resource already exists.');
    });

    it('refuses an invalid pod name with 422 naming the field, and stores nothing (SPEC §7)', async () => {
      for (const name of ['Web', 'web_1', '-web', 'web-', '1web', 'a'.repeat(64), '', 'we b']) {
        const r = await h.request('POST', '/resources', pod(name));
        expectProblem(r, 422, 'resource-invalid', /^name: /);
        expect(r.body.title).to.equal('The given resource is invalid.');
      }
      const keys = Object.keys(await h.all());
      expect(keys.filter((k) => k.startsWith('resource/pod/') || k.startsWith('pod/unscheduled/'))).to.deep.equal(['pod/unscheduled/web', 'resource/pod/web']);
    });

    it('names the failing field of a bad pod', async () => {
      expectProblem(await h.request('POST', '/resources', pod('p1', { state: 'running' })), 422, 'resource-invalid', /^state: a new pod's state must be 'created'/);
      expectProblem(await h.request('POST', '/resources', pod('p1', { state: undefined })), 422, 'resource-invalid', /^state: /);
      expectProblem(await h.request('POST', '/resources', pod('p1', { spec: { containers: [{ name: 'a' }] } })), 422, 'resource-invalid', /^spec\.containers\[0\]\.image: /);
      expectProblem(await h.request('POST', '/resources', pod('p1', { spec: { ports: [70000] } })), 422, 'resource-invalid', /^spec\.ports\[0\]/);
      expectProblem(await h.request('POST', '/resources', pod('p1', { spec: { containers: [{ name: 'a', image: 'x', resources: { limits: { cpu: 'lots' } } }] } })), 422, 'resource-invalid', /^spec\.containers\[0\]\.resources\.limits\.cpu: /);
      expectProblem(await h.request('POST', '/resources', pod('p1', { metadata: { a: 1 } })), 422, 'resource-invalid', /^metadata\.a: /);
      // Probes (SPEC §10): two kinds at once, port 0, a negative period, an empty command.
      const probed = (readiness: unknown) => pod('p1', { spec: { containers: [{ name: 'a', image: 'x', readiness }] } });
      expectProblem(await h.request('POST', '/resources', probed({ exec: ['true'], http: { port: 80 } })), 422, 'resource-invalid', /^spec\.containers\[0\]\.readiness: has exec and http/);
      expectProblem(await h.request('POST', '/resources', probed({ tcp: 0 })), 422, 'resource-invalid', /^spec\.containers\[0\]\.readiness\.tcp: /);
      expectProblem(await h.request('POST', '/resources', probed({ tcp: 80, periodSeconds: -5 })), 422, 'resource-invalid', /^spec\.containers\[0\]\.readiness\.periodSeconds: /);
      expectProblem(await h.request('POST', '/resources', probed({ exec: [] })), 422, 'resource-invalid', /^spec\.containers\[0\]\.readiness\.exec: must name a command/);
      expect(await h.value('resource/pod/p1')).to.equal(undefined);
    });

    it('refuses node resources with the reference detail', async () => {
      const r = await h.request('POST', '/resources', { name: 'n1', type: 'node.worker', spec: {} });
      expectProblem(r, 422, 'resource-invalid', 'Node resources cannot be created via the API.');
    });

    it('stores any other valid type as-is, and refuses a bad type, name or spec', async () => {
      const r = await h.request('POST', '/resources', { name: 'w1', type: 'widget.big', spec: { size: 3, extra: { deep: [1] } } });
      expect(r.status).to.equal(201);
      expect(JSON.parse((await h.value('resource/widget.big/w1'))!)).to.deep.equal({ name: 'w1', type: 'widget.big', metadata: {}, spec: { size: 3, extra: { deep: [1] } } });
      expectProblem(await h.request('POST', '/resources', { name: 'w2', type: 'Wid/get', spec: {} }), 422, 'resource-invalid', /^type: /);
      expectProblem(await h.request('POST', '/resources', { name: 'w2', type: '.widget', spec: {} }), 422, 'resource-invalid', /^type: /);
      expectProblem(await h.request('POST', '/resources', { name: 'W2', type: 'widget', spec: {} }), 422, 'resource-invalid', /^name: /);
      expectProblem(await h.request('POST', '/resources', { name: 'w2', type: 'widget', spec: [] }), 422, 'resource-invalid', /^spec: /);
      expectProblem(await h.request('POST', '/resources', { name: 'w2', type: 'widget' }), 422, 'resource-invalid', /^spec: /);
      expectProblem(await h.request('POST', '/resources', [1, 2]), 422, 'resource-invalid', /^body: /);
      expectProblem(await h.request('POST', '/resources', '"pod"'), 422, 'resource-invalid', /^body: /);
      expectProblem(await h.request('POST', '/resources', 'null'), 422, 'resource-invalid', /^body: /);
    });

    it('answers body-decoding errors as problem details: 400, 415, 413', async () => {
      expectProblem(await h.request('POST', '/resources', '{"name": '), 400, 'malformed-request', /not valid JSON/);
      expectProblem(await h.request('POST', '/resources', ''), 400, 'malformed-request');
      expectProblem(await h.request('POST', '/resources', JSON.stringify(pod('x')), { 'content-type': 'text/plain' }), 415, 'unsupported-media-type', /text\/plain/);
      const none = await fetch(`${h.url}/resources`, { method: 'POST', headers: { authorization: `Bearer ${h.adminToken}` }, body: new Uint8Array(Buffer.from(JSON.stringify(pod('x')))) });
      expect(none.status).to.equal(415);
      expect(none.headers.get('content-type')).to.match(/^application\/problem\+json/);
      expectProblem(await h.request('POST', '/resources', JSON.stringify(pod('x')), { 'content-encoding': 'gzip' }), 415, 'unsupported-media-type', /gzip/);
      expectProblem(await h.request('POST', '/resources', JSON.stringify({ ...pod('x'), pad: 'x'.repeat(300_000) })), 413, 'payload-too-large');
      expectProblem(await h.request('POST', '/resources', '['.repeat(100) + ']'.repeat(100)), 422, 'resource-invalid', /deeper/);
      expectProblem(await h.request('POST', '/resources', Buffer.from([0x7b, 0xff, 0x7d]).toString('latin1')), 400, 'malformed-request');
      expect(await h.value('resource/pod/x')).to.equal(undefined);
    });

    it('lets exactly one of many concurrent creates of one name win', async () => {
      const rs = await Promise.all(Array.from({ length: 25 }, () => h.request('POST', '/resources', pod('race'))));
      const codes = rs.map((r) => r.status).sort();
      expect(codes.filter((c) => c === 201)).to.have.length(1);
      expect(codes.filter((c) => c === 409)).to.have.length(24);
    });
  });

  describe('GET /resources', () => {
    it('lists a type sorted by name, [] for an unknown or impossible type', async () => {
      await h.request('POST', '/resources', pod('alpha'));
      const r = await h.request('GET', '/resources/pod');
      expect(r.status).to.equal(200);
      const names = r.body.map((p: { name: string }) => p.name);
      expect(names).to.deep.equal([...names].sort());
      expect(names).to.include.members(['alpha', 'web', 'race']);
      expect((await h.request('GET', '/resources/nothing')).body).to.deep.equal([]);
      expect((await h.request('GET', '/resources/BAD%2Ftype')).body).to.deep.equal([]);
    });

    it('skips a bad stored entry instead of failing the whole list', async () => {
      await h.put('resource/pod/Broken_Name', JSON.stringify({ name: 'Broken_Name', type: 'pod', state: 'created', spec: {} }));
      await h.put('resource/pod/garbage', '{not json');
      // A list shows this node's own writes: the API's view has the bad entries once it shows this pod, written after them.
      expect((await h.request('POST', '/resources', pod('after-bad'))).status).to.equal(201);
      const r = await h.request('GET', '/resources/pod');
      expect(r.status).to.equal(200);
      expect(r.body.map((p: { name: string }) => p.name)).to.include.members(['web', 'after-bad']).and.not.include('Broken_Name');
      expectProblem(await h.request('GET', '/resources/pod/garbage'), 422, 'resource-invalid');
      await h.del('resource/pod/Broken_Name');
      await h.del('resource/pod/garbage');
    });

    it('gets one resource with an ETag, or 404 with the reference detail', async () => {
      const r = await h.request('GET', '/resources/pod/web');
      expect(r.status).to.equal(200);
      expect(r.body.name).to.equal('web');
      expect(r.headers.get('etag')).to.match(/^"\d+"$/);
      expectProblem(await h.request('GET', '/resources/pod/nope'), 404, 'resource-not-found', "The resource 'nope' of type 'pod' does not exist.");
      expectProblem(await h.request('GET', '/resources/pod/No_Pe'), 404, 'resource-not-found');
    });
  });

  describe('derived states', () => {
    const worker = (name: string) => ({ name, type: 'node.worker', state: 'healthy', metadata: {}, spec: { address: '10.0.0.9' } });

    it('derives node state from heartbeats: healthy, degraded, dead', async () => {
      const self = await h.request('GET', `/resources/node.api/${h.name}`);
      expect(self.body.state).to.equal('healthy');
      expect(self.body.spec.address).to.equal(clusterAddress);
      await h.put('resource/node.worker/w-a', JSON.stringify(worker('w-a')));
      await h.put('resource/node.worker/w-b', JSON.stringify(worker('w-b')));
      await h.put('resource/node.worker/w-c', JSON.stringify(worker('w-c')));
      await h.put('node.worker/heartbeat/healthy/w-a', 'lease-established');
      await h.put('node.worker/heartbeat/alive/w-a', 'lease-established');
      await h.put('node.worker/heartbeat/alive/w-b', 'lease-established');
      // Written straight to etcd, not through this API: its view has them within moments.
      let list = await h.request('GET', '/resources/node.worker');
      await h.until(async () => (list = await h.request('GET', '/resources/node.worker')).body.length === 3);
      expect(Object.fromEntries(list.body.map((n: { name: string; state: string }) => [n.name, n.state]))).to.deep.equal({ 'w-a': 'healthy', 'w-b': 'degraded', 'w-c': 'dead' });
      expect((await h.request('GET', '/resources/node.worker/w-b')).body.state).to.equal('degraded');
    });

    it('derives unhealthy and dead for live pods of degraded and dead workers, not for ended pods', async () => {
      const put = (name: string, state: string, by: string) =>
        h.put(`resource/pod/${name}`, JSON.stringify({ ...pod(name), state, metadata: { workedBy: by } }));
      await put('on-a', 'running', 'w-a');
      await put('on-b', 'running', 'w-b');
      await put('on-c', 'accepted', 'w-c');
      await put('done-c', 'exitSuccess', 'w-c');
      const listed = async () => (await h.request('GET', '/resources/pod')).body as { name: string; state: string }[];
      await h.until(async () => (await listed()).some((p) => p.name === 'done-c'));
      const states = Object.fromEntries((await listed()).map((p: { name: string; state: string }) => [p.name, p.state]));
      expect(states).to.include({ 'on-a': 'running', 'on-b': 'unhealthy', 'on-c': 'dead', 'done-c': 'exitSuccess' });
      expect((await h.request('GET', '/resources/pod/on-b')).body.state).to.equal('unhealthy');
      // Derived on read only: etcd keeps what the worker wrote.
      expect(JSON.parse((await h.value('resource/pod/on-b'))!).state).to.equal('running');
    });
  });

  describe('PATCH /resources/:type/:name', () => {
    it('answers 404 for a missing pod (SPEC §7) and 422 for an existing one', async () => {
      expectProblem(await h.request('PATCH', '/resources/pod/missing', { metadata: { a: 'b' } }), 404, 'resource-not-found', "The resource 'missing' of type 'pod' does not exist.");
      expectProblem(await h.request('PATCH', '/resources/pod/web', { metadata: { a: 'b' } }), 422, 'modification-not-allowed', 'Pod resources cannot be modified via the API.');
    });

    it('answers 422 for a body that is not an object (SPEC §7)', async () => {
      for (const body of ['[1,2]', '42', '"text"', 'null', 'true']) {
        expectProblem(await h.request('PATCH', '/resources/widget.big/w1', body), 422, 'resource-invalid', /^body: /);
        expectProblem(await h.request('PATCH', '/resources/pod/web', body), 422, 'resource-invalid', /^body: /);
      }
      expect((await h.request('GET', '/resources/widget.big/w1')).status).to.equal(200);
    });

    it('refuses node resources, and changes of name or type, with the reference details', async () => {
      expectProblem(await h.request('PATCH', `/resources/node.api/${h.name}`, {}), 422, 'modification-not-allowed', 'Node resources cannot be modified via the API.');
      expectProblem(await h.request('PATCH', '/resources/widget.big/w1', { name: 'w9' }), 422, 'modification-not-allowed', "The 'type' and 'name' fields of a resource cannot be modified after creation.");
      expectProblem(await h.request('PATCH', '/resources/widget.big/w1', { type: 'other' }), 422, 'modification-not-allowed');
      // As in the reference, a change of name or type is refused before existence is looked at.
      expectProblem(await h.request('PATCH', '/resources/widget.big/nowhere', { name: 'w9' }), 422, 'modification-not-allowed', "The 'type' and 'name' fields of a resource cannot be modified after creation.");
      expectProblem(await h.request('PATCH', '/resources/widget.big/nowhere', { state: 'x' }), 404, 'resource-not-found');
      expectProblem(await h.request('PATCH', '/resources/widget.big/nowhere', '[1]'), 422, 'resource-invalid', /^body: /);
      expect((await h.request('GET', '/resources/widget.big/nowhere')).status).to.equal(404);
    });

    it('merges shallowly as the reference: given fields replace, null or missing ones are kept', async () => {
      let r = await h.request('PATCH', '/resources/widget.big/w1', { state: 'on', metadata: { a: '1' } });
      expect(r.status).to.equal(200);
      expect(r.body).to.deep.equal({ name: 'w1', type: 'widget.big', state: 'on', metadata: { a: '1' }, spec: { size: 3, extra: { deep: [1] } } });
      r = await h.request('PATCH', '/resources/widget.big/w1', { metadata: { b: '2' }, spec: null, state: null });
      expect(r.body).to.deep.equal({ name: 'w1', type: 'widget.big', state: 'on', metadata: { b: '2' }, spec: { size: 3, extra: { deep: [1] } } });
      expect(JSON.parse((await h.value('resource/widget.big/w1'))!)).to.deep.equal(r.body);
      expectProblem(await h.request('PATCH', '/resources/widget.big/w1', { spec: 'flat' }), 422, 'resource-invalid', /^spec: /);
      expectProblem(await h.request('PATCH', '/resources/widget.big/w1', { metadata: { a: 5 } }), 422, 'resource-invalid', /^metadata\.a: /);
      expectProblem(await h.request('PATCH', '/resources/widget.big/w1', '{'), 400, 'malformed-request');
    });

    it('honours If-Match with 412 when the resource changed since it was read', async () => {
      const got = await h.request('GET', '/resources/widget.big/w1');
      const etag = got.headers.get('etag')!;
      const ok = await h.request('PATCH', '/resources/widget.big/w1', { state: 'one' }, { 'if-match': etag });
      expect(ok.status).to.equal(200);
      expectProblem(await h.request('PATCH', '/resources/widget.big/w1', { state: 'two' }, { 'if-match': etag }), 412, 'precondition-failed');
      expect(JSON.parse((await h.value('resource/widget.big/w1'))!).state).to.equal('one');
    });

    it('loses no update when patches of different fields race, within one API and across two', async () => {
      const peer = await h.peer();
      try {
        await h.request('POST', '/resources', { name: 'counter', type: 'widget', spec: { n: 0 } });
        for (let round = 1; round <= 10; round++) {
          const at = (i: number) => (round % 2 === 0 && i === 1 ? h.url : [h.url, peer.url][(i + round) % 2]!);
          const rs = await Promise.all([
            h.request('PATCH', '/resources/widget/counter', { state: `s${round}` }, {}, at(0)),
            h.request('PATCH', '/resources/widget/counter', { metadata: { round: String(round) } }, {}, at(1)),
            h.request('PATCH', '/resources/widget/counter', { spec: { n: round } }, {}, at(2)),
          ]);
          expect(rs.map((r) => r.status)).to.deep.equal([200, 200, 200]);
          const now = JSON.parse((await h.value('resource/widget/counter'))!);
          expect(now).to.deep.include({ state: `s${round}`, metadata: { round: String(round) }, spec: { n: round } });
        }
      } finally {
        await peer.stop();
      }
    });
  });

  describe('replicasets', () => {
    const rs = { name: 'frontend', type: 'replicaset', spec: { replicas: 2, template: { spec: { containers: [{ name: 'web', image: 'localhost/kith/busybox' }] } } } };

    it('validates with the replicaset schema on create and patch, and allows scaling', async () => {
      expect((await h.request('POST', '/resources', rs)).status).to.equal(201);
      expectProblem(await h.request('POST', '/resources', { ...rs, name: 'bad', spec: { ...rs.spec, replicas: -1 } }), 422, 'resource-invalid', /^spec\.replicas: /);
      expectProblem(await h.request('POST', '/resources', { ...rs, name: 'bad', spec: { replicas: 1 } }), 422, 'resource-invalid', /^spec\.template: /);
      expectProblem(await h.request('POST', '/resources', { ...rs, name: 'r'.repeat(60) }), 422, 'resource-invalid', /^name: /);
      const scaled = await h.request('PATCH', '/resources/replicaset/frontend', { spec: { ...rs.spec, replicas: 5 } });
      expect(scaled.status).to.equal(200);
      expect(scaled.body.spec.replicas).to.equal(5);
      expectProblem(await h.request('PATCH', '/resources/replicaset/frontend', { spec: { replicas: 'many' } }), 422, 'resource-invalid', /^spec\./);
      expect(JSON.parse((await h.value('resource/replicaset/frontend'))!).spec.replicas).to.equal(5);
    });

    it('keeps the status its controller wrote when a PATCH does not give one', async () => {
      const stored = JSON.parse((await h.value('resource/replicaset/frontend'))!);
      await h.put('resource/replicaset/frontend', JSON.stringify({ ...stored, state: 'ready', status: { desired: 5, live: 5, running: 5 } }));
      const r = await h.request('PATCH', '/resources/replicaset/frontend', { spec: { ...stored.spec, replicas: 1 } });
      expect(r.status).to.equal(200);
      expect(r.body).to.deep.include({ state: 'ready', status: { desired: 5, live: 5, running: 5 } });
      expect(r.body.spec.replicas).to.equal(1);
      expect((await h.request('GET', '/resources/replicaset')).body[0].status).to.deep.equal({ desired: 5, live: 5, running: 5 });
    });
  });

  describe('DELETE /resources/:type/:name', () => {
    it('deletes a pod with its unscheduled marker, then answers 404', async () => {
      expect((await h.request('DELETE', '/resources/pod/alpha')).status).to.equal(204);
      expect(await h.value('resource/pod/alpha')).to.equal(undefined);
      expect(await h.value('pod/unscheduled/alpha')).to.equal(undefined);
      expectProblem(await h.request('DELETE', '/resources/pod/alpha'), 404, 'resource-not-found', "The resource 'alpha' of type 'pod' does not exist.");
    });

    it('?now=1 gives the pod no grace: its stored grace goes to 0 in a write just before the delete (SPEC §11)', async () => {
      expect((await h.request('POST', '/resources', pod('hasty'))).status).to.equal(201);
      const seen: { type: string; grace?: unknown }[] = [];
      const watcher = await h.kv.watch().key('/kith/resource/pod/hasty').create();
      watcher.on('put', (kv) => seen.push({ type: 'put', grace: (JSON.parse(kv.value.toString()) as { spec: { terminationGracePeriodSeconds?: number } }).spec.terminationGracePeriodSeconds }));
      watcher.on('delete', () => seen.push({ type: 'delete' }));
      try {
        expect((await h.request('DELETE', '/resources/pod/hasty?now=1')).status).to.equal(204);
        await h.until(async () => seen.length === 2);
        expect(seen).to.deep.equal([{ type: 'put', grace: 0 }, { type: 'delete' }]);
        expect(await h.value('pod/unscheduled/hasty')).to.equal(undefined);
        expectProblem(await h.request('DELETE', '/resources/pod/hasty?now=1'), 404, 'resource-not-found');
      } finally {
        await watcher.cancel();
      }
    });

    it('deletes other types and refuses nodes', async () => {
      expect((await h.request('DELETE', '/resources/widget/counter')).status).to.equal(204);
      expectProblem(await h.request('DELETE', '/resources/widget/counter'), 404, 'resource-not-found');
      expectProblem(await h.request('DELETE', `/resources/node.api/${h.name}`), 422, 'modification-not-allowed', 'Node resources cannot be deleted via the API.');
    });
  });

  describe('DNS aliases', () => {
    const NS_DETAIL = (ns: string) => `'${ns}' is not a valid DNS namespace: a namespace must be a valid DNS label and not clash with any builtins.`;
    const LABEL_DETAIL = (l: string) =>
      `'${l}' is not a valid DNS label: a label must be lowercase; at most 63 characters long; consist only of ASCII letters, numbers, and hyphens; start with a letter; and not end with a hyphen.`;

    it('creates an alias with no lease, lists it, checks it, deletes it', async () => {
      expect((await h.request('PUT', '/dns_aliases/shop/www/pod/web')).status).to.equal(204);
      expect((await h.request('PUT', '/dns_aliases/shop/www/pod/web')).status).to.equal(204);
      expect((await h.request('PUT', '/dns_aliases/shop/www/replicaset/frontend')).status).to.equal(204);
      const kv = await h.kv.get('/kith/dns/www.shop.cluster.local./web.pod.cluster.local.').exec();
      expect(kv.kvs[0]!.value.toString()).to.equal('alias');
      expect(String(kv.kvs[0]!.lease)).to.equal('0');
      const list = await h.request('GET', '/dns_aliases/shop/www');
      expect(list.status).to.equal(200);
      expect(list.body).to.deep.equal(['frontend.replicaset.cluster.local.', 'web.pod.cluster.local.']);
      expect((await h.request('GET', '/dns_aliases/shop/www/pod/web')).status).to.equal(204);
      expect((await h.request('DELETE', '/dns_aliases/shop/www/pod/web')).status).to.equal(204);
      expectProblem(await h.request('GET', '/dns_aliases/shop/www/pod/web'), 404, 'dns-alias-not-found', "The DNS alias 'shop/www' -> 'pod/web' does not exist.");
      expectProblem(await h.request('DELETE', '/dns_aliases/shop/www/pod/web'), 404, 'dns-alias-not-found');
      expect((await h.request('GET', '/dns_aliases/shop/nothing')).body).to.deep.equal([]);
    });

    it('reads built-in aliases: this node is in api.special', async () => {
      const r = await h.request('GET', '/dns_aliases/special/api');
      expect(r.body).to.deep.equal([`${h.name}.api.node.cluster.local.`]);
      expect(await h.value(`dns/${h.name}.api.node.cluster.local.`)).to.equal(clusterAddress);
      const kv = await h.kv.get(`/kith/dns/${h.name}.api.node.cluster.local.`).exec();
      expect(String(kv.kvs[0]!.lease)).to.not.equal('0');
      expect((await h.request('GET', `/dns_aliases/special/api/api.node/${h.name}`)).status).to.equal(204);
    });

    it('refuses changes to built-in namespaces', async () => {
      for (const ns of ['pod', 'special', 'api.node', 'worker.node', 'replicaset']) {
        expectProblem(await h.request('PUT', `/dns_aliases/${ns}/x/pod/web`), 422, 'modification-not-allowed', 'Built-in DNS namespaces cannot be modified via the API.');
        expectProblem(await h.request('DELETE', `/dns_aliases/${ns}/x/pod/web`), 422, 'modification-not-allowed');
      }
    });

    it('validates namespaces and labels, the from side first, with the reference details', async () => {
      expectProblem(await h.request('GET', '/dns_aliases/node/x'), 422, 'invalid-dns-namespace', NS_DETAIL('node'));
      expectProblem(await h.request('GET', '/dns_aliases/Shop/x'), 422, 'invalid-dns-namespace', NS_DETAIL('Shop'));
      expectProblem(await h.request('GET', '/dns_aliases/a.b/x'), 422, 'invalid-dns-namespace', NS_DETAIL('a.b'));
      expectProblem(await h.request('GET', '/dns_aliases/shop/X_1'), 422, 'invalid-dns-label', LABEL_DETAIL('X_1'));
      expect((await h.request('GET', '/dns_aliases/shop/X_1')).body.title).to.equal('The given DNS label is invalid');
      expectProblem(await h.request('PUT', '/dns_aliases/shop/ok/bad_ns/x'), 422, 'invalid-dns-namespace', NS_DETAIL('bad_ns'));
      expectProblem(await h.request('PUT', '/dns_aliases/shop/-bad/bad_ns/x'), 422, 'invalid-dns-label', LABEL_DETAIL('-bad'));
      expectProblem(await h.request('PUT', '/dns_aliases/shop/ok/pod/-x'), 422, 'invalid-dns-label', LABEL_DETAIL('-x'));
      expectProblem(await h.request('PUT', '/dns_aliases/pod/ok/pod/-x'), 422, 'invalid-dns-label');
      expect(Object.keys(await h.all('dns/')).filter((k) => k.includes('ok.'))).to.deep.equal([]);
    });
  });

  describe('routing, health, metrics', () => {
    it('answers unknown routes 404 and wrong methods 405 as problem details', async () => {
      expectProblem(await h.request('GET', '/nothing/here'), 404, 'route-not-found');
      expectProblem(await h.request('GET', '/resources/pod/web/extra'), 404, 'route-not-found');
      const r = await h.request('PUT', '/resources/pod/web');
      expectProblem(r, 405, 'method-not-allowed');
      expect(r.headers.get('allow')).to.include('PATCH');
      expectProblem(await h.request('DELETE', '/resources'), 405, 'method-not-allowed');
      const opt = await h.request('OPTIONS', '/resources');
      expect(opt.status).to.equal(204);
      expect(opt.headers.get('allow')).to.include('POST');
    });

    it('serves /healthz and /readyz', async () => {
      const hz = await h.request('GET', '/healthz');
      expect([hz.status, hz.text]).to.deep.equal([200, 'ok\n']);
      const rz = await h.request('GET', '/readyz');
      expect([rz.status, rz.text]).to.deep.equal([200, 'ok\n']);
    });

    it('counts requests by route and status in /metrics', async () => {
      await h.request('GET', '/resources/pod/nope');
      const r = await h.request('GET', '/metrics');
      expect(r.status).to.equal(200);
      expect(r.type).to.match(/^text\/plain/);
      expect(r.text).to.match(/kith_api_requests_total\{method="POST",route="\/resources",status="201"\} \d+/);
      expect(r.text).to.match(/kith_api_requests_total\{method="GET",route="\/resources\/:type\/:name",status="404"\} \d+/);
      expect(r.text).to.match(/kith_api_requests_total\{method="GET",route="unmatched",status="404"\} \d+/);
      expect(r.text).to.match(/kith_api_request_duration_seconds_bucket\{le="0\.005",method="POST",route="\/resources",status="409"\} \d+/);
    });
  });
});
