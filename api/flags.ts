import { z } from 'zod';
import { defineFlags, hostPort, list, type FlagValues } from '../agent/flags.js';

/** The api plugin's flags (README.md). */
export const apiFlags = defineFlags('api', {
  apiListen: { flag: 'api-listen', schema: list(hostPort).optional(), help: 'comma list of addr:port (default 127.0.0.1:8080 and <cluster-address>:80)' },
  apiAuth: { flag: 'api-auth', schema: z.enum(['token', 'none']), default: 'token', help: 'token: every request but /healthz and /readyz needs a bearer token; none: open to anyone (warned)' },
});

export type ApiConfig = FlagValues<typeof apiFlags.flags>;
