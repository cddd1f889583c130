import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { makeDirs } from './fs.js';
import { createConnection } from 'node:net';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Etcd3 } from 'etcd3';
import type { Logger } from 'pino';
import { StartupError } from './errors.js';

export const EMBEDDED_CLIENT_URL = 'http://127.0.0.1:2379';
const PEER_URL = 'http://127.0.0.1:2380';
/** A run healthy this long resets the count of restarts in a row. */
const RESTART_WINDOW_MS = 10 * 60_000;

function portBusy(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = createConnection({ host: '127.0.0.1', port });
    s.once('connect', () => (s.destroy(), resolve(true)));
    s.once('error', () => resolve(false));
  });
}

const alive = (pid: number): boolean => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

/** The single-member etcd the agent owns when no `--etcd-endpoints` is given. */
export class EmbeddedEtcd {
  private proc: ChildProcess | undefined;
  private stopping = false;
  private restarts = 0;
  /** When the running etcd became healthy; undefined while none is. */
  private healthySince: number | undefined;

  constructor(
    private readonly dataDir: string,
    private readonly log: Logger,
  ) {}

  private get pidFile(): string {
    return join(this.dataDir, 'etcd.pid');
  }

  /** An etcd this data dir's agent left running when it was killed: stop it, it is ours. */
  private async stopLeftover(): Promise<void> {
    let pid: number;
    try {
      pid = Number(readFileSync(this.pidFile, 'utf8').trim());
    } catch {
      return;
    }
    let cmdline = '';
    try {
      cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
    } catch {
      /* gone */
    }
    if (pid > 1 && cmdline.includes('etcd') && cmdline.includes(join(this.dataDir, 'etcd'))) {
      this.log.warn({ pid }, 'stopping the embedded etcd a killed agent left running');
      process.kill(pid, 'SIGTERM');
      for (let i = 0; i < 100 && alive(pid); i++) await sleep(100);
      if (alive(pid)) process.kill(pid, 'SIGKILL');
      for (let i = 0; i < 50 && alive(pid); i++) await sleep(100);
    }
    rmSync(this.pidFile, { force: true });
  }

  async start(): Promise<string> {
    await this.stopLeftover();
    for (const port of [2379, 2380]) {
      if (await portBusy(port)) {
        throw new StartupError(`embedded etcd: port 127.0.0.1:${port} is in use; stop what holds it or pass --etcd-endpoints`);
      }
    }
    const url = await this.launch();
    this.log.info({ dataDir: join(this.dataDir, 'etcd'), endpoint: url }, 'embedded etcd ready');
    return url;
  }

  private async launch(): Promise<string> {
    const dir = join(this.dataDir, 'etcd');
    makeDirs(dir, 0o700);
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
      // A process group of its own: Ctrl-C in the agent's terminal reaches the whole foreground
      // group, and etcd must outlive the agent's drain (which writes to it), then be stopped by it.
      { stdio: ['ignore', 'ignore', 'pipe'], detached: true },
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
    // Written at once, so that an agent killed even while etcd starts leaves a trace of it.
    writeFileSync(this.pidFile, `${proc.pid}\n`);
    // Each check has a deadline: something else on the port may accept and never answer.
    const client = new Etcd3({ hosts: EMBEDDED_CLIENT_URL, dialTimeout: 500, defaultCallOptions: (call) => (call.isStream ? {} : { deadline: Date.now() + 1000 }) });
    try {
      for (let i = 0; i < 300; i++) {
        if (proc.exitCode !== null) {
          const last = stderr.trim().split('\n').pop() ?? '';
          throw new StartupError(`embedded etcd exited with code ${proc.exitCode}: ${last.slice(0, 300)}`);
        }
        try {
          await client.get('kith-health').exec();
          proc.once('exit', (code, signal) => this.exitedUnexpectedly(code, signal));
          this.healthySince = Date.now();
          return EMBEDDED_CLIENT_URL;
        } catch {
          await sleep(100);
        }
      }
      throw new StartupError('embedded etcd did not become healthy within 30 s');
    } catch (err) {
      // Only this attempt ends here: a restart that fails is tried again (see exitedUnexpectedly).
      await this.terminate();
      throw err;
    } finally {
      client.close();
    }
  }

  /**
   * etcd died under the agent, or a restart failed: start it again (its
   * clients reconnect), at most 5 times in a row with a growing delay. A run
   * that stayed healthy for 10 minutes starts the count afresh.
   */
  private exitedUnexpectedly(code: number | null, signal: NodeJS.Signals | null): void {
    if (this.stopping) return;
    if (this.healthySince !== undefined && Date.now() - this.healthySince > RESTART_WINDOW_MS) this.restarts = 0;
    this.healthySince = undefined;
    this.restarts++;
    this.log.error({ code, signal, restarts: this.restarts }, 'embedded etcd exited; starting it again');
    if (this.restarts > 5) {
      this.log.fatal('embedded etcd keeps exiting; giving up: the agent runs without etcd until it is restarted');
      return;
    }
    setTimeout(() => {
      if (this.stopping) return;
      this.launch().then(
        () => this.log.info({ restarts: this.restarts }, 'embedded etcd ready again'),
        (err: Error) => {
          this.log.error({ err: err.message }, 'embedded etcd restart failed');
          this.exitedUnexpectedly(null, null);
        },
      );
    }, 1000 * this.restarts).unref();
  }

  async stop(): Promise<void> {
    this.stopping = true;
    await this.terminate();
  }

  /** Ends the current etcd process, if any (SIGTERM, SIGKILL after 10 s), and removes its pid file. */
  private async terminate(): Promise<void> {
    const p = this.proc;
    if (!p || p.exitCode !== null || p.signalCode !== null) return;
    const exited = new Promise((r) => p.once('exit', r));
    p.kill('SIGTERM');
    const t = setTimeout(() => p.kill('SIGKILL'), 10_000);
    await exited;
    clearTimeout(t);
    rmSync(this.pidFile, { force: true });
  }
}
