import { readFile } from 'node:fs/promises';
import { execa } from 'execa';
import type { Logger } from 'pino';
import { chainSetUp, chainTearDown, checkChain, JUMPS, jumpFirst, podRules, ruleArgs, rulesForIp, type PodFirewall, type Table } from './rules.js';

/**
 * The iptables runner: the only place that runs iptables. It applies the rule
 * lists of `rules.ts` one command at a time (serialised), checks every exit
 * code, and turns a failure into an `IptablesError` naming the command and
 * iptables' own message, so the worker can make it a pod error.
 */

export interface IptablesOptions {
  /** The node's chain in nat and filter (`--iptables-chain`). */
  chain: string;
  /** Prefix of every command, e.g. `['nsenter', '--net=/run/netns/h1']` to run inside a test host. */
  prefix?: readonly string[];
  /** The iptables binary (default `iptables`). */
  command?: string;
  /** Bound on one call (default 10 s). */
  timeoutMs?: number;
  log?: Logger;
}

export class IptablesError extends Error {
  constructor(
    /** The full command line, prefix included. */
    readonly command: string[],
    readonly exitCode: number | undefined,
    /** iptables' message, without harmless warnings. */
    readonly stderr: string,
  ) {
    super(`'${command.join(' ')}' failed (exit ${exitCode ?? 'none'}): ${stderr || 'no message'}`);
    this.name = 'IptablesError';
  }
}

/** iptables-nft notes on stderr that say nothing about the command's outcome. */
const HARMLESS = /^# Warning: iptables-legacy tables present|^#?\s*Warning:.*legacy tables present/i;

function cleanStderr(s: string): string {
  return s
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l && !HARMLESS.test(l) && !/^Try `iptables -h'/.test(l))
    .join('; ');
}

/** A delete that failed only because the rule or chain was already gone. */
export function isAbsent(err: unknown): boolean {
  return (
    err instanceof IptablesError &&
    /Bad rule \(does a matching rule exist|No chain\/target\/match by that name|does not exist/i.test(err.stderr)
  );
}

export class Iptables {
  readonly chain: string;
  private readonly prefix: readonly string[];
  private readonly command: string;
  private readonly timeoutMs: number;
  private readonly log: Logger | undefined;
  /** Operations run one after another: rule order matters, and a listing must not go stale before it is acted on. */
  private queue: Promise<unknown> = Promise.resolve();

  constructor(opts: IptablesOptions) {
    checkChain(opts.chain);
    this.chain = opts.chain;
    this.prefix = opts.prefix ?? [];
    this.command = opts.command ?? 'iptables';
    this.timeoutMs = opts.timeoutMs ?? 10_000;
    this.log = opts.log;
  }

  private exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.queue.then(fn);
    this.queue = run.catch(() => undefined);
    return run;
  }

  /** Runs `iptables <args>`; resolves with stdout, rejects with an IptablesError on any non-zero exit. */
  exec(args: readonly string[]): Promise<string> {
    return this.exclusive(() => this.execNow(args));
  }

  private async execNow(args: readonly string[]): Promise<string> {
    const cmd = [...this.prefix, this.command, ...args];
    const r = await execa(cmd[0]!, cmd.slice(1), { stdin: 'ignore', reject: false, timeout: this.timeoutMs });
    const stderr = cleanStderr(String(r.stderr ?? ''));
    if (r.failed || r.exitCode !== 0) {
      const msg = r.timedOut ? `timed out after ${this.timeoutMs} ms` : r.exitCode === undefined ? String(r.shortMessage) : stderr;
      throw new IptablesError(cmd, r.exitCode, msg);
    }
    this.log?.debug({ cmd: cmd.join(' ') }, 'iptables');
    return String(r.stdout ?? '');
  }

  /** Creates the node's chains and the jumps to them. Run `removeStale()` first. */
  setUp(): Promise<void> {
    return this.exclusive(async () => {
      for (const args of chainSetUp(this.chain)) await this.execNow(args);
    });
  }

  /**
   * Puts the node's filter jumps back in first place in FORWARD and OUTPUT
   * when something (podman's network backend) inserted its own above them.
   * Returns the number of commands run. `applyPod` does this first.
   */
  keepFirst(): Promise<number> {
    return this.exclusive(() => this.keepFirstNow());
  }

  private async keepFirstNow(): Promise<number> {
    let n = 0;
    for (const builtin of JUMPS.filter) {
      const ops = jumpFirst(this.chain, builtin, await this.execNow(['-t', 'filter', '-S', builtin]));
      if (ops.length) this.log?.info({ chain: this.chain, builtin }, 'put the pod firewall jump back in first place');
      for (const args of ops) await this.execNow(args);
      n += ops.length;
    }
    return n;
  }

  /**
   * Removes the node's chains and every jump to them, whatever is left of them
   * (an unclean stop, a half-done set-up, duplicated jumps). Idempotent; returns
   * the number of commands it ran (0 when nothing was there).
   */
  removeStale(): Promise<number> {
    return this.exclusive(async () => {
      let n = 0;
      for (const table of ['nat', 'filter'] as Table[]) {
        const listing = await this.execNow(['-t', table, '-S']);
        for (const args of chainTearDown(this.chain, table, listing)) {
          try {
            await this.execNow(args);
            n++;
          } catch (err) {
            if (!isAbsent(err)) throw err;
          }
        }
      }
      return n;
    });
  }

  /** Removes the node's chains at stop: the same as `removeStale()`. */
  tearDown(): Promise<number> {
    return this.removeStale();
  }

  /**
   * Appends a pod's rules, after making sure the node's jumps come first and
   * deleting rules an earlier pod with the same IP left behind. On a failure,
   * removes what it had appended and throws the failure: a pod is either
   * fully firewalled or not at all.
   */
  async applyPod(pod: PodFirewall): Promise<void> {
    const rules = podRules(this.chain, pod);
    return this.exclusive(async () => {
      await this.keepFirstNow();
      for (const table of ['nat', 'filter'] as Table[]) {
        const stale = rulesForIp(this.chain, table, await this.execNow(['-t', table, '-S']), pod.ip);
        if (stale.length) this.log?.warn({ ip: pod.ip, table, rules: stale.length }, 'removing rules an earlier pod with this IP left');
        for (const args of stale) await this.execNow(args);
      }
      const done: typeof rules = [];
      try {
        for (const rule of rules) {
          await this.execNow(ruleArgs(rule, '-A'));
          done.push(rule);
        }
      } catch (err) {
        for (const rule of done) await this.execNow(ruleArgs(rule, '-D')).catch(() => undefined);
        throw err;
      }
    });
  }

  /**
   * Deletes a pod's rules, in the order they were appended. Rules already
   * gone are fine; any other failure is thrown after trying every rule.
   */
  async removePod(pod: PodFirewall): Promise<void> {
    const rules = podRules(this.chain, pod);
    return this.exclusive(async () => {
      let first: unknown;
      for (const rule of rules) {
        try {
          await this.execNow(ruleArgs(rule, '-D'));
        } catch (err) {
          if (!isAbsent(err)) first ??= err;
        }
      }
      if (first) throw first;
    });
  }

  /** The node chain's rules in one table as `iptables -S` lines, or [] when the chain does not exist. */
  async list(table: Table): Promise<string[]> {
    const listing = await this.exec(['-t', table, '-S']);
    return listing
      .split('\n')
      .map((l) => l.trim())
      .filter((l) => l === `-N ${this.chain}` || l.startsWith(`-A ${this.chain} `) || l.endsWith(` -j ${this.chain}`));
  }
}

/**
 * Whether bridged pod-to-pod traffic passes through iptables (br_netfilter with
 * bridge-nf-call-iptables = 1). Returns undefined when it does, else the reason
 * it does not and what to do. Reads /proc under `prefix` when given (the value
 * is per network namespace).
 */
export async function bridgeNetfilterProblem(prefix: readonly string[] = []): Promise<string | undefined> {
  const path = '/proc/sys/net/bridge/bridge-nf-call-iptables';
  let value: string | undefined;
  if (prefix.length === 0) {
    value = await readFile(path, 'utf8').catch(() => undefined);
  } else {
    const r = await execa(prefix[0]!, [...prefix.slice(1), 'cat', path], { stdin: 'ignore', reject: false, timeout: 10_000 });
    value = r.exitCode === 0 ? String(r.stdout) : undefined;
  }
  if (value === undefined) {
    return `${path} is missing: br_netfilter is not loaded, so traffic between pods on one bridge bypasses iptables (port mapping and the pod firewall would not hold); load it with 'modprobe br_netfilter'`;
  }
  if (value.trim() !== '1') {
    return `${path} is ${value.trim()}: traffic between pods on one bridge bypasses iptables (port mapping and the pod firewall would not hold); set 'sysctl -w net.bridge.bridge-nf-call-iptables=1'`;
  }
  return undefined;
}
