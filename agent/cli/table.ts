import { stringify } from 'yaml';

/** Output of the client commands: aligned tables for people, JSON or YAML for scripts. */

export type Format = 'table' | 'json' | 'yaml';

export function table(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) => cells.map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i]!))).join('  ').trimEnd();
  return [line(header), ...rows.map(line)].join('\n') + '\n';
}

export function data(value: unknown, format: 'json' | 'yaml'): string {
  return format === 'json' ? `${JSON.stringify(value, null, 2)}\n` : stringify(value);
}

type Row = { name?: unknown; type?: unknown; state?: unknown; metadata?: Record<string, unknown>; spec?: Record<string, unknown>; status?: Record<string, unknown> };

/** A value as a table cell: nothing for undefined or null. */
export const str = (v: unknown): string => (v === undefined || v === null ? '' : String(v));

/** Columns that say the most about resources of one type. */
export function resourceTable(type: string, resources: unknown[]): string {
  const rs = resources as Row[];
  if (type === 'pod') {
    return table(
      ['NAME', 'STATE', 'READY', 'RESTARTS', 'WORKER', 'IMAGE', 'REPLICASET'],
      rs.map((r) => {
        const c = (r.spec?.containers as { image?: string }[] | undefined)?.[0];
        // SPEC §10: readiness means something only while the pod runs.
        const ready = r.state === 'running' ? (r.metadata?.ready === 'false' ? 'no' : r.metadata?.ready === 'true' ? 'yes' : '') : '';
        return [str(r.name), str(r.state), ready, str(r.metadata?.restarts ?? '0'), str(r.metadata?.workedBy), str(c?.image), str(r.metadata?.replicaSet)];
      }),
    );
  }
  if (type === 'replicaset') {
    return table(
      ['NAME', 'REPLICAS', 'LIVE', 'RUNNING', 'READY', 'UPDATED', 'AVAILABLE', 'ROLLOUT', 'STATE'],
      rs.map((r) => [
        str(r.name), str(r.spec?.replicas), str(r.status?.live), str(r.status?.running),
        str(r.status?.ready), str(r.status?.updated), str(r.status?.available), str(r.status?.rollout), str(r.state),
      ]),
    );
  }
  if (type.startsWith('node')) {
    return table(['NAME', 'TYPE', 'STATE', 'ADDRESS'], rs.map((r) => [str(r.name), str(r.type), str(r.state), str(r.spec?.address)]));
  }
  return table(['NAME', 'TYPE', 'STATE'], rs.map((r) => [str(r.name), str(r.type), str(r.state)]));
}
