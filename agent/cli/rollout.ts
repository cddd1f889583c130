import { setTimeout as sleep } from 'node:timers/promises';
import { replicaSetSpec, replicaSetStatus } from '../../api/schemas.js';
import { REPLICASET_HISTORY_TYPE } from '../keys.js';
import { history as historySchema, type HistoryEntry } from '../replicaset/history.js';
import { templateHash } from '../replicaset/rollout.js';
import { ApiClient, ApiError } from './http.js';
import { UsageError } from './run.js';
import { data, table } from './table.js';
import { Progress, type Io, type Values } from './io.js';

/**
 * `kith rollout history|undo|status replicaset NAME` (SPEC §11), through the
 * resource routes only: the history is the resource `replicaset.history/NAME`
 * the controller keeps, an undo is a PATCH of the ReplicaSet's template
 * guarded by If-Match, and status follows the ReplicaSet's status.
 */


export const ROLLOUT_ARGS = 'history|undo|status replicaset NAME [--to-revision N] [--timeout D]';
export const ROLLOUT_OPTIONS = {
  'to-revision': { type: 'string' },
  timeout: { type: 'string' },
} as const;

/** Longest `rollout status` follows by default. */
const STATUS_TIMEOUT_S = 600;
const POLL_MS = 250;
const UNDO_ATTEMPTS = 5;

const seg = ApiClient.path;

/** `90`, `90s`, `5m`, `1h` as seconds; undefined when it is none of these. */
export function durationSeconds(v: string): number | undefined {
  const m = /^(\d{1,7})(s|m|h)?$/.exec(v);
  if (!m) return undefined;
  return Number(m[1]) * (m[2] === 'h' ? 3600 : m[2] === 'm' ? 60 : 1);
}

async function readHistory(io: Io, name: string): Promise<HistoryEntry[]> {
  // The ReplicaSet first, so a missing one is its own 404.
  await io.api.request('GET', seg('resources', 'replicaset', name));
  let body: unknown;
  try {
    body = (await io.api.request('GET', seg('resources', REPLICASET_HISTORY_TYPE, name))).body;
  } catch (err) {
    if (err instanceof ApiError && err.status === 404) return [];
    throw err;
  }
  const h = historySchema.safeParse(body);
  if (!h.success) throw new ApiError(`the rollout history of replicaset '${name}' is damaged; the controller rewrites it at the next template change`, 0);
  return h.data.spec.revisions;
}

const imagesOf = (e: HistoryEntry): string =>
  ((e.template.spec as { containers?: { image?: string }[] } | undefined)?.containers ?? []).map((c) => c.image ?? '').join(',');

async function history(io: Io, name: string): Promise<number> {
  const revisions = await readHistory(io, name);
  if (io.format !== 'table') {
    io.out(data(revisions, io.format));
    return 0;
  }
  if (revisions.length === 0) {
    io.err(`No rollout history of replicaset ${name} yet.\n`);
    return 0;
  }
  io.out(table(['REVISION', 'TEMPLATE', 'SINCE', 'IMAGES'], revisions.map((r) => [String(r.revision), r.templateHash, r.at, imagesOf(r)])));
  return 0;
}

async function undo(io: Io, name: string, to: string | undefined): Promise<number> {
  if (to !== undefined && !/^[1-9]\d{0,8}$/.test(to)) throw new UsageError(`--to-revision '${to}': must be a revision number from 'kith rollout history'`);
  const revisions = await readHistory(io, name);
  const target = to === undefined ? revisions.at(-2) : revisions.find((r) => r.revision === Number(to));
  if (!target) {
    throw new ApiError(
      to === undefined
        ? `replicaset '${name}' has no earlier revision to go back to`
        : `replicaset '${name}' has no revision ${to}; it has ${revisions.map((r) => r.revision).join(', ') || 'none'}`,
      0,
    );
  }
  if (target === revisions.at(-1)) {
    io.out(io.format === 'table' ? `replicaset/${name} is already at revision ${target.revision}\n` : data(target, io.format));
    return 0;
  }
  const path = seg('resources', 'replicaset', name);
  // Read, put the old template back, write only if nothing changed in between (If-Match).
  for (let attempt = 0; ; attempt++) {
    const got = await io.api.request('GET', path);
    const spec = (got.body as { spec?: Record<string, unknown> }).spec ?? {};
    const etag = got.headers.get('etag');
    try {
      const { body } = await io.api.request('PATCH', path, { spec: { ...spec, template: target.template } }, etag ? { 'if-match': etag } : {});
      io.out(io.format === 'table' ? `replicaset/${name} rolled back to revision ${target.revision}\n` : data(body, io.format));
      return 0;
    } catch (err) {
      if (!(err instanceof ApiError && err.status === 412) || attempt + 1 >= UNDO_ATTEMPTS) throw err;
    }
  }
}

/** `[########------------] 2 of 5 updated, 1 ready`: a progress line for a terminal, readable without colour. */
export function progressBar(updated: number, ready: number, total: number, width = 20): string {
  const frac = (n: number) => (total > 0 ? Math.min(1, Math.max(0, n / total)) : 1);
  const r = Math.round(frac(ready) * width);
  const u = Math.max(r, Math.round(frac(updated) * width));
  return `[${'#'.repeat(r)}${'+'.repeat(u - r)}${'-'.repeat(width - u)}] ${updated} of ${total} updated, ${ready} ready`;
}

async function status(io: Io, name: string, timeoutS: number): Promise<number> {
  const deadline = Date.now() + timeoutS * 1000;
  const progress = new Progress(io);
  for (;;) {
    const { body } = await io.api.request('GET', seg('resources', 'replicaset', name));
    const b = body as { spec?: unknown; status?: unknown };
    const spec = replicaSetSpec.safeParse(b.spec);
    const st = replicaSetStatus.safeParse(b.status);
    let line: string;
    let done: number | undefined;
    if (!spec.success) throw new ApiError(`replicaset '${name}' has an invalid spec`, 0);
    if (!st.success || st.data.templateHash !== templateHash(spec.data.template)) {
      line = `Waiting for the controller to take up the template of replicaset ${name}...`;
    } else {
      const s = st.data;
      const of = `${s.updated ?? 0} of ${spec.data.replicas} updated, ${s.updatedReady ?? 0} ready`;
      const others = s.live - (s.updated ?? 0);
      line = io.tty
        ? `replicaset ${name}: ${progressBar(s.updated ?? 0, s.updatedReady ?? 0, spec.data.replicas)}${others > 0 ? `, ${others} old` : ''}`
        : `replicaset ${name}: ${of}${others > 0 ? `, ${others} old` : ''}`;
      if (s.rollout === 'complete') done = 0;
      else if (s.rollout === 'stalled') done = 1;
    }
    progress.show(line);
    if (done !== undefined || Date.now() >= deadline) progress.done();
    if (done === 0) {
      io.out(`replicaset/${name} rolled out\n`);
      return 0;
    }
    if (done === 1) {
      io.err(`kith: replicaset ${name}: rollout stalled: no progress within progressDeadlineSeconds (${spec.data.progressDeadlineSeconds ?? 600} s); 'kith rollout undo replicaset ${name}' goes back\n`);
      return 1;
    }
    if (Date.now() >= deadline) {
      io.err(`kith: replicaset ${name}: rollout not complete after ${timeoutS} s\n`);
      return 1;
    }
    await sleep(Math.min(POLL_MS, Math.max(0, deadline - Date.now())));
  }
}

/** Runs `kith rollout ...`; returns the exit code. */
export async function runRollout(io: Io, v: Values, pos: string[]): Promise<number> {
  const [sub, type, name, ...rest] = pos;
  if (sub === undefined || type === undefined || name === undefined || rest.length > 0) throw new UsageError(`expected ${ROLLOUT_ARGS}`);
  if (type !== 'replicaset' && type !== 'rs' && type !== 'replicasets') throw new UsageError(`only replicasets roll out, not '${type}'`);
  switch (sub) {
    case 'history':
      return history(io, name);
    case 'undo':
      return undo(io, name, v['to-revision'] as string | undefined);
    case 'status': {
      const t = v.timeout === undefined ? STATUS_TIMEOUT_S : durationSeconds(String(v.timeout));
      if (t === undefined || t < 1) throw new UsageError(`--timeout '${v.timeout}': must be a duration such as 90s, 5m or 1h`);
      return status(io, name, t);
    }
    default:
      throw new UsageError(`rollout '${sub}': must be history, undo or status`);
  }
}
