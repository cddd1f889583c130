import type { Logger } from 'pino';
import { probedPorts, type Probe, type PortSpec } from '../api/schemas.js';
import { bridgeNetfilterProblem, Iptables } from './iptables.js';

/** The part of a pod the firewall reads. */
export interface FirewalledPod {
  name: string;
  spec: { ports?: readonly PortSpec[]; containers?: readonly { readiness?: Probe; liveness?: Probe }[] };
}

/** Where the pod lives: its network's gateway is the source of the worker's own probes. */
export interface PodNetwork {
  gateway: string;
}

const podFirewall = (pod: FirewalledPod, ip: string, net?: PodNetwork) => {
  const probed = probedPorts(pod.spec.containers ?? []);
  return { ip, ports: pod.spec.ports ?? [], ...(net && probed.length ? { probes: { from: net.gateway, ports: probed } } : {}) };
};

export interface NodeFirewallOptions {
  /** `--iptables-chain`. */
  chain: string;
  log: Logger;
  /** Command prefix (tests: run inside a test host). */
  prefix?: readonly string[];
}

/**
 * The firewall of one worker node for its whole life: at start it checks
 * bridge netfilter, removes what an unclean stop left and creates the chains;
 * `hooks` add a pod's rules before its containers start and remove them
 * before the pod is removed; `stop()` removes the chains.
 */
export class NodeFirewall {
  private constructor(
    readonly iptables: Iptables,
    /** Why bridged traffic would bypass iptables, or undefined when it does not. */
    readonly bridgeProblem: string | undefined,
    private readonly log: Logger,
  ) {}

  static async start(opts: NodeFirewallOptions): Promise<NodeFirewall> {
    const iptables = new Iptables({ chain: opts.chain, prefix: opts.prefix, log: opts.log });
    const bridgeProblem = await bridgeNetfilterProblem(opts.prefix);
    if (bridgeProblem) opts.log.error({ reason: bridgeProblem }, 'bridge netfilter is off: pods with ports will be refused');
    const stale = await iptables.removeStale();
    if (stale > 0) opts.log.warn({ chain: opts.chain, commands: stale }, 'removed firewall chains left by an unclean stop');
    await iptables.setUp();
    opts.log.info({ chain: opts.chain }, 'pod firewall chains ready');
    return new NodeFirewall(iptables, bridgeProblem, opts.log);
  }

  /** The worker's pod hooks: a throw from `podStarting` makes the pod `errored` with this message. */
  readonly hooks = {
    podStarting: async (pod: FirewalledPod, ip: string, net?: PodNetwork): Promise<void> => {
      const ports = pod.spec.ports ?? [];
      if (this.bridgeProblem && ports.length > 0) {
        throw new Error(`pod ${pod.name} declares ports, but their mapping and isolation would not hold on this node: ${this.bridgeProblem}`);
      }
      await this.iptables.applyPod(podFirewall(pod, ip, net));
    },
    podStopping: async (pod: FirewalledPod, ip: string, net?: PodNetwork): Promise<void> => {
      await this.iptables.removePod(podFirewall(pod, ip, net));
    },
  };

  /** Removes the node's chains (at stop, after every pod is gone). */
  async stop(): Promise<void> {
    await this.iptables.tearDown();
    this.log.info({ chain: this.iptables.chain }, 'pod firewall chains removed');
  }
}
