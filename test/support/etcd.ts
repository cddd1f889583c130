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
