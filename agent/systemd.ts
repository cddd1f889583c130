import { parseAgentConfig } from './config.js';

/**
 * `kith systemd-unit [agent flags]`: a unit that runs `kith agent` with
 * those flags, and (`--env`) the environment file it reads them from. The
 * flags are checked as the agent would check them, so a unit never starts
 * an agent that refuses its flags.
 */

export const ENV_FILE = '/etc/default/kith';

/** podman, iptables, ip and etcd live here on Debian; the reference's units missed them. */
const PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

/** Quotes one word for a systemd environment file (and the word splitting of `$VAR` in ExecStart). */
function word(s: string): string {
  if (/[\s"'\\$]/.test(s)) throw new Error(`'${s}' holds a space, quote or $: give it in ${ENV_FILE} by hand`);
  return s;
}

/** The agent's flags as one value of KITH_AGENT_FLAGS, after checking them. Throws a ConfigError naming a bad flag. */
function agentFlags(flags: string[]): string {
  parseAgentConfig(flags, {});
  return flags.map(word).join(' ');
}

/**
 * The unit, running the agent with `flags` unless the environment file says
 * otherwise. `node` and `main` are the absolute paths of the Node.js binary
 * and of kith's main.js.
 */
export function systemdUnit(node: string, main: string, flags: string[] = []): string {
  const given = agentFlags(flags);
  return `[Unit]
Description=kith node agent (pods, DNS and the cluster's REST API)
Wants=network-online.target
After=network-online.target

[Service]
Type=simple
Environment=PATH=${PATH}
Environment="KITH_AGENT_FLAGS=${given}"
EnvironmentFile=-${ENV_FILE}
ExecStart=${node} ${main} agent $KITH_AGENT_FLAGS
# SIGTERM drains (healthy lease, plugins, pods, firewall, alive lease); only the agent gets it,
# so the embedded etcd it owns and the pods' processes stay until it has drained.
KillMode=mixed
KillSignal=SIGTERM
TimeoutStopSec=120
Restart=on-failure
RestartSec=2s
LimitNOFILE=65536

[Install]
WantedBy=multi-user.target
`;
}

/** The environment file: the agent's flags, after checking them. Throws a ConfigError naming a bad flag. */
export function systemdEnv(flags: string[]): string {
  return `# Read by kith.service: the flags of 'kith agent' (kith agent --help lists them).\nKITH_AGENT_FLAGS="${agentFlags(flags)}"\n`;
}
