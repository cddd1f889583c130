import { z } from 'zod';
import { defineFlags, hostPort, list, millis, type FlagValues } from '../agent/flags.js';

/** The api plugin's flags (README.md). */
export const apiFlags = defineFlags('api', {
  apiListen: { flag: 'api-listen', schema: list(hostPort).optional(), help: 'comma list of addr:port (default 127.0.0.1:8080 and <cluster-address>:80)' },
  apiWatchHeartbeatMs: { flag: 'api-watch-heartbeat-ms', schema: millis, default: '15000', help: 'a watch stream sends a comment line this often, ms' },
  apiWatchMaxEvents: {
    flag: 'api-watch-max-events',
    schema: z.coerce.number().int().min(1).max(1_000_000),
    default: '1000',
    help: 'a watch stream whose client has not taken this many changes yet is ended (the client resumes with Last-Event-ID)',
  },
  apiWatchMaxBytes: {
    flag: 'api-watch-max-bytes',
    schema: z.coerce.number().int().min(1024).max(1024 * 1024 * 1024),
    default: String(4 * 1024 * 1024),
    help: 'the same, for this many bytes not yet sent',
  },
  apiAuth: { flag: 'api-auth', schema: z.enum(['token', 'none']), default: 'token', help: 'token: every request but /healthz and /readyz needs a bearer token; none: open to anyone (warned)' },
});

export type ApiConfig = FlagValues<typeof apiFlags.flags>;
