import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { ROOT, TestAgent } from '../support/agent.js';

/**
 * A `kith agent` for benchmarks: the built one (`dist/agent/main.js`, what
 * `npm start` runs) when the build is at least as new as the sources of the
 * agent and dns folders (`npm run bench` builds first), else TestAgent's run
 * from source through tsx.
 */
export interface BenchAgent {
  readonly pid: number;
  readonly lines: string[];
  readonly fromBuild: boolean;
  waitFor(msg: string, timeoutMs: number): Promise<void>;
  stop(): Promise<void>;
}

function buildIsFresh(): boolean {
  for (const dir of ['agent', 'dns']) {
    const src = join(ROOT, dir);
    for (const f of readdirSync(src)) {
      if (!f.endsWith('.ts')) continue;
      const built = join(ROOT, 'dist', dir, f.replace(/\.ts$/, '.js'));
      if (!existsSync(built) || statSync(built).mtimeMs < statSync(join(src, f)).mtimeMs) return false;
    }
  }
  return true;
}

export function startBenchAgent(args: string[]): BenchAgent {
  if (!buildIsFresh()) {
    const a = TestAgent.start({ args });
    return {
      pid: a.proc.pid!,
      lines: a.lines,
      fromBuild: false,
      waitFor: (msg, t) => a.waitFor(msg, t),
      stop: async () => {
        await a.stop();
      },
    };
  }
  const dataDir = mkdtempSync(join(tmpdir(), 'kith-bench-agent-'));
  // As TestAgent: the benchmarks measure the open API unless they say --api-auth.
  const auth = args.includes('--api-auth') ? [] : ['--api-auth', 'none'];
  const proc: ChildProcess = spawn(process.execPath, [join(ROOT, 'dist', 'agent', 'main.js'), 'agent', ...args, ...auth, '--data-dir', dataDir], {
    cwd: ROOT,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const lines: string[] = [];
  let buf = '';
  let stderr = '';
  proc.stdout!.on('data', (d: Buffer) => {
    buf += d.toString();
    let i: number;
    while ((i = buf.indexOf('\n')) >= 0) {
      lines.push(buf.slice(0, i));
      buf = buf.slice(i + 1);
    }
  });
  proc.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  const exited = new Promise<void>((r) => proc.once('exit', () => r()));
  return {
    pid: proc.pid!,
    lines,
    fromBuild: true,
    async waitFor(msg, timeoutMs) {
      const t0 = Date.now();
      while (Date.now() - t0 < timeoutMs) {
        if (lines.some((l) => l.includes(`"msg":"${msg}"`))) return;
        if (proc.exitCode !== null) throw new Error(`agent exited (${proc.exitCode}): ${stderr}`);
        await sleep(20);
      }
      throw new Error(`agent: '${msg}' not logged within ${timeoutMs} ms; stderr: ${stderr}`);
    },
    async stop() {
      if (proc.exitCode === null && proc.signalCode === null) {
        proc.kill('SIGTERM');
        await Promise.race([exited, sleep(20_000).then(() => proc.kill('SIGKILL'))]);
        await exited;
      }
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}
