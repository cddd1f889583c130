import type { PortSpec } from '../../api/schemas.js';

/** The pure part of `kith run`: flags to the pod it creates (reference §9). */

export class UsageError extends Error {}

export interface RunFlags {
  name: string;
  image: string;
  cmd: string[];
  entrypoint?: string;
  env: string[];
  publish: string[];
  cpuRequest?: string;
  cpuLimit?: string;
  memoryRequest?: string;
  memoryLimit?: string;
  mayBeScheduledOn: string[];
  cannotBeScheduledOn: string[];
}

/** `PORT`, `CLUSTER:CONTAINER`, either with `/NAME`. */
export function parsePort(s: string): PortSpec {
  const m = /^(\d{1,5})(?::(\d{1,5}))?(?:\/([a-z0-9-]{1,15}))?$/.exec(s);
  const bad = () => new UsageError(`invalid port specification: \`${s}\``);
  if (!m) throw bad();
  const first = Number(m[1]);
  const second = m[2] === undefined ? undefined : Number(m[2]);
  for (const n of [first, second]) if (n !== undefined && (n < 1 || n > 65535)) throw bad();
  const name = m[3];
  if (second === undefined) return name ? { container: first, name } : first;
  return { container: second, cluster: first, ...(name ? { name } : {}) };
}

/** `KEY=VALUE`, split at the first `=`. */
export function parseEnv(s: string): [string, string] {
  const i = s.indexOf('=');
  if (i < 0) throw new UsageError(`invalid key=value: no \`=\` found in \`${s}\``);
  return [s.slice(0, i), s.slice(i + 1)];
}

function decimal(flag: string, v: string | undefined): string | undefined {
  if (v === undefined) return undefined;
  if (!/^\d+(\.\d+)?$/.test(v)) throw new UsageError(`--${flag} '${v}': must be a decimal number of CPUs, such as 0.5`);
  return v;
}

function mebibytes(flag: string, v: string | undefined): number | undefined {
  if (v === undefined) return undefined;
  if (!/^\d{1,9}$/.test(v)) throw new UsageError(`--${flag} '${v}': must be a whole number of MiB`);
  return Number(v);
}

const amounts = (cpu: string | undefined, memory: number | undefined) => ({
  ...(cpu !== undefined ? { cpu } : {}),
  ...(memory !== undefined ? { memory } : {}),
});

/** The pod `kith run` POSTs: one container named `run`, state `created`. */
export function podFromRun(f: RunFlags): Record<string, unknown> {
  const env = Object.fromEntries(f.env.map(parseEnv));
  const container: Record<string, unknown> = {
    name: 'run',
    image: f.image,
    ...(f.entrypoint !== undefined ? { entrypoint: f.entrypoint } : {}),
    ...(f.cmd.length > 0 ? { cmd: f.cmd } : {}),
    ...(Object.keys(env).length > 0 ? { env } : {}),
    resources: {
      requests: amounts(decimal('cpu-request', f.cpuRequest), mebibytes('memory-request', f.memoryRequest)),
      limits: amounts(decimal('cpu-limit', f.cpuLimit), mebibytes('memory-limit', f.memoryLimit)),
    },
  };
  return {
    name: f.name,
    type: 'pod',
    state: 'created',
    metadata: {},
    spec: {
      containers: [container],
      ports: f.publish.map(parsePort),
      schedulingConstraints: {
        mayBeScheduledOn: f.mayBeScheduledOn.length > 0 ? f.mayBeScheduledOn : null,
        cannotBeScheduledOn: f.cannotBeScheduledOn.length > 0 ? f.cannotBeScheduledOn : null,
      },
    },
  };
}

/** What `run --wait` makes of a state: keep waiting, or stop with an exit code. */
export function waitOutcome(state: string | undefined): { done: false } | { done: true; code: number } {
  switch (state) {
    case 'running':
    case 'unhealthy':
    case 'exitSuccess':
      return { done: true, code: 0 };
    case 'exitFailure':
    case 'errored':
    case 'killed':
    case 'abandoned':
    case 'dead':
      return { done: true, code: 1 };
    default:
      return { done: false };
  }
}
