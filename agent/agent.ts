import { makeDirs } from './fs.js';
import { Etcd3 } from 'etcd3';
import type { Logger } from 'pino';
import { collectDefaultMetrics, Registry } from 'prom-client';
import { agentUsage, ConfigError, parseAgentConfig, rememberName, type AgentConfig } from './config.js';
import { EmbeddedEtcd, StartupError } from './embedded-etcd.js';
import { PluginHost } from './host.js';
import { createLogger } from './log.js';
import { NameTakenError, registerNode } from './node.js';
import type { NodeIdentity, Plugin, Role } from './plugin.js';
import { PLUGINS } from './plugins.js';
import { StateLayer } from './state.js';

/** Exit codes of `kith agent`. */
export const EXIT_OK = 0;
export const EXIT_STARTUP = 2;

async function loadPlugins(config: AgentConfig, explicit: boolean): Promise<Plugin[]> {
  const out: Plugin[] = [];
  for (const name of config.plugins) {
    const load = PLUGINS[name];
    if (!load) {
      if (explicit) throw new ConfigError(`--plugins '${name}': this build of kith has no such plugin yet`);
      continue;
    }
    out.push(await load());
  }
  return out;
}

/**
 * Every unary etcd call has a deadline, so an etcd that stops answering never
 * stalls the agent (etcd3 tries a call up to three times: about 10 s in all).
 */
export const ETCD_CALL_DEADLINE_MS = 3000;

async function connect(endpoints: string[], log: Logger): Promise<Etcd3> {
  const client = new Etcd3({
    hosts: endpoints,
    dialTimeout: 2000,
    defaultCallOptions: (call) => (call.isStream ? {} : { deadline: Date.now() + ETCD_CALL_DEADLINE_MS }),
  });
  const deadline = Date.now() + 15_000;
  for (;;) {
    try {
      await client.get('kith-health').exec();
      return client;
    } catch (err) {
      if (Date.now() > deadline) {
        client.close();
        throw new StartupError(`--etcd-endpoints '${endpoints.join(',')}': etcd is not reachable (${(err as Error).message.split('\n')[0]})`);
      }
      log.warn({ endpoints }, 'waiting for etcd');
      await new Promise((r) => setTimeout(r, 500));
    }
  }
}

/** `kith agent`: runs until SIGTERM or SIGINT. Resolves with the process exit code. */
export async function runAgent(argv: string[]): Promise<number> {
  let config: AgentConfig;
  let plugins: Plugin[];
  if (argv.includes('--help') || argv.includes('-h')) {
    process.stdout.write(agentUsage());
    return EXIT_OK;
  }
  try {
    config = parseAgentConfig(argv);
    plugins = await loadPlugins(config, !config.pluginsAll);
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`kith agent: ${err.message}\n`);
      return EXIT_STARTUP;
    }
    throw err;
  }

  const nameNote = rememberName(config);
  const log = createLogger(config.logLevel, config.name);
  if (nameNote) log.warn(nameNote);
  // No input may crash the agent: log what escapes and carry on.
  process.on('unhandledRejection', (err) => log.error({ err }, 'unhandled rejection'));
  process.on('uncaughtException', (err) => log.error({ err }, 'uncaught exception'));

  const roles = new Set<Role>(plugins.flatMap((p) => (p.role ? [p.role] : [])));
  const node: NodeIdentity = { name: config.name, roles, clusterAddress: config.clusterAddress };
  const metrics = new Registry();
  collectDefaultMetrics({ register: metrics });

  let embedded: EmbeddedEtcd | undefined;
  let client: Etcd3 | undefined;
  let state: StateLayer | undefined;
  const host = new PluginHost(plugins, log);
  let stopping: Promise<void> | undefined;
  /** Node resources this start created; removed again if start-up fails, so a failed start writes nothing. */
  let createdResources: string[] = [];

  const bounded = async (p: Promise<void> | undefined, what: string) => {
    let timer: NodeJS.Timeout | undefined;
    const limit = new Promise<'timeout'>((r) => (timer = setTimeout(() => r('timeout'), ETCD_CALL_DEADLINE_MS)));
    try {
      if ((await Promise.race([p, limit])) === 'timeout') log.warn(`${what} timed out`);
    } catch (err) {
      log.warn({ err }, `${what} failed`);
    } finally {
      clearTimeout(timer);
    }
  };

  const shutdown = (signal: string) => {
    stopping ??= (async () => {
      log.info({ signal }, 'shutting down');
      // Each etcd step of the drain is bounded: with etcd gone, the leases expire on their own.
      await bounded(state?.revokeLease('healthy'), 'revoking the healthy lease');
      await host.stop();
      await bounded(state?.revokeLease('alive'), 'revoking the alive lease');
      await state?.close();
      client?.close();
      await embedded?.stop();
      log.info('stopped');
    })();
    return stopping;
  };

  // `on`, not `once`: a listener must stay, or execa re-sends the signal to
  // the agent while a child (podman, iptables) runs and the drain is skipped.
  // A second signal during the drain is ignored.
  const signalled = new Promise<string>((resolve) => {
    process.on('SIGTERM', () => resolve('SIGTERM'));
    process.on('SIGINT', () => resolve('SIGINT'));
  });

  const startup = async () => {
    // A busy port fails the start before anything is written (not after the worker claimed a subnet).
    await host.preflight(config);
    try {
      makeDirs(config.dataDir);
    } catch (err) {
      throw new StartupError(`--data-dir '${config.dataDir}': cannot create it (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
    }
    let endpoints = config.etcdEndpoints;
    if (!endpoints || endpoints.length === 0) {
      embedded = new EmbeddedEtcd(config.dataDir, log);
      endpoints = [await embedded.start()];
    }
    client = await connect(endpoints, log);
    state = new StateLayer(client, config.etcdPrefix === '/' ? '' : config.etcdPrefix, log.child({ part: 'state' }));
    await state.grantLease('healthy', config.healthyTtl);
    await state.grantLease('alive', config.aliveTtl);
    // As in the reference: api and worker nodes carry the cluster address, scheduler and reaper nodes an empty spec.
    createdResources = await registerNode(state, config.name, roles, (role) =>
      node.clusterAddress && (role === 'api' || role === 'worker') ? { address: node.clusterAddress } : {},
    );
    log.info({ roles: [...roles], plugins: plugins.map((p) => p.name) }, 'node registered');
    await host.start({ config, node, state, log, metrics });
  };

  // A signal during start-up stops what has started instead of waiting for the rest.
  const outcome = await Promise.race([
    startup().then(
      () => ({ ok: true as const }),
      (err: unknown) => ({ ok: false as const, err }),
    ),
    signalled.then((signal) => ({ signal })),
  ]);
  if ('signal' in outcome) {
    log.info({ signal: outcome.signal }, 'signal during start-up');
    host.abort();
    await shutdown(outcome.signal);
    return EXIT_OK;
  }
  if (!outcome.ok) {
    const err = outcome.err as Error;
    const known = err instanceof StartupError || err instanceof NameTakenError || err instanceof ConfigError;
    const msg = known ? err.message : `startup failed: ${err.message}`;
    process.stderr.write(`kith agent: ${msg.split('\n')[0]}\n`);
    log.error({ err }, 'startup failed');
    // Undo what was done: plugins, node resources, leases (their keys vanish), embedded etcd.
    for (const key of createdResources) await state?.delete(key).catch(() => undefined);
    await shutdown('startup-failure').catch(() => undefined);
    return EXIT_STARTUP;
  }
  log.info('agent ready');

  const signal = await signalled;
  await shutdown(signal);
  return EXIT_OK;
}
