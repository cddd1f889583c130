import type { Logger } from 'pino';
import { PLUGIN_NAMES, type Plugin, type PluginContext, type RunningPlugin } from './plugin.js';

/**
 * The order plugins start in: a plugin that needs a capability starts after
 * every enabled plugin that provides it; otherwise in the order of
 * PLUGIN_NAMES. Stopping goes in reverse. Throws when needs form a cycle.
 */
export function startOrder<P extends Pick<Plugin, 'name' | 'provides' | 'needs'>>(plugins: readonly P[]): P[] {
  const byListed = [...plugins].sort((a, b) => PLUGIN_NAMES.indexOf(a.name) - PLUGIN_NAMES.indexOf(b.name));
  const out: P[] = [];
  const placed = new Set<P>();
  while (out.length < byListed.length) {
    const next = byListed.find(
      (p) => !placed.has(p) && (p.needs ?? []).every((cap) => byListed.every((q) => q === p || placed.has(q) || !(q.provides ?? []).includes(cap))),
    );
    if (!next) throw new Error(`plugins ${byListed.filter((p) => !placed.has(p)).map((p) => p.name).join(', ')} need each other`);
    placed.add(next);
    out.push(next);
  }
  return out;
}

/** Starts plugins in their start order and stops them in reverse. */
export class PluginHost {
  private readonly running: { name: string; handle: RunningPlugin }[] = [];
  private readonly ordered: Plugin[];
  private aborted = false;

  constructor(
    plugins: Plugin[],
    private readonly log: Logger,
  ) {
    this.ordered = startOrder(plugins);
  }

  /** Every plugin's early checks, before anything is written. */
  async preflight(config: PluginContext['config']): Promise<void> {
    for (const plugin of this.ordered) await plugin.preflight?.(config);
  }

  async start(ctx: PluginContext): Promise<void> {
    for (const plugin of this.ordered) {
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
