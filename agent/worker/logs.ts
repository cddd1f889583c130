import { createReadStream, existsSync, mkdirSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { bindError } from '../address.js';
import { missedByFollow, parseLogsQuery, plainLines, tailLines, TerminalLines, type LogsQuery } from '../pod-logs.js';
import type { PodRuntime } from '../runtime/runtime.js';

/**
 * The worker's log endpoint (README.md): `GET /pods/<pod>/logs` with the
 * query of parseLogsQuery, for API nodes only: every request must present
 * an API node's signature (agent/pod-logs.ts). A running pod's log comes from the runtime;
 * an ended pod's, and a restarted container's earlier run, from the copies
 * kept under `<data-dir>/pod-logs/<node>-<pod>/`.
 */

/** The folder of a pod's kept logs. */
export const podLogDir = (dataDir: string, runtimeName: string): string => join(dataDir, 'pod-logs', runtimeName);
/** `<container>.log`: the whole log of an ended pod's container; `<container>.previous`: its run before the last restart. */
/** The end of what a follow sent that is matched against the whole log (missedByFollow). */
const FOLLOW_MATCH_CHARS = 4096;
/** How long reading a whole log after a follow may take. */
const WHOLE_LOG_MS = 5000;

export const keptLogFile = (dataDir: string, runtimeName: string, container: string, kind: 'log' | 'previous'): string =>
  join(podLogDir(dataDir, runtimeName), `${container}.${kind}`);

/** A pod the worker runs now, as the log endpoint needs it. */
export interface RunningPodLogs {
  runtimeName: string;
  containers: readonly string[];
}

export interface LogServerOptions {
  host: string;
  port: number;
  /** Whether a request's Authorization header is an API node's signature of it (LogsVerifier). */
  authorized(authorization: string | undefined, method: string, path: string): boolean;
  dataDir: string;
  /** The runtime name every pod of this worker has. */
  runtimeName(pod: string): string;
  /** The pod, while this worker runs it. */
  running(pod: string): RunningPodLogs | undefined;
  runtime: PodRuntime;
  log: Logger;
}

/** What a request is answered with, decided before any I/O of the log itself. */
export type LogAnswer =
  | { kind: 'problem'; status: number; type: string; detail: string }
  | { kind: 'stream'; runtimeName: string; container: string }
  | { kind: 'file'; file: string };

/** Decides a logs request (pure but for the files' existence, given as `exists`). */
export function decideLogs(
  o: { pod: string; query: LogsQuery; runtimeName: string; running?: RunningPodLogs; dataDir: string },
  exists: (file: string) => boolean,
): LogAnswer {
  const { pod, query } = o;
  const kept = (c: string, kind: 'log' | 'previous') => keptLogFile(o.dataDir, o.runtimeName, c, kind);
  let container = query.container;
  if (container === undefined) {
    const names = o.running?.containers ?? [];
    if (names.length === 1) container = names[0];
    else if (names.length > 1) return { kind: 'problem', status: 400, type: 'malformed-request', detail: `pod '${pod}' has containers ${names.join(', ')}; name one with container=` };
    else return { kind: 'problem', status: 400, type: 'malformed-request', detail: 'name the container with container=' };
  }
  if (o.running && !o.running.containers.includes(container!)) {
    return { kind: 'problem', status: 404, type: 'container-not-found', detail: `pod '${pod}' has no container '${container}'; it has ${o.running.containers.join(', ')}` };
  }
  if (query.previous) {
    const f = kept(container!, 'previous');
    return exists(f) ? { kind: 'file', file: f } : { kind: 'problem', status: 404, type: 'logs-not-found', detail: `container '${container}' of pod '${pod}' has not been restarted: there is no previous log` };
  }
  if (o.running) return { kind: 'stream', runtimeName: o.runtimeName, container: container! };
  const f = kept(container!, 'log');
  return exists(f) ? { kind: 'file', file: f } : { kind: 'problem', status: 404, type: 'logs-not-found', detail: `this worker has no log of container '${container}' of pod '${pod}'` };
}

function problem(res: ServerResponse, status: number, type: string, detail: string, headers: Record<string, string> = {}): void {
  const body = JSON.stringify({ type, detail, status });
  res.writeHead(status, { 'content-type': 'application/problem+json', 'content-length': Buffer.byteLength(body), ...headers });
  res.end(body);
}

export class LogServer {
  private readonly server: Server;

  private constructor(private readonly o: LogServerOptions) {
    this.server = createServer({ requestTimeout: 30_000, headersTimeout: 10_000 }, (req, res) => this.handle(req, res));
    this.server.maxConnections = 256;
  }

  static async start(o: LogServerOptions): Promise<LogServer> {
    const s = new LogServer(o);
    await new Promise<void>((resolve, reject) => {
      s.server.once('error', (err: NodeJS.ErrnoException) => reject(bindError('--logs-listen-port', { host: o.host, port: o.port }, 'TCP', err)));
      s.server.listen(o.port, o.host, () => resolve());
    });
    return s;
  }

  private handle(req: IncomingMessage, res: ServerResponse): void {
    const url = new URL(req.url ?? '/', 'http://worker');
    // Before anything else: only API nodes can sign a request.
    if (!this.o.authorized(req.headers.authorization, req.method ?? '', req.url ?? '')) {
      return problem(res, 401, 'unauthorized', 'this endpoint serves API nodes only: a request signed by an API node\'s logs key', { 'www-authenticate': 'KithSig realm="kith-worker-logs"' });
    }
    const m = /^\/pods\/([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)\/logs$/.exec(url.pathname);
    if (!m) return problem(res, 404, 'route-not-found', `no route for ${req.method} ${url.pathname.slice(0, 200)}`);
    if (req.method !== 'GET') return problem(res, 405, 'method-not-allowed', `${req.method} is not allowed; use GET`, { allow: 'GET' });
    const query = parseLogsQuery(Object.fromEntries(url.searchParams));
    if ('error' in query) return problem(res, 400, 'malformed-request', query.error);
    const pod = m[1]!;
    const answer = decideLogs({ pod, query, runtimeName: this.o.runtimeName(pod), running: this.o.running(pod), dataDir: this.o.dataDir }, existsSync);
    if (answer.kind === 'problem') return problem(res, answer.status, answer.type, answer.detail);
    res.writeHead(200, { 'content-type': 'text/plain; charset=utf-8', 'cache-control': 'no-store' });
    if (answer.kind === 'file') {
      if (query.tail === undefined) createReadStream(answer.file).pipe(new TerminalLines()).pipe(res);
      else res.end(tailLines(plainLines(readFileSync(answer.file, 'utf8')), query.tail));
      return;
    }
    // A follow may be quiet for long: no idle timeout; it ends with the container or the client.
    if (query.follow) req.socket.setTimeout(0);
    const ctl = new AbortController();
    res.on('close', () => ctl.abort());
    const runtime = this.o.runtime;
    if (!runtime.logs) return void res.end();
    const src = runtime.logs(answer.runtimeName, answer.container, { tail: query.tail, follow: query.follow }, ctl.signal);
    const lines = src.pipe(new TerminalLines());
    if (!query.follow) return void lines.pipe(res);
    // podman's follow can end with its container before it has passed on the last lines: what it sent is
    // matched against the whole log once it ended, and the rest sent after it.
    let sentEnd = '';
    lines.on('data', (b: Buffer) => {
      sentEnd = (sentEnd + b.toString('latin1')).slice(-FOLLOW_MATCH_CHARS);
      res.write(b);
    });
    lines.on('end', () => {
      void (async () => {
        if (!ctl.signal.aborted) {
          const whole = await this.wholeLog(answer.runtimeName, answer.container, ctl.signal);
          const rest = whole === undefined ? '' : missedByFollow(sentEnd, whole, query.tail);
          if (rest) res.write(Buffer.from(rest, 'latin1'));
        }
        res.end();
      })();
    });
  }

  /**
   * A container's whole log once it ended: from podman while it still has the
   * container, else the copy the worker kept (bounded in time); undefined
   * when neither can be had.
   */
  private async wholeLog(runtimeName: string, container: string, signal: AbortSignal): Promise<string | undefined> {
    const ctl = new AbortController();
    const stop = () => ctl.abort();
    signal.addEventListener('abort', stop, { once: true });
    const timer = setTimeout(stop, WHOLE_LOG_MS);
    try {
      const chunks: Buffer[] = [];
      for await (const c of this.o.runtime.logs!(runtimeName, container, { follow: false }, ctl.signal)) chunks.push(Buffer.from(c as Buffer));
      const text = plainLines(Buffer.concat(chunks).toString('latin1'));
      if (text !== '') return text;
    } catch {
      // Gone already: the kept copy, below.
    } finally {
      clearTimeout(timer);
      signal.removeEventListener('abort', stop);
    }
    const kept = keptLogFile(this.o.dataDir, runtimeName, container, 'log');
    return existsSync(kept) ? plainLines(readFileSync(kept, 'latin1')) : undefined;
  }

  async close(): Promise<void> {
    await new Promise<void>((resolve) => {
      if (!this.server.listening) return resolve();
      this.server.close(() => resolve());
      this.server.closeAllConnections();
    });
  }
}

/** Removes the kept logs of pods whose resource is gone (`keep` says which pods still have one). */
export function removeStaleLogs(dataDir: string, keep: (runtimeName: string) => boolean): string[] {
  const dir = join(dataDir, 'pod-logs');
  if (!existsSync(dir)) return [];
  const removed: string[] = [];
  for (const d of readdirSync(dir)) {
    if (keep(d)) continue;
    rmSync(join(dir, d), { recursive: true, force: true });
    removed.push(d);
  }
  return removed;
}

/** Makes the folder of a pod's kept logs. */
export function ensurePodLogDir(dataDir: string, runtimeName: string): string {
  const d = podLogDir(dataDir, runtimeName);
  mkdirSync(d, { recursive: true, mode: 0o700 });
  return d;
}
