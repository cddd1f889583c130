import { apiFlags } from '../api/flags.js';
import { dnsFlags } from '../dns/flags.js';
import type { FlagGroup, FlagSet, FlagValues } from './flags.js';
import type { Plugin, PluginName } from './plugin.js';
import { schedulerFlags } from './scheduler/flags.js';
import { workerFlags } from './worker/flags.js';

/**
 * Every plugin the agent knows: its flags (read by every start, so that
 * `--help` and the parser know them all) and its code, loaded only when enabled.
 * Each plugin folder exports one `Plugin` and, if it has options, its `flags.ts`.
 */
export interface PluginEntry {
  readonly flags?: FlagGroup;
  // The host hands every plugin the whole merged config, which holds its own flags' values.
  load(): Promise<Plugin<any>>;
}

const entry = <F extends FlagSet>(flags: FlagGroup<F> | undefined, load: () => Promise<Plugin<FlagValues<F>>>): PluginEntry => ({ flags, load });

/** The options of every plugin's flags, as the merged config holds them. */
export type PluginsConfig = FlagValues<typeof workerFlags.flags> &
  FlagValues<typeof dnsFlags.flags> &
  FlagValues<typeof apiFlags.flags> &
  FlagValues<typeof schedulerFlags.flags>;

export const PLUGINS: Partial<Record<PluginName, PluginEntry>> = {
  worker: entry(workerFlags, async () => (await import('./worker/plugin.js')).workerPlugin),
  dns: entry(dnsFlags, async () => (await import('../dns/plugin.js')).dnsPlugin),
  api: entry(apiFlags, async () => (await import('../api/plugin.js')).apiPlugin),
  scheduler: entry(schedulerFlags, async () => (await import('./scheduler/plugin.js')).schedulerPlugin),
  reaper: entry(undefined, async () => (await import('./reaper/plugin.js')).reaperPlugin),
  replicaset: entry(undefined, async () => (await import('./replicaset/plugin.js')).replicaSetPlugin),
};
