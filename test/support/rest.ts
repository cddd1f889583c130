/** A small JSON caller for the REST API in benches: status and parsed body, a 10 s deadline per call. */
export function restCaller(base: string) {
  return async (method: string, path: string, body?: unknown): Promise<{ status: number; json: { state?: string } | undefined }> => {
    const r = await fetch(`${base}${path}`, {
      method,
      headers: body ? { 'content-type': 'application/json' } : {},
      body: body ? JSON.stringify(body) : undefined,
      signal: AbortSignal.timeout(10_000),
    });
    return { status: r.status, json: r.status === 204 ? undefined : ((await r.json()) as { state?: string }) };
  };
}
