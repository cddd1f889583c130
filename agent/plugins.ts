import type { Plugin, PluginName } from './plugin.js';

/** Every plugin the agent knows, loaded only when enabled. Each plugin folder exports one `Plugin`. */
export const PLUGINS: Partial<Record<PluginName, () => Promise<Plugin>>> = {
  worker: async () => (await import('./worker/plugin.js')).workerPlugin,
  scheduler: async () => (await import('./scheduler/plugin.js')).schedulerPlugin,
  reaper: async () => (await import('./reaper/plugin.js')).reaperPlugin,
  dns: async () => (await import('../dns/plugin.js')).dnsPlugin,
  api: async () => (await import('../api/plugin.js')).apiPlugin,
  replicaset: async () => (await import('./replicaset/plugin.js')).replicaSetPlugin,
};
