import { S3Client, type S3ClientConfig } from '@aws-sdk/client-s3';
import { fromNodeProviderChain, fromTemporaryCredentials } from '@aws-sdk/credential-providers';
import type { Connection } from '../schemas/connection.js';

export class UnknownConnectionError extends Error {
  constructor(readonly connection: string, known: string[]) {
    super(`unknown connection '${connection}'; configured: ${known.length ? known.join(', ') : '(none)'}`);
  }
}

/**
 * How a connection signs AWS requests: the same for S3 and for its SQS queue
 * (static keys, the default chain, AssumeRole with ExternalId, or unsigned).
 */
export function signingConfig(conn: Connection): Pick<S3ClientConfig, 'credentials' | 'signer'> {
  switch (conn.kind) {
    case 'static':
      return { credentials: { accessKeyId: conn.accessKeyId, secretAccessKey: conn.secretAccessKey, sessionToken: conn.sessionToken } };
    case 'default-chain':
      return { credentials: fromNodeProviderChain() };
    case 'assume-role':
      return {
        credentials: fromTemporaryCredentials({
          params: { RoleArn: conn.roleArn, ExternalId: conn.externalId, RoleSessionName: conn.sessionName },
          clientConfig: { region: conn.region },
        }),
      };
    case 'anonymous':
      // Unsigned requests for public buckets.
      return { credentials: { accessKeyId: '', secretAccessKey: '' }, signer: { sign: async (req) => req } };
  }
}

function clientConfig(conn: Connection): S3ClientConfig {
  return {
    region: conn.region,
    endpoint: conn.endpoint,
    forcePathStyle: conn.forcePathStyle,
    // Retries belong to Temporal's retry policy (with backoff and visibility);
    // a couple of SDK-level retries absorb only momentary blips.
    maxAttempts: 3,
    ...signingConfig(conn),
  };
}

export interface S3Credentials {
  accessKeyId: string;
  secretAccessKey: string;
  sessionToken?: string;
}

/** Named S3 connections; clients are created lazily and reused. */
export class S3Connections {
  private readonly clients = new Map<string, S3Client>();
  constructor(private readonly connections: Map<string, Connection>) {}

  names(): string[] {
    return [...this.connections.keys()].sort();
  }

  has(name: string): boolean {
    return this.connections.has(name);
  }

  get(name: string): Connection {
    const conn = this.connections.get(name);
    if (!conn) throw new UnknownConnectionError(name, this.names());
    return conn;
  }

  client(name: string): S3Client {
    let client = this.clients.get(name);
    if (!client) {
      client = new S3Client(clientConfig(this.get(name)));
      this.clients.set(name, client);
    }
    return client;
  }

  /**
   * Credentials for ClickHouse to read with (s3() signs its own requests):
   * static keys as configured; for the default chain and AssumeRole, the
   * temporary credentials the SDK's provider resolves (and caches until they
   * near expiry) in the worker; null for anonymous connections (NOSIGN).
   */
  async credentials(name: string): Promise<S3Credentials | null> {
    const conn = this.get(name);
    if (conn.kind === 'anonymous') return null;
    if (conn.kind === 'static') return { accessKeyId: conn.accessKeyId, secretAccessKey: conn.secretAccessKey, sessionToken: conn.sessionToken };
    const c = await this.client(name).config.credentials();
    return { accessKeyId: c.accessKeyId, secretAccessKey: c.secretAccessKey, sessionToken: c.sessionToken };
  }

  close() {
    for (const c of this.clients.values()) c.destroy();
    this.clients.clear();
  }
}
