import { timingSafeEqual } from 'node:crypto';

/**
 * The API's access rules, as pure functions the auth middleware in app.ts
 * applies: which credential a request carries, which scope it grants, and —
 * without tokens — which Host and Origin a request may come with.
 */

/** Tokens by scope: admin changes things, readOnly reads, notify only posts event notifications. */
export interface ApiTokens {
  admin: string[];
  readOnly: string[];
  notify: string[];
  /** Anything configured switches auth on, even entries that turned out empty (that lets nobody in). */
  required: boolean;
}

export type Scope = 'admin' | 'readOnly' | 'notify';

export function tokenMatches(given: string, allowed: string[]): boolean {
  const g = Buffer.from(given);
  return allowed.some((t) => {
    const b = Buffer.from(t);
    return b.length === g.length && timingSafeEqual(b, g);
  });
}

/** The scope a token grants, or null for an unknown one. Admin wins if a token is listed twice. */
export function scopeOf(token: string, tokens: { admin: string[]; readOnly: string[]; notify?: string[] }): Scope | null {
  if (tokenMatches(token, tokens.admin)) return 'admin';
  if (tokenMatches(token, tokens.readOnly)) return 'readOnly';
  if (tokenMatches(token, tokens.notify ?? [])) return 'notify';
  return null;
}

/** The event notification webhooks: the only routes a notify token reaches, and the only ones that take basic auth. */
export const isNotifyPath = (path: string) => path === '/v1/notify' || /^\/v1\/datasources\/[^/]+\/notify$/.test(path);

/**
 * The token a request carries: `Authorization: Bearer <token>`, or — where
 * `allowBasic` (the notify webhooks: SNS and most webhook senders can only
 * send basic auth) — `Authorization: Basic base64(<any user>:<token>)`.
 */
export function credentialOf(header: string | undefined, allowBasic: boolean): string | undefined {
  if (!header) return undefined;
  const bearer = /^\s*Bearer\s+(.+)$/i.exec(header)?.[1]?.trim();
  if (bearer) return bearer;
  if (!allowBasic) return undefined;
  const basic = /^\s*Basic\s+([A-Za-z0-9+/=_-]+)\s*$/i.exec(header)?.[1];
  if (!basic) return undefined;
  const decoded = Buffer.from(basic, 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  // The user name is free (SNS requires one); the password is the token.
  const password = colon >= 0 ? decoded.slice(colon + 1) : '';
  return password || undefined;
}

/** Split a Host header (or URL host) into a lower-case name and an optional port; null when malformed. */
export function splitHost(host: string): { name: string; port: string | null } | null {
  const h = host.trim().toLowerCase();
  const m = /^(\[[0-9a-f:.]+\]|[^:[\]]+)(?::(\d{1,5}))?$/.exec(h);
  if (!m) return null;
  return { name: m[1]!, port: m[2] ?? null };
}

function isLoopbackName(name: string): boolean {
  if (name === 'localhost' || name === '[::1]') return true;
  const octets = /^127\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(name);
  return Boolean(octets && octets.slice(1).every((o) => Number(o) <= 255));
}

/** Parse S3CH_ALLOWED_HOSTS (validated by schemas/config.ts) into entries to match. */
export function parseAllowedHosts(spec: string): Array<{ name: string; port: string | null }> {
  return spec
    .split(',')
    .map((e) => e.trim())
    .filter(Boolean)
    .map((e) => splitHost(e))
    .filter((e): e is { name: string; port: string | null } => e !== null);
}

/**
 * Without tokens, only a loopback Host (any port) or a configured one is
 * answered: a page whose own name was rebound to 127.0.0.1 (DNS rebinding)
 * still sends its own name as Host.
 */
export function hostAllowed(host: string, allowed: Array<{ name: string; port: string | null }>): boolean {
  const h = splitHost(host);
  if (!h) return false;
  if (isLoopbackName(h.name)) return true;
  return allowed.some((a) => a.name === h.name && (a.port === null || a.port === h.port));
}

/**
 * Whether a browser request comes from another origin than the one it is
 * sent to: an `Origin` whose host differs from the request's Host (or
 * `Origin: null`), or, without Origin, `Sec-Fetch-Site` other than
 * same-origin/none. Requests from non-browser clients carry neither header.
 */
export function foreignOrigin(headers: { origin?: string; secFetchSite?: string }, host: string): string | null {
  const site = headers.secFetchSite?.trim().toLowerCase();
  if (headers.origin !== undefined) {
    let o: URL;
    try {
      o = new URL(headers.origin);
    } catch {
      return `Origin '${headers.origin}'`;
    }
    if (o.origin === 'null' || (o.protocol !== 'http:' && o.protocol !== 'https:')) return `Origin '${headers.origin}'`;
    const h = splitHost(host);
    const defaultPort = (p: string) => (p === 'https:' ? '443' : '80');
    const originPort = o.port || defaultPort(o.protocol);
    // A Host without a port means the scheme's default, whichever scheme a TLS proxy in front terminated.
    const hostPort = h?.port ?? defaultPort(o.protocol);
    if (!h || h.name !== o.hostname.toLowerCase() || hostPort !== originPort) return `Origin '${headers.origin}'`;
    return null;
  }
  if (site && site !== 'same-origin' && site !== 'none') return `Sec-Fetch-Site '${site}'`;
  return null;
}

/** `S3CH_API_TOKENS`: comma-separated; no prefix or `admin:` = admin, `ro:` = read-only, `notify:` = notifications only. */
export function parseTokens(spec: string): ApiTokens {
  const admin: string[] = [];
  const readOnly: string[] = [];
  const notify: string[] = [];
  // Anything configured means auth is on, even if every entry turned out empty: that lets nobody in, never everybody.
  const required = spec.split(',').some((entry) => entry.trim() !== '');
  for (const raw of spec.split(',').map((t) => t.trim()).filter(Boolean)) {
    const token = raw.replace(/^(ro|admin|notify):/, '').trim();
    if (!token) continue;
    if (raw.startsWith('ro:')) readOnly.push(token);
    else if (raw.startsWith('notify:')) notify.push(token);
    else admin.push(token);
  }
  return { admin, readOnly, notify, required };
}
