import { OWN_WRITE_WAIT_MS, type ResourceFeed } from './feed.js';
import type { ApiMetrics } from './metrics.js';
import type { Listed, ResourceStore } from './store.js';

/**
 * `GET /resources/:type`, answered from the API node's feed (its watch of
 * `resource/`) as the Kubernetes API server answers from its watch cache,
 * instead of a range, a parse and a schema check of every resource in etcd
 * per request. A list shows every write this node has made (read-your-writes):
 * it waits, bounded, for the feed to reach the last of them, and reads etcd
 * when the feed has not synced, is rescanning, or does not get there in time.
 */
export interface ListDeps {
  feed: ResourceFeed;
  store: ResourceStore;
  metrics: ApiMetrics;
  /** How long a list waits for the feed to reach this node's last write. */
  waitMs?: number;
}

export async function listResources(type: string, deps: ListDeps): Promise<Listed> {
  const { feed, store, metrics } = deps;
  if (feed.live && (await feed.reached(store.written, deps.waitMs ?? OWN_WRITE_WAIT_MS)) && feed.live) {
    const { resources, revision } = feed.list(type);
    // With one read of no key beside the heartbeats: a list while etcd is away is 503 etcd-unavailable, as it was when it read etcd.
    const [derived] = await Promise.all([store.derive(resources), store.etcdAnswers()]);
    metrics.lists.inc({ from: 'view' });
    return { resources: derived, revision };
  }
  metrics.lists.inc({ from: 'etcd' });
  return store.list(type);
}
