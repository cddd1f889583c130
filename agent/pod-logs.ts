import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { Transform, type TransformCallback } from 'node:stream';
import { LOGS_CREDENTIAL_KEY } from './keys.js';
import type { StateLayer } from './state.js';

/**
 * Pod logs (SPEC §12) as both sides see them: the API asks the worker that
 * runs a pod, presenting the cluster's logs credential; the worker compares
 * it in constant time. Pods cannot read etcd, so they cannot present it.
 */

/** Longest `--tail` served. */
export const MAX_TAIL = 100_000;

/** What a logs request asks for. */
export interface LogsQuery {
  container?: string;
  follow: boolean;
  tail?: number;
  previous: boolean;
}

const flag = (v: unknown): boolean => v === '1' || v === 'true' || v === '';

/** The query of a logs request (`container`, `follow`, `tail`, `previous`), or what is wrong with it. */
export function parseLogsQuery(q: Record<string, string | string[] | undefined>): LogsQuery | { error: string } {
  const one = (k: string): string | undefined => (Array.isArray(q[k]) ? q[k]![0] : (q[k] as string | undefined));
  const container = one('container');
  if (container !== undefined && !/^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/.test(container)) return { error: `container '${container.slice(0, 80)}' is not a container name` };
  const tailText = one('tail');
  let tail: number | undefined;
  if (tailText !== undefined) {
    if (!/^\d{1,9}$/.test(tailText) || Number(tailText) > MAX_TAIL) return { error: `tail '${tailText.slice(0, 20)}' must be a whole number of lines from 0 to ${MAX_TAIL}` };
    tail = Number(tailText);
  }
  const follow = one('follow');
  const previous = one('previous');
  return { container, follow: follow !== undefined && flag(follow), tail, previous: previous !== undefined && flag(previous) };
}

/** The query string of a logs request, as parseLogsQuery reads it. */
export function logsQueryString(q: LogsQuery): string {
  const p = new URLSearchParams();
  if (q.container) p.set('container', q.container);
  if (q.follow) p.set('follow', '1');
  if (q.tail !== undefined) p.set('tail', String(q.tail));
  if (q.previous) p.set('previous', '1');
  const s = p.toString();
  return s ? `?${s}` : '';
}

/** The last `n` lines of a log (every line when `n` is undefined). */
export function tailLines(text: string, n: number | undefined): string {
  if (n === undefined) return text;
  if (n === 0) return '';
  const lines = text.split('\n');
  // A log ending in a newline has an empty last piece that is not a line.
  const end = lines.length > 0 && lines[lines.length - 1] === '' ? lines.length - 1 : lines.length;
  return lines.slice(Math.max(0, end - n), end).map((l) => `${l}\n`).join('');
}

/** Two credentials compared in constant time (their hashes have one length whatever they are). */
export function sameCredential(given: string, expected: string): boolean {
  const a = createHash('sha256').update(given).digest();
  const b = createHash('sha256').update(expected).digest();
  return timingSafeEqual(a, b) && given.length === expected.length;
}

/** The cluster's logs credential: read, or made by this node when none exists yet (one writer wins). */
export async function logsCredential(state: StateLayer): Promise<string> {
  for (let attempt = 0; attempt < 5; attempt++) {
    const kv = await state.get(LOGS_CREDENTIAL_KEY);
    if (kv) return kv.value;
    const secret = `kithlogs_${randomBytes(32).toString('base64url')}`;
    const r = await state.txn({ if: [{ key: LOGS_CREDENTIAL_KEY, createRevision: 0 }], then: [{ put: LOGS_CREDENTIAL_KEY, value: secret }] });
    if (r.succeeded) return secret;
  }
  throw new Error(`could not read or create ${LOGS_CREDENTIAL_KEY} in etcd`);
}

/** `host:port` of a log endpoint, or undefined. */
export function parseLogsEndpoint(v: string): { host: string; port: number } | undefined {
  const m = /^(\d{1,3}(?:\.\d{1,3}){3}):(\d{1,5})$/.exec(v.trim());
  return m && Number(m[2]) > 0 && Number(m[2]) < 65536 ? { host: m[1]!, port: Number(m[2]) } : undefined;
}

/**
 * Containers run with a terminal (`--tty`), whose line discipline ends each
 * line with CR LF: logs are served with plain LF, as the program wrote them.
 */
export class TerminalLines extends Transform {
  private held = false;

  override _transform(chunk: Buffer, _enc: BufferEncoding, done: TransformCallback): void {
    let s = (this.held ? '\r' : '') + chunk.toString('latin1');
    this.held = s.endsWith('\r');
    if (this.held) s = s.slice(0, -1);
    done(null, Buffer.from(s.replace(/\r\n/g, '\n'), 'latin1'));
  }

  override _flush(done: TransformCallback): void {
    done(null, this.held ? Buffer.from('\r') : null);
  }
}

/** A whole log as served: CR LF line ends as LF (TerminalLines). */
export const plainLines = (text: string): string => text.replace(/\r\n/g, '\n');
