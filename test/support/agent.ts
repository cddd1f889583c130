import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

export const ROOT = resolve(import.meta.dirname, '..', '..');
/** The agent's entry point, run from source so tests never see a stale build. */
export const MAIN = join(ROOT, 'agent', 'main.ts');

export interface AgentOptions {
  /** Flags after `kith agent`. `--data-dir` is added when missing. */
  args: string[];
  env?: NodeJS.ProcessEnv;
  /** Start the agent as the leader of its own process group (for `signalGroup`). */
  group?: boolean;
  /** Wrap the command, e.g. ['nsenter', '--net=/run/netns/h1'] to run it inside a test host. */
  wrap?: string[];
}

/** A `kith agent` child process, its JSON log lines collected. */
export class TestAgent {
  readonly lines: string[] = [];
  stderr = '';
  readonly exited: Promise<number | null>;
  private readonly waiters: { match: (l: Record<string, unknown>) => boolean; resolve: () => void }[] = [];

  private constructor(
    readonly proc: ChildProcess,
    readonly dataDir: string,
    private readonly ownDataDir: boolean,
  ) {
    let buf = '';
    proc.stdout!.on('data', (d: Buffer) => {
      buf += d.toString();
      let i: number;
      while ((i = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, i);
        buf = buf.slice(i + 1);
        this.lines.push(line);
        if (process.env.KITH_TEST_LOG) process.stderr.write(`[agent ${proc.pid}] ${line}\n`);
        let parsed: Record<string, unknown> | undefined;
        try {
          parsed = JSON.parse(line);
        } catch {
          continue;
        }
        for (const w of [...this.waiters]) {
          if (w.match(parsed!)) {
            this.waiters.splice(this.waiters.indexOf(w), 1);
            w.resolve();
          }
        }
      }
    });
    proc.stderr!.on('data', (d: Buffer) => (this.stderr += d.toString()));
    this.exited = new Promise((r) => proc.once('exit', (code) => r(code)));
  }

  static start(opts: AgentOptions): TestAgent {
    const args = [...opts.args];
    // Tests that are not about access control run the API open; those that are say --api-auth token.
    if (!args.includes('--api-auth')) args.push('--api-auth', 'none');
    let dataDir: string;
    const own = !args.includes('--data-dir');
    if (own) {
      dataDir = mkdtempSync(join(tmpdir(), 'kith-agent-'));
      args.push('--data-dir', dataDir);
    } else {
      dataDir = args[args.indexOf('--data-dir') + 1]!;
    }
    const cmd = [...(opts.wrap ?? []), process.execPath, '--import', 'tsx', MAIN, 'agent', ...args];
    const proc = spawn(cmd[0]!, cmd.slice(1), {
      cwd: ROOT,
      // Pods end at once unless a test is about their drain (SPEC §11), which then says so.
      env: { KITH_TERMINATION_GRACE: '0', KITH_STOP_TIMEOUT: '0', ...process.env, ...opts.env },
      stdio: ['ignore', 'pipe', 'pipe'],
      // A process group of its own, as a shell gives a foreground job: see `signalGroup`.
      detached: opts.group ?? false,
    });
    return new TestAgent(proc, dataDir, own);
  }

  /** Resolves when a log line matches (e.g. msg 'agent ready'); rejects on exit or timeout. */
  waitFor(match: string | ((l: Record<string, unknown>) => boolean), timeoutMs = 20_000): Promise<void> {
    const m = typeof match === 'string' ? (l: Record<string, unknown>) => l.msg === match : match;
    for (const line of this.lines) {
      try {
        if (m(JSON.parse(line))) return Promise.resolve();
      } catch {
        /* not JSON */
      }
    }
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`agent: no log line matched within ${timeoutMs} ms; stderr: ${this.stderr}`)), timeoutMs);
      this.waiters.push({ match: m, resolve: () => (clearTimeout(t), resolve()) });
      void this.exited.then((code) => {
        clearTimeout(t);
        reject(new Error(`agent exited (${code}) before the log line; stderr: ${this.stderr}`));
      });
    });
  }

  ready(timeoutMs?: number): Promise<void> {
    return this.waitFor('agent ready', timeoutMs);
  }

  get running(): boolean {
    return this.proc.exitCode === null && this.proc.signalCode === null;
  }

  /** Sends a signal to the agent's whole process group (started with `group`), as Ctrl-C in a terminal does. */
  signalGroup(signal: NodeJS.Signals): void {
    process.kill(-this.proc.pid!, signal);
  }

  /** Sends a signal and waits (bounded) for the exit code. */
  async stop(signal: NodeJS.Signals = 'SIGTERM', timeoutMs = 30_000): Promise<number | null> {
    if (this.running) {
      this.proc.kill(signal);
      const code = await Promise.race([this.exited, sleep(timeoutMs).then(() => 'timeout' as const)]);
      if (code === 'timeout') {
        this.proc.kill('SIGKILL');
        await this.exited;
        throw new Error(`agent did not exit within ${timeoutMs} ms of ${signal}`);
      }
    }
    const code = await this.exited;
    if (this.ownDataDir) rmSync(this.dataDir, { recursive: true, force: true });
    return code;
  }
}
