import { spawn, type ChildProcess } from 'node:child_process';
import { MAIN, ROOT } from './agent.js';

/** What a `kith` client command printed, and how it exited. */
export interface CliRun {
  code: number | null;
  stdout: string;
  stderr: string;
}

/**
 * Runs the real `kith` entry point as a user would, against `api` with
 * `token`; `onOut` sees stdout as it comes. Killed after `timeoutMs`. The
 * caller keeps `children` to kill whatever is still running at its end.
 */
export function runKith(
  args: string[],
  opts: { api: string; token?: string; onOut?: (all: string) => void; timeoutMs?: number; children?: Set<ChildProcess> },
): { p: ChildProcess; run: CliRun; done: Promise<CliRun> } {
  const p = spawn(process.execPath, ['--import', 'tsx', MAIN, ...args], {
    cwd: ROOT,
    env: { PATH: process.env.PATH, HOME: '/nonexistent', KITH_API: opts.api, ...(opts.token ? { KITH_TOKEN: opts.token } : {}) },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  opts.children?.add(p);
  const run: CliRun = { code: null, stdout: '', stderr: '' };
  p.stdout!.on('data', (d) => {
    run.stdout += d;
    opts.onOut?.(run.stdout);
  });
  p.stderr!.on('data', (d) => (run.stderr += d));
  const t = setTimeout(() => p.kill('SIGKILL'), opts.timeoutMs ?? 30_000);
  const done = new Promise<CliRun>((resolve, reject) => {
    p.on('error', reject);
    p.on('close', (code) => {
      clearTimeout(t);
      opts.children?.delete(p);
      run.code = code;
      resolve(run);
    });
  });
  return { p, run, done };
}
