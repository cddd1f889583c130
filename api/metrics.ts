import { Counter, Histogram, type Registry } from 'prom-client';

/** The API's request metrics, by method, route (the router's pattern) and status. */
export class ApiMetrics {
  readonly requests: Counter<'method' | 'route' | 'status'>;
  readonly duration: Histogram<'method' | 'route' | 'status'>;

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
  }

  observe(method: string, route: string, status: number, seconds: number): void {
    const labels = { method, route, status: String(status) };
    this.requests.inc(labels);
    this.duration.observe(labels, seconds);
  }

  unregister(): void {
    this.registry.removeSingleMetric('kith_api_requests_total');
    this.registry.removeSingleMetric('kith_api_request_duration_seconds');
  }
}
