import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import type { AgentConfig } from './config.js';
import type { StateLayer } from './state.js';

/** The plugins of SPEC §1.1, in the order the agent starts them (and stops them in reverse). */
export const PLUGIN_NAMES = ['worker', 'dns', 'api', 'scheduler', 'reaper', 'replicaset'] as const;
export type PluginName = (typeof PLUGIN_NAMES)[number];

/** Node types of SPEC §2; each has heartbeats and a `resource/node.<role>/<name>`. */
export const ROLES = ['api', 'worker', 'scheduler', 'reaper'] as const;
export type Role = (typeof ROLES)[number];

export interface NodeIdentity {
  readonly name: string;
  /** The node types this agent registered, from its plugins. */
  readonly roles: ReadonlySet<Role>;
  /**
   * IPv4 address pods use to reach this agent. From `--cluster-address`, or set
   * by the worker plugin (which starts first) to its pod network's gateway.
   */
  clusterAddress?: string;
}

export interface PluginContext {
  readonly config: AgentConfig;
  readonly node: NodeIdentity;
  readonly state: StateLayer;
  readonly log: Logger;
  readonly metrics: Registry;
}

export interface RunningPlugin {
  stop(): Promise<void>;
}

export interface Plugin {
  readonly name: PluginName;
  /** The node type this plugin registers, if any. */
  readonly role?: Role;
  /**
   * Checks, before the agent writes anything to etcd, what can be checked
   * early (that its ports are free); throws a StartupError naming the flag.
   */
  preflight?(config: AgentConfig): Promise<void>;
  start(ctx: PluginContext): Promise<RunningPlugin>;
}
