import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { nodeName } from '../api/schemas.js';
import { ConfigError } from './errors.js';
import { coreFlags, type CoreConfig, type Flag, type FlagGroup } from './flags.js';
import { makeDirs } from './fs.js';
import { generateName } from './names.js';
import { PLUGIN_NAMES, type PluginName } from './plugin.js';
import { PLUGINS, type PluginsConfig } from './plugins.js';

/**
 * `kith agent`'s config: the agent's own flags (agent/flags.ts) merged with
 * every plugin's (each plugin folder's `flags.ts`), from flags, then env, then
 * defaults. A plugin sees its own options by key; the core knows none of them.
 */

/** The merged config: the core's options and every plugin's (each plugin reads its own through its own type). */
export type AgentConfig = CoreConfig & PluginsConfig & { plugins: PluginName[] };

/** The core's group first, then each plugin's, in the order of PLUGIN_NAMES. */
export function flagGroups(): FlagGroup[] {
  const out: FlagGroup[] = [coreFlags];
  for (const name of PLUGIN_NAMES) {
    const g = PLUGINS[name]?.flags;
    if (g) out.push(g);
  }
  return out;
}

/** Every flag by config key; a key or flag declared twice is a defect of the build. */
function allFlags(groups: FlagGroup[]): Map<string, Flag> {
  const byKey = new Map<string, Flag>();
  const names = new Set<string>();
  for (const g of groups) {
    for (const [key, f] of Object.entries(g.flags)) {
      if (byKey.has(key) || names.has(f.flag)) throw new Error(`flag --${f.flag} (${key}) is declared twice`);
      byKey.set(key, f);
      names.add(f.flag);
    }
  }
  return byKey;
}

/** `kith agent --help`: every flag by group, with its default, env var and help line. */
export function agentUsage(groups = flagGroups()): string {
  const sections = groups.map((g) => {
    const rows = Object.values(g.flags).map((f) => {
      const left = `  --${f.flag} `.padEnd(26);
      const parts = [f.default === undefined ? '' : `default ${f.default}`, f.env ? `env ${f.env}` : ''].filter(Boolean);
      return `${left}${f.help}${parts.length ? ` (${parts.join(', ')})` : ''}`;
    });
    return `${g.title === 'agent' ? 'flags' : `${g.title} plugin flags`}:\n${rows.join('\n')}`;
  });
  return `usage: kith agent [flags]\n\n${sections.join('\n\n')}\n`;
}

/** Parses `kith agent` flags and env into a validated config, or throws a ConfigError naming the flag. */
export function parseAgentConfig(argv: string[], env: NodeJS.ProcessEnv = process.env): AgentConfig {
  const groups = flagGroups();
  const flags = allFlags(groups);
  let values: Record<string, string | boolean | undefined>;
  try {
    ({ values } = parseArgs({
      args: argv,
      options: Object.fromEntries([...flags.values()].map((f) => [f.flag, { type: f.boolean ? ('boolean' as const) : ('string' as const) }])),
      strict: true,
      allowPositionals: false,
    }));
  } catch (err) {
    throw new ConfigError((err as Error).message.split('\n')[0]!);
  }
  const raw = new Map<string, string>();
  const given = new Set<string>();
  for (const [key, f] of flags) {
    const typed = values[f.flag];
    const v = (typed === undefined ? undefined : String(typed)) ?? (f.env ? env[f.env] : undefined);
    if (v !== undefined) {
      raw.set(key, v);
      given.add(key);
    } else if (f.default !== undefined) raw.set(key, f.default);
  }
  if (!raw.has('name')) raw.set('name', generateName());
  for (const [key, f] of flags) if (f.defaultFromName && !raw.has(key)) raw.set(key, f.defaultFromName(raw.get('name')!));
  const fail = (key: string, message: string): never => {
    const shown = raw.has(key) ? ` '${raw.get(key)}'` : '';
    throw new ConfigError(`--${flags.get(key)?.flag ?? key}${shown}: ${message}`);
  };
  const config: Record<string, unknown> = {};
  for (const [key, f] of flags) {
    const parsed = f.schema.safeParse(raw.get(key));
    if (!parsed.success) fail(key, parsed.error.issues[0]!.message);
    else if (parsed.data !== undefined) config[key] = parsed.data;
  }
  for (const g of groups) {
    const bad = g.check?.(config as never);
    if (bad) fail(bad.key, bad.message);
  }
  const plugins = String(raw.get('plugins')).trim();
  const pluginsAll = plugins === 'all';
  const names = pluginsAll ? [...PLUGIN_NAMES] : plugins.split(',').map((s) => s.trim()).filter(Boolean);
  if (names.length === 0) fail('plugins', 'needs at least one plugin');
  const unknown = names.find((n) => !(PLUGIN_NAMES as readonly string[]).includes(n));
  if (unknown !== undefined) fail('plugins', `'${unknown}' is not a plugin; each is one of ${PLUGIN_NAMES.join(', ')}`);
  const c = Object.assign(config, { plugins: names as PluginName[], pluginsAll, given }) as unknown as AgentConfig;
  return c;
}

/** Fills the defaults that follow the node's name (`--iptables-chain`) where no flag or env gave them. */
function deriveDefaults(c: AgentConfig): void {
  const flags = allFlags(flagGroups());
  for (const [key, f] of flags) {
    if (f.defaultFromName && !c.given.has(key)) (c as unknown as Record<string, unknown>)[key] = f.defaultFromName(c.name);
  }
}

/**
 * The node's name when `--name` (or KITH_NAME) is not given: the one this
 * data dir remembers from an earlier start, else the random one just made,
 * which it then remembers. A restarted agent is the same node (its subnet,
 * its pods' names), not a new one each time. Returns a message for the log
 * when the name could not be remembered.
 */
export function rememberName(config: AgentConfig): string | undefined {
  if (config.given.has('name')) return undefined;
  const file = join(config.dataDir, 'node-name');
  try {
    const kept = readFileSync(file, 'utf8').trim();
    if (nodeName.safeParse(kept).success) {
      config.name = kept;
      // The defaults that follow the name follow it; given values stay.
      deriveDefaults(config);
      return undefined;
    }
  } catch {
    // none yet
  }
  try {
    makeDirs(config.dataDir);
    writeFileSync(file, `${config.name}\n`);
    return undefined;
  } catch (err) {
    return `could not remember the node name in ${file} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message}); the next start picks another`;
  }
}
