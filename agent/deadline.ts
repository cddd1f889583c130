/**
 * Waits for `p` at most `ms`: 'settled' when it resolved or rejected in time
 * (a rejection is not rethrown), else 'timeout'. Every wait of a drain is
 * bounded this way, so an etcd or a runtime that stops answering never keeps
 * the agent from stopping.
 */
export async function settleWithin(p: Promise<unknown> | undefined, ms: number): Promise<'settled' | 'timeout'> {
  let timer: NodeJS.Timeout | undefined;
  const limit = new Promise<'timeout'>((r) => {
    timer = setTimeout(() => r('timeout'), ms);
    timer.unref();
  });
  try {
    return await Promise.race([Promise.resolve(p).then(() => 'settled' as const, () => 'settled' as const), limit]);
  } finally {
    clearTimeout(timer);
  }
}
