import type { Etcd3 } from 'etcd3';
import type { Logger } from 'pino';
import { collectDefaultMetrics, Registry } from 'prom-client';
import type { Role } from '../api/schemas.js';
import { agentUsage, parseAgentConfig, rememberName, type AgentConfig } from './config.js';
import { settleWithin } from './deadline.js';
import { EmbeddedEtcd } from './embedded-etcd.js';
import { EventRecorder } from './events.js';
import { ConfigError, StartupError } from './errors.js';
import { connectEtcd, ETCD_CALL_DEADLINE_MS } from './etcd.js';
import { makeDirs } from './fs.js';
import { PluginHost } from './host.js';
import { createLogger } from './log.js';
import { nodeId, thisInstance } from './identity.js';
import { registerNode } from './node.js';
import type { NodeIdentity, Plugin } from './plugin.js';
import { PLUGINS } from './plugins.js';
import { StateLayer } from './state.js';

/** Exit codes of `kith agent`. */
export const EXIT_OK = 0;
export const EXIT_STARTUP = 2;

/** The enabled plugins' code; a plugin this build lacks is refused when named, skipped under `all`. */
async function loadPlugins(config: AgentConfig): Promise<Plugin[]> {
  const out: Plugin[] = [];
  for (const name of config.plugins) {
    const entry = PLUGINS[name];
    if (!entry) {
      if (!config.pluginsAll) throw new ConfigError(`--plugins '${name}': this build of kith has no such plugin yet`);
      continue;
    }
    out.push(await entry.load());
  }
  return out;
}

/**
 * One run of the agent: `start` connects to etcd (or starts its own),
 * registers the node and starts the plugins; `drain` undoes it in reverse.
 * Whatever `start` did before it failed, `drain` undoes.
 */
class Agent {
  private readonly roles: Set<Role>;
  readonly node: NodeIdentity;
  readonly host: PluginHost;
  private embedded: EmbeddedEtcd | undefined;
  private client: Etcd3 | undefined;
  private state: StateLayer | undefined;
  /** Node resources this start created; removed again if start-up fails, so a failed start writes nothing. */
  private createdResources: string[] = [];
  private draining: Promise<void> | undefined;
  private started = false;
  private events: EventRecorder | undefined;

  constructor(
    private readonly config: AgentConfig,
    private readonly plugins: Plugin[],
    private readonly log: Logger,
  ) {
    this.roles = new Set(plugins.flatMap((p) => (p.role ? [p.role] : [])));
    this.node = { name: config.name, roles: this.roles, clusterAddress: config.clusterAddress };
    this.host = new PluginHost(plugins, log);
  }

  async start(): Promise<void> {
    const { config, log } = this;
    // A busy port fails the start before anything is written (not after the worker claimed a subnet).
    await this.host.preflight(config);
    try {
      makeDirs(config.dataDir);
    } catch (err) {
      throw new StartupError(`--data-dir '${config.dataDir}': cannot create it (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
    }
    let endpoints = config.etcdEndpoints;
    if (!endpoints || endpoints.length === 0) {
      this.embedded = new EmbeddedEtcd(config.dataDir, log);
      endpoints = [await this.embedded.start()];
    }
    this.client = await connectEtcd(endpoints, log, { ca: config.etcdCa, cert: config.etcdCert, key: config.etcdKey });
    const state = new StateLayer(this.client, config.etcdPrefix === '/' ? '' : config.etcdPrefix, log.child({ part: 'state' }));
    this.state = state;
    await state.grantLease('healthy', config.healthyTtl);
    await state.grantLease('alive', config.aliveTtl);
    // As in the reference: api and worker nodes carry the cluster address, scheduler and reaper nodes an empty spec.
    const me = thisInstance(nodeId(config.dataDir), (config as { hostAddress?: string }).hostAddress);
    const registration = await registerNode(
      state,
      config.name,
      this.roles,
      (role) => (this.node.clusterAddress && (role === 'api' || role === 'worker') ? { address: this.node.clusterAddress } : {}),
      me,
    );
    this.createdResources = registration.created;
    if (registration.tookOver) log.warn({ previous: registration.tookOver, node: me.id }, 'took over from the previous run of this node, which ended without a stop');
    log.info({ roles: [...this.roles], plugins: this.plugins.map((p) => p.name) }, 'node registered');
    const metrics = new Registry();
    collectDefaultMetrics({ register: metrics });
    this.events = new EventRecorder(state, config.name, config.eventTtl, log.child({ part: 'events' }), metrics);
    await this.host.start({ config, node: this.node, state, log, metrics, events: this.events });
    this.started = true;
    for (const role of this.roles) {
      this.events.record(
        registration.tookOver
          ? { type: 'Warning', object: `node.${role}/${config.name}`, reason: 'Restarted', message: 'started again after a run that ended without a stop; took its place over' }
          : { object: `node.${role}/${config.name}`, reason: 'Started', message: `started with plugins ${this.plugins.map((p) => p.name).join(', ')}` },
      );
    }
  }

  /** A started worker with `--keep-pods` leaves its alive lease (claims, pod names) for the next start to take over. */
  private get keepsAliveLease(): boolean {
    return this.started && this.roles.has('worker') && (this.config as { keepPods?: boolean }).keepPods === true;
  }

  /** Removes the node resources a failed start created, then drains. */
  async undoStart(): Promise<void> {
    for (const key of this.createdResources) await this.state?.delete(key).catch(() => undefined);
    await this.drain('startup-failure').catch(() => undefined);
  }

  /** SPEC §1.1: revoke the healthy lease, stop the plugins in reverse, revoke the alive lease (its keys vanish). */
  drain(signal: string): Promise<void> {
    this.draining ??= (async () => {
      const { log, state } = this;
      log.info({ signal }, 'shutting down');
      if (this.started) for (const role of this.roles) this.events?.record({ object: `node.${role}/${this.config.name}`, reason: 'Stopping', message: `stopping on ${signal}` });
      // Each etcd step is bounded: with etcd gone, the leases expire on their own.
      await this.bounded(state?.revokeLease('healthy'), 'revoking the healthy lease');
      await this.host.stop();
      // What the plugins saw last (a pod's end on a drain) is written while the leases still hold.
      await this.bounded(this.events?.close(), 'writing the last events');
      // --keep-pods: the pods left running keep their claims and names, on the alive lease, until the next start takes it over.
      if (this.keepsAliveLease) log.warn({ aliveTtl: this.config.aliveTtl }, 'left the alive lease to run out: the pods left running keep their names until the next start adopts them');
      else await this.bounded(state?.revokeLease('alive'), 'revoking the alive lease');
      await state?.close();
      this.client?.close();
      await this.embedded?.stop();
      log.info('stopped');
    })();
    return this.draining;
  }

  private async bounded(p: Promise<void> | undefined, what: string): Promise<void> {
    const failed = p?.catch((err: unknown) => this.log.warn({ err }, `${what} failed`));
    if ((await settleWithin(failed, ETCD_CALL_DEADLINE_MS)) === 'timeout') this.log.warn(`${what} timed out`);
  }
}

/** `kith agent`: runs until SIGTERM or SIGINT. Resolves with the process exit code. */
export async function runAgent(argv: string[]): Promise<number> {
  if (argv.includes('--help') || argv.includes('-h')) {
    process.stdout.write(agentUsage());
    return EXIT_OK;
  }
  let config: AgentConfig;
  let plugins: Plugin[];
  try {
    config = parseAgentConfig(argv);
    plugins = await loadPlugins(config);
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

  const agent = new Agent(config, plugins, log);
  // `on`, not `once`: a listener must stay, or execa re-sends the signal to
  // the agent while a child (podman, iptables) runs and the drain is skipped.
  // A second signal during the drain is ignored.
  const signalled = new Promise<string>((resolve) => {
    process.on('SIGTERM', () => resolve('SIGTERM'));
    process.on('SIGINT', () => resolve('SIGINT'));
  });

  // A signal during start-up stops what has started instead of waiting for the rest.
  const outcome = await Promise.race([
    agent.start().then(
      () => ({ ok: true as const }),
      (err: unknown) => ({ ok: false as const, err }),
    ),
    signalled.then((signal) => ({ signal })),
  ]);
  if ('signal' in outcome) {
    log.info({ signal: outcome.signal }, 'signal during start-up');
    agent.host.abort();
    await agent.drain(outcome.signal);
    return EXIT_OK;
  }
  if (!outcome.ok) {
    const err = outcome.err as Error;
    const msg = err instanceof StartupError ? err.message : `startup failed: ${err.message}`;
    process.stderr.write(`kith agent: ${msg.split('\n')[0]}\n`);
    log.error({ err }, 'startup failed');
    await agent.undoStart();
    return EXIT_STARTUP;
  }
  log.info('agent ready');

  await agent.drain(await signalled);
  return EXIT_OK;
}
