import type { Container } from '../../api/schemas.js';
import { holderName, type CreatePod, type ImagePull, type LeftPod, type PodExit } from './runtime.js';

/**
 * podman command lines as data (REFERENCE §7.4, with `--pull` from
 * `--image-pull`, `--tty` and labels that mark every object as this node's).
 */

export const NODE_LABEL = 'kith.node';
export const POD_LABEL = 'kith.pod';

const labels = (node: string, pod?: string): string[] => [
  '--label', `${NODE_LABEL}=${node}`,
  ...(pod ? ['--label', `${POD_LABEL}=${pod}`] : []),
];

export function podCreateArgs(node: string, network: string, p: CreatePod): string[] {
  return [
    'pod', 'create',
    `--name=${p.runtimeName}`,
    `--infra-name=${p.runtimeName}-infra`,
    `--network=${network}`,
    `--dns=${p.dns}`,
    ...labels(node, p.pod),
  ];
}

export function containerRunArgs(node: string, p: CreatePod, c: Container, pull: ImagePull = 'never'): string[] {
  const args = [
    'container', 'run', '--detach', '--tty', `--pull=${pull}`,
    `--pod=${p.runtimeName}`,
    `--name=${p.runtimeName}-${c.name}`,
    ...labels(node, p.pod),
  ];
  if (c.entrypoint !== undefined) args.push(`--entrypoint=${c.entrypoint}`);
  for (const [k, v] of Object.entries(c.env ?? {})) args.push('--env', `${k}=${v}`);
  // What kith gives every container of the pod (its API token, SPEC §9) comes after the spec's own, and wins.
  for (const [k, v] of Object.entries(p.extra?.env ?? {})) args.push('--env', `${k}=${v}`);
  for (const f of p.extra?.files ?? []) args.push(`--volume=${f.source}:${f.target}:ro`);
  const req = c.resources?.requests;
  const lim = c.resources?.limits;
  if (req?.memory !== undefined) args.push(`--memory-reservation=${req.memory}m`);
  if (lim?.cpu !== undefined) args.push(`--cpus=${lim.cpu}`);
  if (lim?.memory !== undefined) args.push(`--memory=${lim.memory}m`);
  args.push(c.image, ...(c.cmd ?? []));
  return args;
}

export function holderCreateArgs(node: string, network: string, name: string): string[] {
  return ['pod', 'create', `--name=${name}`, `--infra-name=${name}-infra`, `--network=${network}`, ...labels(node)];
}

/** `podman ps` filtered to this node's containers (every pod's, the infra ones included). */
export const psArgs = (node: string): string[] => ['ps', '--all', '--format=json', `--filter=label=${NODE_LABEL}=${node}`];
export const podListArgs = (node: string): string[] => ['pod', 'ps', '--format=json', `--filter=label=${NODE_LABEL}=${node}`];
export const podRemoveArgs = (names: string[]): string[] => ['pod', 'rm', '--force', '--time=0', ...names];

export interface PsContainer {
  IsInfra?: boolean;
  Exited?: boolean;
  ExitCode?: number;
  State?: string;
  Labels?: Record<string, string> | null;
}

/** One entry of `podman pod ps --format=json`, as far as it is read. */
export interface PsPod {
  Name?: string;
  Labels?: Record<string, string>;
}

/** One entry of `podman container inspect`, as far as it is read. */
export interface InspectedContainer {
  Name?: string;
  State?: { Running?: boolean };
  NetworkSettings?: { Networks?: Record<string, { IPAddress?: string }> };
}

/**
 * The node's pods as podman lists them, with their infra containers'
 * state and address on `network` (pure: both listings in). The holder is
 * not a pod; a pod whose infra container is missing from the inspection
 * is not running.
 */
export function leftPods(node: string, network: string, pods: PsPod[], infra: InspectedContainer[]): LeftPod[] {
  const byName = new Map(infra.map((c) => [(c.Name ?? '').replace(/^\//, ''), c]));
  return pods.flatMap((p) => {
    const runtimeName = p.Name ?? '';
    if (!runtimeName || runtimeName === holderName(node)) return [];
    const pod = p.Labels?.[POD_LABEL] ?? (runtimeName.startsWith(`${node}-`) ? runtimeName.slice(node.length + 1) : runtimeName);
    const c = byName.get(`${runtimeName}-infra`);
    const running = c?.State?.Running === true;
    const ip = running ? c?.NetworkSettings?.Networks?.[network]?.IPAddress || undefined : undefined;
    return [{ runtimeName, pod, running, ...(ip ? { ip } : {}) }];
  });
}

/** Per kith pod: undefined while any container runs, else how they ended. */
export function podExits(ps: PsContainer[]): Map<string, { running: number; exited: number; failed: number }> {
  const out = new Map<string, { running: number; exited: number; failed: number }>();
  for (const c of ps) {
    const pod = c.Labels?.[POD_LABEL];
    if (c.IsInfra || !pod) continue;
    const s = out.get(pod) ?? { running: 0, exited: 0, failed: 0 };
    if (c.Exited || c.State === 'exited' || c.State === 'stopped') {
      s.exited++;
      if ((c.ExitCode ?? 0) !== 0) s.failed++;
    } else {
      s.running++;
    }
    out.set(pod, s);
  }
  return out;
}

/**
 * The pod bridge's MAC, fixed and derived from the node's subnet (locally
 * administered, `02:6b:<a>:<b>:<c>:01` for `a.b.c.0/24`). Linux otherwise
 * gives a bridge the lowest MAC among its ports, which changes as pods come
 * and go, and pods keep a stale ARP entry for their gateway (DNS and the API)
 * until it ages out.
 */
export function bridgeMac(subnet: string): string {
  const [a, b, c] = subnet.split('/')[0]!.split('.').map((o) => Number(o).toString(16).padStart(2, '0'));
  return `02:6b:${a}:${b}:${c}:01`;
}

/** A pod being waited for: how many containers it started, and whether a listing has shown them yet. */
export interface PodWait {
  pod: string;
  /** The podman pod's name, which `podman pod exists` is asked about. */
  runtimeName: string;
  containers: number;
  seen: boolean;
  /** Listings in a row that did not show the pod. */
  missed?: number;
}

/** Listings in a row that must miss a pod whose podman pod still exists before its containers count as gone. */
export const MISSES_BEFORE_GONE = 5;

/**
 * How the waited-for pods stand after one `podman ps`: `ended`, the pods
 * whose containers have all exited, with their exit; `missing`, the pods the
 * listing did not show. A missing pod is never judged from the listing alone
 * (under load `podman ps` can be slow and partial, and a listing may predate
 * a pod's containers): the runtime asks podman whether it still exists, and
 * judgeMissing decides.
 */
export function judgeWaits(waits: PodWait[], exits: ReturnType<typeof podExits>): { ended: Map<PodWait, PodExit>; missing: PodWait[] } {
  const ended = new Map<PodWait, PodExit>();
  const missing: PodWait[] = [];
  for (const w of waits) {
    const s = exits.get(w.pod);
    if (!s) {
      w.missed = (w.missed ?? 0) + 1;
      missing.push(w);
      continue;
    }
    w.missed = 0;
    if (s.exited + s.running >= w.containers) w.seen = true;
    if (s.running === 0 && s.exited >= w.containers) ended.set(w, s.failed > 0 ? 'exitFailure' : 'exitSuccess');
  }
  return { ended, missing };
}

/**
 * A pod the listing missed, once podman has said whether its pod exists
 * (`undefined`: podman could not say). Ended only on evidence: its podman
 * pod is gone (removed under us), or the pod exists but its containers have
 * been missing from MISSES_BEFORE_GONE listings in a row. Otherwise it is
 * waited for as before.
 */
export function judgeMissing(w: PodWait, exists: boolean | undefined): PodExit | undefined {
  if (exists === false) return 'exitFailure';
  if (exists === true && (w.missed ?? 0) >= MISSES_BEFORE_GONE) return 'exitFailure';
  return undefined;
}
