import { expect } from 'chai';
import { SCRIPT } from '../../api/ui/script.js';
import { ApiHarness } from './harness.js';

/** The dashboard's page and assets as HTTP (the page itself in a browser: test/ui/). */
describe('api: the dashboard\'s page (GET /ui) and GET /dns_names', function () {
  this.timeout(60_000);
  let h: ApiHarness;

  before(async () => {
    h = await ApiHarness.start();
  });
  after(async () => {
    await h?.stop();
  });

  it('the script is JavaScript a browser can parse', () => {
    expect(() => new Function(SCRIPT)).not.to.throw();
  });

  it('serves the page and its assets without a token, with a self-only CSP and nosniff', async () => {
    const none = { authorization: '' };
    for (const [path, type] of [['/ui', 'text/html'], ['/ui/app.js', 'text/javascript'], ['/ui/app.css', 'text/css'], ['/ui/icon.svg', 'image/svg+xml']] as const) {
      const res = await fetch(`${h.url}${path}`, { headers: none });
      expect(res.status, path).to.equal(200);
      expect(res.headers.get('content-type')?.startsWith(type), path).to.equal(true);
      expect(res.headers.get('x-content-type-options')).to.equal('nosniff');
      const csp = res.headers.get('content-security-policy') ?? '';
      expect(csp).to.include("default-src 'none'").and.include("script-src 'self'").and.include("connect-src 'self'").and.include("frame-ancestors 'none'");
      expect(csp).not.to.match(/unsafe|https?:|\*/);
      // A second load with the ETag is a 304.
      const again = await fetch(`${h.url}${path}`, { headers: { 'if-none-match': res.headers.get('etag')! } });
      expect(again.status).to.equal(304);
    }
    const page = await (await fetch(`${h.url}/ui`)).text();
    // Nothing from elsewhere and nothing inline: only this origin's script and style.
    expect(page).not.to.match(/https?:\/\/(?!www\.w3\.org)/);
    expect(page).not.to.match(/<script>|<style|\sstyle="|\son[a-z]+="/i);
    expect(page).to.include('<script src="/ui/app.js" defer></script>');
  });

  it('the page holds no data; every other route still needs a token', async () => {
    await h.request('POST', '/resources', { type: 'pod', name: 'secretive', state: 'created', spec: { containers: [{ name: 'c', image: 'x' }] } });
    const page = await (await fetch(`${h.url}/ui`)).text();
    expect(page).not.to.include('secretive');
    for (const path of ['/dns_names', '/resources/pod', '/uix', '/resources/pod?watch=1']) {
      const res = await fetch(`${h.url}${path}`);
      expect(res.status, path).to.equal(401);
      await res.body?.cancel();
    }
    expect((await fetch(`${h.url}/ui/missing.js`)).status).to.equal(404);
    expect((await fetch(`${h.url}/ui/`)).status).to.equal(200);
    expect((await fetch(`${h.url}/ui`, { method: 'POST' })).status).to.equal(405);
  });

  it('GET /dns_names lists the A records and aliases etcd holds, with the domain', async () => {
    await h.put('dns/web.pod.cluster.local.', '10.244.0.7');
    expect((await h.request('PUT', '/dns_aliases/shop/www/pod/web')).status).to.equal(204);
    const view = await h.request('POST', '/tokens', { role: 'view', name: 'dns-viewer' });
    const r = await h.request('GET', '/dns_names', undefined, { authorization: `Bearer ${view.body.token}` });
    expect(r.status, r.text).to.equal(200);
    expect(r.body.domain).to.equal('cluster.local');
    expect(r.body.records).to.deep.include({ name: 'web.pod.cluster.local.', address: '10.244.0.7' });
    expect(r.body.aliases).to.deep.include({ from: 'www.shop.cluster.local.', to: 'web.pod.cluster.local.' });
    const names = r.body.records.map((x: { name: string }) => x.name);
    expect(names).to.deep.equal([...names].sort());
  });
});
