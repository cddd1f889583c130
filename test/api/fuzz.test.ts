import { Agent, request } from 'node:http';
import { connect } from 'node:net';
import { expect } from 'chai';
import { storedToken } from '../../api/tokens.js';
import { addressable, schemaFor } from '../../api/resources.js';
import { parseNamespace } from '../../api/namespace.js';
import { isNodeType, node } from '../../api/schemas.js';
import { ApiHarness } from './harness.js';
import { prng } from '../support/prng.js';

/** Requests of random and mutated bodies, paths and headers; raw garbage on top. */
const REQUESTS = Number(process.env.KITH_FUZZ_REQUESTS ?? 10_000);
const RAW = Number(process.env.KITH_FUZZ_RAW ?? 300);
const CONCURRENCY = 16;

const KEYS = ['name', 'type', 'state', 'metadata', 'spec', 'containers', 'image', 'cmd', 'entrypoint', 'env', 'resources', 'requests', 'limits',
  'cpu', 'memory', 'ports', 'container', 'cluster', 'replicas', 'template', 'schedulingConstraints', 'mayBeScheduledOn', 'cannotBeScheduledOn',
  '__proto__', 'constructor', 'prototype', 'toString', '', 'x'];
const NAMES = ['web', 'db', 'cache', 'rs-a', 'w1', 'Web', 'a_b', '-x', 'x-', '1a', 'a'.repeat(63), 'a'.repeat(64), '', 'é', 'a b', 'null', '..', '%2e%2e'];
const TYPES = ['pod', 'replicaset', 'widget', 'widget.big', 'node.worker', 'node.api', 'Pod', 'a/b', 'a%2Fb', '.x', 'x.', '%00', '%ZZ', '..', 'resources', 'é'];
const NAMESPACES = ['pod', 'special', 'api.node', 'worker.node', 'replicaset', 'shop', 'node', 'Shop', 'a.b', 'a%2Fb', 'x'.repeat(70), '%E2%98%83'];
const CONTENT_TYPES = ['application/json', 'application/json; charset=utf-8', 'application/merge-patch+json', 'APPLICATION/JSON', 'text/plain',
  'application/x-www-form-urlencoded', 'multipart/form-data; boundary=x', 'application/jsonx', ';', 'json', '*/*'];
const METHODS = ['GET', 'POST', 'PUT', 'PATCH', 'DELETE', 'HEAD', 'OPTIONS', 'POST', 'PATCH', 'PUT', 'TRACE', 'PROPFIND', 'PURGE'];
const STATES = ['created', 'running', 'scheduled', 'dead', 'unhealthy', 'Created', '', 'x'];

function fuzzer(rand: () => number, tokens: { admin: string; view: string }) {
  const int = (n: number) => Math.floor(rand() * n);
  const pick = <T>(xs: readonly T[]): T => xs[int(xs.length)]!;
  const chance = (p: number) => rand() < p;

  const str = (): string => {
    switch (int(8)) {
      case 0: return '';
      case 1: return pick(NAMES);
      case 2: return pick(STATES);
      case 3: return 'x'.repeat(int(2000));
      case 4: return String.fromCharCode(...Array.from({ length: int(12) }, () => int(0x3000)));
      case 5: return pick(['localhost/kith/busybox', 'busybox:latest', 'a b', '\u0000', '0.5', '1e3', '-1']);
      default: return Array.from({ length: 1 + int(10) }, () => pick([...'abcxyz019-_.A/:%'])).join('');
    }
  };
  const num = (): number => pick([0, 1, -1, 0.5, 65535, 65536, 1e308, -1e308, 2 ** 53, 1.5, 1024, 16 * 1024 * 1024 + 1, int(100000)]);

  const json = (depth: number): unknown => {
    const k = depth <= 0 ? int(4) : int(7);
    switch (k) {
      case 0: return null;
      case 1: return chance(0.5);
      case 2: return num();
      case 3: return str();
      case 4: return Array.from({ length: int(4) }, () => json(depth - 1));
      default: {
        const o: Record<string, unknown> = Object.create(null);
        for (let i = int(5); i > 0; i--) o[chance(0.8) ? pick(KEYS) : str()] = json(depth - 1);
        return o;
      }
    }
  };

  const validName = () => (chance(0.5) ? pick(NAMES.slice(0, 5)) : `n${int(300)}`);
  const seeds = (): Record<string, unknown> => {
    const c = () => ({ name: pick(['main', 'side']), image: 'localhost/kith/busybox', cmd: ['sleep', '1'], env: { A: '1' }, resources: { requests: { cpu: '0.1', memory: 8 }, limits: { cpu: 1, memory: 64 } } });
    const podSpec = () => ({ containers: [c()], ports: [80, { container: 81, cluster: 8081, name: 'alt' }], schedulingConstraints: { mayBeScheduledOn: null, cannotBeScheduledOn: ['w9'] } });
    switch (int(5)) {
      case 0:
      case 1: return { name: validName(), type: 'pod', state: 'created', metadata: { team: 'a' }, spec: podSpec() };
      case 2: return { name: validName(), type: 'replicaset', spec: { replicas: int(4), template: { metadata: { app: 'x' }, spec: podSpec() } } };
      case 3: return { name: validName(), type: pick(['widget', 'widget.big']), state: 'on', spec: { n: int(9) } };
      default: return { state: pick(STATES), metadata: { k: 'v' }, spec: { replicas: int(5), template: { spec: podSpec() } } };
    }
  };

  /** Replaces, deletes or adds a value somewhere in a JSON tree. */
  const mutate = (v: unknown): unknown => {
    if (typeof v !== 'object' || v === null || chance(0.1)) return json(3);
    const entries = Array.isArray(v) ? v.map((x, i) => [String(i), x] as const) : Object.entries(v);
    const copy: any = Array.isArray(v) ? [...v] : Object.assign(Object.create(null), v);
    if (entries.length === 0 || chance(0.15)) {
      if (Array.isArray(copy)) copy.push(json(2));
      else copy[chance(0.7) ? pick(KEYS) : str()] = json(2);
      return copy;
    }
    const [key, child] = pick(entries);
    if (chance(0.2)) {
      if (Array.isArray(copy)) copy.splice(Number(key), 1);
      else delete copy[key];
    } else {
      copy[key] = chance(0.6) ? mutate(child) : json(2);
    }
    return copy;
  };

  const bytes = (s: string): string => {
    let out = s;
    for (let i = 1 + int(3); i > 0; i--) {
      const at = int(out.length + 1);
      switch (int(4)) {
        case 0: out = out.slice(0, at) + pick([...'{}[]",:\\0 ée\u0000\ud800']) + out.slice(at); break;
        case 1: out = out.slice(0, at) + out.slice(at + 1 + int(5)); break;
        case 2: out = out.slice(0, at); break;
        default: out = out.slice(0, at) + out.slice(int(out.length)) ; break;
      }
    }
    return out;
  };

  const body = (): string | undefined => {
    switch (int(10)) {
      case 0: return undefined;
      case 1: return JSON.stringify(json(4));
      case 2: return bytes(JSON.stringify(seeds()));
      case 3: return '['.repeat(int(200)) + ']'.repeat(int(200));
      case 4: return JSON.stringify(seeds());
      default: {
        let v: unknown = seeds();
        for (let i = 1 + int(3); i > 0; i--) v = mutate(v);
        return JSON.stringify(v);
      }
    }
  };

  const segment = (pool: string[]) => (chance(0.85) ? pick(pool) : encodeURIComponent(str()).slice(0, 300));
  const path = (): string => {
    let p: string;
    switch (int(10)) {
      case 0:
      case 8: p = '/resources'; break;
      case 1: p = `/resources/${segment(TYPES)}`; break;
      case 2:
      case 3: p = `/resources/${segment(TYPES)}/${chance(0.5) ? validName() : segment(NAMES)}`; break;
      case 4: p = `/dns_aliases/${segment(NAMESPACES)}/${segment(NAMES)}`; break;
      case 5: p = `/dns_aliases/${segment(NAMESPACES)}/${segment(NAMES)}/${segment(NAMESPACES)}/${segment(NAMES)}`; break;
      case 6: p = pick(['/healthz', '/readyz', '/metrics', '/', '//resources', '/resources/', '/dns_aliases', '/%', '/%%', '/a/../resources']); break;
      default: p = `/${encodeURIComponent(str()).slice(0, 500)}`;
    }
    if (chance(0.05)) p += `?${pick(['x=1', 'a', '%', '&&', 'type=pod'])}`;
    if (chance(0.03)) p += '/';
    return p;
  };

  const headers = (hasBody: boolean): Record<string, string> => {
    const h: Record<string, string> = {};
    if (hasBody ? chance(0.95) : chance(0.1)) h['content-type'] = chance(0.6) ? 'application/json' : pick(CONTENT_TYPES);
    if (chance(0.05)) h['content-encoding'] = pick(['gzip', 'identity', 'br', 'x']);
    if (chance(0.1)) h['if-match'] = pick(['"1"', 'W/"5"', '*', 'abc', '"99999999999999999999"', '', '1']);
    if (chance(0.1)) h['accept'] = pick(['*/*', 'text/html', 'application/xml', '']);
    if (chance(0.1)) h['x-fuzz'] = Array.from({ length: int(200) }, () => String.fromCharCode(32 + int(95))).join('');
    // Mostly the admin token, so requests reach validation; else a view token, none, or a bad one.
    const auth = rand();
    if (auth < 0.8) h['authorization'] = `Bearer ${tokens.admin}`;
    else if (auth < 0.87) h['authorization'] = `Bearer ${tokens.view}`;
    else if (auth < 0.97) {
      h['authorization'] = pick([
        `Bearer kith_${'A'.repeat(43)}`,
        `Bearer ${tokens.admin.slice(0, -1)}`,
        `bearer ${tokens.admin}x`,
        `Basic ${Buffer.from('admin:admin').toString('base64')}`,
        'Bearer',
        'Bearer  ',
        `Bearer ${tokens.admin} ${tokens.admin}`,
        `Bearer ${'x'.repeat(int(4000) + 600)}`,
        `${tokens.admin}`,
        '\u0000',
      ]);
    }
    return h;
  };

  /** Mostly a method the path's route answers, so requests get past routing into validation. */
  const method = (p: string): string => {
    if (chance(0.3)) return pick(METHODS);
    if (p === '/resources') return 'POST';
    if (/^\/resources\/[^/]+\/[^/]+$/.test(p)) return pick(['GET', 'PATCH', 'PATCH', 'DELETE']);
    if (/^\/dns_aliases(\/[^/]+){4}$/.test(p)) return pick(['GET', 'PUT', 'PUT', 'DELETE']);
    return 'GET';
  };

  return { int, pick, chance, body, path, headers, method };
}

interface Outcome {
  status: number;
  contentType: string;
  body: string;
}

function send(agent: Agent, url: URL, method: string, path: string, headers: Record<string, string>, body: string | undefined): Promise<Outcome | 'unsendable'> {
  return new Promise((resolve, reject) => {
    let req;
    try {
      req = request({ agent, host: url.hostname, port: url.port, method, path, headers, timeout: 20_000 }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, contentType: String(res.headers['content-type'] ?? ''), body: Buffer.concat(chunks).toString() }));
        res.on('error', reject);
      });
    } catch {
      return resolve('unsendable'); // the client refuses it (e.g. a path with raw spaces)
    }
    req.on('timeout', () => req.destroy(new Error(`timeout: ${method} ${path}`)));
    req.on('error', reject);
    req.end(body);
  });
}

describe('api: fuzzing with random and mutated bodies, paths and headers', function () {
  this.timeout(180_000);
  let h: ApiHarness;

  let viewToken = '';
  before(async () => {
    h = await ApiHarness.start();
    viewToken = ((await h.request('POST', '/tokens', { role: 'view', name: 'fuzz-view' })).body as { token: string }).token;
  });
  after(async () => {
    await h?.stop();
  });

  it(`answers ${REQUESTS} fuzzed requests with no 5xx, problem details for errors, and stores nothing invalid`, async () => {
    const seed = Number(process.env.KITH_FUZZ_SEED ?? Date.now() % 1e9);
    const f = fuzzer(prng(seed), { admin: h.adminToken, view: viewToken });
    const url = new URL(h.url);
    const agent = new Agent({ keepAlive: true, maxSockets: CONCURRENCY });
    const failures: string[] = [];
    const statuses = new Map<number, number>();
    let sent = 0;
    let next = 0;
    const worker = async () => {
      while (next < REQUESTS) {
        next++;
        const path = f.path();
        const method = f.method(path);
        const body = ['GET', 'HEAD', 'OPTIONS'].includes(method) && f.chance(0.9) ? undefined : f.body();
        const headers = f.headers(body !== undefined);
        // Node's client sends a GET or DELETE body without framing unless told its length.
        if (body !== undefined && f.chance(0.9)) headers['content-length'] = String(Buffer.byteLength(body));
        const what = `${method} ${path} ${JSON.stringify(headers)} ${body?.slice(0, 200)}`;
        let r: Outcome | 'unsendable';
        try {
          r = await send(agent, url, method, path, headers, body);
        } catch (err) {
          // A request Node's parser rejects gets its problem detail with a body, which a HEAD client cannot read.
          if (method === 'HEAD' && /Parse Error/.test((err as Error).message)) continue;
          failures.push(`request failed (${(err as Error).message}): ${what}`);
          continue;
        }
        if (r === 'unsendable') continue;
        sent++;
        statuses.set(r.status, (statuses.get(r.status) ?? 0) + 1);
        if (r.status >= 500) failures.push(`${r.status} ${r.body.slice(0, 200)} for ${what}`);
        // Nothing changes without a token that may change it.
        const mayChange = headers['authorization'] === `Bearer ${h.adminToken}`;
        if (!mayChange && r.status < 300 && !['GET', 'HEAD', 'OPTIONS'].includes(method)) failures.push(`${r.status} without an edit token for ${what}`);
        else if (r.status >= 400 && method !== 'HEAD') {
          let p: Record<string, unknown> | undefined;
          try {
            p = JSON.parse(r.body);
          } catch {
            /* checked below */
          }
          const ok = r.contentType.startsWith('application/problem+json') && p && ['type', 'title', 'detail', 'status'].every((k) => k in p!) && p.status === r.status;
          if (!ok) failures.push(`${r.status} not a problem detail (${r.contentType}: ${r.body.slice(0, 100)}) for ${what}`);
        }
      }
    };
    await Promise.all(Array.from({ length: CONCURRENCY }, worker));
    agent.destroy();

    // Raw bytes, some HTTP-like, on fresh connections: answered or closed, never 5xx.
    const rand = prng(seed + 1);
    for (let i = 0; i < RAW; i++) {
      const junk = i % 3 === 0
        ? `POST /resources HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${Math.floor(rand() * 50)}\r\n\r\n{"name":`
        : i % 3 === 1
          ? `${['GET', 'PATCH', 'BREW'][i % 3]} /resources/pod/${'%'.repeat(Math.floor(rand() * 5))} HTTP/1.${Math.floor(rand() * 3)}\r\n${'X: y\r\n'.repeat(Math.floor(rand() * 3))}\r\n`
          : Buffer.from(Array.from({ length: 1 + Math.floor(rand() * 300) }, () => Math.floor(rand() * 256))).toString('latin1');
      const reply = await new Promise<string>((resolve) => {
        const s = connect(Number(url.port), url.hostname);
        let got = '';
        s.setTimeout(1000, () => s.destroy());
        s.on('data', (d) => (got += d.toString('latin1')));
        s.on('close', () => resolve(got));
        s.on('error', () => resolve(got));
        s.on('connect', () => s.end(Buffer.from(junk, 'latin1')));
      });
      const status = /^HTTP\/1\.[01] (\d{3})/.exec(reply)?.[1];
      if (status && Number(status) >= 500) failures.push(`raw: ${status} for ${JSON.stringify(junk.slice(0, 120))}`);
      if (status && Number(status) >= 400 && !/\r\ncontent-type: application\/problem\+json/i.test(reply)) failures.push(`raw: ${status} not a problem detail for ${JSON.stringify(junk.slice(0, 120))}`);
    }

    if (process.env.KITH_TEST_LOG) console.log(`seed ${seed}, statuses ${JSON.stringify([...statuses].sort())}`);
    expect(failures, `seed ${seed}:\n${failures.slice(0, 10).join('\n')}`).to.deep.equal([]);
    expect(sent).to.be.at.least(REQUESTS * 0.95);
    expect(h.agent.running).to.equal(true);
    expect((await h.request('GET', '/healthz')).status).to.equal(200);
    // Some requests must have got through validation, or the fuzzer tests nothing.
    expect(statuses.get(201) ?? 0, JSON.stringify([...statuses])).to.be.above(20);

    // etcd holds nothing invalid: every resource parses with its type's schema under its own key.
    const all = await h.all();
    const bad: string[] = [];
    for (const [key, value] of Object.entries(all)) {
      if (key.startsWith('resource/')) {
        const [, type, name, ...rest] = key.split('/');
        let json: any;
        try {
          json = JSON.parse(value);
        } catch {
          bad.push(`${key}: not JSON`);
          continue;
        }
        const schema = isNodeType(type!) ? node : schemaFor(type!);
        if (rest.length > 0 || !addressable(type!, name) || !schema.safeParse(json).success || json.name !== name || json.type !== type) bad.push(`${key}: ${value.slice(0, 200)}`);
        if (type === 'pod' && all[`pod/unscheduled/${name}`] === undefined) bad.push(`${key}: no unscheduled marker`);
      } else if (key.startsWith('pod/unscheduled/')) {
        if (all[`resource/pod/${key.slice('pod/unscheduled/'.length)}`] !== value) bad.push(`${key}: marker without its pod`);
      } else if (key.startsWith('dns/')) {
        const m = /^dns\/([a-z0-9-]+)\.([a-z0-9.-]+)\.cluster\.local\.\/[a-z0-9-]+\.[a-z0-9.-]+\.cluster\.local\.$/.exec(key);
        if (!m || value !== 'alias' || parseNamespace(m[2]!)?.builtin !== false) bad.push(`${key}: ${value}`);
      } else if (key.startsWith('token/')) {
        // A token is a valid token record under its own name.
        const t = storedToken.safeParse(JSON.parse(value));
        if (!t.success || `token/${t.data.name}` !== key) bad.push(`${key}: ${value.slice(0, 200)}`);
      } else if (key !== 'token.bootstrap' && !key.startsWith('node.api/heartbeat/') && !key.startsWith('node.api/logs-key/')) {
        bad.push(`${key}: unexpected key`);
      }
    }
    expect(bad, `seed ${seed}`).to.deep.equal([]);
  });
});
