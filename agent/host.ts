import type { Logger } from 'pino';
import { PLUGIN_NAMES, type Plugin, type PluginContext, type RunningPlugin } from './plugin.js';

/** Starts plugins in the contract's order and stops them in reverse. */
export class PluginHost {
  private readonly running: { name: string; handle: RunningPlugin }[] = [];

  constructor(
    private readonly plugins: Plugin[],
    private readonly log: Logger,
  ) {}

  static ordered(plugins: Plugin[]): Plugin[] {
    return [...plugins].sort((a, b) => PLUGIN_NAMES.indexOf(a.name) - PLUGIN_NAMES.indexOf(b.name));
  }

  async start(ctx: PluginContext): Promise<void> {
    for (const plugin of PluginHost.ordered(this.plugins)) {
      const log = ctx.log.child({ plugin: plugin.name });
      const handle = await plugin.start({ ...ctx, log });
      this.running.push({ name: plugin.name, handle });
      log.info('plugin started');
    }
  }

  async stop(): Promise<void> {
    while (this.running.length > 0) {
      const { name, handle } = this.running.pop()!;
      try {
        await handle.stop();
        this.log.info({ plugin: name }, 'plugin stopped');
      } catch (err) {
        this.log.error({ plugin: name, err }, 'plugin failed to stop cleanly');
      }
    }
  }
}
