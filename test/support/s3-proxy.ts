import { createServer, request as httpRequest, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

/**
 * A transparent HTTP proxy in front of an S3 server (path-style requests).
 * It counts GetObject requests per key and lets a test answer some of them
 * itself (e.g. 503 SlowDown). Everything else is forwarded unchanged, Host
 * header included: SigV4 signed the host the client used (this proxy's), and
 * the server checks the signature against the Host it receives.
 */
export interface S3Proxy {
  url: string;
  /** GetObject requests seen per key. */
  gets: Map<string, number>;
  /** ListObjectsV2 requests seen, in order. */
  lists: ListRequest[];
  close(): Promise<void>;
}

export interface ListRequest {
  bucket: string;
  prefix: string;
  startAfter: string | null;
  /** A continuation page of an earlier request. */
  continued: boolean;
  at: number;
}

export interface ProxyAnswer {
  status: number;
  headers: Record<string, string | number>;
  body: string;
}

export async function startS3Proxy(upstream: string, intercept?: (key: string, nthGet: number) => ProxyAnswer | null): Promise<S3Proxy> {
  const target = new URL(upstream);
  const gets = new Map<string, number>();
  const lists: ListRequest[] = [];
  const server: Server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://proxy');
    // Path style: /bucket/key. A GET with a key and no list-type is a GetObject.
    const parts = url.pathname.split('/').filter(Boolean);
    if (req.method === 'GET' && url.searchParams.get('list-type') === '2') {
      const q = url.searchParams;
      lists.push({ bucket: decodeURIComponent(parts[0] ?? ''), prefix: q.get('prefix') ?? '', startAfter: q.get('start-after'), continued: q.has('continuation-token'), at: Date.now() });
    }
    if (req.method === 'GET' && parts.length >= 2 && !url.searchParams.has('list-type')) {
      const key = decodeURIComponent(parts.slice(1).join('/'));
      const nth = (gets.get(key) ?? 0) + 1;
      gets.set(key, nth);
      const answer = intercept?.(key, nth);
      if (answer) {
        req.resume();
        res.writeHead(answer.status, { ...answer.headers, 'content-length': Buffer.byteLength(answer.body) });
        res.end(answer.body);
        return;
      }
    }
    const up = httpRequest({ host: target.hostname, port: target.port, method: req.method, path: req.url, headers: req.headers }, (upRes) => {
      res.writeHead(upRes.statusCode ?? 502, upRes.headers);
      upRes.pipe(res);
      upRes.on('error', () => res.destroy());
    });
    up.on('error', () => res.destroy());
    req.pipe(up);
    res.on('close', () => up.destroy());
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    gets,
    lists,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
