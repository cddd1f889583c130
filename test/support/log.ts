import { pino } from 'pino';

/** A logger for tests: silent unless KITH_TEST_LOG is set. */
export const testLog = pino({ level: process.env.KITH_TEST_LOG ?? 'silent' });
