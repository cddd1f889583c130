import type { Container } from '../../api/schemas.js';

/**
 * What a worker needs from a container runtime. `PodmanRuntime` runs real
 * podman pods; `SimulatedRuntime` starts nothing and exists for benchmarks
 * of the scheduling path.
 */

/** How a pod's containers ended. */
/** When the worker pulls a container's image (podman's `--pull`): `missing` as Kubernetes' IfNotPresent. */
export const IMAGE_PULL_POLICIES = ['never', 'missing', 'newer', 'always'] as const;
export type ImagePull = (typeof IMAGE_PULL_POLICIES)[number];

export type PodExit = 'exitSuccess' | 'exitFailure';

export interface CreatePod {
  /** The runtime's name of the pod (`<node>-<pod>`). */
  runtimeName: string;
  /** The kith pod name. */
  pod: string;
  /** The DNS server the pod's containers use (the cluster address). */
  dns: string;
  /** Given to each container besides its own spec: read-only files (host path → container path) and variables. */
  extra?: { files: { source: string; target: string }[]; env: Record<string, string> };
}

/** A pod of this node found in the runtime at start. */
export interface LeftPod {
  runtimeName: string;
  /** The kith pod name (the runtime name without `<node>-`). */
  pod: string;
  /** Its address on the pod network, when its infra part runs. */
  ip?: string;
  /** Whether its infra part (and so its network namespace) still runs. */
  running: boolean;
}

/** A subnet of another network of the runtime on this host. */
export interface LocalSubnet {
  network: string;
  subnet: string;
}

export interface PodRuntime {
  /** 'podman' or 'simulated', for logs. */
  readonly kind: string;
  /**
   * Ensures the pod network exists with `subnet` and that its gateway address
   * is bound on this host (so the agent can listen on it). Returns the gateway.
   */
  prepareNetwork(network: string, subnet: string): Promise<{ gateway: string }>;
  /**
   * The IPv4 subnets this host's runtime already gives to networks other than
   * `network`: a pod subnet that overlaps one of them cannot be created here.
   */
  subnetsInUse(network: string): Promise<LocalSubnet[]>;
  /**
   * The pods of this node the runtime still has (an earlier run's, left by
   * a crash or by `--keep-pods`): the worker adopts the ones etcd says it
   * still runs and removes the rest with `removePod`.
   */
  podsLeft(network: string): Promise<LeftPod[]>;
  /** Creates the pod on the network and starts its infra part; returns the pod's IP. */
  createPod(p: CreatePod): Promise<{ ip: string }>;
  /** Starts one container in the pod (detached). Throws with the runtime's message on failure. */
  runContainer(p: CreatePod, container: Container): Promise<void>;
  /**
   * Runs `cmd` in a running container of the pod (an exec probe); true when it
   * exits 0 within `timeoutMs`, false when it fails, times out or cannot run.
   */
  exec(p: CreatePod, container: string, cmd: readonly string[], timeoutMs: number): Promise<boolean>;
  /** Restarts one container of the pod in place (same pod, same address): stopped within 10 s if it runs, then started. */
  restartContainer(p: CreatePod, container: string): Promise<void>;
  /** Resolves when every container of the pod has ended, or with 'aborted' when `signal` fires first. */
  wait(p: CreatePod, containers: number, signal: AbortSignal): Promise<PodExit | 'aborted'>;
  /** Stops the pod's containers: SIGTERM, then SIGKILL after `seconds`; a pod already gone is not an error. */
  stopPod(runtimeName: string, seconds: number): Promise<void>;
  /** Removes the pod and its containers at once; a pod already gone is not an error. */
  removePod(runtimeName: string): Promise<void>;
  /**
   * A container's log (its stdout and stderr), the last `tail` lines or all,
   * going on while it runs with `follow`; `signal` ends it. Runtimes without
   * logs leave it out.
   */
  logs?(runtimeName: string, container: string, opts: { tail?: number; follow: boolean }, signal: AbortSignal): NodeJS.ReadableStream;
  /** Writes a container's whole log so far to `file`; false when the runtime has none for it. */
  saveLog?(runtimeName: string, container: string, file: string): Promise<boolean>;
  /** Stops the runtime's own background work and removes what `prepareNetwork` started. */
  close(): Promise<void>;
}

/** The runtime name of a pod of this node: recognisable as the node's, and removed with it. */
export const runtimeName = (node: string, pod: string): string => `${node}-${pod}`;
/** The holder pod that keeps the bridge (and so the gateway address) up; `--` never occurs in `<node>-<pod>`. */
export const holderName = (node: string): string => `${node}--holder`;
