import { createPublicKey, generateKeyPairSync, sign, verify, type KeyObject } from 'node:crypto';
import type { Logger } from 'pino';
import { Transform, type TransformCallback } from 'node:stream';
import { LOGS_KEY_PREFIX, logsKeyKey, nameUnder } from './keys.js';
import type { StateLayer, Subscription } from './state.js';

/**
 * Pod logs (SPEC §12) as both sides see them: the API asks the worker that
 * runs a pod with a request signed by the API node's own key (Ed25519, made
 * at each start, the private half never leaves the process); the worker
 * checks it against the public keys API nodes publish in etcd. etcd holds no
 * secret of it: a copy of etcd's data signs nothing, and pods hold no key.
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

/** How far a signed request's time may be from the worker's clock, ms. */
export const SIGNATURE_WINDOW_MS = 60_000;

/** What is signed: the time, the method and the path with its query. */
const signedData = (ts: number, method: string, path: string): Buffer => Buffer.from(`${ts}\n${method}\n${path}`);

/** An API node's signing key for log requests, made at start. */
export class LogsSigner {
  private readonly privateKey: KeyObject;
  readonly publicKeyPem: string;

  constructor(readonly node: string) {
    const { privateKey, publicKey } = generateKeyPairSync('ed25519');
    this.privateKey = privateKey;
    this.publicKeyPem = publicKey.export({ type: 'spki', format: 'pem' }).toString();
  }

  /** The Authorization header of a request: `KithSig <node> <time ms> <signature>`. */
  authorization(method: string, path: string, now = Date.now()): string {
    return `KithSig ${this.node} ${now} ${sign(null, signedData(now, method, path), this.privateKey).toString('base64url')}`;
  }

  /** Publishes the public key on this node's alive lease (it goes with the node). */
  async publish(state: StateLayer): Promise<void> {
    await state.txn({ if: [], then: [{ put: logsKeyKey(this.node), value: this.publicKeyPem, lease: 'alive' }] });
  }
}

/** Whether an Authorization header is a signature of `method path` by a key in `keys`, made within the window (pure). */
export function checkSignature(authorization: string | undefined, method: string, path: string, keys: ReadonlyMap<string, KeyObject>, now = Date.now()): boolean {
  if (typeof authorization !== 'string' || authorization.length > 512) return false;
  const m = /^KithSig ([a-z0-9-]{1,63}) (\d{1,16}) ([A-Za-z0-9_-]{86})$/.exec(authorization);
  if (!m) return false;
  const key = keys.get(m[1]!);
  const ts = Number(m[2]);
  if (!key || Math.abs(now - ts) > SIGNATURE_WINDOW_MS) return false;
  try {
    return verify(null, signedData(ts, method, path), key, Buffer.from(m[3]!, 'base64url'));
  } catch {
    return false;
  }
}

/** A worker's view of the API nodes' public keys, followed through the state layer. */
export class LogsVerifier {
  private readonly keys = new Map<string, KeyObject>();
  private readonly sub: Subscription;

  constructor(state: StateLayer, log: Logger) {
    this.sub = state.watch(
      [LOGS_KEY_PREFIX],
      (ev) => {
        const node = nameUnder(ev.key, LOGS_KEY_PREFIX);
        if (!node) return;
        if (ev.type !== 'put') return void this.keys.delete(node);
        try {
          this.keys.set(node, createPublicKey(ev.value));
        } catch {
          this.keys.delete(node);
          log.warn({ key: ev.key }, 'an API node\'s logs key is not a public key; ignored');
        }
      },
      { name: 'logs keys' },
    );
  }

  get synced(): Promise<void> {
    return this.sub.synced;
  }

  check(authorization: string | undefined, method: string, path: string): boolean {
    return checkSignature(authorization, method, path, this.keys);
  }

  close(): Promise<void> {
    return this.sub.close();
  }
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

/**
 * What a follow missed when it ended with its container: the part of the
 * whole log (as it stands after the end) after the last text the follow
 * sent. `sentEnd` is the end of what was sent (a few KiB), `sentAny` whether
 * anything was. Matched at its last place in the log, so nothing is sent
 * twice; nothing when the sent text is not found. With nothing sent, a
 * follow without a tail missed all of the log, one with a tail nothing it
 * can tell.
 */
export function missedByFollow(sentEnd: string, whole: string, tail: number | undefined): string {
  if (sentEnd === '') return tail === undefined ? whole : '';
  const at = whole.lastIndexOf(sentEnd);
  return at < 0 ? '' : whole.slice(at + sentEnd.length);
}

/** A whole log as served: CR LF line ends as LF (TerminalLines). */
export const plainLines = (text: string): string => text.replace(/\r\n/g, '\n');
