import Router from '@koa/router';
import type { Context } from 'koa';
import type { Registry } from 'prom-client';
import { readJson } from './body.js';
import { fqdn } from '../agent/keys.js';
import { isDnsLabel, parseNamespace } from './namespace.js';
import { aliasNotFound, invalid, invalidLabel, invalidNamespace, notFound, Problem } from './problem.js';
import { addressable, refusedChange, resourceToCreate } from './resources.js';
import type { Listed, ResourceStore } from './store.js';
import { encoded, type Selector } from './feed.js';
import type { TokenStore } from './token-store.js';
import { tokenName, tokenRequest } from './tokens.js';
import { dashboardRoutes } from './ui/serve.js';

export interface RouteDeps {
  store: ResourceStore;
  /** The cluster domain, without its trailing dot. */
  domain: string;
  metrics: Registry;
  /** Why the API is not ready, or undefined when it is. */
  notReady(): Promise<string | undefined>;
  /** The tokens, or undefined with `--api-auth none` (the token routes then answer 404). */
  tokens?: TokenStore;
  /** The resources of a type as a list answers them (list.ts). */
  list(type: string): Promise<Listed>;
  /** Serves `?watch=1`: a stream of the changes of what the path names (stream.ts). */
  watch(ctx: Context, sel: Selector): Promise<void>;
  /** Serves a pod's logs from its worker (logs.ts); without it the route answers 404. */
  logs?(ctx: Context, pod: string): Promise<void>;
}

/** `?watch=1` (or `true`) on a GET. */
const watching = (ctx: Context): boolean => ctx.method === 'GET' && (ctx.query.watch === '1' || ctx.query.watch === 'true');

/** `W/"12"`, `"12"` or `*` of an If-Match header, as a mod revision. */
function ifMatch(ctx: Context): number | '*' | undefined {
  const h = ctx.get('if-match').trim();
  if (h === '') return undefined;
  if (h === '*') return '*';
  const m = /^(?:W\/)?"?(\d{1,15})"?$/.exec(h);
  if (!m) throw new Problem('malformed-request', `If-Match '${h.slice(0, 60)}' is not a revision such as "12"`);
  return Number(m[1]);
}

/** Validates one side of an alias path: its namespace first, then its host. */
function side(ns: string, host: string): { ns: string; host: string; builtin: boolean } {
  const parsed = parseNamespace(ns);
  if (!parsed) throw invalidNamespace(ns);
  if (!isDnsLabel(host)) throw invalidLabel(host);
  return { ns, host, builtin: parsed.builtin };
}

export function buildRouter(deps: RouteDeps): Router {
  const { store, domain } = deps;
  const router = new Router();

  router.post('/resources', async (ctx) => {
    const r = resourceToCreate(await readJson(ctx));
    const revision = await store.create(r);
    ctx.status = 201;
    ctx.set('Location', `/resources/${r.type}/${r.name}`);
    ctx.set('ETag', `"${revision}"`);
    ctx.body = r;
  });

  router.get('/resources/:type', async (ctx) => {
    const { type } = ctx.params as { type: string };
    if (watching(ctx)) return deps.watch(ctx, { type });
    // A type no resource can have lists nothing, as in the reference.
    if (!addressable(type, undefined)) {
      ctx.body = [];
      return;
    }
    const { resources, revision } = await deps.list(type);
    // The revision the list is the state at: `?watch=1&since=` it follows on from the list with no change missed.
    ctx.set('X-Kith-Revision', String(revision));
    // The JSON of the array, of each resource's JSON made once (JSON.stringify of the array gives the same bytes).
    ctx.type = 'json';
    ctx.body = `[${resources.map(encoded).join(',')}]`;
  });

  router.get('/resources/:type/:name', async (ctx) => {
    const { type, name } = ctx.params as { type: string; name: string };
    if (!addressable(type, name)) throw notFound(type, name);
    // A watch of one resource may start before it exists.
    if (watching(ctx)) return deps.watch(ctx, { type, name });
    const { resource, modRevision } = await store.get(type, name);
    ctx.set('ETag', `"${modRevision}"`);
    ctx.body = resource;
  });

  const logs = deps.logs;
  if (logs) {
    router.get('/resources/pod/:name/logs', async (ctx) => {
      const { name } = ctx.params as { name: string };
      if (!addressable('pod', name)) throw notFound('pod', name);
      await logs(ctx, name);
    });
  }

  router.patch('/resources/:type/:name', async (ctx) => {
    const { type, name } = ctx.params as { type: string; name: string };
    const body = await readJson(ctx);
    const refused = refusedChange(type, 'PATCH');
    if (refused) throw refused;
    if (!addressable(type, name)) throw notFound(type, name);
    const { resource, modRevision } = await store.patch(type, name, body, ifMatch(ctx));
    ctx.set('ETag', `"${modRevision}"`);
    ctx.body = resource;
  });

  router.delete('/resources/:type/:name', async (ctx) => {
    const { type, name } = ctx.params as { type: string; name: string };
    const refused = refusedChange(type, 'DELETE');
    if (refused) throw refused;
    if (!addressable(type, name)) throw notFound(type, name);
    // SPEC §11: `?now=1` (`kith delete pod NAME --now`) skips a pod's grace.
    const now = ctx.query.now;
    await store.remove(type, name, { now: now === '1' || now === 'true' || now === '' });
    ctx.status = 204;
  });

  router.get('/dns_aliases/:ns/:host', async (ctx) => {
    const { ns, host } = ctx.params as { ns: string; host: string };
    side(ns, host);
    ctx.body = await store.aliasTargets(fqdn(host, ns, domain));
  });

  // Every name the zone is fed from etcd, for the dashboard (a view token suffices, as for every GET).
  router.get('/dns_names', async (ctx) => {
    ctx.body = { domain, ...(await store.dnsNames()) };
  });

  const alias = (ctx: Context, write: boolean) => {
    const p = ctx.params as { ns: string; host: string; tns: string; thost: string };
    const from = side(p.ns, p.host);
    const to = side(p.tns, p.thost);
    if (write && from.builtin) throw new Problem('modification-not-allowed', 'Built-in DNS namespaces cannot be modified via the API.');
    return {
      from: fqdn(from.host, from.ns, domain),
      to: fqdn(to.host, to.ns, domain),
      missing: () => aliasNotFound(from.ns, from.host, to.ns, to.host),
    };
  };

  router.get('/dns_aliases/:ns/:host/:tns/:thost', async (ctx) => {
    const a = alias(ctx, false);
    if (!(await store.aliasExists(a.from, a.to))) throw a.missing();
    ctx.status = 204;
  });

  router.put('/dns_aliases/:ns/:host/:tns/:thost', async (ctx) => {
    const a = alias(ctx, true);
    await store.putAlias(a.from, a.to);
    ctx.status = 204;
  });

  router.delete('/dns_aliases/:ns/:host/:tns/:thost', async (ctx) => {
    const a = alias(ctx, true);
    if (!(await store.deleteAlias(a.from, a.to))) throw a.missing();
    ctx.status = 204;
  });

  const tokens = deps.tokens;
  if (tokens) {
    router.post('/tokens', async (ctx) => {
      const parsed = tokenRequest.safeParse(await readJson(ctx));
      if (!parsed.success) throw invalid(parsed.error);
      const who = (ctx.state as { token?: { name: string } }).token?.name ?? 'unknown';
      const made = await tokens.create(parsed.data, who);
      ctx.status = 201;
      ctx.set('Location', `/tokens/${made.name}`);
      ctx.set('Cache-Control', 'no-store');
      ctx.body = made;
    });

    router.get('/tokens', (ctx) => {
      ctx.body = tokens.list();
    });

    router.delete('/tokens/:name', async (ctx) => {
      const { name } = ctx.params as { name: string };
      if (!tokenName.safeParse(name).success) throw new Problem('token-not-found', `there is no token named '${name.slice(0, 80)}'`);
      await tokens.remove(name);
      ctx.status = 204;
    });
  }

  dashboardRoutes(router);

  router.get('/healthz', (ctx) => {
    ctx.type = 'text/plain';
    ctx.body = 'ok\n';
  });

  router.get('/readyz', async (ctx) => {
    const why = await deps.notReady();
    if (why) throw new Problem('not-ready', why);
    ctx.type = 'text/plain';
    ctx.body = tokens ? 'ok\n' : 'ok\nwarning: --api-auth none: anyone who reaches this API may change anything\n';
  });

  router.get('/metrics', async (ctx) => {
    ctx.type = deps.metrics.contentType;
    ctx.body = await deps.metrics.metrics();
  });

  return router;
}

/** The methods a path answers, or undefined when no route has that path. */
export function allowedMethods(router: Router, path: string): string[] | undefined {
  const matched = router.match(path, 'GET').path;
  if (matched.length === 0) return undefined;
  const methods = new Set<string>();
  for (const layer of matched) for (const m of layer.methods) methods.add(m);
  return [...methods];
}
