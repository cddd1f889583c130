/** The REST client of the `kith` commands: Node's fetch, problem details turned into one-line errors. */

/** An answer of the API that is not a success; `message` is the problem's detail. */
export class ApiError extends Error {
  constructor(
    message: string,
    readonly status: number,
    readonly type?: string,
  ) {
    super(message);
  }
}

export interface Answer {
  status: number;
  body: unknown;
  headers: Headers;
}

const REQUEST_TIMEOUT_MS = 30_000;

export class ApiClient {
  readonly base: URL;

  constructor(
    base: string,
    /** The bearer token sent with every request, and where it came from (agent/cli/token-source.ts). */
    private readonly auth: { token?: string; source: string } = { source: 'no token' },
  ) {
    this.base = new URL(base);
  }

  /** `/resources/<a>/<b>` with each segment escaped. */
  static path(...segments: string[]): string {
    return `/${segments.map(encodeURIComponent).join('/')}`;
  }

  /** Sends a request; any status but 2xx throws an ApiError carrying the problem detail. */
  async request(method: string, path: string, body?: unknown, headers: Record<string, string> = {}): Promise<Answer> {
    const url = new URL(path, this.base);
    if (this.auth.token) headers = { authorization: `Bearer ${this.auth.token}`, ...headers };
    let res: Response;
    try {
      res = await fetch(url, {
        method,
        headers: body === undefined ? headers : { 'content-type': 'application/json', ...headers },
        body: body === undefined ? undefined : JSON.stringify(body),
        signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
      });
    } catch (err) {
      const cause = (err as { cause?: { code?: string; message?: string } }).cause;
      const why = cause?.code ?? cause?.message ?? (err as Error).message;
      throw new ApiError(`cannot reach the API at ${this.base.origin} (${why}); is the agent running with the api plugin? (--api or KITH_API)`, 0);
    }
    const text = await res.text();
    let parsed: unknown = undefined;
    if (text !== '') {
      try {
        parsed = JSON.parse(text);
      } catch {
        parsed = text;
      }
    }
    if (res.ok) return { status: res.status, body: parsed, headers: res.headers };
    this.fail(method, url, res, text, parsed);
  }

  /**
   * Opens a streaming GET (a watch) and gives back the response to read; a
   * status but 2xx throws as request() does. No timeout: `signal` ends it.
   */
  async open(path: string, headers: Record<string, string>, signal: AbortSignal): Promise<Response> {
    const url = new URL(path, this.base);
    if (this.auth.token) headers = { authorization: `Bearer ${this.auth.token}`, ...headers };
    let res: Response;
    try {
      res = await fetch(url, { headers, signal });
    } catch (err) {
      if (signal.aborted) throw err;
      const cause = (err as { cause?: { code?: string; message?: string } }).cause;
      const why = cause?.code ?? cause?.message ?? (err as Error).message;
      throw new ApiError(`cannot reach the API at ${this.base.origin} (${why}); is the agent running with the api plugin? (--api or KITH_API)`, 0);
    }
    if (res.ok) return res;
    const text = await res.text();
    let parsed: unknown = text;
    try {
      parsed = JSON.parse(text);
    } catch {
      /* not JSON */
    }
    this.fail('GET', url, res, text, parsed);
  }

  private fail(method: string, url: URL, res: Response, text: string, parsed: unknown): never {
    const p = parsed as { detail?: unknown; type?: unknown } | undefined;
    if (res.status === 401 || res.status === 403) {
      const detail = p && typeof p.detail === 'string' ? p.detail : `HTTP ${res.status}`;
      const todo = res.status === 401 ? 'give a valid token with --token or KITH_TOKEN' : 'use a token with a stronger role';
      throw new ApiError(`the API refused the token from ${this.auth.source}: ${detail}; ${todo}`, res.status, typeof p?.type === 'string' ? p.type : undefined);
    }
    if (p && typeof p === 'object' && typeof p.detail === 'string') {
      throw new ApiError(p.detail, res.status, typeof p.type === 'string' ? p.type : undefined);
    }
    throw new ApiError(`${method} ${url.pathname}: HTTP ${res.status} ${text.split('\n')[0]!.slice(0, 200)}`.trim(), res.status);
  }
}
