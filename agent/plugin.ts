import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import type { Role } from '../api/schemas.js';
import type { EventRecorder } from './events.js';
import type { CoreConfig } from './flags.js';
import type { StateLayer } from './state.js';

/** The plugins of SPEC §1.1, in the order the agent starts them when nothing else orders them. */
export const PLUGIN_NAMES = ['worker', 'dns', 'api', 'scheduler', 'reaper', 'replicaset'] as const;
export type PluginName = (typeof PLUGIN_NAMES)[number];

/**
 * What one plugin gives the others through the node's identity:
 * `clusterAddress`, the address pods reach this agent at (the worker sets it
 * to its pod network's gateway when `--cluster-address` is not given).
 */
export type Capability = 'clusterAddress';

export interface NodeIdentity {
  readonly name: string;
  /** The node types this agent registered, from its plugins. */
  readonly roles: ReadonlySet<Role>;
  /** IPv4 address pods use to reach this agent: `--cluster-address`, or set by the plugin that provides it. */
  clusterAddress?: string;
}

/** What a plugin is given: the agent's config with its own flags, the node, the state layer, a logger, the metrics, and where it records events. */
export interface PluginContext<C extends object = object> {
  readonly config: CoreConfig & C;
  readonly node: NodeIdentity;
  readonly state: StateLayer;
  readonly log: Logger;
  readonly metrics: Registry;
  readonly events: EventRecorder;
}

export interface RunningPlugin {
  stop(): Promise<void>;
}

export interface Plugin<C extends object = object> {
  readonly name: PluginName;
  /** The node type this plugin registers, if any. */
  readonly role?: Role;
  /** What it sets on the node identity while it starts. */
  readonly provides?: readonly Capability[];
  /** What it reads from the node identity: it starts after every enabled plugin that provides it. */
  readonly needs?: readonly Capability[];
  /**
   * Checks, before the agent writes anything to etcd, what can be checked
   * early (that its ports are free); throws a StartupError naming the flag.
   */
  preflight?(config: CoreConfig & C): Promise<void>;
  start(ctx: PluginContext<C>): Promise<RunningPlugin>;
}
