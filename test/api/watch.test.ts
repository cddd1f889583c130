import { spawn, type ChildProcess } from 'node:child_process';
import { request as httpRequest, type ClientRequest, type IncomingMessage } from 'node:http';
import { connect } from 'node:net';
import { expect } from 'chai';
import { MAIN, ROOT } from '../support/agent.js';
import { CuttableProxy } from '../support/proxy.js';
import { ApiHarness, PREFIX } from './harness.js';

/** One server-sent event as a client sees it. */
interface Sse {
  event: string;
  id?: string;
  data: any;
}

/** A watch stream read the way an EventSource reads it: events split on blank lines, comments counted. */
class Watch {
  readonly events: Sse[] = [];
  heartbeats = 0;
  lastId: string | undefined;
  ended = false;
  private buf = '';

  private constructor(
    private readonly req: ClientRequest,
    readonly res: IncomingMessage,
  ) {
    res.setEncoding('utf8');
    res.on('data', (d: string) => this.take(d));
    res.on('end', () => (this.ended = true));
    res.on('close', () => (this.ended = true));
    res.on('error', () => (this.ended = true));
  }

  static open(url: string, headers: Record<string, string>): Promise<Watch> {
    return new Promise((resolve, reject) => {
      const req = httpRequest(url, { headers: { accept: 'text/event-stream', ...headers } });
      req.on('response', (res) => resolve(new Watch(req, res)));
      req.on('error', reject);
      req.end();
    });
  }

  private take(d: string): void {
    this.buf += d;
    for (let i = this.buf.indexOf('\n\n'); i >= 0; i = this.buf.indexOf('\n\n')) {
      const block = this.buf.slice(0, i);
      this.buf = this.buf.slice(i + 2);
      const ev: Partial<Sse> & { lines: string[] } = { lines: [] };
      for (const line of block.split('\n')) {
        if (line.startsWith(':')) this.heartbeats++;
        else if (line.startsWith('id: ')) ev.id = line.slice(4);
        else if (line.startsWith('event: ')) ev.event = line.slice(7);
        else if (line.startsWith('data: ')) ev.lines.push(line.slice(6));
      }
      if (ev.id !== undefined) this.lastId = ev.id;
      if (ev.event) this.events.push({ event: ev.event, id: ev.id, data: JSON.parse(ev.lines.join('\n')) });
    }
    // A heartbeat is a line of its own, not followed by a blank line.
    while (this.buf.startsWith(':\n')) {
      this.heartbeats++;
      this.buf = this.buf.slice(2);
    }
  }

  /** The events after the first `synced` (the changes). */
  changes(): Sse[] {
    const i = this.events.findIndex((e) => e.event === 'synced');
    return i < 0 ? [] : this.events.slice(i + 1).filter((e) => e.event === 'put' || e.event === 'delete');
  }

  async until(cond: (w: Watch) => boolean, timeoutMs = 10_000, what = 'the stream'): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!cond(this)) {
      if (Date.now() > deadline) throw new Error(`${what}: condition not met within ${timeoutMs} ms; got ${JSON.stringify(this.events.slice(-5))}`);
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  close(): void {
    this.req.destroy();
  }
}

describe('api: watch streams (?watch=1) against a real etcd and agent', function () {
  this.timeout(120_000);
  let h: ApiHarness;
  const open: Watch[] = [];
  const watch = async (path: string, headers: Record<string, string> = {}): Promise<Watch> => {
    const w = await Watch.open(`${h.url}${path}`, { authorization: `Bearer ${h.adminToken}`, ...headers });
    open.push(w);
    return w;
  };
  const metric = async (name: string): Promise<number> => {
    const text = (await h.request('GET', '/metrics')).text;
    const m = new RegExp(`^${name} (\\S+)$`, 'm').exec(text);
    return m ? Number(m[1]) : NaN;
  };
  const create = async (type: string, name: string, spec: Record<string, unknown> = {}) => {
    const r = await h.request('POST', '/resources', { type, name, spec });
    expect(r.status, r.text).to.equal(201);
  };
  const patch = async (type: string, name: string, spec: Record<string, unknown>) => {
    const r = await h.request('PATCH', `/resources/${type}/${name}`, { spec });
    expect(r.status, r.text).to.equal(200);
  };

  before(async () => {
    h = await ApiHarness.start(['--api-watch-heartbeat-ms', '200', '--api-watch-max-events', '100', '--api-watch-max-bytes', '262144']);
  });
  afterEach(() => {
    for (const w of open.splice(0)) w.close();
  });
  after(async () => {
    await h?.stop();
  });

  it('sends the current resources, each as GET returns it with its mod revision as id, then synced', async () => {
    for (const n of ['b', 'a', 'c']) await create('gadget', n, { n });
    const w = await watch('/resources/gadget?watch=1');
    expect(w.res.statusCode).to.equal(200);
    expect(w.res.headers['content-type']).to.match(/^text\/event-stream/);
    await w.until((x) => x.events.some((e) => e.event === 'synced'));
    const puts = w.events.filter((e) => e.event === 'put');
    expect(puts.map((e) => e.data.name)).to.deep.equal(['b', 'a', 'c']); // by mod revision
    for (const p of puts) {
      const got = await h.request('GET', `/resources/gadget/${p.data.name}`);
      expect(p.data).to.deep.equal(got.body);
      expect(`"${p.id}"`).to.equal(got.headers.get('etag'));
    }
    const synced = w.events.at(-1)!;
    expect(synced.event).to.equal('synced');
    expect(synced.data.revision).to.be.at.least(Number(puts.at(-1)!.id));
    expect(synced.id).to.equal(String(synced.data.revision));
    await w.until((x) => x.heartbeats > 0, 5000, 'a heartbeat');
  });

  it('sends a put or a delete per change after synced, with the revision as id', async () => {
    const w = await watch('/resources/widget?watch=1');
    await w.until((x) => x.events.some((e) => e.event === 'synced'));
    await create('widget', 'one', { v: 1 });
    await patch('widget', 'one', { v: 2 });
    await create('other', 'one', { v: 1 }); // another type: not on this stream
    const del = await h.request('DELETE', '/resources/widget/one');
    expect(del.status).to.equal(204);
    await w.until((x) => x.changes().length >= 3);
    const ch = w.changes();
    expect(ch.map((e) => [e.event, e.data.name, e.data.spec?.v])).to.deep.equal([['put', 'one', 1], ['put', 'one', 2], ['delete', 'one', undefined]]);
    expect(ch[2]!.data).to.deep.equal({ type: 'widget', name: 'one' });
    const ids = ch.map((e) => Number(e.id));
    expect(ids).to.deep.equal([...ids].sort((a, b) => a - b));
    expect(new Set(ids).size).to.equal(3);
  });

  it('a watch of one resource sees only that resource, even before it exists', async () => {
    const w = await watch('/resources/thing/mine?watch=1');
    await w.until((x) => x.events.some((e) => e.event === 'synced'));
    expect(w.events.filter((e) => e.event === 'put')).to.have.length(0);
    await create('thing', 'mine-too', { v: 0 });
    await create('thing', 'other', { v: 0 });
    await create('thing', 'mine', { v: 1 });
    await patch('thing', 'other', { v: 1 });
    await patch('thing', 'mine', { v: 2 });
    await w.until((x) => x.changes().length >= 2);
    await new Promise((r) => setTimeout(r, 300));
    expect(w.changes().map((e) => [e.data.name, e.data.spec.v])).to.deep.equal([['mine', 1], ['mine', 2]]);
  });

  it('a stream resumed with Last-Event-ID (or ?since=) gets exactly the changes it missed, and no initial list', async () => {
    for (const n of ['r1', 'r2']) await create('resumed', n, { v: 0 });
    const w = await watch('/resources/resumed?watch=1');
    await w.until((x) => x.events.some((e) => e.event === 'synced'));
    const last = w.lastId!;
    w.close();
    await create('resumed', 'r3', { v: 0 });
    await patch('resumed', 'r1', { v: 1 });
    await h.request('DELETE', '/resources/resumed/r2');
    await create('unrelated', 'r9');
    const ways: { headers: Record<string, string>; query: string }[] = [{ headers: { 'last-event-id': last }, query: '' }, { headers: {}, query: `&since=${last}` }];
    for (const how of ways) {
      const again = await watch(`/resources/resumed?watch=1${how.query}`, how.headers);
      await again.until((x) => x.events.some((e) => e.event === 'synced'));
      expect(again.events.map((e) => [e.event, e.data.name ?? null, e.data.spec?.v ?? null])).to.deep.equal([
        ['put', 'r3', 0], ['put', 'r1', 1], ['delete', 'r2', null], ['synced', null, null],
      ]);
    }
    const bad = await h.request('GET', '/resources/resumed?watch=1', undefined, { 'last-event-id': 'yesterday' });
    expect(bad.status).to.equal(400);
    expect(bad.body.type).to.equal('malformed-request');
  });

  it('1,000 changes while the client reconnects twice: every change seen once, in order', async () => {
    const names = Array.from({ length: 10 }, (_, i) => `m${i}`);
    for (const n of names) await create('many', n, { i: -1 });
    let w = await watch('/resources/many?watch=1');
    await w.until((x) => x.events.some((e) => e.event === 'synced'));
    const seen: number[] = [];
    const writer = (async () => {
      for (let i = 0; i < 1000; i++) await patch('many', names[i % names.length]!, { i });
    })();
    let reconnects = 0;
    let cursor = w.events.findIndex((e) => e.event === 'synced') + 1;
    const deadline = Date.now() + 90_000;
    while (seen.length < 1000 && Date.now() < deadline) {
      for (; cursor < w.events.length; cursor++) if (w.events[cursor]!.event === 'put') seen.push(w.events[cursor]!.data.spec.i);
      if (reconnects < 2 && seen.length >= (reconnects + 1) * 300) {
        // Cut as a dropped connection would, and resume from the last id, as an EventSource does.
        const last = w.lastId!;
        w.close();
        w = await watch('/resources/many?watch=1', { 'last-event-id': last });
        cursor = 0; // a resumed stream has no initial list: the missed changes, synced, then the rest
        reconnects++;
        continue;
      }
      await new Promise((r) => setTimeout(r, 10));
    }
    await writer;
    expect(reconnects).to.equal(2);
    expect(seen).to.deep.equal(Array.from({ length: 1000 }, (_, i) => i));
  });

  it('needs a token: none is 401, a view token is 200', async () => {
    const none = await Watch.open(`${h.url}/resources/widget?watch=1`, {});
    open.push(none);
    expect(none.res.statusCode).to.equal(401);
    const made = await h.request('POST', '/tokens', { role: 'view', name: 'watcher' });
    expect(made.status, made.text).to.equal(201);
    const viewer = await Watch.open(`${h.url}/resources/widget?watch=1`, { authorization: `Bearer ${made.body.token}` });
    open.push(viewer);
    expect(viewer.res.statusCode).to.equal(200);
    await viewer.until((x) => x.events.some((e) => e.event === 'synced'));
    // A deleted token ends its streams too.
    expect((await h.request('DELETE', '/tokens/watcher')).status).to.equal(204);
    await viewer.until((x) => x.ended, 5000, 'the stream of a deleted token');
  });

  it('closing the connection releases the stream', async () => {
    const before = await metric('kith_api_watch_streams');
    const ws = await Promise.all([1, 2, 3].map(() => watch('/resources/widget?watch=1')));
    for (const w of ws) await w.until((x) => x.events.some((e) => e.event === 'synced'));
    expect(await metric('kith_api_watch_streams')).to.equal(before + 3);
    for (const w of ws) w.close();
    await h.until(async () => (await metric('kith_api_watch_streams')) === before, 5000);
  });

  it('a client that does not read is dropped instead of growing the server', async () => {
    const dropped = await metric('kith_api_watch_dropped_total');
    const streams = await metric('kith_api_watch_streams');
    await create('big', 'blob', { fill: '' });
    const port = Number(new URL(h.url).port);
    const sock = connect(port, '127.0.0.1');
    try {
      await new Promise<void>((resolve, reject) => sock.once('connect', resolve).once('error', reject));
      sock.pause(); // never reads
      sock.write(`GET /resources/big?watch=1 HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${h.adminToken}\r\n\r\n`);
      await h.until(async () => (await metric('kith_api_watch_streams')) === streams + 1, 5000);
      const fill = 'x'.repeat(200 * 1024);
      // Enough to fill the kernel's buffers and then the stream's bound; stops as soon as it is dropped.
      for (let i = 0; i < 200 && (await metric('kith_api_watch_dropped_total')) === dropped; i++) {
        await patch('big', 'blob', { fill: `${i}${fill}` });
      }
      expect(await metric('kith_api_watch_dropped_total')).to.equal(dropped + 1);
      await h.until(async () => (await metric('kith_api_watch_streams')) === streams, 5000);
    } finally {
      sock.destroy();
    }
  });

  it('a resume from before this node followed etcd comes from etcd history; one compacted away gets reset and a fresh list', async () => {
    await create('early', 'e1', { v: 1 });
    await patch('early', 'e1', { v: 2 });
    // Revision 1 is older than anything this node has seen: served from etcd's history.
    const hist = await watch('/resources/early?watch=1', { 'last-event-id': '1' });
    await hist.until((x) => x.events.length >= 2);
    expect(hist.events.map((e) => [e.event, e.data.spec?.v])).to.deep.equal([['put', 1], ['put', 2]]);
    await patch('early', 'e1', { v: 3 });
    await hist.until((x) => x.events.length >= 3);
    expect(hist.events[2]!.data.spec.v).to.equal(3);

    const res = await h.kv.get(`${PREFIX}/resource/early/e1`).exec();
    await (h.kv as unknown as { kv: { compact(r: unknown): Promise<unknown> } }).kv.compact({ revision: res.header.revision, physical: true });
    const w = await watch('/resources/early?watch=1', { 'last-event-id': '1' });
    await w.until((x) => x.events.some((e) => e.event === 'synced'));
    expect(w.events.map((e) => e.event)).to.deep.equal(['reset', 'put', 'synced']);
    expect(w.events[1]!.data.spec.v).to.equal(3);
  });

  describe('kith list/get -w', () => {
    const procs: ChildProcess[] = [];
    afterEach(() => {
      for (const p of procs.splice(0)) if (p.exitCode === null) p.kill('SIGKILL');
    });

    const follow = (args: string[], api = h.url) => {
      const p = spawn(process.execPath, ['--import', 'tsx', MAIN, '--api', api, ...args], {
        cwd: ROOT,
        env: { ...process.env, KITH_API: undefined, KITH_TOKEN: h.adminToken },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      procs.push(p);
      const out = { stdout: '', stderr: '', code: undefined as number | null | undefined };
      p.stdout!.on('data', (d) => (out.stdout += d));
      p.stderr!.on('data', (d) => (out.stderr += d));
      const exited = new Promise<void>((r) => p.on('close', (code) => ((out.code = code), r())));
      return { p, out, exited };
    };

    it('list -w prints the table once, then a line per change, until Ctrl-C', async () => {
      await create('cliwatch', 'first', {});
      const { p, out, exited } = follow(['list', 'cliwatch', '-w']);
      await h.until(async () => out.stdout.includes('first'), 20_000);
      expect(out.stdout.split('\n')[0]).to.match(/^NAME\s+TYPE\s+STATE$/);
      await create('cliwatch', 'second', {});
      await patch('cliwatch', 'second', { v: 2 });
      await h.request('DELETE', '/resources/cliwatch/first');
      await h.until(async () => out.stdout.trimEnd().split('\n').length >= 5, 10_000);
      const lines = out.stdout.trimEnd().split('\n');
      expect(lines.slice(2).map((l) => l.split(/\s+/).slice(0, 2))).to.deep.equal([['PUT', 'second'], ['PUT', 'second'], ['DELETE', 'first']]);
      p.kill('SIGINT');
      await exited;
      expect(out.code, out.stderr).to.equal(0);
    });

    it('get -w follows one resource', async () => {
      await create('cliwatch', 'solo', {});
      const { p, out, exited } = follow(['get', 'cliwatch', 'solo', '-w']);
      await h.until(async () => out.stdout.includes('solo'), 20_000);
      await create('cliwatch', 'noise', {});
      await patch('cliwatch', 'solo', { v: 2 });
      await h.until(async () => out.stdout.trimEnd().split('\n').length >= 3, 10_000);
      await new Promise((r) => setTimeout(r, 300));
      const lines = out.stdout.trimEnd().split('\n');
      expect(lines).to.have.length(3);
      expect(lines[2]).to.match(/^PUT\s+solo\b/);
      p.kill('SIGINT');
      await exited;
      expect(out.code, out.stderr).to.equal(0);
    });

    it('list -w resumes a dropped stream with Last-Event-ID: the missed changes as lines, no second table', async () => {
      await create('cliresume', 'base', {});
      const proxy = await CuttableProxy.start(Number(new URL(h.url).port));
      try {
        const { p, out, exited } = follow(['list', 'cliresume', '-w'], proxy.endpoint);
        await h.until(async () => out.stdout.includes('base'), 20_000);
        proxy.sever();
        await create('cliresume', 'during', {});
        await h.request('DELETE', '/resources/cliresume/base');
        proxy.restore();
        await h.until(async () => out.stdout.trimEnd().split('\n').length >= 4, 15_000);
        await create('cliresume', 'after', {});
        await h.until(async () => out.stdout.trimEnd().split('\n').length >= 5, 10_000);
        const lines = out.stdout.trimEnd().split('\n');
        expect(lines.slice(2).map((l) => l.split(/\s+/).slice(0, 2))).to.deep.equal([['PUT', 'during'], ['DELETE', 'base'], ['PUT', 'after']]);
        expect(out.stderr).to.match(/watch stream lost .*resuming after revision \d+/);
        p.kill('SIGINT');
        await exited;
        expect(out.code, out.stderr).to.equal(0);
      } finally {
        await proxy.close();
      }
    });
  });
});
