import { randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { StartupError } from './errors.js';

/**
 * Who a run of the agent is (SPEC §8): the node's id, kept in
 * `<data-dir>/node-id` from its first start, and this process. Both travel in
 * the node's heartbeat values, so a start can tell its own previous run
 * (killed or crashed: same id, its process gone) from another node holding
 * the name (another id) or a copied data dir (same id, still alive).
 */
export interface Instance {
  /** The node id of `<data-dir>/node-id`. */
  id: string;
  /** Where the node runs, for messages: `--host-address` or the host name. */
  host: string;
  /** The machine (`/etc/machine-id`, else the host name) and its boot (`/proc/sys/kernel/random/boot_id`). */
  machine: string;
  boot: string;
  pid: number;
  /** The process's start time in clock ticks since boot (`/proc/<pid>/stat`): with `pid` and `boot` it names one process. */
  started: string;
}

const ID = /^[0-9a-f]{32}$/;

/** The node id of `dataDir`, made (32 hex digits, random) at the first start and kept. */
export function nodeId(dataDir: string): string {
  const file = join(dataDir, 'node-id');
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const id = readFileSync(file, 'utf8').trim();
      if (!ID.test(id)) throw new StartupError(`--data-dir '${dataDir}': ${file} does not hold a node id (32 hex digits); remove it to make a new one`);
      return id;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') {
        if (err instanceof StartupError) throw err;
        throw new StartupError(`--data-dir '${dataDir}': cannot read ${file} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
      }
    }
    try {
      // `wx`: of two starts racing on one data dir, one writes and both read its id.
      writeFileSync(file, `${randomBytes(16).toString('hex')}\n`, { flag: 'wx', mode: 0o644 });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') {
        throw new StartupError(`--data-dir '${dataDir}': cannot write ${file} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
      }
    }
  }
  throw new StartupError(`--data-dir '${dataDir}': ${file} vanished while it was read`);
}

function readTrimmed(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8').trim() || undefined;
  } catch {
    return undefined;
  }
}

/** The start time, field 22 of `/proc/<pid>/stat` (after the command, which may hold spaces and parentheses); undefined when there is no such process or it has ended. */
export function processStart(pid: number): string | undefined {
  const stat = readTrimmed(`/proc/${pid}/stat`);
  if (!stat) return undefined;
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // fields[0] is field 3 (state): a zombie (killed, not yet reaped) has ended. starttime is field 22.
  if (fields[0] === 'Z' || fields[0] === 'X') return undefined;
  return fields[19];
}

/** This process as an instance of node `id`. */
export function thisInstance(id: string, hostAddress?: string): Instance {
  return {
    id,
    host: hostAddress ?? hostname(),
    machine: readTrimmed('/etc/machine-id') ?? hostname(),
    boot: readTrimmed('/proc/sys/kernel/random/boot_id') ?? '',
    pid: process.pid,
    started: processStart(process.pid) ?? '',
  };
}

/** A heartbeat's value: the instance as JSON. */
export function heartbeatValue(i: Instance): string {
  return JSON.stringify(i);
}

/** The instance in a heartbeat's value; undefined for one without (the reference's `lease-established`, an older kith). */
export function parseInstance(value: string): Instance | undefined {
  try {
    const v = JSON.parse(value) as Partial<Instance>;
    if (typeof v.id !== 'string' || typeof v.machine !== 'string' || typeof v.boot !== 'string' || typeof v.pid !== 'number' || typeof v.started !== 'string') return undefined;
    return { id: v.id, host: typeof v.host === 'string' ? v.host : '?', machine: v.machine, boot: v.boot, pid: v.pid, started: v.started };
  } catch {
    return undefined;
  }
}

/** What a start does about a name whose alive heartbeat is held. */
export type HolderVerdict =
  | { kind: 'take-over' }
  | { kind: 'refuse'; reason: 'other-node' | 'copied-data-dir'; message: string };

/**
 * Pure: whether `me` may take over a name held by `holder` (the instance in
 * the holder's alive heartbeat, undefined when it carries none). Only its own
 * previous run, whose process is gone, is taken over; `running(pid, started)`
 * tells whether that process still exists on this machine.
 */
export function judgeHolder(name: string, holder: Instance | undefined, me: Instance, running: (pid: number, started: string) => boolean): HolderVerdict {
  const at = holder ? ` at ${holder.host}` : '';
  if (!holder || holder.id !== me.id) {
    return {
      kind: 'refuse',
      reason: 'other-node',
      message: `--name '${name}': another node with this name is still alive${at} (its heartbeat expires within --alive-ttl); pick another name`,
    };
  }
  const copied = (detail: string): HolderVerdict => ({
    kind: 'refuse',
    reason: 'copied-data-dir',
    message: `--name '${name}': a live agent${at} (${detail}) has this node's id: its data dir was copied to this one; give this agent its own --data-dir (or remove its node-id)`,
  });
  if (holder.machine !== me.machine) return copied('another machine');
  if (holder.boot === me.boot && holder.pid !== me.pid && running(holder.pid, holder.started)) return copied(`pid ${holder.pid} on this host`);
  return { kind: 'take-over' };
}

/** Whether the process `pid` that started at `started` (clock ticks since boot) still exists. */
export function processRunning(pid: number, started: string): boolean {
  const now = processStart(pid);
  return now !== undefined && now === started;
}
