/**
 * ReplicaSet controller throughput against a real etcd: time from writing a
 * ReplicaSet of N replicas to N pods stored (each with its unscheduled
 * marker), and from scaling it to 0 to none left, with one and with two
 * agents running the controller. No scheduler or worker runs: pods stay
 * `created`, so this measures the controller and etcd alone.
 *
 *   npm run bench -- replicaset
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type { Etcd3 } from 'etcd3';
import { TestAgent } from '../support/agent.js';
import { TestEtcd } from '../support/etcd.js';

const PREFIX = '/kith';
const TEMPLATE = { spec: { containers: [{ name: 'c', image: 'localhost/kith/busybox' }] } };

async function count(client: Etcd3, prefix: string): Promise<number> {
  return client.getAll().prefix(`${PREFIX}/${prefix}`).count();
}

async function timeUntil(what: string, check: () => Promise<boolean>, timeoutMs: number): Promise<number> {
  const t0 = performance.now();
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await check()) return performance.now() - t0;
    await sleep(10);
  }
  throw new Error(`timed out: ${what}`);
}

async function run(agents: number, n: number, etcd: TestEtcd, client: Etcd3, name: string): Promise<void> {
  const key = `${PREFIX}/resource/replicaset/${name}`;
  const put = (replicas: number) => client.put(key).value(JSON.stringify({ name, type: 'replicaset', metadata: {}, spec: { replicas, template: TEMPLATE } }));
  const t0 = performance.now();
  await put(n);
  await timeUntil(`${n} pods`, async () => (await count(client, 'resource/pod/')) >= n && (await count(client, 'pod/unscheduled/')) >= n, 120_000);
  const up = performance.now() - t0;
  const extra = (await count(client, 'resource/pod/')) - n;
  const t1 = performance.now();
  await put(0);
  await timeUntil('0 pods', async () => (await count(client, 'resource/pod/')) === 0, 120_000);
  const down = performance.now() - t1;
  await client.delete().key(key);
  console.log(
    `agents=${agents} replicas=${n}: created in ${up.toFixed(0)} ms (${((n / up) * 1000).toFixed(0)} pods/s), ` +
      `removed in ${down.toFixed(0)} ms (${((n / down) * 1000).toFixed(0)} pods/s), pods beyond N once N were stored: ${extra}`,
  );
  void etcd;
}

async function main(): Promise<void> {
  for (const agents of [1, 2]) {
    const etcd = await TestEtcd.start();
    const client = etcd.client();
    const started: TestAgent[] = [];
    try {
      for (let i = 0; i < agents; i++) {
        const a = TestAgent.start({ args: ['--name', `bench-rs-${i}`, '--plugins', 'replicaset', '--etcd-endpoints', etcd.endpoint] });
        started.push(a);
        await a.ready();
      }
      for (const n of [100, 1000]) await run(agents, n, etcd, client, `bench${n}`);
    } finally {
      for (const a of started) await a.stop().catch(() => undefined);
      client.close();
      await etcd.stop();
    }
  }
}

// A failure rejects the top-level await: Node prints it and exits 1. Success exits at once, whatever handles linger.
await main();
process.exit(0);
