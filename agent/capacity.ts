import { availableParallelism, totalmem } from 'node:os';
import { podResources, type PodSpec } from '../api/schemas.js';

/**
 * CPU and memory as the scheduler and the worker account them. CPU is kept in
 * thousandths (integers, so sums never drift); memory in MiB.
 */
export interface Amount {
  /** Thousandths of a CPU. */
  cpu: number;
  /** MiB. */
  memory: number;
}

/**
 * What a pod is counted as when it gives no request: the reference's minimum
 * (0.001 CPU, 128 MiB). A pod that gives only a limit is counted at its limit,
 * as Kubernetes does.
 */
export const DEFAULT_REQUEST: Amount = { cpu: 1, memory: 128 };

export const toMilli = (cpu: number | string): number => Math.round(Number(cpu) * 1000);
export const formatCpu = (milli: number): string => String(milli / 1000);

/** The amount a pod commits on its worker: its aggregate request, else its limit, else the default. */
export function podRequest(spec: PodSpec): Amount {
  const { requests, limits } = podResources(spec);
  return {
    cpu: toMilli(requests.cpu ?? limits.cpu ?? DEFAULT_REQUEST.cpu / 1000),
    memory: requests.memory ?? limits.memory ?? DEFAULT_REQUEST.memory,
  };
}

export const fits = (free: Amount, req: Amount): boolean => req.cpu <= free.cpu && req.memory <= free.memory;
export const minus = (a: Amount, b: Amount): Amount => ({ cpu: a.cpu - b.cpu, memory: a.memory - b.memory });
export const plus = (a: Amount, b: Amount): Amount => ({ cpu: a.cpu + b.cpu, memory: a.memory + b.memory });
export const ZERO: Amount = { cpu: 0, memory: 0 };

export const describeAmount = (a: Amount): string => `${formatCpu(a.cpu)} CPU and ${a.memory} MiB`;

/** Parses the published values of `node.worker/limits/{cpu,memory}/<worker>`. */
export function parseLimit(kind: 'cpu' | 'memory', value: string): number | undefined {
  if (!/^\d+(\.\d+)?$/.test(value.trim())) return undefined;
  return kind === 'cpu' ? toMilli(value) : Math.floor(Number(value));
}

/** The largest CPU count a worker offers (the pod CPU schema's bound). */
export const MAX_CPUS = 1024;

/**
 * What a worker offers pods by default (SPEC §8): every CPU this process may
 * run on, and the host's memory less a reserve for the host itself and kith
 * (10%, at least 512 MiB), never less than one default pod's 128 MiB.
 */
export function hostCapacity(host: { cpus: number; memoryBytes: number } = { cpus: availableParallelism(), memoryBytes: totalmem() }): { cpus: number; memory: number } {
  const total = Math.floor(host.memoryBytes / (1024 * 1024));
  const reserve = Math.max(Math.ceil(total / 10), 512);
  return { cpus: Math.min(Math.max(host.cpus, 1), MAX_CPUS), memory: Math.max(total - reserve, DEFAULT_REQUEST.memory) };
}
