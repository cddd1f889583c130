/**
 * REST API throughput and latency: one `kith agent --plugins api` on a real
 * etcd, requests over loopback HTTP with keep-alive, first with bearer tokens
 * (the default, `--api-auth token`: every request carries the admin token),
 * then with `--api-auth none` in the same run, and the ratio of the two per
 * request. Prints figures only. BENCH_API_PODS (default 2000) and
 * BENCH_API_CONCURRENCY (16) change the sizes.
 */
import { Agent, request } from 'node:http';
import { ApiHarness } from '../api/harness.js';

const PODS = Number(process.env.BENCH_API_PODS ?? 2000);
const CONCURRENCY = Number(process.env.BENCH_API_CONCURRENCY ?? 16);

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
agent.destroy();
console.log('\n| request | tokens / none (requests/s) |');
console.log('|---|---|');
for (const [label, by] of rates) console.log(`| ${label} | ${((by.get('token') ?? 0) / (by.get('none') ?? 1)).toFixed(2)} |`);
