import { z } from 'zod';
import { defineFlags, millis, type FlagValues } from '../flags.js';

/** The scheduler's flags (README.md). */
export const schedulerFlags = defineFlags('scheduler', {
  schedulerRetryMs: {
    flag: 'scheduler-retry-ms',
    schema: millis,
    env: 'KITH_SCHEDULER_RETRY_MS',
    default: '10000',
    help: 'wait before trying an unschedulable pod again, ms',
  },
  schedulerMaxTries: {
    flag: 'scheduler-max-tries',
    schema: z.coerce.number().int().min(1).max(1000),
    env: 'KITH_SCHEDULER_MAX_TRIES',
    default: '6',
    help: 'tries (or hand-backs by workers) before a pod is abandoned',
  },
});

export type SchedulerConfig = FlagValues<typeof schedulerFlags.flags>;
