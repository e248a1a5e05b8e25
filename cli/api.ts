/** The CLI's HTTP client: every command goes through the API, never to Temporal or ClickHouse directly. */

export interface Problem {
  type?: string;
  title?: string;
  status?: number;
  detail?: string;
  errors?: Array<{ field: string; message: string }>;
}

/** The API answered with an error status. */
export class ApiResponseError extends Error {
  constructor(
    readonly status: number,
    readonly problem: Problem | null,
    readonly body: string,
  ) {
    super(problem?.detail ?? (body.trim() ? `HTTP ${status}: ${body.trim().slice(0, 500)}` : `HTTP ${status}`));
  }
}

/** The API could not be reached at all. */
export class UnreachableError extends Error {
  constructor(
    readonly url: string,
    readonly reason: string,
  ) {
    super(`the API is not reachable at ${url} (${reason})`);
  }
}

export interface ApiClientOptions {
  baseUrl: string;
  token?: string;
  fetch: typeof fetch;
}

export interface ApiResult<T> {
  status: number;
  body: T;
  /** The response text as received (printed by --json). */
  text: string;
}

function networkReason(err: unknown): string {
  const seen = new Set<unknown>();
  let e: unknown = err;
  let reason = (err as Error)?.message ?? String(err);
  // Node's fetch wraps the socket error: TypeError('fetch failed', { cause: Error('connect ECONNREFUSED ...') }).
  while (e && typeof e === 'object' && !seen.has(e)) {
    seen.add(e);
    const code = (e as { code?: unknown }).code;
    const msg = (e as Error).message;
    if (typeof code === 'string' && /^E[A-Z]+/.test(code)) return msg && msg.includes(code) ? msg : `${code}${msg ? `: ${msg}` : ''}`;
    if (msg && msg !== 'fetch failed') reason = msg;
    e = (e as { cause?: unknown }).cause;
  }
  return reason;
}

export class ApiClient {
  readonly baseUrl: string;

  constructor(private readonly opts: ApiClientOptions) {
    this.baseUrl = opts.baseUrl.replace(/\/+$/, '');
  }

  async request<T = any>(method: string, path: string, body?: { json: unknown } | { text: string; contentType: string }): Promise<ApiResult<T>> {
    const headers: Record<string, string> = { accept: 'application/json, application/problem+json' };
    if (this.opts.token) headers.authorization = `Bearer ${this.opts.token}`;
    const init: RequestInit = { method, headers };
    if (body && 'json' in body) {
      headers['content-type'] = 'application/json';
      init.body = JSON.stringify(body.json);
    } else if (body) {
      headers['content-type'] = body.contentType;
      init.body = body.text;
    }
    let res: Response;
    try {
      res = await this.opts.fetch(`${this.baseUrl}${path}`, init);
    } catch (err) {
      throw new UnreachableError(this.baseUrl, networkReason(err));
    }
    const text = await res.text();
    let parsed: unknown = undefined;
    if (text) {
      try {
        parsed = JSON.parse(text);
      } catch {
        parsed = undefined;
      }
    }
    if (!res.ok) {
      const problem = parsed && typeof parsed === 'object' && 'detail' in parsed ? (parsed as Problem) : null;
      throw new ApiResponseError(res.status, problem, text);
    }
    if (text && parsed === undefined) throw new ApiResponseError(res.status, { detail: `the API answered ${res.status} with a body that is not JSON: ${text.slice(0, 200)}` }, text);
    return { status: res.status, body: parsed as T, text };
  }
}
