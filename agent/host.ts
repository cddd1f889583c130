import type { Logger } from 'pino';
import type { AgentConfig } from './config.js';
import { PLUGIN_NAMES, type Plugin, type PluginContext, type RunningPlugin } from './plugin.js';

/** Starts plugins in the contract's order and stops them in reverse. */
export class PluginHost {
  private readonly running: { name: string; handle: RunningPlugin }[] = [];
  private aborted = false;

  constructor(
    private readonly plugins: Plugin[],
    private readonly log: Logger,
  ) {}

  static ordered(plugins: Plugin[]): Plugin[] {
    return [...plugins].sort((a, b) => PLUGIN_NAMES.indexOf(a.name) - PLUGIN_NAMES.indexOf(b.name));
  }

  /** Every plugin's early checks, before anything is written. */
  async preflight(config: AgentConfig): Promise<void> {
    for (const plugin of PluginHost.ordered(this.plugins)) await plugin.preflight?.(config);
  }

  async start(ctx: PluginContext): Promise<void> {
    for (const plugin of PluginHost.ordered(this.plugins)) {
      if (this.aborted) return;
      const log = ctx.log.child({ plugin: plugin.name });
      const handle = await plugin.start({ ...ctx, log });
      // Stopped while this plugin was starting: stop it too.
      if (this.aborted) return void (await handle.stop().catch(() => undefined));
      this.running.push({ name: plugin.name, handle });
      log.info('plugin started');
    }
  }

  /** Starts no further plugin (a signal arrived during start-up). */
  abort(): void {
    this.aborted = true;
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
