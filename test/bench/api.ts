/**
 * REST API throughput and latency: one `kith agent --plugins api` on a real
 * etcd, requests over loopback HTTP with keep-alive, first with bearer tokens
 * (the default, `--api-auth token`: every request carries the admin token),
 * then with `--api-auth none` in the same run, and the ratio of the two per
 * request. Then lists from the API node's view against the old way (a
 * range of etcd, a parse and a schema check per pod, per list) on 10,000
 * placed pods, and 100 watch streams under 200 changes/s: the API node's CPU
 * and the delivery lag. Prints figures only. BENCH_API_PODS (default 2000),
 * BENCH_API_CONCURRENCY (16), BENCH_API_LIST_PODS (10000), BENCH_API_WATCHERS
 * (100), BENCH_API_CHANGES (200 per second), BENCH_API_WATCH_SECONDS (10)
 * change the sizes; BENCH_API_PART=requests|lists|watch runs one part.
 */
import { readFileSync } from 'node:fs';
import { Agent, createServer, request, type IncomingMessage } from 'node:http';
import { heartbeatKey, resourceKey, unscheduledKey } from '../../agent/keys.js';
import { StateLayer } from '../../agent/state.js';
import { ResourceStore } from '../../api/store.js';
import { ApiHarness, PREFIX } from '../api/harness.js';
import { testLog } from '../support/log.js';

const PODS = Number(process.env.BENCH_API_PODS ?? 2000);
const CONCURRENCY = Number(process.env.BENCH_API_CONCURRENCY ?? 16);
const LIST_PODS = Number(process.env.BENCH_API_LIST_PODS ?? 10_000);
const WATCHERS = Number(process.env.BENCH_API_WATCHERS ?? 100);
const CHANGES = Number(process.env.BENCH_API_CHANGES ?? 200);
const WATCH_SECONDS = Number(process.env.BENCH_API_WATCH_SECONDS ?? 10);
const PART = process.env.BENCH_API_PART ?? 'all';

const agent = new Agent({ keepAlive: true, maxSockets: CONCURRENCY });

let authorization: Record<string, string> = {};

function send(url: URL, method: string, path: string, body?: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const headers = { ...authorization, ...(body ? { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(body)) } : {}) };
    const req = request(
      { agent, host: url.hostname, port: url.port, method, path, headers },
      (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode ?? 0));
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

/** Requests per second of each phase, by mode. */
const rates = new Map<string, Map<string, number>>();
let mode = 'token';
let h: ApiHarness;

async function phase(label: string, count: number, make: (i: number) => [string, string, string?], expect: number): Promise<void> {
  const url = new URL(h.url);
  const lat: number[] = [];
  let next = 0;
  let wrong = 0;
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      while (next < count) {
        const i = next++;
        const [m, p, b] = make(i);
        const s = performance.now();
        const status = await send(url, m, p, b);
        lat.push(performance.now() - s);
        if (status !== expect) wrong++;
      }
    }),
  );
  const secs = (performance.now() - t0) / 1000;
  lat.sort((a, b) => a - b);
  const q = (f: number) => lat[Math.min(lat.length - 1, Math.floor(f * lat.length))]!.toFixed(1);
  if (!rates.has(label)) rates.set(label, new Map());
  rates.get(label)!.set(mode, count / secs);
  console.log(`| ${label} | ${mode} | ${count} | ${(count / secs).toFixed(0)}/s | ${q(0.5)} ms | ${q(0.99)} ms |${wrong ? ` ${wrong} unexpected statuses` : ''}`);
}

const pod = (name: string) =>
  JSON.stringify({ name, type: 'pod', state: 'created', spec: { containers: [{ name: 'main', image: 'localhost/kith/busybox', cmd: ['sleep', '600'] }], ports: [80] } });

async function requests(): Promise<void> {
  console.log(`concurrency ${CONCURRENCY}, ${PODS} pods`);
  console.log('| request | auth | count | throughput | p50 | p99 |');
  console.log('|---|---|---|---|---|---|');
  for (const m of ['token', 'none'] as const) {
    mode = m;
    h = await ApiHarness.start(['--api-auth', m]);
    authorization = m === 'token' ? { authorization: `Bearer ${h.adminToken}` } : {};
    try {
      await phase('GET /healthz (HTTP stack only)', 5000, () => ['GET', '/healthz'], 200);
      await phase('POST /resources (pod: resource + marker, one txn)', PODS, (i) => ['POST', '/resources', pod(`p${i}`)], 201);
      await phase('GET /resources/pod/:name', 5000, (i) => ['GET', `/resources/pod/p${i % PODS}`], 200);
      await phase('POST /resources (widget)', 1000, (i) => ['POST', '/resources', JSON.stringify({ name: `w${i}`, type: 'widget', spec: { i } })], 201);
      await phase('PATCH /resources/widget/:name (guarded)', 2000, (i) => ['PATCH', `/resources/widget/w${i % 1000}`, JSON.stringify({ state: `s${i}` })], 200);
      await phase('PATCH one widget from every client at once', 500, (i) => ['PATCH', '/resources/widget/w0', JSON.stringify({ metadata: { i: String(i) } })], 200);
      await phase('PUT /dns_aliases (alias key)', 2000, (i) => ['PUT', `/dns_aliases/shop/a${i}/pod/p${i % PODS}`], 204);
      await phase(`GET /resources/pod (list of ${PODS})`, 40, () => ['GET', '/resources/pod'], 200);
      await phase('DELETE /resources/pod/:name (resource + marker)', PODS, (i) => ['DELETE', `/resources/pod/p${i}`], 204);
    } finally {
      await h.stop();
    }
}
console.log('\n| request | tokens / none (requests/s) |');
console.log('|---|---|');
for (const [label, by] of rates) console.log(`| ${label} | ${((by.get('token') ?? 0) / (by.get('none') ?? 1)).toFixed(2)} |`);
}

const quantile = (sorted: number[], f: number): number => sorted[Math.min(sorted.length - 1, Math.floor(f * sorted.length))] ?? NaN;
const ms = (v: number) => `${v.toFixed(1)} ms`;

/** The body of one GET, and how long it took to its last byte. */
function fetchText(url: string, headers: Record<string, string>): Promise<{ ms: number; status: number; text: string }> {
  const t0 = performance.now();
  return new Promise((resolve, reject) => {
    const req = request(url, { agent, headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (d: Buffer) => chunks.push(d));
      res.on('end', () => resolve({ ms: performance.now() - t0, status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString() }));
    });
    req.on('error', reject);
    req.end();
  });
}

/** user + system CPU seconds of a process so far, from /proc/<pid>/stat. */
function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100; // utime, stime in clock ticks (USER_HZ 100)
}

/** Writes pods as placed on `workers` workers (a tenth of them degraded, a tenth dead), 64 transactions at a time. */
async function placedPods(state: StateLayer, count: number, workers: number): Promise<void> {
  for (let w = 0; w < workers; w++) {
    const name = `w${w}`;
    await state.put(resourceKey('node.worker', name), JSON.stringify({ name, type: 'node.worker', state: 'healthy', metadata: {}, spec: { address: `10.0.${w}.1` } }));
    if (w % 10 !== 9) await state.put(heartbeatKey('worker', 'alive', name), 'lease-established');
    if (w % 10 < 8) await state.put(heartbeatKey('worker', 'healthy', name), 'lease-established');
  }
  let next = 0;
  await Promise.all(Array.from({ length: 64 }, async () => {
    while (next < count) {
      const i = next++;
      const name = `p${i}`;
      const value = JSON.parse(pod(name)) as Record<string, unknown>;
      const stored = JSON.stringify({ ...value, state: 'running', metadata: { scheduledBy: 's0', workedBy: `w${i % workers}` } });
      await state.txn({ if: [], then: [{ put: resourceKey('pod', name), value: stored }, { delete: unscheduledKey(name) }] });
    }
  }));
}

/** GET /resources/pod of 10,000 pods: from the API node's view, and the old way (etcd range, parse, schema, per list) in this process. */
async function lists(): Promise<void> {
  const api = await ApiHarness.start();
  const state = new StateLayer(api.etcd.client(), PREFIX, testLog);
  const old = new ResourceStore(state, testLog);
  // The old route, as it was: the list read from etcd per request, answered as JSON over loopback HTTP.
  const oldServer = createServer((_req, res) => {
    old.list('pod').then(
      ({ resources }) => {
        res.writeHead(200, { 'Content-Type': 'application/json; charset=utf-8' });
        res.end(JSON.stringify(resources));
      },
      (err: Error) => {
        res.writeHead(500);
        res.end(err.message);
      },
    );
  });
  await new Promise<void>((r) => oldServer.listen(0, '127.0.0.1', r));
  const oldUrl = `http://127.0.0.1:${(oldServer.address() as { port: number }).port}/resources/pod`;
  const auth = { authorization: `Bearer ${api.adminToken}` };
  try {
    const t0 = performance.now();
    await placedPods(state, LIST_PODS, 100);
    console.log(`\n${LIST_PODS} pods written (placed on 100 workers: 80 healthy, 10 degraded, 10 dead) in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
    const viewUrl = `${api.url}/resources/pod`;
    await api.until(async () => (JSON.parse((await fetchText(viewUrl, auth)).text) as unknown[]).length === LIST_PODS, 60_000);
    const [view, etcd] = [await fetchText(viewUrl, auth), await fetchText(oldUrl, {})];
    console.log(`answers equal: ${view.text === etcd.text ? 'yes' : 'NO'} (${(view.text.length / 1e6).toFixed(1)} MB)`);
    console.log('| list of pods | requests | p50 | p99 | max |');
    console.log('|---|---|---|---|---|');
    for (const [label, url, headers, count] of [['from the view (the API node)', viewUrl, auth, 50], ['old: etcd range + parse + schema (this process)', oldUrl, {}, 20], ['from the view, again', viewUrl, auth, 50]] as const) {
      const lat: number[] = [];
      for (let i = 0; i < count; i++) {
        const r = await fetchText(url, headers);
        if (r.status !== 200) throw new Error(`${label}: status ${r.status}`);
        lat.push(r.ms);
      }
      lat.sort((a, b) => a - b);
      console.log(`| ${label} | ${count} | ${ms(quantile(lat, 0.5))} | ${ms(quantile(lat, 0.99))} | ${ms(lat.at(-1)!)} |`);
    }
  } finally {
    oldServer.close();
    await state.close();
    state.client.close();
    await api.stop();
  }
}

/** A watch stream that notes, per change, the time from its write to its arrival. */
function openWatch(url: string, headers: Record<string, string>, lags: number[]): Promise<IncomingMessage> {
  return new Promise((resolve, reject) => {
    const req = request(url, { headers: { accept: 'text/event-stream', ...headers } });
    req.on('response', (res) => {
      let buf = '';
      let synced = false;
      res.setEncoding('utf8');
      res.on('data', (d: string) => {
        const now = Date.now();
        buf += d;
        const end = buf.lastIndexOf('\n\n');
        if (end < 0) return;
        const done = buf.slice(0, end);
        buf = buf.slice(end + 2);
        if (!synced) synced = done.includes('event: synced');
        if (!synced) return;
        for (const m of done.matchAll(/"sent":(\d+)/g)) lags.push(now - Number(m[1]));
      });
      resolve(res);
    });
    req.on('error', reject);
    req.end();
  });
}

/** 200 changes/s written straight into etcd for WATCH_SECONDS: the API node's CPU, with no stream and with 100. */
async function watchers(): Promise<void> {
  const api = await ApiHarness.start();
  const state = new StateLayer(api.etcd.client(), PREFIX, testLog);
  const pid = api.agent.proc.pid!;
  const auth = { authorization: `Bearer ${api.adminToken}` };
  const pad = 'x'.repeat(400);
  const streams: IncomingMessage[] = [];
  try {
    for (let i = 0; i < 20; i++) await state.put(resourceKey('widget', `w${i}`), JSON.stringify({ name: `w${i}`, type: 'widget', metadata: {}, spec: { sent: Date.now(), pad } }));
    console.log(`\n${CHANGES} changes/s of 20 widgets (about 500 bytes each) for ${WATCH_SECONDS} s, written straight into etcd; lag from just before each write to its arrival at a client`);
    console.log('| watch streams | API node CPU (of one core) | changes delivered | lag p50 | lag p99 | max |');
    console.log('|---|---|---|---|---|---|');
    for (const count of [0, WATCHERS]) {
      const lags: number[] = [];
      for (const s of streams.splice(0)) s.destroy();
      for (let i = 0; i < count; i++) streams.push(await openWatch(`${api.url}/resources/widget?watch=1`, auth, lags));
      await new Promise((r) => setTimeout(r, 1000));
      lags.length = 0;
      const cpu0 = cpuSeconds(pid);
      const t0 = performance.now();
      const total = CHANGES * WATCH_SECONDS;
      let inflight = 0;
      for (let n = 0; n < total; n++) {
        const due = t0 + (n * 1000) / CHANGES;
        const wait = due - performance.now();
        if (wait > 0) await new Promise((r) => setTimeout(r, wait));
        if (inflight >= 64) continue; // etcd is behind: the change is skipped, not queued
        inflight++;
        void state.put(resourceKey('widget', `w${n % 20}`), JSON.stringify({ name: `w${n % 20}`, type: 'widget', metadata: {}, spec: { sent: Date.now(), pad } }))
          .finally(() => inflight--);
      }
      const secs = (performance.now() - t0) / 1000;
      const cpu = (cpuSeconds(pid) - cpu0) / secs;
      await new Promise((r) => setTimeout(r, 1000));
      lags.sort((a, b) => a - b);
      const lag = (f: number) => (lags.length ? ms(quantile(lags, f)) : '-');
      console.log(`| ${count} | ${(cpu * 100).toFixed(1)}% | ${lags.length} | ${lag(0.5)} | ${lag(0.99)} | ${lags.length ? ms(lags.at(-1)!) : '-'} |`);
    }
  } finally {
    for (const s of streams) s.destroy();
    await state.close();
    state.client.close();
    await api.stop();
  }
}

if (PART === 'all' || PART === 'requests') await requests();
if (PART === 'all' || PART === 'lists') await lists();
if (PART === 'all' || PART === 'watch') await watchers();
agent.destroy();
