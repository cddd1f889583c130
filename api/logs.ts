import { request, type IncomingMessage } from 'node:http';
import type { Context } from 'koa';
import type { Logger } from 'pino';
import { logsEndpointKey } from '../agent/keys.js';
import { logsQueryString, LogsSigner, parseLogsEndpoint, parseLogsQuery, type LogsQuery } from '../agent/pod-logs.js';
import type { StateLayer } from '../agent/state.js';
import { Problem, type ProblemType } from './problem.js';
import type { ResourceStore } from './store.js';

/**
 * `GET /resources/pod/<name>/logs` (SPEC §12): the API finds the worker the
 * pod ran on (`metadata.workedBy`) and its log endpoint
 * (`node.worker/logs/<worker>`), asks it with a request signed by this node's logs key
 * and passes its answer on as it comes.
 */

export interface LogsDeps {
  store: ResourceStore;
  state: StateLayer;
  log: Logger;
  /** This API node's key: every request to a worker is signed with it. */
  signer: LogsSigner;
}

/** How long connecting to a worker and its first answer may take. */
const UPSTREAM_TIMEOUT_MS = 10_000;

/** The container a request means, or a problem naming what is wrong: the pod's spec knows its containers. */
export function chooseContainer(pod: string, containers: readonly string[], asked: string | undefined): string {
  if (asked !== undefined) {
    if (!containers.includes(asked)) throw new Problem('container-not-found', `pod '${pod}' has no container '${asked}'; it has ${containers.join(', ')}`);
    return asked;
  }
  if (containers.length === 1) return containers[0]!;
  throw new Problem('malformed-request', `pod '${pod}' has containers ${containers.join(', ')}; name one with container= (kith logs -c)`);
}

/** A worker's refusal as the API's own problem. */
function upstreamProblem(status: number, body: string, worker: string): Problem {
  let p: { type?: string; detail?: string } = {};
  try {
    p = JSON.parse(body) as typeof p;
  } catch {
    /* not a problem detail */
  }
  const detail = p.detail ?? `HTTP ${status}`;
  const passed: ProblemType[] = ['container-not-found', 'logs-not-found', 'malformed-request'];
  if (passed.includes(p.type as ProblemType)) return new Problem(p.type as ProblemType, detail);
  return new Problem('worker-unavailable', `worker '${worker}' did not serve the log: ${detail}`);
}

export class PodLogs {
  constructor(private readonly deps: LogsDeps) {}

  async serve(ctx: Context, name: string): Promise<void> {
    const { resource } = await this.deps.store.get('pod', name);
    const pod = resource as { state?: string; metadata?: Record<string, string>; spec?: { containers?: { name: string }[] } };
    const q = parseLogsQuery(ctx.query);
    if ('error' in q) throw new Problem('malformed-request', q.error);
    const query: LogsQuery = { ...q, container: chooseContainer(name, (pod.spec?.containers ?? []).map((c) => c.name), q.container) };
    const worker = pod.metadata?.workedBy;
    if (!worker) throw new Problem('pod-not-placed', `pod '${name}' (${pod.state ?? 'unknown state'}) has not been placed on a worker yet; it has no logs`);
    const kv = await this.deps.state.get(logsEndpointKey(worker));
    const at = kv ? parseLogsEndpoint(kv.value) : undefined;
    if (!at) throw new Problem('worker-unavailable', `worker '${worker}' of pod '${name}' is not alive or serves no logs; its logs are not readable now`);

    const path = `/pods/${encodeURIComponent(name)}/logs${logsQueryString(query)}`;
    const ctl = new AbortController();
    // The client went away: so does the request to the worker (a follow would run on otherwise).
    ctx.res.once('close', () => ctl.abort());
    const upstream = await new Promise<IncomingMessage>((resolve, reject) => {
      const req = request(
        { host: at.host, port: at.port, method: 'GET', path, headers: { authorization: this.deps.signer.authorization('GET', path) }, signal: ctl.signal },
        resolve,
      );
      req.setTimeout(UPSTREAM_TIMEOUT_MS, () => req.destroy(new Error(`no answer within ${UPSTREAM_TIMEOUT_MS / 1000} s`)));
      req.on('error', (err) => reject(new Problem('worker-unavailable', `worker '${worker}' at ${at.host}:${at.port} did not answer: ${err.message}`)));
      req.end();
    });
    if (upstream.statusCode !== 200) {
      let body = '';
      for await (const chunk of upstream) body += String(chunk);
      throw upstreamProblem(upstream.statusCode ?? 0, body.slice(0, 2000), worker);
    }
    // A quiet follow is not an idle client: the stream ends with the container or the client.
    upstream.socket.setTimeout(0);
    if (query.follow) ctx.req.socket.setTimeout(0);
    upstream.on('error', () => undefined);
    ctx.status = 200;
    ctx.type = 'text/plain; charset=utf-8';
    ctx.set('Cache-Control', 'no-store');
    ctx.body = upstream;
  }
}
