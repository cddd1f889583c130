import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Etcd3 } from 'etcd3';
import { TestAgent } from '../support/agent.js';
import { TestEtcd } from '../support/etcd.js';
import { freePort } from '../support/ports.js';

export const PREFIX = '/kith';

/**
 * A real etcd and a `kith agent --plugins api --api-auth token` on a free
 * loopback port. `request` sends the bootstrap admin token (from the agent's
 * `admin.token`) unless the headers give an Authorization of their own.
 */
export class ApiHarness {
  /** The bootstrap admin token's secret. */
  adminToken = '';

  private constructor(
    readonly etcd: TestEtcd,
    readonly agent: TestAgent,
    readonly name: string,
    readonly url: string,
    readonly kv: Etcd3,
  ) {}

  /**
   * With `clusterAddress`, the agent gets `--cluster-address` and also listens
   * on its port 80, where pods reach the API (so it joins api.special).
   */
  static async start(extra: string[] = [], opts: { clusterAddress?: string } = {}): Promise<ApiHarness> {
    const etcd = await TestEtcd.start();
    let agent: TestAgent | undefined;
    const kv = etcd.client();
    try {
      const port = await freePort();
      const name = `api-${randomBytes(3).toString('hex')}`;
      const listen = [`127.0.0.1:${port}`, ...(opts.clusterAddress ? [`${opts.clusterAddress}:80`] : [])].join(',');
      const cluster = opts.clusterAddress ? ['--cluster-address', opts.clusterAddress] : [];
      agent = TestAgent.start({
        args: ['--plugins', 'api', '--name', name, '--etcd-endpoints', etcd.endpoint, '--api-listen', listen, ...cluster, ...(extra.includes('--api-auth') ? [] : ['--api-auth', 'token']), ...extra],
      });
      await agent.ready();
      const h = new ApiHarness(etcd, agent, name, `http://127.0.0.1:${port}`, kv);
      await h.until(async () => (await fetch(`${h.url}/readyz`)).status === 200, 10_000);
      h.adminToken = h.readAdminToken();
      return h;
    } catch (err) {
      await agent?.stop().catch(() => undefined);
      kv.close();
      await etcd.stop();
      throw err;
    }
  }

  /** The secret in the agent's `admin.token`, or '' when there is none. */
  readAdminToken(dataDir = this.agent.dataDir): string {
    try {
      return readFileSync(join(dataDir, 'admin.token'), 'utf8').trim();
    } catch {
      return '';
    }
  }

  /** A second API agent on the same etcd, for races between processes. */
  async peer(extra: string[] = []): Promise<{ url: string; name: string; dataDir: string; stop: () => Promise<unknown> }> {
    const port = await freePort();
    const name = `peer-${randomBytes(3).toString('hex')}`;
    const agent = TestAgent.start({
      args: ['--plugins', 'api', '--name', name, '--etcd-endpoints', this.etcd.endpoint, '--api-listen', `127.0.0.1:${port}`, ...(extra.includes('--api-auth') ? [] : ['--api-auth', 'token']), ...extra],
    });
    try {
      await agent.ready();
    } catch (err) {
      await agent.stop().catch(() => undefined);
      throw err;
    }
    return { url: `http://127.0.0.1:${port}`, name, dataDir: agent.dataDir, stop: () => agent.stop() };
  }

  /** Polls a condition every 50 ms until it holds or the time is up. */
  async until(cond: () => Promise<boolean>, timeoutMs = 5000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      try {
        if (await cond()) return;
      } catch {
        /* not yet */
      }
      if (Date.now() > deadline) throw new Error(`condition not met within ${timeoutMs} ms`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  async request(method: string, path: string, body?: unknown, headers: Record<string, string> = {}, base = this.url): Promise<{ status: number; type: string; body: any; text: string; headers: Headers }> {
    const raw = typeof body === 'string' ? body : body === undefined ? undefined : JSON.stringify(body);
    if (this.adminToken && !Object.keys(headers).some((k) => k.toLowerCase() === 'authorization')) headers = { ...headers, authorization: `Bearer ${this.adminToken}` };
    const res = await fetch(`${base}${path}`, {
      method,
      body: raw,
      headers: raw === undefined ? headers : { 'content-type': 'application/json', ...headers },
    });
    const text = await res.text();
    let parsed: unknown;
    try {
      parsed = text === '' ? undefined : JSON.parse(text);
    } catch {
      parsed = undefined;
    }
    return { status: res.status, type: res.headers.get('content-type') ?? '', body: parsed, text, headers: res.headers };
  }

  /** The value of a key under the prefix, or undefined. */
  async value(key: string): Promise<string | undefined> {
    return (await this.kv.get(`${PREFIX}/${key}`).string()) ?? undefined;
  }

  async put(key: string, value: string): Promise<void> {
    await this.kv.put(`${PREFIX}/${key}`).value(value);
  }

  async del(key: string): Promise<void> {
    await this.kv.delete().key(`${PREFIX}/${key}`);
  }

  /** Every key and value under a relative prefix. */
  async all(prefix = ''): Promise<Record<string, string>> {
    const res = await this.kv.getAll().prefix(`${PREFIX}/${prefix}`).strings();
    return Object.fromEntries(Object.entries(res).map(([k, v]) => [k.slice(PREFIX.length + 1), v]));
  }

  async stop(): Promise<void> {
    try {
      await this.agent.stop();
    } finally {
      this.kv.close();
      await this.etcd.stop();
    }
  }
}
