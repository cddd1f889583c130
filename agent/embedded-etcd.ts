import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { createConnection } from 'node:net';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Etcd3 } from 'etcd3';
import type { Logger } from 'pino';

export const EMBEDDED_CLIENT_URL = 'http://127.0.0.1:2379';
const PEER_URL = 'http://127.0.0.1:2380';

export class StartupError extends Error {}

function portBusy(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = createConnection({ host: '127.0.0.1', port });
    s.once('connect', () => (s.destroy(), resolve(true)));
    s.once('error', () => resolve(false));
  });
}

/** The single-member etcd the agent owns when no `--etcd-endpoints` is given. */
export class EmbeddedEtcd {
  private proc: ChildProcess | undefined;

  constructor(
    private readonly dataDir: string,
    private readonly log: Logger,
  ) {}

  async start(): Promise<string> {
    for (const port of [2379, 2380]) {
      if (await portBusy(port)) {
        throw new StartupError(`embedded etcd: port 127.0.0.1:${port} is in use; stop what holds it or pass --etcd-endpoints`);
      }
    }
    const dir = join(this.dataDir, 'etcd');
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    const proc = spawn(
      'etcd',
      [
        '--name', 'kith',
        '--data-dir', dir,
        '--listen-client-urls', EMBEDDED_CLIENT_URL,
        '--advertise-client-urls', EMBEDDED_CLIENT_URL,
        '--listen-peer-urls', PEER_URL,
        '--initial-advertise-peer-urls', PEER_URL,
        '--initial-cluster', `kith=${PEER_URL}`,
        '--log-level', 'warn',
      ],
      { stdio: ['ignore', 'ignore', 'pipe'] },
    );
    this.proc = proc;
    let stderr = '';
    proc.stderr!.on('data', (d) => (stderr = (stderr + d).slice(-4000)));
    const spawned = await new Promise<Error | undefined>((resolve) => {
      proc.once('spawn', () => resolve(undefined));
      proc.once('error', (err) => resolve(err));
    });
    if (spawned) {
      throw new StartupError(
        (spawned as NodeJS.ErrnoException).code === 'ENOENT'
          ? 'embedded etcd: the etcd binary is not on PATH; install etcd-server (npm run setup) or pass --etcd-endpoints'
          : `embedded etcd: ${spawned.message}`,
      );
    }
    const client = new Etcd3({ hosts: EMBEDDED_CLIENT_URL, dialTimeout: 500 });
    try {
      for (let i = 0; i < 300; i++) {
        if (proc.exitCode !== null) {
          const last = stderr.trim().split('\n').pop() ?? '';
          throw new StartupError(`embedded etcd exited with code ${proc.exitCode}: ${last.slice(0, 300)}`);
        }
        try {
          await client.get('kith-health').exec();
          this.log.info({ dataDir: dir, endpoint: EMBEDDED_CLIENT_URL }, 'embedded etcd ready');
          return EMBEDDED_CLIENT_URL;
        } catch {
          await sleep(100);
        }
      }
      throw new StartupError('embedded etcd did not become healthy within 30 s');
    } catch (err) {
      await this.stop();
      throw err;
    } finally {
      client.close();
    }
  }

  async stop(): Promise<void> {
    const p = this.proc;
    if (!p || p.exitCode !== null || p.signalCode !== null) return;
    const exited = new Promise((r) => p.once('exit', r));
    p.kill('SIGTERM');
    const t = setTimeout(() => p.kill('SIGKILL'), 10_000);
    await exited;
    clearTimeout(t);
  }
}
