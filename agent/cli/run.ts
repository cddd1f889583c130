import { RESTART_POLICIES, type PortSpec } from '../../api/schemas.js';

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
  /** `--readiness-http PORT/PATH`, `--readiness-tcp PORT`, `--readiness-exec CMD` (and the same for liveness), SPEC §10. */
  readiness?: ProbeFlags;
  liveness?: ProbeFlags;
  restart?: string;
}

export interface ProbeFlags {
  http?: string;
  tcp?: string;
  exec?: string;
}

/**
 * A probe from `--<role>-http PORT[/PATH]`, `--<role>-tcp PORT` or
 * `--<role>-exec 'CMD ARGS'` (split at blanks): at most one of them.
 */
export function probeFromFlags(role: 'readiness' | 'liveness', f: ProbeFlags | undefined): Record<string, unknown> | undefined {
  const given = (['http', 'tcp', 'exec'] as const).filter((k) => f?.[k] !== undefined);
  if (given.length === 0) return undefined;
  if (given.length > 1) throw new UsageError(`give one of --${role}-http, --${role}-tcp and --${role}-exec, not ${given.map((k) => `--${role}-${k}`).join(' and ')}`);
  const port = (flag: string, v: string) => {
    if (!/^\d{1,5}$/.test(v) || Number(v) < 1 || Number(v) > 65535) throw new UsageError(`--${flag} '${v}': must be a port (1-65535)`);
    return Number(v);
  };
  if (f!.http !== undefined) {
    const m = /^(\d{1,5})(\/\S*)?$/.exec(f!.http);
    if (!m) throw new UsageError(`--${role}-http '${f!.http}': must be PORT or PORT/PATH, such as 8080/healthz`);
    return { http: { port: port(`${role}-http`, m[1]!), path: m[2] ?? '/' } };
  }
  if (f!.tcp !== undefined) return { tcp: port(`${role}-tcp`, f!.tcp) };
  const cmd = f!.exec!.trim().split(/\s+/).filter(Boolean);
  if (cmd.length === 0) throw new UsageError(`--${role}-exec: must name a command`);
  return { exec: cmd };
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
    ...Object.fromEntries((['readiness', 'liveness'] as const).flatMap((role) => {
      const probe = probeFromFlags(role, f[role]);
      return probe ? [[role, probe]] : [];
    })),
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
      ...(f.restart !== undefined ? { restartPolicy: restartPolicy(f.restart) } : {}),
      schedulingConstraints: {
        mayBeScheduledOn: f.mayBeScheduledOn.length > 0 ? f.mayBeScheduledOn : null,
        cannotBeScheduledOn: f.cannotBeScheduledOn.length > 0 ? f.cannotBeScheduledOn : null,
      },
    },
  };
}

function restartPolicy(v: string): string {
  if (!(RESTART_POLICIES as readonly string[]).includes(v)) throw new UsageError(`--restart '${v}': must be one of ${RESTART_POLICIES.join(', ')}`);
  return v;
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
