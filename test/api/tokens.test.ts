import { expect } from 'chai';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { ApiHarness } from './harness.js';
import { TestAgent } from '../support/agent.js';
import { freePort } from '../support/ports.js';
import { TestEtcd } from '../support/etcd.js';
import { waitUntil } from '../support/wait.js';
import { bearer, hashSecret, parseDuration, requiredRole } from '../../api/tokens.js';

const pod = (name: string) => ({
  name,
  type: 'pod',
  state: 'created',
  spec: { containers: [{ name: 'main', image: 'localhost/kith/busybox', cmd: ['sleep', '60'] }] },
});

describe('api: tokens as data', () => {
  it('needs admin for tokens, view for reads, edit for changes, nothing for the probes', () => {
    expect(requiredRole('GET', '/healthz')).to.equal(undefined);
    expect(requiredRole('GET', '/readyz')).to.equal(undefined);
    expect(requiredRole('GET', '/tokens')).to.equal('admin');
    expect(requiredRole('DELETE', '/tokens/x')).to.equal('admin');
    expect(requiredRole('GET', '/metrics')).to.equal('view');
    expect(requiredRole('GET', '/resources/pod')).to.equal('view');
    expect(requiredRole('PATCH', '/resources/pod/x')).to.equal('edit');
    expect(requiredRole('PUT', '/dns_aliases/a/b/c/d')).to.equal('edit');
    // The dashboard's page and assets hold no data; the page asks for a token for what it reads.
    expect(requiredRole('GET', '/ui')).to.equal(undefined);
    expect(requiredRole('GET', '/ui/app.js')).to.equal(undefined);
    expect(requiredRole('GET', '/uix')).to.equal('view');
    expect(requiredRole('GET', '/dns_names')).to.equal('view');
  });

  it('reads durations and bearer headers, refusing other shapes', () => {
    expect(parseDuration('90')).to.equal(90);
    expect(parseDuration('10m')).to.equal(600);
    expect(parseDuration('2h')).to.equal(7200);
    expect(parseDuration('0')).to.equal(undefined);
    expect(parseDuration('1y')).to.equal(undefined);
    expect(bearer(undefined)).to.equal(undefined);
    expect(bearer('Bearer kith_abc-_')).to.equal('kith_abc-_');
    expect(bearer('bearer  kith_x')).to.equal('kith_x');
    expect(bearer('Basic dXNlcjpwYXNz')).to.equal('malformed');
    expect(bearer('Bearer a b')).to.equal('malformed');
    expect(bearer(`Bearer ${'a'.repeat(600)}`)).to.equal('malformed');
  });
});

describe('api: tokens and roles against a real agent and etcd', function () {
  this.timeout(90_000);
  let h: ApiHarness;
  const secrets: Record<'view' | 'edit' | 'admin', string> = { view: '', edit: '', admin: '' };

  before(async () => {
    h = await ApiHarness.start();
    secrets.admin = h.adminToken;
    for (const role of ['view', 'edit'] as const) {
      const r = await h.request('POST', '/tokens', { name: `t-${role}`, role });
      expect(r.status, r.text).to.equal(201);
      secrets[role] = r.body.token;
    }
  });
  after(async () => {
    await h?.stop();
  });

  it('bootstraps one admin token into <data-dir>/admin.token, mode 0600, stored in etcd only as a hash', async () => {
    expect(h.adminToken).to.match(/^kith_[A-Za-z0-9_-]{43}$/);
    expect(statSync(join(h.agent.dataDir, 'admin.token')).mode & 0o777).to.equal(0o600);
    const all = await h.all('token/');
    expect(Object.keys(all).sort()).to.deep.equal(['token/admin', 'token/t-edit', 'token/t-view']);
    const stored = JSON.parse(all['token/admin']!);
    expect(stored).to.include({ name: 'admin', role: 'admin', hash: hashSecret(h.adminToken) });
    const dump = JSON.stringify(await h.all());
    for (const s of Object.values(secrets)) expect(dump).not.to.include(s);
    for (const line of h.agent.lines) for (const s of Object.values(secrets)) expect(line).not.to.include(s);
  });

  it('answers every route with the right code for no token, a bad token, view, edit and admin', async () => {
    await h.request('POST', '/resources', pod('seen'));
    // [method, path, body, the least role that may]
    const routes: [string, string, unknown, 'view' | 'edit' | 'admin'][] = [
      ['GET', '/resources/pod', undefined, 'view'],
      ['GET', '/resources/pod/seen', undefined, 'view'],
      ['GET', '/dns_aliases/custom/a', undefined, 'view'],
      ['GET', '/dns_aliases/custom/a/pod/seen', undefined, 'view'],
      ['GET', '/metrics', undefined, 'view'],
      ['POST', '/resources', { name: 'nope', type: 'thing', metadata: {}, spec: {} }, 'edit'],
      ['PATCH', '/resources/thing/nope', { spec: {} }, 'edit'],
      ['DELETE', '/resources/thing/nope', undefined, 'edit'],
      ['PUT', '/dns_aliases/custom/a/pod/seen', undefined, 'edit'],
      ['DELETE', '/dns_aliases/custom/a/pod/seen', undefined, 'edit'],
      ['GET', '/tokens', undefined, 'admin'],
      ['POST', '/tokens', { role: 'view', name: 'nope' }, 'admin'],
      ['DELETE', '/tokens/nope', undefined, 'admin'],
    ];
    const rank = { view: 0, edit: 1, admin: 2 };
    for (const [method, path, body, need] of routes) {
      for (const [who, header] of [['none', undefined], ['bad', 'Bearer kith_not-a-token'], ['malformed', 'Token x']] as const) {
        const r = await h.request(method, path, body, { authorization: header ?? '' });
        expect(r.status, `${method} ${path} with ${who}`).to.equal(401);
        expect(r.body.type).to.equal('unauthorized');
        expect(r.headers.get('www-authenticate')).to.match(/^Bearer/);
      }
      for (const role of ['view', 'edit'] as const) {
        if (rank[role] >= rank[need]) continue;
        const r = await h.request(method, path, body, { authorization: `Bearer ${secrets[role]}` });
        expect(r.status, `${method} ${path} with ${role}`).to.equal(403);
        expect(r.body.type).to.equal('forbidden');
      }
    }
    // Nothing changed without the right role.
    expect(await h.value('resource/thing/nope')).to.equal(undefined);
    expect(Object.keys(await h.all('token/'))).to.have.length(3);
    // The least role that may gets past access control (its status is the route's own).
    for (const [method, path, body, need] of routes) {
      const r = await h.request(method, path, body, { authorization: `Bearer ${secrets[need]}` });
      expect(r.status, `${method} ${path} with ${need}: ${r.text}`).to.be.oneOf([200, 201, 204, 404]);
    }
    expect((await h.request('GET', '/healthz', undefined, { authorization: '' })).status).to.equal(200);
    expect((await h.request('GET', '/readyz', undefined, { authorization: '' })).status).to.equal(200);
  });

  it('lists tokens without secrets or hashes, refuses a bad request naming the field, deletes by name', async () => {
    const list = await h.request('GET', '/tokens');
    expect(list.body.map((t: { name: string }) => t.name)).to.deep.equal(['admin', 't-edit', 't-view']);
    for (const t of list.body) expect(t).to.have.all.keys('name', 'role', 'createdBy', 'createdAt');
    const bad = await h.request('POST', '/tokens', { role: 'root' });
    expect(bad.status).to.equal(422);
    expect(bad.body.detail).to.match(/^role: /);
    const badTtl = await h.request('POST', '/tokens', { role: 'view', ttl: 'soon' });
    expect(badTtl.body.detail).to.match(/^ttl: /);
    const made = await h.request('POST', '/tokens', { role: 'view', name: 'gone' });
    expect(made.body).to.include({ name: 'gone', role: 'view', createdBy: 'admin' });
    expect((await h.request('POST', '/tokens', { role: 'view', name: 'gone' })).status).to.equal(409);
    expect((await h.request('DELETE', '/tokens/gone')).status).to.equal(204);
    expect((await h.request('DELETE', '/tokens/gone')).status).to.equal(404);
  });

  it('stops a deleted token on a second API node within a second, and an expired one everywhere', async () => {
    const peer = await h.peer();
    try {
      const made = await h.request('POST', '/tokens', { role: 'view', name: 'shared' });
      const auth = { authorization: `Bearer ${made.body.token}` };
      await waitUntil(async () => (await h.request('GET', '/resources/pod', undefined, auth, peer.url)).status === 200, { what: 'the peer to know the token' });
      expect(h.readAdminToken(peer.dataDir)).to.equal('');
      await h.request('DELETE', '/tokens/shared');
      await waitUntil(async () => (await h.request('GET', '/resources/pod', undefined, auth, peer.url)).status === 401, { timeoutMs: 1000, intervalMs: 20, what: 'the peer to refuse the deleted token' });

      const brief = await h.request('POST', '/tokens', { role: 'view', name: 'brief', ttl: '2s' });
      expect(brief.body.expiresAt).to.be.a('string');
      const briefAuth = { authorization: `Bearer ${brief.body.token}` };
      await waitUntil(async () => (await h.request('GET', '/resources/pod', undefined, briefAuth, peer.url)).status === 200, { what: 'the peer to know the brief token' });
      for (const base of [h.url, peer.url]) {
        await waitUntil(async () => (await h.request('GET', '/resources/pod', undefined, briefAuth, base)).status === 401, { timeoutMs: 4000, intervalMs: 50, what: 'the brief token to expire' });
      }
      // And it leaves etcd, and so every token list, shortly after.
      await waitUntil(async () => (await h.value('token/brief')) === undefined, { timeoutMs: 5000, what: 'the expired token deleted from etcd' });
      expect((await h.request('GET', '/tokens')).body.map((t: { name: string }) => t.name)).to.not.include('brief');
    } finally {
      await peer.stop();
    }
  });

  it('logs every change as one audit line naming the token, never its secret', async () => {
    await h.request('PUT', '/dns_aliases/custom/audited/pod/seen', undefined, { authorization: `Bearer ${secrets.edit}` });
    await h.agent.waitFor((l) => l.audit === true && l.path === '/dns_aliases/custom/audited/pod/seen', 5000);
    const line = h.agent.lines.map((l) => JSON.parse(l)).find((l) => l.audit === true && l.path === '/dns_aliases/custom/audited/pod/seen');
    expect(line).to.include({ method: 'PUT', status: 204, token: 't-edit' });
    expect(line.client).to.be.a('string');
  });
});

describe('api: the bootstrap admin token across restarts', function () {
  this.timeout(90_000);

  it('is made once and reused by a later start on the same data dir', async () => {
    const h = await ApiHarness.start();
    try {
      const first = h.adminToken;
      const port = await freePort();
      const again = TestAgent.start({
        args: ['--plugins', 'api', '--name', `${h.name}x`, '--etcd-endpoints', h.etcd.endpoint, '--api-listen', `127.0.0.1:${port}`, '--api-auth', 'token', '--data-dir', h.agent.dataDir],
      });
      try {
        await again.ready();
        expect(h.readAdminToken()).to.equal(first);
        expect(Object.keys(await h.all('token/'))).to.deep.equal(['token/admin']);
        const r = await h.request('GET', '/resources/pod', undefined, {}, `http://127.0.0.1:${port}`);
        expect(r.status).to.equal(200);
      } finally {
        await again.stop();
      }
    } finally {
      await h.stop();
    }
  });
});

describe('api: two API nodes bootstrapping an empty cluster at once', function () {
  this.timeout(90_000);

  it('make one admin token between them, written to the data dir of the one that made it', async () => {
    const etcd = await TestEtcd.start();
    const ports = [await freePort(), await freePort()];
    const agents = ports.map((port, i) =>
      TestAgent.start({ args: ['--plugins', 'api', '--name', `boot-${i}-${process.pid}`, '--etcd-endpoints', etcd.endpoint, '--api-listen', `127.0.0.1:${port}`, '--api-auth', 'token'] }),
    );
    const client = etcd.client();
    try {
      await Promise.all(agents.map((a) => a.ready(60_000)));
      const tokens = await client.getAll().prefix('/kith/token/').strings();
      expect(Object.keys(tokens)).to.deep.equal(['/kith/token/admin']);
      const files = agents.map((a) => join(a.dataDir, 'admin.token')).filter((f) => existsSync(f));
      expect(files).to.have.length(1);
      const secret = readFileSync(files[0]!, 'utf8').trim();
      expect(JSON.parse(tokens['/kith/token/admin']!)).to.include({ hash: hashSecret(secret) });
      // The secret works on both nodes: on the one that did not make it, once its watch of the tokens has it (within a second).
      for (const port of ports) {
        await waitUntil(async () => (await fetch(`http://127.0.0.1:${port}/resources/pod`, { headers: { authorization: `Bearer ${secret}` } })).status === 200, {
          timeoutMs: 5000, what: `the admin token accepted on port ${port}`,
        });
      }
    } finally {
      client.close();
      for (const a of agents) await a.stop().catch(() => undefined);
      await etcd.stop();
    }
  });
});
