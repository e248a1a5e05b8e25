import type { Scope } from './auth.js';
import type { Client } from '@temporalio/client';
import type { Destination } from '../clickhouse/destination.js';
import type { S3Connections } from '../s3/connections.js';
import type { DataSourceService } from './service.js';
import type { EventStats } from '../events/stats.js';
import type { EventStatsStore } from '../events/stats-store.js';

export interface ApiDeps {
  temporal: Client;
  taskQueue: string;
  searchAttributes: boolean;
  destination: Destination;
  s3: S3Connections;
  /** API tokens: admin may change things, readOnly may only read, notify may only post event notifications. None = no auth (loopback only). */
  tokens: { admin: string[]; readOnly: string[]; notify?: string[]; required?: boolean };
  /** Without tokens: Host names answered besides loopback ones (S3CH_ALLOWED_HOSTS). */
  allowedHosts?: Array<{ name: string; port: string | null }>;
  /** How an SNS subscription is confirmed (GET of its SubscribeURL); replaceable so tests need no internet. @default globalThis.fetch */
  fetch?: typeof fetch;
  /** Event notification counters shared with this process's SQS consumers. */
  events?: EventStats;
  /** The counters worker processes report (shown with this process's own). */
  eventStore?: EventStatsStore;
}

export interface AppEnv {
  /** scope: what the request's token may do (admin when the API runs without tokens). */
  Variables: { deps: ApiDeps; service: DataSourceService; scope: Scope };
}
