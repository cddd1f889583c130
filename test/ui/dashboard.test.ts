import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect } from 'chai';
import puppeteer, { type Browser, type Page } from 'puppeteer-core';
import type { TestAgent } from '../support/agent.js';
import { CuttableProxy } from '../support/proxy.js';
import { ApiHarness } from '../api/harness.js';
import { oneHost, randomClusterCidr, startWorkerAgent, type OneHost } from '../agent/worker/cluster.js';

/** Debian's chromium package (scripts/setup.sh installs it); puppeteer-core never downloads a browser of its own. */
const CHROMIUM = process.env.KITH_CHROMIUM ?? '/usr/bin/chromium';
const IMAGE = 'localhost/kith/busybox';
const NUMBERED = 'i=0; while [ $i -lt 1000 ]; do echo line $i; i=$((i+1)); sleep 0.2; done';
/** Every wait on the page is bounded by this unless it says otherwise. */
const WAIT_MS = 10_000;

const podSpec = (cmd?: string[]) => ({ containers: [{ name: 'main', image: IMAGE, ...(cmd ? { cmd } : {}) }] });

/**
 * SPEC §12, the dashboard: the real page of a real agent, driven in headless
 * Chromium. A screenshot of each step goes under the run's temp dir (printed).
 */
describe('dashboard (GET /ui) in headless Chromium', function () {
  this.timeout(240_000);
  let browser: Browser | undefined;
  let shots = '';
  const pages: Page[] = [];

  before(async function () {
    if (!existsSync(CHROMIUM)) {
      console.log(`      skipped: no Chromium at ${CHROMIUM}; install Debian's chromium package (scripts/setup.sh does) or set KITH_CHROMIUM`);
      this.skip();
    }
    shots = mkdtempSync(join(tmpdir(), 'kith-ui-'));
    console.log(`      screenshots: ${shots}`);
    browser = await puppeteer.launch({
      executablePath: CHROMIUM,
      headless: true,
      args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage', '--no-first-run'],
      timeout: 30_000,
      protocolTimeout: 30_000,
    });
  });

  afterEach(async function () {
    // A failed step leaves a picture of each tab it had open, then every tab is closed.
    const failed = this.currentTest?.state === 'failed';
    for (const [i, p] of pages.splice(0).entries()) {
      if (failed) await shot(p, `failed-${this.currentTest!.title.slice(0, 40).replace(/[^a-z0-9]+/gi, '-')}-${i}`).catch(() => undefined);
      await p.close().catch(() => undefined);
    }
  });

  after(async () => {
    for (const p of pages.splice(0)) await p.close().catch(() => undefined);
    await browser?.close().catch(() => undefined);
  });

  /** A new tab (its own session storage) with the page's errors collected. */
  const newPage = async (width = 1280, height = 900): Promise<{ page: Page; errors: string[] }> => {
    const page = await browser!.newPage();
    pages.push(page);
    page.setDefaultTimeout(WAIT_MS);
    await page.setViewport({ width, height });
    const errors: string[] = [];
    page.on('pageerror', (err) => errors.push(String(err)));
    // A refused token (401) and a pod not placed yet (409) are answers the page shows in words; the browser logs them too.
    // The host's links change as test hosts come and go, and Chromium then cuts its connections (the page reconnects).
    page.on('console', (m) => {
      if (m.type() === 'error' && !/status of 40[19]|ERR_NETWORK_CHANGED/.test(m.text())) errors.push(m.text());
    });
    return { page, errors };
  };

  const shot = async (page: Page, name: string): Promise<void> => {
    const path = join(shots, `${name}.png`);
    await page.screenshot({ path, fullPage: true });
    console.log(`      screenshot: ${path}`);
  };

  const signIn = async (page: Page, url: string, token: string): Promise<void> => {
    await page.goto(`${url}/ui`, { waitUntil: 'domcontentloaded', timeout: WAIT_MS });
    await page.waitForSelector('#token', { visible: true });
    await page.type('#token', token);
    await page.click('#sign-in');
  };

  const text = (page: Page, selector: string): Promise<string> => page.$eval(selector, (e) => e.textContent ?? '');

  describe('against an API node', () => {
    let h: ApiHarness | undefined;
    let api: ApiHarness;

    before(async () => {
      h = await ApiHarness.start();
      api = h;
    });
    after(async () => {
      await h?.stop();
    });

    const create = async (name: string) => {
      const r = await api.request('POST', '/resources', { type: 'pod', name, state: 'created', spec: podSpec() });
      expect(r.status, r.text).to.equal(201);
    };

    it('asks for a token, then shows nodes and every pod; a pod created through the API appears within a second', async () => {
      await create('before-login');
      const { page, errors } = await newPage();
      await page.goto(`${api.url}/ui`, { waitUntil: 'domcontentloaded', timeout: WAIT_MS });
      await page.waitForSelector('#login-form', { visible: true });
      expect(await page.$eval('#dashboard', (e) => (e as HTMLElement).hidden)).to.equal(true);
      await shot(page, '1-sign-in');

      await page.type('#token', api.adminToken);
      await page.click('#sign-in');
      await page.waitForSelector('[data-pod="before-login"]', { visible: true });
      await page.waitForSelector(`[data-node="node.api/${api.name}"]`, { visible: true });
      expect(await text(page, `[data-node="node.api/${api.name}"]`)).to.include('healthy');
      // The watch stream is up once the status line says so.
      await page.waitForFunction(() => /^Live/.test(document.getElementById('status')!.textContent ?? ''), { timeout: WAIT_MS });
      expect(await page.evaluate(() => sessionStorage.getItem('kith.token'))).to.equal(api.adminToken);

      const started = Date.now();
      await create('arrives-live');
      await page.waitForSelector('[data-pod="arrives-live"]', { visible: true, timeout: 5000 });
      const ms = Date.now() - started;
      console.log(`      a pod created through the API was on the page after ${ms} ms`);
      expect(ms).to.be.below(1000);
      // States are words, not only colours.
      expect(await text(page, '[data-pod="arrives-live"]')).to.include('created');

      // A ReplicaSet with its rollout, as its controller writes it.
      const rs = { name: 'front', type: 'replicaset', metadata: {}, spec: { replicas: 2, template: { spec: podSpec() } } };
      expect((await api.request('POST', '/resources', rs)).status).to.equal(201);
      await page.waitForSelector('[data-replicaset="front"]', { visible: true });
      const status = { desired: 2, live: 2, running: 2, ready: 1, updated: 1, available: 1, rollout: 'progressing' };
      await api.put('resource/replicaset/front', JSON.stringify({ ...rs, status }));
      await page.waitForFunction(() => /1 of 2.*progressing/.test(document.querySelector('[data-replicaset="front"]')?.textContent ?? ''), { timeout: WAIT_MS });

      // A deletion goes from the page as it goes from etcd.
      expect((await api.request('DELETE', '/resources/pod/before-login?now=1')).status).to.equal(204);
      await page.waitForSelector('[data-pod="before-login"]', { hidden: true });
      await shot(page, '2-dashboard');
      expect(errors).to.deep.equal([]);
    });

    it('refuses a bad token with a message and asks again; a good one then signs in', async () => {
      const { page, errors } = await newPage();
      await signIn(page, api.url, 'kith_not-a-real-token');
      await page.waitForSelector('#login-error', { visible: true });
      const message = await text(page, '#login-error');
      expect(message).to.match(/^The API refused this token: the token is unknown, deleted or expired\. Check it and enter it again\.$/);
      expect(await page.$eval('#dashboard', (e) => (e as HTMLElement).hidden)).to.equal(true);
      expect(await page.$eval('#token', (e) => (e as HTMLInputElement).value)).to.equal('');
      expect(await page.evaluate(() => sessionStorage.getItem('kith.token'))).to.equal(null);
      await shot(page, '3-bad-token');

      await page.type('#token', api.adminToken);
      await page.click('#sign-in');
      await page.waitForSelector('[data-pod="arrives-live"]', { visible: true });
      expect(await page.$eval('#login', (e) => (e as HTMLElement).hidden)).to.equal(true);
      expect(errors).to.deep.equal([]);
    });

    it('a token deleted while the page is open signs it out, saying why', async () => {
      const made = await api.request('POST', '/tokens', { role: 'view', name: 'ui-viewer' });
      expect(made.status, made.text).to.equal(201);
      const { page } = await newPage();
      await signIn(page, api.url, made.body.token);
      await page.waitForSelector('[data-pod="arrives-live"]', { visible: true });
      expect((await api.request('DELETE', '/tokens/ui-viewer')).status).to.equal(204);
      await page.waitForSelector('#login-error', { visible: true });
      expect(await text(page, '#login-error')).to.match(/^The API no longer accepts this token: /);
      expect(await page.$eval('#dashboard', (e) => (e as HTMLElement).hidden)).to.equal(true);
    });

    it('a dropped stream resumes from its last event (Last-Event-ID): what changed meanwhile shows, nothing twice', async () => {
      const proxy = await CuttableProxy.start(Number(new URL(api.url).port));
      try {
        await create('before-cut');
        const { page, errors } = await newPage();
        const resumes: string[] = [];
        page.on('request', (r) => {
          const id = r.headers()['last-event-id'];
          if (r.url().endsWith('/resources/pod?watch=1') && id !== undefined) resumes.push(id);
        });
        await signIn(page, proxy.endpoint, api.adminToken);
        await page.waitForSelector('[data-pod="before-cut"]', { visible: true });
        await page.waitForFunction(() => /^Live/.test(document.getElementById('status')!.textContent ?? ''), { timeout: WAIT_MS });
        proxy.sever();
        await create('while-cut');
        expect((await api.request('DELETE', '/resources/pod/before-cut?now=1')).status).to.equal(204);
        await page.waitForFunction(() => /^Connecting/.test(document.getElementById('status')!.textContent ?? ''), { timeout: WAIT_MS });
        proxy.restore();
        await page.waitForSelector('[data-pod="while-cut"]', { visible: true });
        await page.waitForSelector('[data-pod="before-cut"]', { hidden: true });
        expect(resumes.length).to.be.at.least(1);
        expect(Number(resumes[0])).to.be.above(0);
        expect(await page.$$eval('[data-pod="while-cut"]', (rows) => rows.length)).to.equal(1);
        await page.waitForFunction(() => /^Live/.test(document.getElementById('status')!.textContent ?? ''), { timeout: WAIT_MS });
        // Cut on purpose: the browser logs the broken connections; nothing else may go wrong.
        expect(errors.filter((e) => !/net::ERR_/.test(e))).to.deep.equal([]);
      } finally {
        await proxy.close();
      }
    });

    it('a pod\'s events are one click away, with its facts; closing the pod stops following it', async () => {
      await create('eventful');
      const now = new Date().toISOString();
      const event = (name: string, object: string, reason: string) => JSON.stringify({
        name, type: 'event', metadata: {},
        spec: { time: now, type: 'Warning', object, reason, message: 'no worker has room for 1 CPU', node: api.name, count: 3, firstTime: now },
      });
      await api.put('resource/event/ev-mine', event('ev-mine', 'pod/eventful', 'FailedScheduling'));
      await api.put('resource/event/ev-other', event('ev-other', 'pod/someone-else', 'Elsewhere'));
      const { page, errors } = await newPage();
      await signIn(page, api.url, api.adminToken);
      await page.waitForSelector('[data-open-pod="eventful"]', { visible: true });
      await page.click('[data-open-pod="eventful"]');
      await page.waitForSelector('[data-event="ev-mine"]', { visible: true });
      expect(await text(page, '[data-event="ev-mine"]')).to.match(/Warning FailedScheduling no worker has room for 1 CPU \(3 times\)$/);
      expect(await page.$('[data-event="ev-other"]')).to.equal(null);
      expect(await text(page, '#pod-facts')).to.match(/^Statecreated/);
      // An event that comes while the pod is open shows at once, its text as text: markup in data is never markup on the page.
      const later = JSON.parse(event('ev-later', 'pod/eventful', 'Later'));
      later.spec.message = '<img src=x id=injected> <b>bold</b>';
      await api.put('resource/event/ev-later', JSON.stringify(later));
      await page.waitForSelector('[data-event="ev-later"]', { visible: true });
      expect(await text(page, '[data-event="ev-later"]')).to.include('<img src=x id=injected> <b>bold</b>');
      expect(await page.$$eval('#injected, [data-event="ev-later"] b', (es) => es.length)).to.equal(0);
      await shot(page, '4-pod-events');
      await page.click('#pod-close');
      await page.waitForSelector('#pod', { hidden: true });
      expect(page.url()).to.match(/\/ui$/);
      expect(errors).to.deep.equal([]);
    });

    it('fits a phone (375 px): no horizontal overflow, long names wrap, a pod opens', async () => {
      const long = `a${'b'.repeat(61)}c`; // 63 characters, the longest pod name
      await create(long);
      expect((await api.request('PUT', `/dns_aliases/shop/${'w'.repeat(63)}/pod/${long}`)).status).to.equal(204);
      await api.put(`dns/${long}.pod.cluster.local.`, '10.244.0.9');
      const { page, errors } = await newPage(375, 812);
      await signIn(page, api.url, api.adminToken);
      await page.waitForSelector(`[data-pod="${long}"]`, { visible: true });
      // The names are polled: within one period (5 s).
      await page.waitForSelector(`[data-dns="${'w'.repeat(63)}.shop.cluster.local."]`, { visible: true });
      await page.waitForFunction((n) => document.querySelector(`[data-pod="${n}"]`)?.textContent?.includes('10.244.0.9'), { timeout: WAIT_MS }, long);
      // A poll that changes nothing leaves the rows as they are (a click in progress is never lost to a new row).
      await page.$eval(`[data-pod="${long}"]`, (row) => row.setAttribute('data-marked', 'yes'));
      const polled = new Promise<'polled'>((resolve) => page.on('requestfinished', (r) => r.url().endsWith('/dns_names') && resolve('polled')));
      expect(await Promise.race([polled, new Promise((r) => setTimeout(r, WAIT_MS, 'no poll'))])).to.equal('polled');
      await new Promise((r) => setTimeout(r, 100));
      expect(await page.$eval(`[data-pod="${long}"]`, (row) => row.getAttribute('data-marked'))).to.equal('yes');
      const overflow = () => page.evaluate(() => ({ doc: document.documentElement.scrollWidth, body: document.body.scrollWidth, width: window.innerWidth }));
      let o = await overflow();
      expect(o.width).to.equal(375);
      expect(o.doc, 'page wider than the phone').to.be.at.most(o.width);
      expect(o.body, 'body wider than the phone').to.be.at.most(o.width);
      // Every row is a card of labelled lines: the column headings are hidden, the labels shown.
      expect(await page.$eval('#pods thead', (e) => getComputedStyle(e).display)).to.equal('none');
      await shot(page, '5-phone');

      await page.click(`[data-open-pod="${long}"]`);
      await page.waitForSelector('#pod', { visible: true });
      expect(await text(page, '#pod-title')).to.equal(`Pod ${long}`);
      // Not placed: no log, said in words.
      await page.waitForFunction(() => /^No log: /.test(document.getElementById('logs-state')!.textContent ?? ''), { timeout: WAIT_MS });
      o = await overflow();
      expect(o.doc, 'the open pod is wider than the phone').to.be.at.most(o.width);
      await shot(page, '6-phone-pod');
      expect(errors).to.deep.equal([]);
    });
  });

  describe('against an open API (--api-auth none)', () => {
    let h: ApiHarness | undefined;
    before(async () => {
      h = await ApiHarness.start(['--api-auth', 'none']);
    });
    after(async () => {
      await h?.stop();
    });

    it('asks for no token and says the API is open', async () => {
      expect((await h!.request('POST', '/resources', { type: 'pod', name: 'open-pod', state: 'created', spec: podSpec() })).status).to.equal(201);
      const { page, errors } = await newPage();
      await page.goto(`${h!.url}/ui`, { waitUntil: 'domcontentloaded', timeout: WAIT_MS });
      await page.waitForSelector('[data-pod="open-pod"]', { visible: true });
      expect(await page.$eval('#login', (e) => (e as HTMLElement).hidden)).to.equal(true);
      await page.waitForFunction(() => /^Open API \(no token\)\. Live/.test(document.getElementById('status')!.textContent ?? ''), { timeout: WAIT_MS });
      expect(errors).to.deep.equal([]);
    });
  });

  describe('a pod\'s log, from a real worker (podman in a test host)', () => {
    let bed: OneHost | undefined;
    let agent: TestAgent | undefined;
    let url = '';
    let admin = '';

    before(async () => {
      bed = await oneHost();
      const { lan, host, etcd, etcdUrl } = bed;
      agent = startWorkerAgent({
        lan, host, etcd, etcdUrl, clusterCidr: randomClusterCidr(), plugins: 'worker,dns,api,scheduler',
        extra: ['--api-auth', 'token', '--api-listen', `${host.address}:8080`, '--pod-cpu-limit', '8', '--pod-memory-limit', '8192'],
      });
      await agent.ready(60_000);
      url = `http://${host.address}:8080`;
      admin = readFileSync(join(agent.dataDir, 'admin.token'), 'utf8').trim();
    });

    after(async () => {
      await agent?.stop('SIGKILL').catch(() => undefined);
      await bed?.destroy();
    });

    it('a click on a pod follows its log: its lines, then new ones as it prints them', async () => {
      const res = await fetch(`${url}/resources`, {
        method: 'POST',
        headers: { authorization: `Bearer ${admin}`, 'content-type': 'application/json' },
        body: JSON.stringify({ type: 'pod', name: 'counter', state: 'created', spec: podSpec(['sh', '-c', NUMBERED]) }),
      });
      expect(res.status, await res.text()).to.equal(201);
      const { page, errors } = await newPage();
      await signIn(page, url, admin);
      await page.waitForSelector('[data-pod="counter"]', { visible: true });
      // Running and with its address from DNS, live on the page.
      await page.waitForFunction(() => {
        const row = document.querySelector('[data-pod="counter"]');
        return row?.getAttribute('data-state') === 'running' && /10\.\d+\.\d+\.\d+/.test(row.textContent ?? '');
      }, { timeout: 60_000 });
      await page.click('[data-open-pod="counter"]');
      await page.waitForSelector('#pod', { visible: true });
      await page.waitForFunction(() => /(^|\n)line 3\n/.test(document.getElementById('pod-logs')!.textContent ?? ''), { timeout: 20_000 });
      const last = async () => Math.max(...[...(await text(page, '#pod-logs')).matchAll(/line (\d+)\n/g)].map((m) => Number(m[1])));
      const seen = await last();
      // Followed: a line printed after the log opened arrives without a reload.
      await page.waitForFunction((n) => new RegExp(`(^|\\n)line ${n}\\n`).test(document.getElementById('pod-logs')!.textContent ?? ''), { timeout: 10_000 }, seen + 3);
      expect(await text(page, '#logs-state')).to.equal('Following');
      expect(page.url()).to.match(/\/ui#pod\/counter$/);
      await shot(page, '7-pod-logs');
      expect(errors).to.deep.equal([]);
    });
  });
});
