import { createServer, STATUS_CODES, type Server } from 'node:http';
import type { Duplex } from 'node:stream';
import Koa from 'koa';
import type { Logger } from 'pino';
import { bindError, formatHostPort, listensAt, madeByWorker, type HostPort } from '../agent/address.js';
import { settleWithin } from '../agent/deadline.js';
import { isEtcdUnavailable } from '../agent/etcd.js';
import { ALIAS_VALUE, heartbeatKey, nodeDnsKey, nodeResourceKey, specialMemberKey } from '../agent/keys.js';
import { nodeResourceValue } from '../agent/node.js';
import type { Plugin, PluginContext } from '../agent/plugin.js';
import type { ApiConfig } from './flags.js';
import { ApiMetrics } from './metrics.js';
import { Problem, PROBLEMS } from './problem.js';
import { allowedMethods, buildRouter } from './routes.js';
import { ResourceFeed } from './feed.js';
import { listResources } from './list.js';
import { ResourceStore } from './store.js';
import { serveWatch, type WatchDeps } from './stream.js';
import { TokenStore } from './token-store.js';
import { PodLogs } from './logs.js';
import { LogsSigner } from '../agent/pod-logs.js';
import { allows, bearer, requiredRole } from './tokens.js';

/** How long /readyz waits for etcd before calling it unreachable. */
const PROBE_TIMEOUT_MS = 1000;
/** How long stopping waits to delete each DNS record it published. */
const STOP_DELETE_TIMEOUT_MS = 2000;

const API_SOCKET_IDLE_MS = 60_000;
const API_MAX_CONNECTIONS = 1024;

function listenAddresses(config: ApiConfig, clusterAddress: string | undefined): HostPort[] {
  if (config.apiListen && config.apiListen.length > 0) return config.apiListen;
  const out: HostPort[] = [{ host: '127.0.0.1', port: 8080 }];
  if (clusterAddress) out.push({ host: clusterAddress, port: 80 });
  return out;
}

function listen(server: Server, { host, port }: HostPort): Promise<void> {
  return new Promise((resolve, reject) => {
    const onError = (err: NodeJS.ErrnoException) => reject(bindError('--api-listen', { host, port }, 'TCP', err));
    server.once('error', onError);
    server.listen(port, host, () => {
      server.off('error', onError);
      resolve();
    });
  });
}

function close(server: Server): Promise<void> {
  return new Promise((resolve) => {
    if (!server.listening) return resolve();
    server.close(() => resolve());
    server.closeAllConnections();
  });
}

/**
 * Requests Node's HTTP parser rejects before they reach Koa (bad request
 * line, bad header, headers too large) get a problem detail too.
 */
function onClientError(err: NodeJS.ErrnoException, socket: Duplex): void {
  if (err.code === 'ECONNRESET' || !socket.writable) {
    socket.destroy();
    return;
  }
  const type = 'malformed-request';
  const [status, detail]: [number, string] =
    err.code === 'HPE_HEADER_OVERFLOW' ? [431, 'the request headers are too large']
    : err.code === 'ERR_HTTP_REQUEST_TIMEOUT' ? [408, 'the request took too long to arrive']
    : [400, `the request is not valid HTTP (${err.code ?? err.message})`];
  const body = JSON.stringify({ type, title: PROBLEMS[type][1], detail, status });
  socket.end(
    `HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\nContent-Type: application/problem+json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
  );
}

/** How long a client is asked to wait before trying again while etcd is away. */
const ETCD_RETRY_AFTER_S = 2;

/**
 * An etcd outage as the API sees it: logged once when a request first finds
 * etcd away and once when a request that reads or writes etcd succeeds again,
 * not once per request.
 */
class EtcdOutage {
  private since: number | undefined;

  constructor(private readonly log: Logger) {}

  failed(err: Error): void {
    if (this.since !== undefined) return;
    this.since = Date.now();
    this.log.warn({ err: err.message.split('\n')[0] }, 'etcd is unavailable: requests get 503 etcd-unavailable until it is back');
  }

  succeeded(): void {
    if (this.since === undefined) return;
    this.log.info({ ms: Date.now() - this.since }, 'etcd is available again');
    this.since = undefined;
  }
}

/** Sends any error as a problem detail; etcd away is a 503 to retry; anything else that is not a Problem is a logged 500. */
function sendProblem(ctx: Koa.Context, err: unknown, log: Logger, outage: EtcdOutage): void {
  let problem: Problem;
  if (err instanceof Problem) {
    problem = err;
  } else if (isEtcdUnavailable(err)) {
    outage.failed(err as Error);
    problem = new Problem('etcd-unavailable', 'etcd is unavailable; try again shortly', { 'Retry-After': String(ETCD_RETRY_AFTER_S) });
  } else {
    log.error({ err, method: ctx.method, path: ctx.path }, 'request failed');
    problem = new Problem('internal-server-error', (err as Error)?.message?.split('\n')[0] ?? String(err));
  }
  for (const [k, v] of Object.entries(problem.headers)) ctx.set(k, v);
  ctx.status = problem.status;
  ctx.type = 'application/problem+json';
  ctx.body = JSON.stringify(problem.body());
}

const READ_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);

/**
 * Checks the bearer token of a request against the role its route needs:
 * 401 without a live token, 403 when its role falls short. Returns the
 * token's name (undefined for the open probes).
 */
function authenticate(ctx: Koa.Context, tokens: TokenStore): string | undefined {
  const need = requiredRole(ctx.method, ctx.path);
  if (need === undefined) return undefined;
  const challenge = { 'WWW-Authenticate': 'Bearer realm="kith"' };
  if (!tokens.live) throw new Problem('not-ready', 'the API has not synced its tokens with etcd yet');
  const header = ctx.get('authorization');
  const secret = bearer(header === '' ? undefined : header);
  if (secret === undefined) throw new Problem('unauthorized', 'this request needs an Authorization: Bearer <token> header', challenge);
  if (secret === 'malformed') throw new Problem('unauthorized', 'the Authorization header is not of the form Bearer <token>', { 'WWW-Authenticate': 'Bearer realm="kith", error="invalid_request"' });
  const token = tokens.lookup(secret);
  if (!token) throw new Problem('unauthorized', 'the token is unknown, deleted or expired', { 'WWW-Authenticate': 'Bearer realm="kith", error="invalid_token"' });
  // A watch stream asks again every second, so a deleted token stops its streams too.
  (ctx.state as { token?: { name: string; valid(): boolean } }).token = { name: token.name, valid: () => tokens.lookup(secret) !== undefined };
  if (!allows(token.role, need)) throw new Problem('forbidden', `the token '${token.name}' has the role ${token.role}; ${ctx.method} ${ctx.path.slice(0, 200)} needs ${need}`);
  return token.name;
}

export function createApp(deps: {
  store: ResourceStore;
  domain: string;
  metrics: ApiMetrics;
  registry: PluginContext['metrics'];
  log: Logger;
  notReady(): Promise<string | undefined>;
  /** The tokens every request but the probes is checked against; undefined with `--api-auth none`. */
  tokens?: TokenStore;
  /** What the watch streams are served from. */
  watch: Omit<WatchDeps, 'store' | 'metrics' | 'log'>;
  /** Pods' logs, from their workers. */
  logs?: PodLogs;
}): Koa {
  const watchDeps: WatchDeps = { ...deps.watch, store: deps.store, metrics: deps.metrics, log: deps.log };
  const router = buildRouter({
    store: deps.store, domain: deps.domain, metrics: deps.registry, notReady: deps.notReady, tokens: deps.tokens,
    list: (type) => listResources(type, { feed: deps.watch.feed, store: deps.store, metrics: deps.metrics }),
    watch: (ctx, sel) => serveWatch(ctx, sel, watchDeps),
    logs: deps.logs ? (ctx, pod) => deps.logs!.serve(ctx, pod) : undefined,
  });
  const outage = new EtcdOutage(deps.log);
  const app = new Koa();
  app.silent = true;
  app.on('error', (err) => deps.log.debug({ err }, 'response error'));
  app.use(async (ctx, next) => {
    const started = process.hrtime.bigint();
    let tokenName: string | undefined;
    try {
      if (deps.tokens) tokenName = authenticate(ctx, deps.tokens);
      await next();
      if (ctx.status === 404 && ctx.body === undefined && !ctx._matchedRoute) {
        const allowed = allowedMethods(router, ctx.path);
        if (allowed && ctx.method === 'OPTIONS') {
          ctx.set('Allow', allowed.join(', '));
          ctx.status = 204;
        } else if (allowed) {
          throw new Problem('method-not-allowed', `${ctx.method} is not allowed on ${ctx.path}; allowed: ${allowed.join(', ')}`, { Allow: allowed.join(', ') });
        } else {
          throw new Problem('route-not-found', `no route for ${ctx.method} ${ctx.path.slice(0, 200)}`);
        }
      }
      // Only the routes of etcd's data say that etcd answers again (/healthz never asks it).
      if (ctx.status < 500 && typeof ctx._matchedRoute === 'string' && /^\/(resources|dns_aliases|dns_names)\b/.test(ctx._matchedRoute)) outage.succeeded();
    } catch (err) {
      sendProblem(ctx, err, deps.log, outage);
    } finally {
      const route = typeof ctx._matchedRoute === 'string' ? ctx._matchedRoute : 'unmatched';
      const seconds = Number(process.hrtime.bigint() - started) / 1e9;
      deps.metrics.observe(ctx.method, route, ctx.status, seconds);
      deps.log.debug({ method: ctx.method, path: ctx.path.slice(0, 200), status: ctx.status, ms: Math.round(seconds * 1e4) / 10 }, 'request');
      // The audit trail: every request that may change something, whoever sent it (the token's name, never its secret).
      if (!READ_METHODS.has(ctx.method)) {
        deps.log.info({ audit: true, method: ctx.method, path: ctx.path.slice(0, 200), status: ctx.status, token: tokenName ?? null, client: ctx.request.ip }, 'audit');
      }
    }
  });
  app.use(router.routes());
  return app;
}

export const apiPlugin: Plugin<ApiConfig> = {
  name: 'api',
  role: 'api',
  needs: ['clusterAddress'],
  async preflight(config) {
    // Bound and released at once: what the flags name, less the pod network's addresses, which the worker has not made yet.
    for (const addr of listenAddresses(config, config.clusterAddress).filter((a) => !madeByWorker(config, a.host))) {
      const probe = createServer();
      await listen(probe, addr);
      await close(probe);
    }
  },
  async start(ctx) {
    const { state, log, node } = ctx;
    const domain = ctx.config.clusterDomain;
    const store = new ResourceStore(state, log);
    const metrics = new ApiMetrics(ctx.metrics);

    // Readiness: the state layer has synced and follows etcd, this node's heartbeat is there, etcd answers.
    const aliveKey = heartbeatKey('api', 'alive', node.name);
    let synced = false;
    let alive = false;
    const sub = state.watch(
      [aliveKey],
      (ev) => {
        if (ev.key === aliveKey) alive = ev.type === 'put';
      },
      { name: 'api', onSynced: () => (synced = true) },
    );
    let probe: Promise<string | undefined> | undefined;
    const probeEtcd = (): Promise<string | undefined> => {
      probe ??= new Promise<string | undefined>((resolve) => {
        const t = setTimeout(() => resolve(`etcd did not answer within ${PROBE_TIMEOUT_MS} ms`), PROBE_TIMEOUT_MS);
        state.get(aliveKey).then(
          () => resolve(undefined),
          (err: Error) => resolve(`etcd is unreachable: ${err.message.split('\n')[0]}`),
        ).finally(() => clearTimeout(t));
      }).finally(() => (probe = undefined));
      return probe;
    };
    const notReady = async (): Promise<string | undefined> => {
      if (!synced) return 'the state layer has not synced with etcd yet';
      if (!sub.live) return 'the state layer is resyncing with etcd';
      if (tokens && !tokens.live) return 'the tokens are not synced with etcd';
      const etcd = await probeEtcd();
      if (etcd) return etcd;
      if (!alive) return `the alive heartbeat of node '${node.name}' is missing`;
      return undefined;
    };

    const tokens = ctx.config.apiAuth === 'none' ? undefined : new TokenStore(state, log);
    if (!tokens) log.warn('--api-auth none: the API is open; anyone who reaches it may change anything');
    const feed = new ResourceFeed(state, (type, key, value) => store.parseStored(type, key, value));
    store.follows(() => feed.at);
    // Requests to workers' log endpoints are signed with a key made now; workers find its public half in etcd.
    const signer = new LogsSigner(ctx.config.name);
    await signer.publish(state);
    const limits = { heartbeatMs: ctx.config.apiWatchHeartbeatMs, maxEvents: ctx.config.apiWatchMaxEvents, maxBytes: ctx.config.apiWatchMaxBytes };
    const app = createApp({ store, domain, metrics, registry: ctx.metrics, log, notReady, tokens, watch: { feed, state, limits }, logs: new PodLogs({ store, state, log, signer }) });
    const servers: Server[] = [];
    const stopServers = async () => {
      await Promise.all(servers.map(close));
    };
    // This node's name and its membership of api.special, on the alive lease (SPEC §4).
    const published: string[] = [];
    try {
      await tokens?.bootstrap(ctx.config.dataDir, node.name);
      const addrs = listenAddresses(ctx.config, ctx.node.clusterAddress);
      for (const addr of addrs) {
        const server = createServer({ requestTimeout: 30_000, headersTimeout: 10_000, requireHostHeader: false }, app.callback());
        // A client that stops reading (or never sends) loses its socket after a minute of nothing moving,
        // and no more than this many sockets are held at once.
        server.setTimeout(API_SOCKET_IDLE_MS, (socket) => socket.destroy());
        server.maxConnections = API_MAX_CONNECTIONS;
        server.on('clientError', onClientError);
        servers.push(server);
        await listen(server, addr);
        log.info({ address: formatHostPort(addr) }, 'api listening');
      }
      if (node.clusterAddress) {
        // The node resource was registered before the worker chose the cluster address.
        await state.put(nodeResourceKey('api', node.name), nodeResourceValue('api', node.name, { address: node.clusterAddress }));
        const self = nodeDnsKey(node.name, 'api', domain);
        await state.put(self, node.clusterAddress, 'alive');
        published.push(self);
        // api.special sends pods to <address>:80: only an API that answers there joins it.
        if (listensAt(addrs, node.clusterAddress, 80)) {
          const member = specialMemberKey('api', node.name, 'api', domain);
          await state.put(member, ALIAS_VALUE, 'alive');
          published.push(member);
        } else {
          log.warn({ clusterAddress: node.clusterAddress }, `not joining api.special: pods reach the API at ${node.clusterAddress}:80, and it does not listen there`);
        }
      }
    } catch (err) {
      await stopServers();
      await sub.close();
      await feed.close();
      await tokens?.close();
      metrics.unregister();
      throw err;
    }

    return {
      async stop() {
        await stopServers();
        // Bounded: with etcd gone the alive lease's expiry removes them anyway.
        for (const key of published) {
          const deleted = state.delete(key).catch((err: Error) => log.warn({ key, err: err.message }, 'could not delete a DNS record'));
          if ((await settleWithin(deleted, STOP_DELETE_TIMEOUT_MS)) === 'timeout') log.warn({ key }, 'deleting a DNS record timed out');
        }
        await sub.close();
        await feed.close();
        await tokens?.close();
        metrics.unregister();
      },
    };
  },
};
