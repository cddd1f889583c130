import { Counter, Gauge, Histogram, type Registry } from 'prom-client';

/** The API's request metrics, by method, route (the router's pattern) and status. */
export class ApiMetrics {
  readonly requests: Counter<'method' | 'route' | 'status'>;
  readonly duration: Histogram<'method' | 'route' | 'status'>;
  readonly watchStreams: Gauge;
  readonly watchDropped: Counter;
  readonly lists: Counter<'from'>;

  constructor(private readonly registry: Registry) {
    this.requests = new Counter({
      name: 'kith_api_requests_total',
      help: 'HTTP requests answered by the API, by method, route and status',
      labelNames: ['method', 'route', 'status'],
      registers: [registry],
    });
    this.duration = new Histogram({
      name: 'kith_api_request_duration_seconds',
      help: 'Time to answer an HTTP request, by method, route and status',
      labelNames: ['method', 'route', 'status'],
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
      registers: [registry],
    });
    this.watchStreams = new Gauge({ name: 'kith_api_watch_streams', help: 'Watch streams (?watch=1) open now', registers: [registry] });
    this.watchDropped = new Counter({
      name: 'kith_api_watch_dropped_total',
      help: 'Watch streams ended because their client read too slowly (more unsent than --api-watch-max-events or --api-watch-max-bytes)',
      registers: [registry],
    });
    this.lists = new Counter({
      name: 'kith_api_lists_total',
      help: 'Lists (GET /resources/:type) answered, by where from: view (the API node\'s feed) or etcd (before the feed has synced or caught up)',
      labelNames: ['from'],
      registers: [registry],
    });
  }

  observe(method: string, route: string, status: number, seconds: number): void {
    const labels = { method, route, status: String(status) };
    this.requests.inc(labels);
    this.duration.observe(labels, seconds);
  }

  unregister(): void {
    this.registry.removeSingleMetric('kith_api_requests_total');
    this.registry.removeSingleMetric('kith_api_request_duration_seconds');
    this.registry.removeSingleMetric('kith_api_watch_streams');
    this.registry.removeSingleMetric('kith_api_watch_dropped_total');
    this.registry.removeSingleMetric('kith_api_lists_total');
  }
}
