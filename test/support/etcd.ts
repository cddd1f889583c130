import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { readFileSync } from 'node:fs';
import { Etcd3 } from 'etcd3';
import { freePort } from './ports.js';
import type { TestPki } from './tls.js';

/** A real single-member etcd on free loopback ports, with its own data dir. */
export class TestEtcd {
  private proc: ChildProcess | undefined;
  readonly dataDir = mkdtempSync(join(tmpdir(), 'kith-etcd-'));
  clientPort = 0;
  peerPort = 0;

  /** With a PKI, clients speak TLS and must show a certificate of its CA. */
  private constructor(private readonly pki?: TestPki) {}

  get endpoint(): string {
    return `${this.pki ? 'https' : 'http'}://127.0.0.1:${this.clientPort}`;
  }

  static async start(opts: { pki?: TestPki } = {}): Promise<TestEtcd> {
    const e = new TestEtcd(opts.pki);
    // Another process on the machine may bind a port between our probe and
    // etcd's bind; such a start is retried on fresh ports, a bounded number of times.
    for (let attempt = 1; ; attempt++) {
      e.clientPort = await freePort();
      e.peerPort = await freePort();
      try {
        await e.launch();
        return e;
      } catch (err) {
        if (attempt >= 3 || !/address already in use/.test(String(err))) {
          rmSync(e.dataDir, { recursive: true, force: true });
          throw err;
        }
        rmSync(e.dataDir, { recursive: true, force: true });
        mkdirSync(e.dataDir, { mode: 0o700 });
      }
    }
  }

  async launch(): Promise<void> {
    this.proc = spawn(
      'etcd',
      [
        '--name', 'test',
        '--data-dir', this.dataDir,
        '--listen-client-urls', this.endpoint,
        '--advertise-client-urls', this.endpoint,
        '--listen-peer-urls', `http://127.0.0.1:${this.peerPort}`,
        '--initial-advertise-peer-urls', `http://127.0.0.1:${this.peerPort}`,
        '--initial-cluster', `test=http://127.0.0.1:${this.peerPort}`,
        '--log-level', 'error',
        ...(this.pki
          ? ['--cert-file', this.pki.serverCert, '--key-file', this.pki.serverKey, '--client-cert-auth', '--trusted-ca-file', this.pki.ca]
          : []),
      ],
      { stdio: ['ignore', 'ignore', 'pipe'] },
    );
    let stderr = '';
    this.proc.stderr!.on('data', (d) => (stderr = (stderr + d).slice(-2000)));
    const client = new Etcd3({ hosts: this.endpoint, dialTimeout: 500, credentials: this.credentials() });
    try {
      for (let i = 0; i < 100; i++) {
        if (this.proc.exitCode !== null) throw new Error(`etcd exited: ${stderr}`);
        try {
          await client.get('health').exec();
          return;
        } catch {
          await sleep(100);
        }
      }
      throw new Error(`etcd did not become ready: ${stderr}`);
    } finally {
      client.close();
    }
  }

  /** A client for the test itself. */
  client(): Etcd3 {
    return new Etcd3({ hosts: this.endpoint, credentials: this.credentials() });
  }

  private credentials() {
    if (!this.pki) return undefined;
    return { rootCertificate: readFileSync(this.pki.ca), certChain: readFileSync(this.pki.clientCert), privateKey: readFileSync(this.pki.clientKey) };
  }

  async kill(signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
    const p = this.proc;
    if (!p || p.exitCode !== null || p.signalCode !== null) return;
    p.kill('SIGCONT');
    const exited = new Promise((r) => p.once('exit', r));
    p.kill(signal);
    await Promise.race([exited, sleep(5000).then(() => p.kill('SIGKILL'))]);
    await exited;
  }

  /** Freezes etcd (SIGSTOP): it holds its connections and answers nothing until `resume()`. */
  pause(): void {
    this.proc?.kill('SIGSTOP');
  }

  resume(): void {
    this.proc?.kill('SIGCONT');
  }

  async restart(): Promise<void> {
    await this.kill();
    await this.launch();
  }

  async stop(): Promise<void> {
    await this.kill();
    rmSync(this.dataDir, { recursive: true, force: true });
  }
}

interface ClusterMember {
  name: string;
  clientPort: number;
  peerPort: number;
  dataDir: string;
  proc?: ChildProcess;
}

/**
 * A real etcd cluster of `size` members on free loopback ports, each with
 * its own data dir, for failover tests: members can be killed one by one.
 */
export class TestEtcdCluster {
  private constructor(readonly members: ClusterMember[]) {}

  get endpoints(): string[] {
    return this.members.map((m) => `http://127.0.0.1:${m.clientPort}`);
  }

  static async start(size = 3): Promise<TestEtcdCluster> {
    const members: ClusterMember[] = [];
    for (let i = 1; i <= size; i++) {
      members.push({ name: `m${i}`, clientPort: await freePort(), peerPort: await freePort(), dataDir: mkdtempSync(join(tmpdir(), `kith-etcd-m${i}-`)) });
    }
    const c = new TestEtcdCluster(members);
    const initial = members.map((m) => `${m.name}=http://127.0.0.1:${m.peerPort}`).join(',');
    for (const m of members) {
      m.proc = spawn('etcd', [
        '--name', m.name,
        '--data-dir', m.dataDir,
        '--listen-client-urls', `http://127.0.0.1:${m.clientPort}`,
        '--advertise-client-urls', `http://127.0.0.1:${m.clientPort}`,
        '--listen-peer-urls', `http://127.0.0.1:${m.peerPort}`,
        '--initial-advertise-peer-urls', `http://127.0.0.1:${m.peerPort}`,
        '--initial-cluster', initial,
        '--initial-cluster-state', 'new',
        '--initial-cluster-token', `kith-test-${process.pid}-${members[0]!.peerPort}`,
        '--heartbeat-interval', '50',
        '--election-timeout', '500',
        '--log-level', 'error',
      ], { stdio: ['ignore', 'ignore', 'ignore'] });
    }
    const client = c.client();
    try {
      for (let i = 0; i < 200; i++) {
        try {
          await client.put('health').value('ok').exec();
          return c;
        } catch {
          await sleep(100);
        }
      }
      throw new Error('etcd cluster did not become ready within 20 s');
    } catch (err) {
      await c.stop();
      throw err;
    } finally {
      client.close();
    }
  }

  client(): Etcd3 {
    return new Etcd3({ hosts: this.endpoints, dialTimeout: 1000 });
  }

  /** The index of the member that leads now. */
  async leader(): Promise<number> {
    for (let i = 0; i < this.members.length; i++) {
      const m = this.members[i]!;
      if (!m.proc || m.proc.exitCode !== null || m.proc.signalCode !== null) continue;
      const one = new Etcd3({ hosts: `http://127.0.0.1:${m.clientPort}`, dialTimeout: 1000 });
      try {
        const s = await one.maintenance.status();
        if (s.leader === s.header.member_id) return i;
      } catch {
        // a member that cannot answer is not the leader we can name
      } finally {
        one.close();
      }
    }
    throw new Error('no member says it leads');
  }

  /** kill -9 of one member. */
  async kill(i: number): Promise<void> {
    const p = this.members[i]?.proc;
    if (!p || p.exitCode !== null || p.signalCode !== null) return;
    const exited = new Promise((r) => p.once('exit', r));
    p.kill('SIGKILL');
    await exited;
  }

  async stop(): Promise<void> {
    for (let i = 0; i < this.members.length; i++) await this.kill(i);
    for (const m of this.members) rmSync(m.dataDir, { recursive: true, force: true });
  }
}
